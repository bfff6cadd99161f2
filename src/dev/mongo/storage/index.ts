/**
 * One secondary (or _id) index: its spec as listIndexes reports it, key
 * generation with mongod's multikey rules, and its table of (key, id)
 * entries (LMDB for a server's collections, a B+tree in memory for scratch).
 */
import type { Document } from 'bson';
import { Query } from 'mingo/query';
import { encodeValue, invert } from '../bson/keystring.js';
import { formatDocument } from '../bson/format.js';
import { CommandError, ErrorCode } from '../errors.js';
import { mingoOptions } from '../query/mingo-context.js';
import { collectPathValues, componentsOf, pathExists } from '../query/paths.js';
import { BTree, type IndexEntry } from './btree.js';

export interface IndexField {
  path: string;
  direction: 1 | -1;
}

export interface IndexKey {
  /** Composite key string (descending fields complemented). */
  key: string;
  /** The field values the key was built from, for keyValue in errors. */
  values: unknown[];
}

export interface DocumentKeys {
  keys: IndexKey[];
  /** Per index field (same order), the bitmask of path positions at which arrays were traversed. */
  arrayComponents: number[];
}

/** Ordered (key, id) entries of one index. */
export interface IndexTable {
  /** The storage number of a persistent table (its records' prefix); undefined in memory. */
  readonly storageNo?: number;
  insert(entry: IndexEntry): boolean;
  delete(entry: IndexEntry): boolean;
  /** Entries with start <= key < end (null: unbounded), ascending or descending. */
  range(start: string | null, end: string | null, backward?: boolean): Iterable<IndexEntry>;
  /** Ids stored under exactly `key`. */
  idsWithKey(key: string): string[];
}

const MAX_KEYS_PER_DOCUMENT = 100_000;

/** The field paths a partial filter looks at (through $and), or undefined when that cannot be said. */
function filterFieldPaths(filter: Document): string[] | undefined {
  const out: string[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and' && Array.isArray(value)) {
      for (const part of value) {
        const inner = part !== null && typeof part === 'object' && !Array.isArray(part) ? filterFieldPaths(part as Document) : undefined;
        if (!inner) return undefined;
        out.push(...inner);
      }
    } else if (key.startsWith('$')) {
      return undefined;
    } else {
      out.push(key);
    }
  }
  return out;
}

export function parseKeyPattern(key: unknown): IndexField[] {
  if (key === null || typeof key !== 'object' || Array.isArray(key) || Object.keys(key).length === 0) {
    throw new CommandError(ErrorCode.CannotCreateIndex, 'Index keys cannot be an empty field.');
  }
  const fields: IndexField[] = [];
  for (const [path, dir] of Object.entries(key as Document)) {
    const n = typeof dir === 'number' ? dir : (dir as { valueOf(): unknown } | null)?.valueOf();
    if (typeof n === 'number' && n !== 0 && !Number.isNaN(n)) {
      fields.push({ path, direction: n > 0 ? 1 : -1 });
      continue;
    }
    if (typeof dir === 'string') {
      throw new CommandError(
        ErrorCode.CannotCreateIndex,
        `Index type '${dir}' on field '${path}' is not supported by the embedded server (only ascending/descending indexes are)`,
      );
    }
    throw new CommandError(
      ErrorCode.CannotCreateIndex,
      `Values in index key pattern must be positive or negative numbers: ${formatDocument(key as Document)}`,
    );
  }
  return fields;
}

export function defaultIndexName(key: Document): string {
  return Object.entries(key)
    .map(([k, v]) => `${k}_${String(v)}`)
    .join('_');
}

export class Index {
  readonly spec: Document;
  readonly name: string;
  readonly fields: IndexField[];
  readonly unique: boolean;
  readonly sparse: boolean;
  readonly partialFilter: Document | undefined;
  readonly tree: IndexTable;
  private readonly partialQuery: Query | undefined;
  /** The paths whose values decide this index's entries for a document (key fields, partial filter fields); undefined: any. */
  private readonly dependsOn: string[] | undefined;
  /** Sticky, as in mongod: once an array was indexed the index stays multikey. */
  multikey = false;
  readonly multikeyPaths = new Map<string, Set<number>>();
  private readonly memo: Array<{ doc: Document; keys: DocumentKeys } | undefined> = [];

  constructor(spec: Document, tree: IndexTable = new BTree()) {
    this.spec = spec;
    this.tree = tree;
    this.name = String(spec.name);
    this.fields = parseKeyPattern(spec.key);
    this.unique = spec.unique === true || this.name === '_id_';
    this.sparse = spec.sparse === true;
    const partial: unknown = spec.partialFilterExpression;
    this.partialFilter = partial && typeof partial === 'object' ? (partial as Document) : undefined;
    this.partialQuery = this.partialFilter ? new Query(this.partialFilter, mingoOptions()) : undefined;
    for (const f of this.fields) this.multikeyPaths.set(f.path, new Set());
    const filterPaths = this.partialFilter ? filterFieldPaths(this.partialFilter) : [];
    this.dependsOn = filterPaths && [...this.fields.map((f) => f.path), ...filterPaths];
  }

