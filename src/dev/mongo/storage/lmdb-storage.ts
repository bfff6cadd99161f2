/**
 * The committed state on LMDB (through the `lmdb` package): documents, index
 * entries and the catalog live in one memory-mapped B+tree file, off the
 * JavaScript heap. Memory stays bounded by the page cache the OS grants and a
 * cache of decoded documents (DocumentCache), not by the data; a restart maps
 * the file instead of loading it.
 *
 * Why LMDB: reads are synchronous, in-process and copy-free until decoded
 * (the query planner is synchronous and reads one key at a time), a commit is
 * atomic and crash-proof by construction (copy-on-write pages, no log to
 * replay), and there is one writer at a time, which is what this engine
 * already is. LevelDB/RocksDB bindings answer reads through callbacks or
 * promises on a thread pool, which would make every index probe a round trip.
 *
 * Durability: engine commits of one event-loop turn share one LMDB write
 * transaction (write()), committed without a sync of its own; a command that
 * wrote replies after `sync()`, which commits the open batch and fdatasyncs
 * everything committed so far (group commit, off the event loop), as mongod's
 * journal does with j:true. A killed process loses nothing acknowledged:
 * committed pages are in the OS page cache, and an uncommitted batch holds
 * only unacknowledged commits, whole. Without a data directory the file lives
 * in a temporary directory removed on close, and nothing is synced.
 *
 * Record layout: record-keys.ts. Catalog records, in their own database:
 *   'C' + collection no -> BSON { db, name, uuid, options, indexes: [{ spec, no, multikeyPaths }] }
 *   'N' + collection no -> document count and BSON bytes (two doubles)
 *   'next'              -> the next free storage number
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Binary, UUID, type Document } from 'bson';
import { ABORT, open, type Database, type RootDatabase } from 'lmdb';
import { decodeDocument, encodeDocument, takeReceivedBson } from '../bson/codec.js';
import { Collection, type CollectionStore, type DocumentTable } from './collection.js';
import { lockDataDirectory, unlockDataDirectory } from './data-directory.js';
import { DocumentCache } from './document-cache.js';
import type { StorageBackend } from './engine.js';
import { Index, type IndexTable } from './index.js';
import type { IndexEntry } from './btree.js';
import {
  PAGE_SIZE,
  afterNumber,
  decodeDocumentRecord,
  decodeIndexEntry,
  documentBson,
  documentKey,
  documentValue,
  indexEntryKey,
  indexEntryValue,
  indexLowerBound,
  indexUpperBound,
  numberBytes,
  prefixSuccessor,
} from './record-keys.js';

export interface LmdbStorageOptions {
  /** Undefined: a temporary directory, removed on close. */
  dataDir?: string;
  /** Budget of the decoded-document cache, in BSON bytes (default 64 MiB). */
  cacheBytes?: number;
  /** Whether a new data directory compresses its documents (default true); an existing one keeps its format. */
  compressDocuments?: boolean;
  log?: (msg: string) => void;
}

const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/** Address space reserved for the map; the file grows as data does (lmdb-js enlarges the map when it fills). */
const MAP_SIZE = 64 * 1024 * 1024 * 1024;
const NEXT_KEY = Buffer.from('next');
/**
 * Marks a data directory whose documents are LZ4-compressed. Directories made before compression lack it and keep
 * their documents uncompressed (lmdb-js must open a database with the compression it was written with).
 */
const COMPRESSED_KEY = Buffer.from('documents-lz4');
/**
 * Documents above this size are stored LZ4-compressed (lmdb-js's compression), as mongod's WiredTiger compresses
 * its blocks (snappy). A stored FHIR resource is mostly repeated names and URLs: a 6-8 KB AuditEvent shrinks to
 * a third or less, which also keeps it out of LMDB's overflow pages (a value over ~4 KB takes whole 8 KB pages of
 * its own: about half of every such page was empty).
 */
const COMPRESSION_THRESHOLD = 1024;

type BinaryDatabase = Database<Buffer, Buffer>;

