/**
 * Committed state of one collection: documents by _id key string (a Map
 * keeps insertion order, which serves as natural order) and its indexes.
 * Only the storage engine mutates it; readers get documents that are never
 * modified in place, so a cursor may keep references across getMores.
 */
import { UUID, type Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { CommandError, ErrorCode } from '../errors.js';
import { Index, type DocumentKeys } from './index.js';

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
  readonly db: string;
  name: string;
  readonly uuid: UUID;
  readonly options: Document;
  readonly docs = new Map<string, Document>();
  readonly indexes: Index[] = [];

  constructor(db: string, name: string, options: Document = {}, uuid: UUID = new UUID()) {
    this.db = db;
    this.name = name;
    this.options = options;
    this.uuid = uuid;
    this.indexes.push(new Index({ ...ID_INDEX_SPEC }));
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
  uniqueViolations(doc: Document, idKey: string, ignoreIds?: (id: string) => boolean): UniqueViolation[] {
    const out: UniqueViolation[] = [];
    for (const index of this.indexes) {
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

  insertDoc(idKey: string, doc: Document): void {
    this.docs.set(idKey, doc);
    for (const index of this.indexes) index.add(idKey, index.keysFor(doc));
  }

  removeDoc(idKey: string): Document | undefined {
    const doc = this.docs.get(idKey);
    if (!doc) return undefined;
    this.docs.delete(idKey);
    for (const index of this.indexes) index.remove(idKey, index.keysFor(doc));
    return doc;
  }

  replaceDoc(idKey: string, doc: Document): Document | undefined {
    const old = this.docs.get(idKey);
    if (!old) {
      this.insertDoc(idKey, doc);
      return undefined;
    }
    this.docs.set(idKey, doc);
    for (const index of this.indexes) {
      const before = index.keysFor(old);
      const after = index.keysFor(doc);
      const beforeSet = new Set(before.keys.map((k) => k.key));
      const afterSet = new Set(after.keys.map((k) => k.key));
      index.remove(idKey, { keys: before.keys.filter((k) => !afterSet.has(k.key)), arrayComponents: [] });
      const added: DocumentKeys = { keys: after.keys.filter((k) => !beforeSet.has(k.key)), arrayComponents: after.arrayComponents };
      index.add(idKey, added);
    }
    return old;
  }

  /** Builds a new index over the current documents; fails without side effects on duplicates. */
  buildIndex(index: Index): void {
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
  }

  dropIndex(name: string): Index {
    const pos = this.indexes.findIndex((i) => i.name === name);
    if (pos < 0) throw new CommandError(ErrorCode.IndexNotFound, `index not found with name [${name}]`);
    if (name === '_id_') throw new CommandError(ErrorCode.InvalidOptions, 'cannot drop _id index');
    const [removed] = this.indexes.splice(pos, 1);
    return removed!;
  }

  clear(): void {
    this.docs.clear();
    for (const index of this.indexes) index.clear();
  }
}
