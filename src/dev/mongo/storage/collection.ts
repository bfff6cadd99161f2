/**
 * Committed state of one collection: documents by _id key string and its
 * indexes, kept by a CollectionStore (LMDB for a server, memory for scratch
 * collections such as $out's staging). Only the storage engine mutates it;
 * readers get documents that are never modified in place, so a cursor may
 * keep references across getMores.
 */
import { UUID, calculateObjectSize, type Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { CommandError, ErrorCode } from '../errors.js';
import { BTree } from './btree.js';
import { Index, type DocumentKeys, type IndexTable } from './index.js';

/** Documents by _id key string; a Map satisfies it (memory), as does the LMDB table. */
export interface DocumentTable {
  readonly size: number;
  get(idKey: string): Document | undefined;
  has(idKey: string): boolean;
  set(idKey: string, doc: Document): unknown;
  delete(idKey: string): boolean;
  clear(): void;
  keys(): IterableIterator<string>;
  values(): IterableIterator<Document>;
  entries(): IterableIterator<[string, Document]>;
  [Symbol.iterator](): IterableIterator<[string, Document]>;
}

/** Where one collection's documents, index entries and metadata live. */
export interface CollectionStore {
  readonly docs: DocumentTable;
  newIndexTable(): IndexTable;
  /** Deletes an index's entries (the index was dropped). */
  dropIndexTable(table: IndexTable): void;
  /** Records the collection's metadata (names, options, index specs, multikey paths). */
  saveMetadata(coll: Collection): void;
  /** Deletes everything of the collection (it was dropped). */
  destroy(): void;
  /** Total BSON bytes of the documents (collStats, dbStats, listDatabases). */
  dataSize(): number;
}

/** A collection held in memory only: scratch space, never persisted. */
export function memoryCollectionStore(): CollectionStore {
  const docs = new Map<string, Document>();
  return {
    docs,
    newIndexTable: () => new BTree(),
    dropIndexTable: () => undefined,
    saveMetadata: () => undefined,
    destroy: () => docs.clear(),
    dataSize: () => [...docs.values()].reduce((sum, doc) => sum + calculateObjectSize(doc), 0),
  };
}

export const ID_INDEX_SPEC: Readonly<Document> = Object.freeze({ v: 2, key: { _id: 1 }, name: '_id_' });

export interface UniqueViolation {
  index: Index;
  values: unknown[];
  key: string;
  otherId: string;
}

export function idKeyOf(doc: Document): string {
  return encodeValue(doc._id);
}

export class Collection {
  db: string;
  name: string;
  readonly uuid: UUID;
  readonly options: Document;
  readonly store: CollectionStore;
  readonly docs: DocumentTable;
  readonly indexes: Index[] = [];
  /** Multikey paths changed since the metadata was last saved. */
  metadataStale = false;

  /** `indexes`: restored ones (their entries already stored); otherwise the _id index is created. */
  constructor(
    db: string,
    name: string,
    options: Document = {},
    uuid: UUID = new UUID(),
    store: CollectionStore = memoryCollectionStore(),
    indexes?: Index[],
  ) {
    this.db = db;
    this.name = name;
    this.options = options;
    this.uuid = uuid;
    this.store = store;
    this.docs = store.docs;
    if (indexes) this.indexes.push(...indexes);
    else this.indexes.push(new Index({ ...ID_INDEX_SPEC }, store.newIndexTable()));
  }

  get ns(): string {
    return `${this.db}.${this.name}`;
  }

  index(name: string): Index | undefined {
    return this.indexes.find((i) => i.name === name);
  }

  /**
   * Secondary unique-index entries that the document would collide with,
   * ignoring entries of `ignoreIds`. The _id index is not consulted: callers
   * check `docs` for an existing _id directly.
   */
  uniqueViolations(
    doc: Document,
    idKey: string,
    ignoreIds?: (id: string) => boolean,
    indexes: readonly Index[] = this.indexes,
  ): UniqueViolation[] {
    const out: UniqueViolation[] = [];
    for (const index of indexes) {
      if (!index.unique || index.isIdIndex) continue;
      for (const k of index.keysFor(doc).keys) {
        for (const other of index.tree.idsWithKey(k.key)) {
          if (other === idKey || ignoreIds?.(other)) continue;
          out.push({ index, values: k.values, key: k.key, otherId: other });
          break;
        }
      }
    }
    return out;
  }

  /**
   * Computes the document's keys in every index, so that a document no index can hold (parallel arrays, too many
   * keys) is refused before the engine applies anything: a commit must not fail half-way. The keys are memoized
   * (Index.keysFor), so the commit does not compute them again.
   */
  assertIndexable(doc: Document, indexes: readonly Index[] = this.indexes): void {
    for (const index of indexes) index.keysFor(doc);
  }

  /**
   * The indexes whose entries a change at `changed` (dotted paths; undefined: anywhere) can alter. An update that
   * sets one field of a large document then recomputes the keys of the indexes on that field alone.
   */
  indexesChangedBy(changed: readonly string[] | undefined): readonly Index[] {
    return changed ? this.indexes.filter((index) => index.dependsOnAny(changed)) : this.indexes;
  }

  insertDoc(idKey: string, doc: Document): void {
    this.docs.set(idKey, doc);
    for (const index of this.indexes) this.addKeys(index, idKey, index.keysFor(doc));
  }

  addKeys(index: Index, idKey: string, keys: DocumentKeys): void {
    if (index.add(idKey, keys)) this.metadataStale = true;
  }

  /** Saves the metadata if an index became multikey (the engine calls it inside the commit). */
  saveIfStale(): void {
    if (!this.metadataStale) return;
    this.metadataStale = false;
    this.store.saveMetadata(this);
  }

  removeDoc(idKey: string): Document | undefined {
    const doc = this.docs.get(idKey);
    if (!doc) return undefined;
    this.docs.delete(idKey);
    for (const index of this.indexes) index.remove(idKey, index.keysFor(doc));
    return doc;
  }

  /** `changed`: where the new document can differ from the stored one (undefined: anywhere). */
  replaceDoc(idKey: string, doc: Document, changed?: readonly string[]): Document | undefined {
    const old = this.docs.get(idKey);
    if (!old) {
      this.insertDoc(idKey, doc);
      return undefined;
    }
    this.docs.set(idKey, doc);
    for (const index of this.indexesChangedBy(changed)) {
      const before = index.keysFor(old);
      const after = index.keysFor(doc);
      const beforeSet = new Set(before.keys.map((k) => k.key));
      const afterSet = new Set(after.keys.map((k) => k.key));
      index.remove(idKey, { keys: before.keys.filter((k) => !afterSet.has(k.key)), arrayComponents: [] });
      const added: DocumentKeys = {
        keys: after.keys.filter((k) => !beforeSet.has(k.key)),
        arrayComponents: after.arrayComponents,
        ...(after.arrayPaths ? { arrayPaths: after.arrayPaths } : {}),
      };
      this.addKeys(index, idKey, added);
    }
    return old;
  }

  /** Builds a new index over the current documents; fails without side effects on duplicates. */
  buildIndex(spec: Document): Index {
    const index = new Index(spec, this.store.newIndexTable());
    const perDoc: Array<[string, DocumentKeys]> = [];
    const seen = new Map<string, string>();
    for (const [idKey, doc] of this.docs) {
      const dk = index.keysFor(doc);
      if (index.unique) {
        for (const k of dk.keys) {
          const other = seen.get(k.key);
          if (other !== undefined && other !== idKey) throw index.duplicateKeyError(this.ns, k.values);
          seen.set(k.key, idKey);
        }
      }
      perDoc.push([idKey, dk]);
    }
    for (const [idKey, dk] of perDoc) index.add(idKey, dk);
    this.indexes.push(index);
    this.metadataStale = false;
    this.store.saveMetadata(this);
    return index;
  }

  /**
   * Replaces an index's entries with ones computed from the documents (see Index.staleEntries). A document the
   * index cannot hold leaves it empty and hidden, for the operator to drop: the collection stays readable.
   */
  rebuildIndex(index: Index): void {
    this.store.dropIndexTable(index.tree);
    index.multikey = false;
    index.wildcardMultikeyPaths.clear();
    for (const set of index.multikeyPaths.values()) set.clear();
    index.staleEntries = false;
    const perDoc: Array<[string, DocumentKeys]> = [];
    try {
      for (const [idKey, doc] of this.docs) perDoc.push([idKey, index.keysFor(doc)]);
    } catch {
      index.spec.hidden = true;
      this.store.saveMetadata(this);
      return;
    }
    for (const [idKey, dk] of perDoc) index.add(idKey, dk);
    this.metadataStale = false;
    this.store.saveMetadata(this);
  }

  dropIndex(name: string): Index {
    const pos = this.indexes.findIndex((i) => i.name === name);
    if (pos < 0) throw new CommandError(ErrorCode.IndexNotFound, `index not found with name [${name}]`);
    if (name === '_id_') throw new CommandError(ErrorCode.InvalidOptions, 'cannot drop _id index');
    const [removed] = this.indexes.splice(pos, 1);
    this.store.dropIndexTable(removed!.tree);
    this.store.saveMetadata(this);
    return removed!;
  }
}
