/**
 * One secondary (or _id) index: its spec as listIndexes reports it, key
 * generation with mongod's multikey rules, and its table of (key, id)
 * entries (LMDB for a server's collections, a B+tree in memory for scratch).
 *
 * A wildcard index ('$**', 'a.$**', compound with regular fields) keys each
 * leaf of its wildcard term as (regular fields before it, the leaf's path,
 * the leaf's value, regular fields after it); wildcard.ts walks the leaves.
 * Its multikey paths are the set of paths at which arrays were traversed.
 */
import { MinKey, type Document } from 'bson';
import { Query } from 'mingo/query';
import { encodeValue, invert } from '../bson/keystring.js';
import { formatDocument } from '../bson/format.js';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { mingoOptions } from '../query/mingo-context.js';
import { collectPathValues, componentsOf, pathExists } from '../query/paths.js';
import { BTree, type IndexEntry } from './btree.js';
import {
  defaultProjection,
  isWildcardField,
  parseWildcardProjection,
  subtreeProjection,
  walkWildcard,
  wildcardPrefix,
  WildcardCode,
  type WildcardProjection,
} from './wildcard.js';

export interface IndexField {
  path: string;
  direction: 1 | -1;
  /** The wildcard term of a wildcard index ('$**', 'a.$**'); `path` is then that key pattern name. */
  wildcard?: boolean;
}

