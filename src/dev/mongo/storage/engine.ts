/**
 * The committed state and the only code that changes it. Callers validate
 * first (unique keys, locks, conflicts); `apply` then cannot fail halfway,
 * which is what makes a transaction's commit atomic: it runs in one
 * synchronous call, so no reader can observe part of it, and in one write
 * transaction of the backend, so a crash keeps all of it or none.
 */
import type { Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { History } from '../txn/history.js';
import { Catalog, splitNamespace } from './catalog.js';
import type { Collection, CollectionStore } from './collection.js';
import { idKeyOf, memoryCollectionStore } from './collection.js';
import type { StorageOp } from './ops.js';

/** Where committed state lives: LMDB (lmdb-storage.ts) for a server, memory for unit tests of the engine's parts. */
export interface StorageBackend {
  readonly persistent: boolean;
  newCollectionStore(): CollectionStore;
  /** Runs `fn` as one atomic, crash-safe unit. */
  write<T>(fn: () => T): T;
  /** Resolves once every commit made so far is durable. */
  sync(): Promise<void>;
  /** The collections as committed (after a failed write, to rebuild the catalog from). */
  loadCollections(): Collection[];
  /** Resolves once the writes discarded by a failure are gone. */
  whenDiscarded(): Promise<void>;
  close(): Promise<void>;
}

/** Nothing persists and a failed write cannot be undone (apply is written never to fail halfway). */
export class MemoryBackend implements StorageBackend {
  readonly persistent = false;
  newCollectionStore(): CollectionStore {
    return memoryCollectionStore();
  }
  write<T>(fn: () => T): T {
    return fn();
  }
  sync(): Promise<void> {
    return Promise.resolve();
  }
  loadCollections(): Collection[] {
    throw new Error('the memory backend keeps no committed copy to reload');
  }
  whenDiscarded(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface DocChange {
  idKey: string;
  doc: Document | null;
  /** Where a replacement can differ from the stored document (undefined: anywhere). */
  changed?: readonly string[];
}

export class StorageEngine {
  readonly catalog: Catalog;
  readonly history = new History();
  private clock = 0;
  /** Open transaction snapshots (timestamp -> number of holders). */
  private readonly snapshots = new Map<number, number>();

  constructor(readonly backend: StorageBackend = new MemoryBackend()) {
    this.catalog = new Catalog(backend);
    if (backend.persistent) for (const coll of backend.loadCollections()) this.catalog.restore(coll);
    for (const coll of this.catalog.allCollections()) {
      for (const index of coll.indexes) if (index.staleEntries) backend.write(() => coll.rebuildIndex(index));
    }
  }

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

  apply(ops: StorageOp[]): void {
    if (ops.length === 0) return;
    try {
      this.backend.write(() => this.applyInWrite(ops));
    } catch (err) {
      // The backend keeps nothing of it; the in-memory catalog (counts, multikey paths, new or dropped collections)
      // follows once the discarded writes are gone.
      if (this.backend.persistent) {
        void this.backend.whenDiscarded().then(() => this.catalog.reload(this.backend.loadCollections()));
      }
      throw err;
    }
  }

  private applyInWrite(ops: StorageOp[]): void {
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
        batch.push(
          op.op === 'delete'
            ? { idKey: encodeValue(op.id), doc: null }
            : { idKey: idKeyOf(op.doc), doc: op.doc, ...(op.op === 'replace' && op.changed ? { changed: op.changed } : {}) },
        );
        continue;
      }
      flushBatch();
      this.applyCatalogOp(op);
    }
    flushBatch();
  }

  durable(): Promise<void> {
    return this.backend.sync();
  }

  private collectionFor(ns: string): Collection {
    const existing = this.catalog.get(ns);
    if (existing) return existing;
    const { db, coll } = splitNamespace(ns);
    return this.catalog.create(db, coll);
  }

  private applyDocChanges(ns: string, changes: DocChange[], ts: number, recordHistory: boolean): void {
    const coll = this.collectionFor(ns);
    if (recordHistory) {
      for (const c of changes) this.history.record(ts, ns, c.idKey, coll.docs.get(c.idKey) ?? null);
    }
    if (changes.length === 1) {
      const { idKey, doc, changed } = changes[0]!;
      if (doc === null) coll.removeDoc(idKey);
      else coll.replaceDoc(idKey, doc, changed);
      coll.saveIfStale();
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
      for (const index of coll.indexes) coll.addKeys(index, c.idKey, index.keysFor(doc));
    }
    coll.saveIfStale();
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
        this.catalog.drop(db, coll)?.store.destroy();
        return;
      }
      case 'createIndex': {
        const coll = this.collectionFor(op.ns);
        if (!coll.index(String(op.spec.name))) coll.buildIndex(op.spec);
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
        this.catalog.drop(to.db, to.coll)?.store.destroy();
        this.catalog.rename(splitNamespace(op.from), to);
        return;
      }
      case 'dropDatabase':
        for (const coll of this.catalog.dropDatabase(op.db)) coll.store.destroy();
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
        coll.store.saveMetadata(coll);
        return;
      }
    }
  }
}
