/**
 * What a read sees of one collection: the latest committed state, or a
 * transaction's view (its snapshot plus its own writes).
 *
 * A transaction view differs from the committed state only for documents
 * changed since its snapshot or written by it (the overlay). The planner
 * still scans the committed indexes and then adds the overlay documents as
 * candidates; every candidate is re-read through the view and re-filtered,
 * so the result is exactly the snapshot's.
 */
import type { Document } from 'bson';
import type { Collection } from './collection.js';
import type { History } from '../txn/history.js';
import type { Transaction } from '../txn/transaction.js';

export interface DocumentSource {
  readonly ns: string;
  readonly collection: Collection | undefined;
  get(idKey: string): Document | undefined;
  /** Visible documents in natural order. */
  scan(): Iterable<Document>;
  /** Document keys whose visible version may differ from the committed one. */
  readonly overlay: ReadonlySet<string>;
}

const EMPTY = new Set<string>();

export class CommittedSource implements DocumentSource {
  readonly overlay: ReadonlySet<string> = EMPTY;

  constructor(
    readonly ns: string,
    readonly collection: Collection | undefined,
  ) {}

  get(idKey: string): Document | undefined {
    return this.collection?.docs.get(idKey);
  }

  scan(): Iterable<Document> {
    return this.collection ? this.collection.docs.values() : [];
  }
}

export class TransactionSource implements DocumentSource {
  readonly overlay: ReadonlySet<string>;
  private readonly atSnapshot: Map<string, Document | null>;

  constructor(
    readonly ns: string,
    readonly collection: Collection | undefined,
    private readonly txn: Transaction,
    history: History,
  ) {
    this.atSnapshot = history.changedSince(ns, txn.snapshot);
    const overlay = new Set(this.atSnapshot.keys());
    for (const id of txn.writesFor(ns)?.docs.keys() ?? []) overlay.add(id);
    this.overlay = overlay;
  }

  get(idKey: string): Document | undefined {
    const own = this.txn.writesFor(this.ns)?.docs.get(idKey);
    if (own) return own.doc ?? undefined;
    if (this.atSnapshot.has(idKey)) return this.atSnapshot.get(idKey) ?? undefined;
    return this.collection?.docs.get(idKey);
  }

  *scan(): Iterable<Document> {
    const committed = this.collection?.docs;
    if (committed) {
      for (const [idKey, doc] of committed) {
        if (!this.overlay.has(idKey)) {
          yield doc;
          continue;
        }
        const visible = this.get(idKey);
        if (visible) yield visible;
      }
    }
    for (const idKey of this.overlay) {
      if (committed?.has(idKey)) continue;
      const visible = this.get(idKey);
      if (visible) yield visible;
    }
  }
}
