/**
 * Before-images of committed documents, kept only while some transaction
 * holds a snapshot older than the change. A transaction reading at snapshot
 * S sees, for every document changed after S, the before-image of the first
 * change after S; everything else it reads from the current committed state.
 */
import type { Document } from 'bson';

interface Change {
  ts: number;
  before: Document | null;
}

export class History {
  /** ns -> document key -> changes in commit order. */
  private readonly byNs = new Map<string, Map<string, Change[]>>();
  private entries = 0;

  get size(): number {
    return this.entries;
  }

  record(ts: number, ns: string, idKey: string, before: Document | null): void {
    let docs = this.byNs.get(ns);
    if (!docs) {
      docs = new Map();
      this.byNs.set(ns, docs);
    }
    let changes = docs.get(idKey);
    if (!changes) {
      changes = [];
      docs.set(idKey, changes);
    }
    changes.push({ ts, before });
    this.entries++;
  }

  /** For documents of `ns` changed after `snapshot`: their state as of the snapshot (null = absent). */
  changedSince(ns: string, snapshot: number): Map<string, Document | null> {
    const out = new Map<string, Document | null>();
    const docs = this.byNs.get(ns);
    if (!docs) return out;
    for (const [idKey, changes] of docs) {
      const first = changes.find((c) => c.ts > snapshot);
      if (first) out.set(idKey, first.before);
    }
    return out;
  }

  /** Whether the document changed after `snapshot` (a write-write conflict for a transaction). */
  changedAfter(ns: string, idKey: string, snapshot: number): boolean {
    const changes = this.byNs.get(ns)?.get(idKey);
    return !!changes && changes[changes.length - 1]!.ts > snapshot;
  }

  /** Drops changes no open snapshot can need (all of them when none is open). */
  prune(oldestSnapshot: number | undefined): void {
    if (oldestSnapshot === undefined) {
      this.byNs.clear();
      this.entries = 0;
      return;
    }
    for (const [ns, docs] of this.byNs) {
      for (const [idKey, changes] of docs) {
        const keep = changes.filter((c) => c.ts > oldestSnapshot);
        this.entries -= changes.length - keep.length;
        if (keep.length) docs.set(idKey, keep);
        else docs.delete(idKey);
      }
      if (docs.size === 0) this.byNs.delete(ns);
    }
  }
}