function catalogKey(tag: 'C' | 'N', no: number): Buffer {
  return Buffer.concat([Buffer.from(tag), numberBytes(no)]);
}

function asUUID(v: unknown): UUID {
  if (v instanceof UUID) return v;
  if (v instanceof Binary) return v.toUUID();
  return new UUID();
}

export class LmdbStorage implements StorageBackend {
  readonly persistent: boolean;
  readonly cache: DocumentCache;
  private nextNo: number;
  private writing = false;
  /** Counts changed by the engine commit being written (see countsChanged). */
  private readonly changedCounts = new Map<number, { count: number; bytes: number }>();
  private batch: { close: (result?: unknown) => void; done: Promise<unknown> } | null = null;
  private failure: Error | null = null;
  private discarded: Promise<void> = Promise.resolve();
  /** A commit happened since the last sync started. */
  private dirty = false;
  private syncing: Promise<void> | null = null;
  private queuedSync: Promise<void> | null = null;
  private closed = false;

  private constructor(
    private readonly env: RootDatabase,
    readonly documents: BinaryDatabase,
    readonly indexEntries: BinaryDatabase,
    private readonly catalogRecords: BinaryDatabase,
    readonly dir: string,
    private readonly temporary: boolean,
    cacheBytes: number,
  ) {
    this.persistent = !temporary;
    this.cache = new DocumentCache(cacheBytes);
    const next = catalogRecords.getBinary(NEXT_KEY);
    this.nextNo = next ? next.readUInt32BE(0) : 1;
  }