  /** Whether changes at `paths` (dotted) can change this index's entries for a document. */
  dependsOnAny(paths: readonly string[]): boolean {
    if (!this.dependsOn) return true;
    for (const a of this.dependsOn) {
      for (const b of paths) if (a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`)) return true;
    }
    return false;
  }

  get keyPattern(): Document {
    return this.spec.key as Document;
  }

  get isIdIndex(): boolean {
    return this.name === '_id_';
  }

  /** Whether the document has entries in this index at all. */
  covers(doc: Document): boolean {
    if (this.partialQuery && !this.partialQuery.test(doc)) return false;
    if (this.sparse && !this.fields.some((f) => pathExists(doc, f.path))) return false;
    return true;
  }

  /**
   * Keys of a document in this index. Documents are immutable, so the last
   * two results are memoized: a write computes the same keys for its unique
   * check and again when the engine applies it.
   */
  keysFor(doc: Document): DocumentKeys {
    if (this.memo[0]?.doc === doc) return this.memo[0].keys;
    if (this.memo[1]?.doc === doc) return this.memo[1].keys;
    const keys = this.computeKeys(doc);
    this.memo[1] = this.memo[0];
    this.memo[0] = { doc, keys };
    return keys;
  }

  private computeKeys(doc: Document): DocumentKeys {
    if (!this.covers(doc)) return { keys: [], arrayComponents: [] };
    const arrayComponents: number[] = [];
    const perField: Array<Array<{ enc: string; value: unknown }>> = [];
    for (const field of this.fields) {
      const pv = collectPathValues(doc, field.path);
      arrayComponents.push(pv.arrayComponents);
      const list: Array<{ enc: string; value: unknown }> = [];
      if (pv.values.length === 1) {
        const enc = encodeValue(pv.values[0]);
        list.push({ enc: field.direction === 1 ? enc : invert(enc), value: pv.values[0] });
      } else {
        const seen = new Set<string>();
        for (const value of pv.values) {
          const enc = encodeValue(value);
          if (seen.has(enc)) continue;
          seen.add(enc);
          list.push({ enc: field.direction === 1 ? enc : invert(enc), value });
        }
      }
      perField.push(list);
    }
    if (perField.length === 1) {
      return { keys: perField[0]!.map((item) => ({ key: item.enc, values: [item.value] })), arrayComponents };
    }
    this.checkParallelArrays(arrayComponents);
    let combos: IndexKey[] = [{ key: '', values: [] }];
    for (const list of perField) {
      if (combos.length * list.length > MAX_KEYS_PER_DOCUMENT) {
        throw new CommandError(ErrorCode.CannotCreateIndex, `too many index keys generated for index ${this.name}`);
      }
      const next: IndexKey[] = [];
      for (const c of combos) for (const item of list) next.push({ key: c.key + item.enc, values: [...c.values, item.value] });
      combos = next;
    }
    return { keys: combos, arrayComponents };
  }

  /**
   * Arrays under two different indexed fields are only allowed when they are
   * the same array (e.g. 'x.a' and 'x.b' both traverse array 'x').
   */
  private checkParallelArrays(masks: number[]): void {
    const arrayPaths = masks.map((mask, f) => {
      const parts = this.fields[f]!.path.split('.');
      return componentsOf(mask).map((c) => parts.slice(0, c + 1).join('.'));
    });
    for (let i = 0; i < arrayPaths.length; i++) {
      for (let j = i + 1; j < arrayPaths.length; j++) {
        const a = arrayPaths[i]!;
        const b = arrayPaths[j]!;
        if (a.length && b.length && !a.some((p) => b.includes(p))) {
          throw new CommandError(ErrorCode.CannotIndexParallelArrays, `cannot index parallel arrays [${b.at(-1)}] [${a.at(-1)}]`);
        }
      }
    }
  }

  /** Adds the entries; true when the index's multikey paths grew (metadata to save). */
  add(id: string, dk: DocumentKeys): boolean {
    for (const k of dk.keys) this.tree.insert({ key: k.key, id });
    let grew = false;
    dk.arrayComponents.forEach((mask, f) => {
      if (mask === 0) return;
      this.multikey = true;
      const set = this.multikeyPaths.get(this.fields[f]!.path)!;
      for (const c of componentsOf(mask)) {
        if (set.has(c)) continue;
        set.add(c);
        grew = true;
      }
    });
    return grew;
  }

  /** Restores multikey paths saved with the collection's metadata. */
  restoreMultikeyPaths(saved: Document): void {
    for (const [path, components] of Object.entries(saved)) {
      const set = this.multikeyPaths.get(path);
      if (!set || !Array.isArray(components)) continue;
      for (const c of components) set.add(Number(c));
      if (set.size) this.multikey = true;
    }
  }

  /** Multikey paths as saved with the collection's metadata: { path: [component, ...] }. */
  savedMultikeyPaths(): Document {
    const out: Document = {};
    for (const [path, set] of this.multikeyPaths) out[path] = [...set];
    return out;
  }

  remove(id: string, dk: DocumentKeys): void {
    for (const k of dk.keys) this.tree.delete({ key: k.key, id });
  }

  /** keyValue for a duplicate key error: { field: value, ... }. */
  keyValue(values: unknown[]): Document {
    const out: Document = {};
    this.fields.forEach((f, i) => {
      out[f.path] = values[i] === undefined ? null : values[i];
    });
    return out;
  }

  duplicateKeyError(ns: string, values: unknown[]): CommandError {
    const keyValue = this.keyValue(values);
    return new CommandError(
      ErrorCode.DuplicateKey,
      `E11000 duplicate key error collection: ${ns} index: ${this.name} dup key: ${formatDocument(keyValue)}`,
      { keyPattern: this.keyPattern, keyValue },
    );
  }

  /** multiKeyPaths as explain reports it: { 'a.b': ['a'] } lists the array-valued prefixes. */
  explainMultiKeyPaths(): Document {
    const out: Document = {};
    for (const f of this.fields) {
      const parts = f.path.split('.');
      out[f.path] = [...(this.multikeyPaths.get(f.path) ?? [])].sort((a, b) => a - b).map((c) => parts.slice(0, c + 1).join('.'));
    }
    return out;
  }
}