/** The wildcard term of a wildcard index. */
export interface WildcardTerm {
  /** Position in the key pattern. */
  readonly position: number;
  /** The key pattern name ('idx.$**'). */
  readonly name: string;
  readonly direction: 1 | -1;
  /** What is indexed: the leaves under a 'path.$**' prefix, or the document through a wildcardProjection. */
  readonly projection: WildcardProjection;
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
  /** A wildcard index: the dotted paths at which its walk traversed an array. */
  arrayPaths?: string[];
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

/** Where a wildcard index's multikey paths are saved among its fields' multikey components ('$' cannot start a key field). */
const WILDCARD_MULTIKEY_RECORD = '$_path';

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

/** DBRef fields may be indexed although they start with '$' (not as a path's first component). */
const DBREF_PARTS = new Set(['$id', '$ref', '$db']);

/** mongod refuses key paths with a '$'-prefixed component (other than a wildcard suffix and DBRef fields). */
function checkKeyPath(key: Document, path: string, wildcard: boolean): void {
  const parts = path.split('.');
  const last = wildcard ? parts.length - 1 : parts.length;
  for (let i = 0; i < last; i++) {
    const part = parts[i]!;
    if (part.startsWith('$') && !(i > 0 && DBREF_PARTS.has(part))) {
      throw new CommandError(
        ErrorCode.CannotCreateIndex,
        `bad index key pattern ${formatDocument(key)}: Index key contains an illegal field name: field name starts with '$'.`,
      );
    }
  }
}

/**
 * The fields of a key pattern. `strict` (a createIndexes spec) also applies mongod's rules on '$' in paths and on
 * the number of wildcard terms; a pattern restored from the catalog was accepted once and is read as it is.
 */
export function parseKeyPattern(key: unknown, strict = false): IndexField[] {
  if (key === null || typeof key !== 'object' || Array.isArray(key) || Object.keys(key).length === 0) {
    throw new CommandError(ErrorCode.CannotCreateIndex, 'Index keys cannot be an empty field.');
  }
  const fields: IndexField[] = [];
  for (const [path, dir] of Object.entries(key as Document)) {
    const n = typeof dir === 'number' ? dir : (dir as { valueOf(): unknown } | null)?.valueOf();
    if (typeof n === 'number' && n !== 0 && !Number.isNaN(n)) {
      let wildcard = isWildcardField(path);
      if (strict) checkKeyPath(key as Document, path, wildcard);
      if (wildcard && fields.some((f) => f.wildcard)) {
        wildcard = false;
        if (strict)
          throw new CommandError(
            WildcardCode.SeveralWildcards,
            `bad index key pattern ${formatDocument(key as Document)}: A compound wildcard index can only have one wildcard field`,
          );
      }
      fields.push(wildcard ? { path, direction: n > 0 ? 1 : -1, wildcard } : { path, direction: n > 0 ? 1 : -1 });
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

/** The wildcard term of a parsed key pattern, with its projection (a 'path.$**' term's, or wildcardProjection's). */
export function wildcardTermOf(fields: readonly IndexField[], spec: Document): WildcardTerm | undefined {
  const position = fields.findIndex((f) => f.wildcard);
  if (position < 0) return undefined;
  const field = fields[position]!;
  const prefix = wildcardPrefix(field.path);
  const projectionSpec = spec.wildcardProjection;
  const projection =
    prefix !== undefined
      ? subtreeProjection(prefix)
      : isPlainObject(projectionSpec) && Object.keys(projectionSpec).length > 0
        ? parseWildcardProjection(projectionSpec, fields.length > 1)
        : defaultProjection();
  return { position, name: field.path, direction: field.direction, projection };
}

/** Scalars an equality in a partial filter can be checked against by key string. */
function isKeyableScalar(v: unknown): boolean {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && !Number.isNaN(v)) || v instanceof Date;
}

const NUMERIC_PART = /(^|\.)\d+(\.|$)/;

/**
 * The partial filter as a test of a document. A filter of equalities to plain scalars through $and
 * ({ type: 'Patient', deleted: false }, the FHIR store's) is checked by key strings on the document's values at
 * each path, as mongod's equality matches them (a value, or an element of an array there); anything else by mingo.
 */
function partialFilterTest(filter: Document): (doc: Document) => boolean {
  const clauses: Array<[string, string]> = [];
  const collect = (doc: Document): boolean => {
    for (const [k, v] of Object.entries(doc)) {
      if (k === '$and' && Array.isArray(v)) {
        for (const part of v) if (!isPlainObject(part) || !collect(part)) return false;
        continue;
      }
      if (k.startsWith('$') || NUMERIC_PART.test(k)) return false;
      const operand = isPlainObject(v) && Object.keys(v).length === 1 && '$eq' in v ? v.$eq : v;
      if (!isKeyableScalar(operand)) return false;
      clauses.push([k, encodeValue(operand)]);
    }
    return true;
  };
  if (collect(filter)) {
    return (doc) =>
      clauses.every(([path, key]) => collectPathValues(doc, path).values.some((v) => v !== undefined && encodeValue(v) === key));
  }
  const query = new Query(filter, mingoOptions());
  return (doc) => query.test(doc);
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
  /** A wildcard index's wildcard term. */
  readonly wildcard: WildcardTerm | undefined;
  /** A wildcard index's multikey paths: where its walk traversed an array (sticky, as multikey). */
  readonly wildcardMultikeyPaths = new Set<string>();
  /**
   * Restored from a catalog written before wildcard indexes existed here, when a '$**' key was taken for a field
   * name: its stored entries are not wildcard keys, and the engine rebuilds them at start.
   */
  staleEntries = false;
  private readonly partialTest: ((doc: Document) => boolean) | undefined;
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
    this.partialTest = this.partialFilter ? partialFilterTest(this.partialFilter) : undefined;
    this.wildcard = wildcardTermOf(this.fields, spec);
    for (const f of this.fields) if (!f.wildcard) this.multikeyPaths.set(f.path, new Set());
    const filterPaths = this.partialFilter ? filterFieldPaths(this.partialFilter) : [];
    // A wildcard term depends on everything it indexes: its prefix, its inclusion's paths, or (an exclusion) anything.
    const projection = this.wildcard?.projection;
    const wildcardPaths = projection ? (projection.include ? projection.paths : undefined) : [];
    this.dependsOn = filterPaths &&
      wildcardPaths && [...this.fields.filter((f) => !f.wildcard).map((f) => f.path), ...wildcardPaths, ...filterPaths];
  }

  /** The index itself (a planner's expansion of a wildcard index answers its physical index). */
  get physical(): Index {
    return this;
  }

  /** Whether a scan can meet a document twice (under several keys). */
  get needsDedup(): boolean {
    return this.multikey;
  }

  /** How many multikey paths are recorded (the plan cache notices when it grows). */
  multikeyPathCount(): number {
    let n = this.wildcardMultikeyPaths.size;
    for (const set of this.multikeyPaths.values()) n += set.size;
    return n;
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
    if (this.partialTest && !this.partialTest(doc)) return false;
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
    if (this.wildcard) return this.computeWildcardKeys(doc, this.wildcard);
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
   * Keys of a wildcard index: one per leaf its walk finds, (regular fields before, path, value, regular fields
   * after); a document without such a leaf but with one of the regular fields gets one key with MinKey as path
   * and value (mongod's), one with neither gets none. The regular fields must not hold arrays.
   */
  private computeWildcardKeys(doc: Document, term: WildcardTerm): DocumentKeys {
    let before = '';
    let after = '';
    let anyRegular = false;
    this.fields.forEach((field, f) => {
      if (f === term.position) return;
      const pv = collectPathValues(doc, field.path);
      if (pv.arrayComponents !== 0) {
        throw new CommandError(
          WildcardCode.RegularFieldIsArray,
          `The regular field '${field.path}' of the compound wildcard index '${this.name}' cannot be an array (multikey)`,
        );
      }
      const value = pv.values[0];
      if (!anyRegular && (value !== null || pathExists(doc, field.path))) anyRegular = true;
      const enc = encodeValue(value);
      if (f < term.position) before += field.direction === 1 ? enc : invert(enc);
      else after += field.direction === 1 ? enc : invert(enc);
    });
    const descending = term.direction === -1;
    const keys = new Set<string>();
    const arrayPaths: string[] = [];
    const pathKeys = new Map<string, string>();
    walkWildcard(doc, term.projection, {
      leaf(path, value) {
        let pathKey = pathKeys.get(path);
        if (pathKey === undefined) {
          pathKey = before + encodeValue(path);
          pathKeys.set(path, pathKey);
        }
        const enc = encodeValue(value);
        keys.add(pathKey + (descending ? invert(enc) : enc) + after);
      },
      array(path) {
        arrayPaths.push(path);
      },
    });
    if (keys.size === 0 && anyRegular) {
      const min = encodeValue(new MinKey());
      keys.add(before + min + (descending ? invert(min) : min) + after);
    }
    const out: IndexKey[] = [];
    for (const key of keys) out.push({ key, values: [] });
    return { keys: out, arrayComponents: [], arrayPaths };
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
    for (const path of dk.arrayPaths ?? []) {
      if (this.wildcardMultikeyPaths.has(path)) continue;
      this.wildcardMultikeyPaths.add(path);
      this.multikey = true;
      grew = true;
    }
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
    if (this.wildcard && !(WILDCARD_MULTIKEY_RECORD in saved)) this.staleEntries = true;
    for (const [path, components] of Object.entries(saved)) {
      if (path === WILDCARD_MULTIKEY_RECORD && this.wildcard && Array.isArray(components)) {
        for (const p of components) this.wildcardMultikeyPaths.add(String(p));
        if (this.wildcardMultikeyPaths.size) this.multikey = true;
        continue;
      }
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
    if (this.wildcard) out[WILDCARD_MULTIKEY_RECORD] = [...this.wildcardMultikeyPaths];
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