  static async open(options: LmdbStorageOptions = {}): Promise<LmdbStorage> {
    const temporary = options.dataDir === undefined;
    const dir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'embedded-mongo-')));
    await lockDataDirectory(dir);
    try {
      const env = open({
        path: join(dir, 'data.mdb'),
        pageSize: PAGE_SIZE,
        mapSize: MAP_SIZE,
        maxDbs: 4,
        // Synced by sync() (group commit) instead of once per commit; see the header.
        noSync: true,
        overlappingSync: false,
        // Values are copied out (getBinary) before use; no need to zero fresh pages for us.
        noMemInit: true,
      });
      const indexEntries = env.openDB({ name: 'index-entries', keyEncoding: 'binary', encoding: 'binary' }) as unknown as BinaryDatabase;
      const catalog = env.openDB({ name: 'catalog', keyEncoding: 'binary', encoding: 'binary' }) as unknown as BinaryDatabase;
      // A new directory (nothing numbered yet) compresses its documents; an older one keeps what it has.
      const isNew = catalog.getBinary(NEXT_KEY) === undefined;
      if (isNew && options.compressDocuments !== false) catalog.putSync(COMPRESSED_KEY, Buffer.from([1]));
      const compressed = catalog.getBinary(COMPRESSED_KEY) !== undefined;
      const documents = env.openDB({
        name: 'documents',
        keyEncoding: 'binary',
        encoding: 'binary',
        ...(compressed ? { compression: { threshold: COMPRESSION_THRESHOLD } } : {}),
      }) as unknown as BinaryDatabase;
      return new LmdbStorage(env, documents, indexEntries, catalog, dir, temporary, options.cacheBytes ?? DEFAULT_CACHE_BYTES);
    } catch (err) {
      await unlockDataDirectory(dir);
      throw err;
    }
  }

  /**
   * Runs `fn` inside the current batch: one LMDB write transaction collects every engine commit of an event-loop
   * turn and is committed at the end of the turn (setImmediate) or when a sync needs it. Readers in this process
   * read through the open transaction (lmdb-js does), so they see each commit at once, as before; a crash loses
   * the whole uncommitted batch and never part of a commit, and no command has acknowledged any of it (replies
   * wait for sync()). Engine commits are validated before they start and cannot fail half-way; if one throws all
   * the same (a full disk, a bug), the batch is discarded whole and the storage refuses writes from then on: the
   * commands whose commits were in it are still waiting for their sync, which fails, so nothing acknowledged is lost.
   */
  write<T>(fn: () => T): T {
    if (this.failure) throw this.failure;
    if (this.writing) return fn();
    this.openBatch();
    this.writing = true;
    try {
      const result = fn();
      this.saveChangedCounts();
      this.dirty = true;
      return result;
    } catch (err) {
      this.changedCounts.clear();
      this.fail(err);
      throw err;
    } finally {
      this.writing = false;
    }
  }

  private openBatch(): void {
    if (this.batch) return;
    let close: ((result?: unknown) => void) | undefined;
    const done = this.env.transactionSync(
      () =>
        new Promise<unknown>((resolve) => {
          close = resolve;
        }),
    ) as Promise<unknown>;
    this.batch = { close: close!, done };
    setImmediate(() => {
      this.commitBatch().catch((err: unknown) => this.fail(err));
    });
  }

  /** Commits the open batch, if any. */
  commitBatch(): Promise<void> {
    const batch = this.batch;
    if (!batch) return Promise.resolve();
    this.batch = null;
    batch.close();
    return batch.done.then(() => undefined);
  }

  private fail(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.failure ??= new Error(
      `embedded mongo: a storage write failed (${message}); the uncommitted batch was discarded and writes are refused until a restart`,
    );
    this.cache.clear();
    const batch = this.batch;
    this.batch = null;
    if (!batch) return;
    batch.close(ABORT);
    this.discarded = batch.done.then(
      () => undefined,
      () => undefined,
    );
  }

  /** Resolves once a discarded batch is gone (reads then see the committed state again). */
  whenDiscarded(): Promise<void> {
    return this.discarded;
  }

  /** Resolves once every commit made before the call is on disk (one fdatasync for all that wait). */
  sync(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.resolve();
    if (this.temporary) return this.commitBatch();
    if (!this.dirty) return this.syncing ?? Promise.resolve();
    if (!this.syncing) return this.startSync();
    // A sync is running and does not cover the latest commits: one more after it, shared by all that wait meanwhile.
    this.queuedSync ??= this.syncing.then(
      () => this.startSync(),
      () => this.startSync(),
    );
    return this.queuedSync;
  }

  private startSync(): Promise<void> {
    this.queuedSync = null;
    this.dirty = false;
    const run = this.commitBatch().then(
      () =>
        new Promise<void>((resolve, reject) => {
          // lmdb-js's env.sync (untyped): mdb_env_sync(force) on a worker thread.
          (this.env as unknown as { sync(callback: (error?: unknown) => void): void }).sync((error?: unknown) =>
            error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
          );
        }),
    );
    this.syncing = run;
    const clear = (): void => {
      if (this.syncing === run) this.syncing = null;
    };
    run.then(clear, clear);
    return run;
  }

  allocateNumber(): number {
    const no = this.nextNo++;
    this.catalogRecords.putSync(NEXT_KEY, numberBytes(this.nextNo));
    return no;
  }

  newCollectionStore(): LmdbCollectionStore {
    return new LmdbCollectionStore(this, this.allocateNumber(), 0, 0);
  }

  /** The collections as committed, with their indexes (the entries stay where they are). */
  loadCollections(): Collection[] {
    this.cache.clear();
    const out: Collection[] = [];
    for (const { key, value } of this.catalogRecords.getRange({ start: Buffer.from('C'), end: Buffer.from('D') })) {
      const no = key.readUInt32BE(1);
      const record = decodeDocument(value);
      const counts = this.catalogRecords.getBinary(catalogKey('N', no));
      const store = new LmdbCollectionStore(this, no, counts ? counts.readDoubleBE(0) : 0, counts ? counts.readDoubleBE(8) : 0);
      const indexes = ((record.indexes as Document[]) ?? []).map((saved) => {
        const index = new Index(saved.spec as Document, new LmdbIndexTable(this, Number(saved.no)));
        index.restoreMultikeyPaths((saved.multikeyPaths as Document) ?? {});
        return index;
      });
      out.push(
        new Collection(String(record.db), String(record.name), (record.options as Document) ?? {}, asUUID(record.uuid), store, indexes),
      );
    }
    return out;
  }

  saveMetadata(no: number, coll: Collection): void {
    const record = {
      db: coll.db,
      name: coll.name,
      uuid: coll.uuid,
      options: coll.options,
      indexes: coll.indexes.map((index) => ({ spec: index.spec, no: index.tree.storageNo, multikeyPaths: index.savedMultikeyPaths() })),
    };
    this.catalogRecords.putSync(catalogKey('C', no), encodeDocument(record));
  }

  /**
   * A collection's document count and size changed: saved once at the end of the engine commit (an insert of a
   * thousand documents writes its counts once, not a thousand times), at once outside one.
   */
  countsChanged(no: number, count: number, bytes: number): void {
    if (this.writing) this.changedCounts.set(no, { count, bytes });
    else this.saveCounts(no, count, bytes);
  }

  private saveChangedCounts(): void {
    for (const [no, { count, bytes }] of this.changedCounts) this.saveCounts(no, count, bytes);
    this.changedCounts.clear();
  }

  saveCounts(no: number, count: number, bytes: number): void {
    const value = Buffer.allocUnsafe(16);
    value.writeDoubleBE(count, 0);
    value.writeDoubleBE(bytes, 8);
    this.catalogRecords.putSync(catalogKey('N', no), value);
  }

  removeMetadata(no: number): void {
    this.changedCounts.delete(no);
    this.catalogRecords.removeSync(catalogKey('C', no));
    this.catalogRecords.removeSync(catalogKey('N', no));
  }

  /** Deletes every record of storage number `no` from `db`. */
  removeRange(db: BinaryDatabase, no: number): void {
    // Keys first, then deletions: deleting under a live cursor of the same transaction could skip entries.
    for (;;) {
      const keys = [...db.getKeys({ start: numberBytes(no), end: afterNumber(no), limit: 10_000 })];
      if (keys.length === 0) return;
      for (const key of keys) db.removeSync(key);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.sync().catch(() => undefined);
    await this.commitBatch().catch(() => undefined);
    this.closed = true;
    await this.env.close();
    if (this.temporary) await rm(this.dir, { recursive: true, force: true });
    else await unlockDataDirectory(this.dir);
  }
}

