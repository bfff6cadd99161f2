/**
 * The committed state and the only code that changes it. Callers validate
 * first (unique keys, locks, conflicts); `apply` then cannot fail halfway,
 * which is what makes a transaction's commit atomic: it runs in one
 * synchronous call, so no reader can observe part of it.
 */
import type { Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { History } from '../txn/history.js';
import { Catalog, splitNamespace } from './catalog.js';
import type { Collection } from './collection.js';
import { idKeyOf } from './collection.js';
import { Index } from './index.js';
import type { StorageOp } from './ops.js';

export interface JournalSink {
  append(ops: StorageOp[]): void;
  flush(): Promise<void>;
}

interface DocChange {
  idKey: string;
  doc: Document | null;
}

export class StorageEngine {
  readonly catalog = new Catalog();
  readonly history = new History();
  journal: JournalSink | null = null;
  private clock = 0;
  /** Open transaction snapshots (timestamp -> number of holders). */
  private readonly snapshots = new Map<number, number>();

  get timestamp(): number {
    return this.clock;
  }

  openSnapshot(): number {
    const ts = this.clock;
    this.snapshots.set(ts, (this.snapshots.get(ts) ?? 0) + 1);
    return ts;
  }

  closeSnapshot(ts: number): void {
    const n = this.snapshots.get(ts);
    if (n === undefined) return;
    if (n <= 1) this.snapshots.delete(ts);
    else this.snapshots.set(ts, n - 1);
    this.history.prune(this.snapshots.size ? Math.min(...this.snapshots.keys()) : undefined);
  }

  apply(ops: StorageOp[], options: { journal?: boolean } = {}): void {
    if (ops.length === 0) return;
    const ts = ++this.clock;
    const recordHistory = this.snapshots.size > 0;
    let batchNs: string | undefined;
    let batch: DocChange[] = [];
    const flushBatch = (): void => {
      if (batchNs !== undefined && batch.length) this.applyDocChanges(batchNs, batch, ts, recordHistory);
      batch = [];
      batchNs = undefined;
    };
    for (const op of ops) {
      if (op.op === 'insert' || op.op === 'replace' || op.op === 'delete') {
        if (batchNs !== op.ns) flushBatch();
        batchNs = op.ns;
        batch.push(op.op === 'delete' ? { idKey: encodeValue(op.id), doc: null } : { idKey: idKeyOf(op.doc), doc: op.doc });
        continue;
      }
      flushBatch();
      this.applyCatalogOp(op);
    }
    flushBatch();
    if (options.journal !== false && this.journal) this.journal.append(ops);
  }

  durable(): Promise<void> {
    return this.journal ? this.journal.flush() : Promise.resolve();
  }

  private collectionFor(ns: string): Collection {
    const existing = this.catalog.get(ns);
    if (existing) return existing;
    // Only reachable when replaying a journal written by an older layout.
    const { db, coll } = splitNamespace(ns);
    return this.catalog.create(db, coll);
  }

  private applyDocChanges(ns: string, changes: DocChange[], ts: number, recordHistory: boolean): void {
    const coll = this.collectionFor(ns);
    if (recordHistory) {
      for (const c of changes) this.history.record(ts, ns, c.idKey, coll.docs.get(c.idKey) ?? null);
    }
    if (changes.length === 1) {
      const { idKey, doc } = changes[0]!;
      if (doc === null) coll.removeDoc(idKey);
      else coll.replaceDoc(idKey, doc);
      return;
    }
    // Remove every old key before adding any new one, so a set of changes
    // that is consistent as a whole (e.g. two documents swapping a unique
    // value inside one transaction) never trips over its own old keys.
    const replaced: DocChange[] = [];
    for (const c of changes) {
      if (c.doc === null) {
        coll.removeDoc(c.idKey);
      } else if (coll.docs.has(c.idKey)) {
        const old = coll.docs.get(c.idKey)!;
        for (const index of coll.indexes) index.remove(c.idKey, index.keysFor(old));
        replaced.push(c);
      } else {
        replaced.push(c);
      }
    }
    for (const c of replaced) {
      const doc = c.doc!;
      coll.docs.set(c.idKey, doc);
      for (const index of coll.indexes) index.add(c.idKey, index.keysFor(doc));
    }
  }

  private applyCatalogOp(op: Exclude<StorageOp, { op: 'insert' | 'replace' | 'delete' }>): void {
    switch (op.op) {
      case 'createCollection': {
        const { db, coll } = splitNamespace(op.ns);
        if (!this.catalog.getIn(db, coll)) this.catalog.create(db, coll, op.options, op.uuid);
        return;
      }
      case 'dropCollection': {
        const { db, coll } = splitNamespace(op.ns);
        this.catalog.drop(db, coll);
        return;
      }
      case 'createIndex': {
        const coll = this.collectionFor(op.ns);
        if (!coll.index(String(op.spec.name))) coll.buildIndex(new Index(op.spec));
        return;
      }
      case 'dropIndex': {
        const coll = this.catalog.get(op.ns);
        if (coll?.index(op.name)) coll.dropIndex(op.name);
        return;
      }
      case 'renameCollection': {
        if (!this.catalog.get(op.from)) return;
        const to = splitNamespace(op.to);
        this.catalog.drop(to.db, to.coll);
        this.catalog.rename(splitNamespace(op.from), to);
        return;
      }
      case 'dropDatabase':
        this.catalog.dropDatabase(op.db);
        return;
      case 'collMod': {
        const coll = this.catalog.get(op.ns);
        if (!coll) return;
        for (const k of Object.keys(coll.options)) delete coll.options[k];
        Object.assign(coll.options, op.options);
        for (const spec of op.indexSpecs) {
          const index = coll.index(String(spec.name));
          if (!index) continue;
          for (const k of Object.keys(index.spec)) delete index.spec[k];
          Object.assign(index.spec, spec);
        }
        return;
      }
    }
  }
}
