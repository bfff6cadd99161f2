/**
 * Filters and find projections, compiled by mingo with the BSON-aware
 * context, with mingo's errors translated to mongod's codes.
 */
import type { Document } from 'bson';
import { Query } from 'mingo/query';
import type { CollectionResolver } from 'mingo/types';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { mingoOptions, sharedComputeOptions } from './mingo-context.js';

export type Matcher = (doc: Document) => boolean;

export function translateMingoError(err: unknown): CommandError {
  if (err instanceof CommandError) return err;
  const message = err instanceof Error ? err.message : String(err);
  let m = /^unknown query operator (\$\w+)/.exec(message);
  if (m) return new CommandError(ErrorCode.BadValue, `unknown operator: ${m[1]}`);
  m = /^unknown top level operator: (\$\w+)/.exec(message);
  if (m)
    return new CommandError(
      ErrorCode.BadValue,
      `unknown top level operator: ${m[1]}. If you have a field name that starts with a '$' symbol, consider using $getField or $setField.`,
    );
  if (/exclusion and inclusion/.test(message)) {
    return new CommandError(ErrorCode.Location31254, `Cannot do exclusion and inclusion in the same projection: ${message}`);
  }
  if (/Invalid pipeline operator|unknown pipeline operator|Unrecognized pipeline stage/i.test(message)) {
    return new CommandError(ErrorCode.Location40324, message);
  }
  return new CommandError(ErrorCode.BadValue, message);
}

export interface FilterOptions {
  variables?: Document;
  collectionResolver?: CollectionResolver;
}

/** mingo's compiled options, shared by every filter and projection without let variables (see sharedComputeOptions). */
let shared: ReturnType<typeof sharedComputeOptions> | null = null;

function sharedOptions(): ReturnType<typeof sharedComputeOptions> {
  if (shared === null) shared = sharedComputeOptions();
  return shared;
}

/**
 * Compiles a filter. Without let variables the shared compiled options are
 * used: filters and find projections never read the collection resolver
 * (only pipeline stages do), and they are then 4-6 times cheaper to compile.
 * (A cache of compiled filters by their exact text was measured and did not
 * pay: a hit cost about as much as compiling with the shared options, and a
 * miss, the common case when values vary, cost more.)
 */
function compileQuery(filter: Document, options: FilterOptions): Query {
  try {
    return new Query(filter, options.variables ? mingoOptions(options) : (sharedOptions() ?? mingoOptions(options)));
  } catch (err) {
    throw translateMingoError(err);
  }
}

/** undefined for an empty filter (matches everything without evaluating). */
export function compileFilter(filter: unknown, options: FilterOptions = {}): Matcher | undefined {
  if (filter === undefined || filter === null) return undefined;
  if (!isPlainObject(filter)) throw new CommandError(ErrorCode.TypeMismatch, 'filter must be an object');
  if (Object.keys(filter).length === 0) return undefined;
  const query = compileQuery(filter, options);
  return (doc) => {
    try {
      return query.test(doc);
    } catch (err) {
      throw translateMingoError(err);
    }
  };
}

/**
 * A batch transform applying a find projection. Output fields follow the
 * source document's order (mingo appends _id last; mongod keeps it first).
 */
export function compileProjection(
  filter: Document,
  projection: Document | undefined,
  options: FilterOptions = {},
): ((docs: Document[]) => Document[]) | undefined {
  if (!projection || Object.keys(projection).length === 0) return undefined;
  const inclusion = inclusionSpec(projection);
  if (inclusion) return (docs) => docs.map((doc) => includeFields(doc, inclusion));
  const query = compileQuery(filter, options);
  const run = (docs: Document[]): Document[] => {
    try {
      return query.find(docs, projection).all() as Document[];
    } catch (err) {
      throw translateMingoError(err);
    }
  };
  // Validate eagerly so a bad projection fails the find itself, not a later getMore.
  try {
    compileQuery({}, options).find([{}], projection).all();
  } catch (err) {
    throw translateMingoError(err);
  }
  return (docs) => {
    const projected = run(docs);
    if (projected.length !== docs.length) return projected;
    return projected.map((out, i) => {
      const source = docs[i]!;
      const ordered: Document = {};
      for (const k of Object.keys(source)) if (k in out) ordered[k] = out[k];
      for (const k of Object.keys(out)) if (!(k in ordered)) ordered[k] = out[k];
      return ordered;
    });
  };
}

/** An inclusion projection of plain paths as a tree: true for a path's end, a subtree for its next components. */
interface InclusionSpec {
  withId: boolean;
  fields: Map<string, InclusionTree>;
}
type InclusionTree = true | Map<string, InclusionTree>;

/**
 * The projection as an inclusion of plain field paths (`{a: 1, 'b.c': 1, _id: 0}`), or undefined for anything
 * else (exclusions, operators, positional paths, expressions, paths that collide), which mingo then handles. This
 * is what most finds send (a store reading a few fields), and applying it directly skips compiling a query and
 * matching every document again.
 */
function inclusionSpec(projection: Document): InclusionSpec | undefined {
  const fields = new Map<string, InclusionTree>();
  let withId = true;
  for (const [path, value] of Object.entries(projection)) {
    const on = value === true || (typeof value === 'number' && value !== 0 && !Number.isNaN(value));
    const off = value === false || value === 0;
    if (path === '_id') {
      if (!on && !off) return undefined;
      withId = on;
      continue;
    }
    if (!on || path === '' || path.includes('$')) return undefined;
    const parts = path.split('.');
    if (parts.some((part) => part === '')) return undefined;
    let level = fields;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const last = i === parts.length - 1;
      const existing = level.get(part);
      // A path that is a prefix of another (a and a.b) is a collision mongod refuses: mingo says so.
      if (existing === true || (existing && last)) return undefined;
      if (last) {
        level.set(part, true);
      } else {
        const next = existing ?? new Map<string, InclusionTree>();
        level.set(part, next);
        level = next;
      }
    }
  }
  // {_id: 1} alone keeps _id only (what a covered _id-only find returns: those documents hold nothing else, so the
  // filter must not be matched against them again). {_id: 0} alone excludes _id and keeps the rest: an exclusion,
  // left to mingo.
  return fields.size > 0 || withId ? { withId, fields } : undefined;
}

/** mongod's inclusion: the document's own field order; under an array each sub-document projected, scalars dropped. */
function includeFields(doc: Document, spec: InclusionSpec): Document {
  const out: Document = {};
  if (spec.withId && '_id' in doc) out._id = doc._id;
  for (const key of Object.keys(doc)) {
    if (key === '_id') continue;
    const tree = spec.fields.get(key);
    if (tree === undefined) continue;
    const value = pick(doc[key], tree);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function pick(value: unknown, tree: InclusionTree): unknown {
  if (tree === true) return value;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const el of value) {
      if (Array.isArray(el) || isPlainObject(el)) out.push(pick(el, tree));
    }
    return out;
  }
  if (!isPlainObject(value)) return undefined;
  const out: Document = {};
  for (const key of Object.keys(value)) {
    const sub = tree.get(key);
    if (sub === undefined) continue;
    const picked = pick(value[key], sub);
    if (picked !== undefined) out[key] = picked;
  }
  return out;
}
