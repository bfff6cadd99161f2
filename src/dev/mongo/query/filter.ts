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
  if (m) return new CommandError(ErrorCode.BadValue, `unknown top level operator: ${m[1]}. If you have a field name that starts with a '$' symbol, consider using $getField or $setField.`);
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