export class LmdbCollectionStore implements CollectionStore {
  readonly docs: LmdbDocumentTable;

  constructor(
    private readonly storage: LmdbStorage,
    readonly no: number,
    count: number,
    bytes: number,
  ) {
    this.docs = new LmdbDocumentTable(storage, no, count, bytes);
  }

  newIndexTable(): IndexTable {
    return new LmdbIndexTable(this.storage, this.storage.allocateNumber());
  }

  dropIndexTable(table: IndexTable): void {
    if (table.storageNo !== undefined) this.storage.removeRange(this.storage.indexEntries, table.storageNo);
  }

  saveMetadata(coll: Collection): void {
    this.storage.saveMetadata(this.no, coll);
  }

  destroy(): void {
    this.docs.clear();
    this.storage.removeMetadata(this.no);
  }

  dataSize(): number {
    return this.docs.bytes;
  }
}

/** One collection's documents: BSON records keyed by _id key, decoded on read through the shared cache. */
export class LmdbDocumentTable implements DocumentTable {
  constructor(
    private readonly storage: LmdbStorage,
    private readonly no: number,
    private count: number,
    public bytes: number,
  ) {}

  get size(): number {
    return this.count;
  }

  private cacheKey(idKey: string): string {
    return `${this.no}:${idKey}`;
  }

  get(idKey: string): Document | undefined {
    const cacheKey = this.cacheKey(idKey);
    const cached = this.storage.cache.get(cacheKey);
    if (cached) return cached;
    // A copy: decoded Binary values keep referring to the bytes they came from.
    const raw = this.storage.documents.getBinary(documentKey(this.no, idKey));
    if (!raw) return undefined;
    const bson = documentBson(raw);
    const doc = decodeDocument(bson);
    this.storage.cache.set(cacheKey, doc, bson.length);
    return doc;
  }

