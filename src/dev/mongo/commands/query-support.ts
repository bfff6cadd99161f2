/**
 * Turning command arguments (filter, sort, skip, limit, hint, collation,
 * let) into a planner request against the right view of the collection.
 */
import type { Document } from 'bson';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { compileFilter, type FilterOptions } from '../query/filter.js';
import type { QueryRequest } from '../query/planner.js';
import { parseSort, type SortField } from '../query/sort.js';
import type { Collection } from '../storage/collection.js';
import type { CommandContext } from './context.js';

export interface QueryArgs {
  filter?: unknown;
  sort?: unknown;
  skip?: number;
  limit?: number;
  hint?: unknown;
  collation?: unknown;
  variables?: Document;
  /** The find's projection: { _id: 1 } alone lets a covered index scan answer without fetching. */
  projection?: Document;
  /** Only the number of matches is wanted. */
  countOnly?: boolean;
  /** For explain: the plan cache is read, never written. */
  explain?: boolean;
}

/** Only the simple (binary) collation is implemented. */
export function checkCollation(collation: unknown): void {
  if (collation === undefined || collation === null) return;
  if (isPlainObject(collation) && (collation.locale === 'simple' || Object.keys(collation).length === 0)) return;
  throw new CommandError(ErrorCode.BadValue, 'collation other than { locale: "simple" } is not supported by the embedded server');
}

export function splitNaturalSort(sortSpec: unknown): { sort: SortField[]; natural?: 1 | -1 } {
  if (isPlainObject(sortSpec) && '$natural' in sortSpec) {
    const { $natural, ...rest } = sortSpec;
    return { sort: parseSort(rest), natural: Number($natural) < 0 ? -1 : 1 };
  }
  return { sort: parseSort(sortSpec) };
}

export function filterOptions(ctx: CommandContext, variables?: Document): FilterOptions {
  return { variables, collectionResolver: collectionResolver(ctx) };
}

/** Lets $lookup, $unionWith and $graphLookup read sibling collections through the same view. */
export function collectionResolver(ctx: CommandContext): (name: string) => Document[] {
  return (name) => {
    const coll = ctx.instance.collection(ctx.db, name);
    return [...ctx.instance.source(`${ctx.db}.${name}`, coll, ctx.txn).scan()];
  };
}

/** Whether a find projection keeps `_id` and nothing else ({ _id: 1 } or { _id: true }). */
function projectsIdOnly(projection: Document | undefined): boolean {
  if (!projection) return false;
  const keys = Object.keys(projection);
  if (keys.length !== 1 || keys[0] !== '_id') return false;
  const v = projection._id;
  return v === true || (typeof v === 'number' && v !== 0);
}

export function queryRequest(ctx: CommandContext, ns: string, coll: Collection | undefined, args: QueryArgs): QueryRequest {
  checkCollation(args.collation);
  const filter = args.filter ?? {};
  if (!isPlainObject(filter))
    throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'filter' is the wrong type, expected type 'object'");
  const { sort, natural } = splitNaturalSort(args.sort);
  const skip = args.skip ?? 0;
  if (skip < 0) throw new CommandError(ErrorCode.BadValue, 'skip value must be non-negative');
  return {
    source: ctx.instance.source(ns, coll, ctx.txn),
    filter,
    matcher: compileFilter(filter, filterOptions(ctx, args.variables)),
    sort,
    skip,
    limit: Math.abs(args.limit ?? 0),
    hint: args.hint,
    natural,
    deadline: ctx.deadline,
    planCache: coll ? ctx.instance.planCaches.forCollection(coll) : undefined,
    planCacheMetrics: ctx.instance.planCaches.metrics,
    executorMetrics: ctx.instance.queryExecutor,
    idOnly: projectsIdOnly(args.projection),
    countOnly: args.countOnly,
    explain: args.explain,
  };
}