  has(idKey: string): boolean {
    if (this.storage.cache.has(this.cacheKey(idKey))) return true;
    return this.storage.documents.getBinaryFast(documentKey(this.no, idKey)) !== undefined;
  }

  set(idKey: string, doc: Document): this {
    const key = documentKey(this.no, idKey);
    const bson = takeReceivedBson(doc) ?? encodeDocument(doc);
    const old = this.storage.documents.getBinaryFast(key);
    if (old) this.bytes -= documentBson(old).length;
    else this.count++;
    this.bytes += bson.length;
    this.storage.documents.putSync(key, documentValue(idKey, bson));
    this.storage.countsChanged(this.no, this.count, this.bytes);
    this.storage.cache.set(this.cacheKey(idKey), doc, bson.length);
    return this;
  }

  delete(idKey: string): boolean {
    const key = documentKey(this.no, idKey);
    const old = this.storage.documents.getBinaryFast(key);
    this.storage.cache.delete(this.cacheKey(idKey));
    if (!old) return false;
    this.bytes -= documentBson(old).length;
    this.count--;
    this.storage.documents.removeSync(key);
    this.storage.countsChanged(this.no, this.count, this.bytes);
    return true;
  }

  clear(): void {
    this.storage.removeRange(this.storage.documents, this.no);
    this.storage.cache.deletePrefix(`${this.no}:`);
    this.count = 0;
    this.bytes = 0;
  }

  /** Records in _id order; documents are decoded unless cached, and scans do not fill the cache. */
  *entries(): IterableIterator<[string, Document]> {
    for (const { key, value } of this.storage.documents.getRange({ start: numberBytes(this.no), end: afterNumber(this.no) })) {
      const record = decodeDocumentRecord(key, value);
      const cached = this.storage.cache.peek(this.cacheKey(record.idKey));
      yield [record.idKey, cached ?? decodeDocument(record.bson)];
    }
  }

  [Symbol.iterator](): IterableIterator<[string, Document]> {
    return this.entries();
  }

  *values(): IterableIterator<Document> {
    for (const [, doc] of this.entries()) yield doc;
  }

  *keys(): IterableIterator<string> {
    for (const { key, value } of this.storage.documents.getRange({ start: numberBytes(this.no), end: afterNumber(this.no) })) {
      yield decodeDocumentRecord(key, value).idKey;
    }
  }
}

/** One index's (key, id) entries, in key order (record-keys.ts). */
export class LmdbIndexTable implements IndexTable {
  constructor(
    private readonly storage: LmdbStorage,
    readonly storageNo: number,
  ) {}

  insert(entry: IndexEntry): boolean {
    this.storage.indexEntries.putSync(indexEntryKey(this.storageNo, entry.key, entry.id), indexEntryValue(entry.key, entry.id));
    return true;
  }

  delete(entry: IndexEntry): boolean {
    return this.storage.indexEntries.removeSync(indexEntryKey(this.storageNo, entry.key, entry.id));
  }

  *range(start: string | null, end: string | null, backward = false): Generator<IndexEntry> {
    const low = indexLowerBound(this.storageNo, start);
    const high = indexUpperBound(this.storageNo, end);
    const records = backward
      ? this.storage.indexEntries.getRange({ start: high, end: low, reverse: true })
      : this.storage.indexEntries.getRange({ start: low, end: high });
    for (const { key, value } of records) {
      const entry = decodeIndexEntry(key, value);
      // Exact for ordinary records; long ones (record-keys.ts) are only placed by their first code units.
      if ((start !== null && entry.key < start) || (end !== null && entry.key >= end)) continue;
      yield entry;
    }
  }

  idsWithKey(key: string): string[] {
    const out: string[] = [];
    for (const entry of this.range(key, prefixSuccessor(key))) if (entry.key === key) out.push(entry.id);
    return out;
  }
}
