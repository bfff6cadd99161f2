/**
 * Running compiled searches against the `resources` collection: chained and reverse-chained sub-searches
 * (each one indexed query returning ids, bounded), pages by keyset, counts, and the lookups _include and
 * _revinclude need. Every function here is one MongoDB query (or one per sub-search).
 */
import type { ClientSession, Document, Filter } from 'mongodb';
import { restoreDecimalTexts, withDecimals, type HeadDocument, type ResourceStore } from '../resource-store.js';
import {
  compileCondition,
  compileFilter,
  fullSort,
  keysetAfter,
  reverseSort,
  sortDocument,
  sortValueOf,
  type SortValue,
} from './compile.js';
import { SubSearchTooLargeError, type Condition, type StoreQuery, type SubSearch } from './query.js';

/** At most this many ids travel from a chained (or _has) sub-search into the outer query's $in. */
export const MAX_SUBSEARCH_IDS = 5000;

async function subSearchIds(store: ResourceStore, search: SubSearch, session?: ClientSession): Promise<string[]> {
  const where = await resolveSubSearches(store, search.where, session);
  const filter = compileFilter({ types: search.types, where });
  const collection = store.currentOf(search.types);
  const limit = MAX_SUBSEARCH_IDS + 1;
  const options = { session, maxTimeMS: store.queryTimeMs };
  // The ids a chain compares references with are "Type/id". A head's key is exactly that, and a search index ends
  // with _id: projecting the key alone, MongoDB answers from the index without reading the documents (a covered
  // query). A single-version type's key is its version's ("Type/id/_history/1"): read the fields then.
  if (collection === store.heads) {
    const keys = await store.heads
      .find(filter as Filter<HeadDocument>, { ...options, projection: { _id: 1 } })
      .limit(limit)
      .toArray();
    if (keys.length > MAX_SUBSEARCH_IDS) throw new SubSearchTooLargeError(search.types, MAX_SUBSEARCH_IDS);
    return keys.map((d) => d._id);
  }
  const docs = await collection
    .find(filter as Filter<HeadDocument>, { ...options, projection: { type: 1, id: 1 } })
    .limit(limit)
    .toArray();
  if (docs.length > MAX_SUBSEARCH_IDS) throw new SubSearchTooLargeError(search.types, MAX_SUBSEARCH_IDS);
  return docs.map((d) => `${d.type}/${d.id}`);
}

function valuesAt(document: Document, path: string): unknown[] {
  let values: unknown[] = [document];
  for (const part of path.split('.')) {
    const next: unknown[] = [];
    for (const value of values) {
      if (value === null || typeof value !== 'object') continue;
      const child = (value as Document)[part];
      if (Array.isArray(child)) next.push(...child);
      else if (child !== undefined) next.push(child);
    }
    values = next;
  }
  return values;
}

async function referencedIds(
  store: ResourceStore,
  search: SubSearch,
  field: string,
  targetType: string,
  session?: ClientSession,
): Promise<string[]> {
  const where = await resolveSubSearches(store, search.where, session);
  const filter = compileFilter({ types: search.types, where: { op: 'and', of: [where, { op: 'exists', field, value: true }] } });
  const docs = await store
    .currentOf(search.types)
    .find(filter as Filter<HeadDocument>, { projection: { [field]: 1 }, session, maxTimeMS: store.queryTimeMs })
    .limit(MAX_SUBSEARCH_IDS + 1)
    .toArray();
  if (docs.length > MAX_SUBSEARCH_IDS) throw new SubSearchTooLargeError(search.types, MAX_SUBSEARCH_IDS);
  const ids = new Set<string>();
  for (const doc of docs) {
    for (const value of valuesAt(doc, field)) {
      if (typeof value === 'string' && value.startsWith(`${targetType}/`)) ids.add(value);
    }
  }
  return [...ids];
}

/**
 * Replaces chain and _has conditions by the ids their sub-searches find (innermost first). With a session (a
 * transaction) the sub-searches run one after the other: statements of one transaction must not overlap.
 */
export async function resolveSubSearches(store: ResourceStore, condition: Condition, session?: ClientSession): Promise<Condition> {
  switch (condition.op) {
    case 'and':
    case 'or': {
      if (!session) return { op: condition.op, of: await Promise.all(condition.of.map((c) => resolveSubSearches(store, c))) };
      const of: Condition[] = [];
      for (const c of condition.of) of.push(await resolveSubSearches(store, c, session));
      return { op: condition.op, of };
    }
    case 'chain': {
      const ids = await subSearchIds(store, condition.search, session);
      return ids.length === 0 ? { op: 'none' } : { op: 'in', field: condition.field, values: ids };
    }
    case 'has': {
      const ids = await referencedIds(store, condition.search, condition.referenceField, condition.targetType, session);
      return ids.length === 0 ? { op: 'none' } : { op: 'in', field: '_id', values: ids };
    }
    default:
      return condition;
  }
}

/** Where a page starts: after (next) or before (previous) a position, or the last page. */
export type PagePosition =
  { kind: 'first' } | { kind: 'after'; values: SortValue[] } | { kind: 'before'; values: SortValue[] } | { kind: 'last' };

export interface Page {
  heads: HeadDocument[];
  /** More entries exist beyond the page in the direction it was read (after it for first/after, before it for before/last). */
  more: boolean;
}

/** How findPage reads: in a transaction, which fields, along which index. */
export interface PageReadOptions {
  session?: ClientSession;
  /** Only these fields of each head (they must keep the query's sort fields: the page's position is read from them). */
  projection?: Document;
  /**
   * The index to read along, e.g. `{ _id: 1 }` for a page in key order of one type: the index bounds the type's key
   * range and gives the order, where a planner left to itself may prefer another index and sort every match.
   */
  hint?: Document;
}

/** One page of a (resolved) search, read by keyset: count + 1 entries tell whether more exist. */
export async function findPage(
  store: ResourceStore,
  query: StoreQuery,
  count: number,
  position: PagePosition,
  { session, projection, hint }: PageReadOptions = {},
): Promise<Page> {
  const sort = fullSort(query.sort);
  const backwards = position.kind === 'before' || position.kind === 'last';
  const order = backwards ? reverseSort(sort) : sort;
  const filter = compileFilter(query);
  if (position.kind === 'after' || position.kind === 'before') {
    filter.$and = [...((filter.$and as Document[] | undefined) ?? []), keysetAfter(order, position.values)];
  }
  const cursor = store
    .currentOf(query.types)
    .find(filter as Filter<HeadDocument>, {
      session,
      maxTimeMS: store.queryTimeMs,
      ...(projection ? { projection: withDecimals(projection) } : {}),
    })
    .sort(sortDocument(order));
  if (hint) cursor.hint(hint);
  const heads = restoreDecimalTexts(await cursor.limit(count + 1).toArray());
  const more = heads.length > count;
  const page = heads.slice(0, count);
  if (backwards) page.reverse();
  return { heads: page, more };
}

/** The position of a head in the full sort order of a query (its sort values, _id last). */
export function positionOf(head: HeadDocument, query: StoreQuery): SortValue[] {
  return fullSort(query.sort).map((key) => sortValueOf(head as unknown as Document, key.field));
}

/** Number of matches; with `limit`, counting stops there (the answer is then "at least limit"). */
export async function countMatches(store: ResourceStore, query: StoreQuery, limit?: number, session?: ClientSession): Promise<number> {
  const filter = compileFilter(query) as Filter<HeadDocument>;
  return store
    .currentOf(query.types)
    .countDocuments(filter, { ...(limit !== undefined ? { limit } : {}), session, maxTimeMS: store.queryTimeMs });
}

/**
 * Live heads by their keys ("Type/id"), at most `limit`; `restrictionOf` adds a condition per type (the caller's
 * access), undefined for none.
 */
export async function findHeadsByKeys(
  store: ResourceStore,
  keys: string[],
  limit: number,
  session?: ClientSession,
  restrictionOf?: (type: string) => Condition | undefined,
): Promise<HeadDocument[]> {
  if (keys.length === 0) return [];
  const filter: Document = { _id: { $in: keys.slice(0, limit) }, deleted: false };
  if (restrictionOf) {
    const types = [...new Set(keys.map((key) => key.split('/')[0]))];
    const restricted = types.map((type) => ({ type, restriction: restrictionOf(type) }));
    if (restricted.some((r) => r.restriction !== undefined)) {
      filter.$or = restricted.map(({ type, restriction }) =>
        restriction === undefined ? { type } : { $and: [{ type }, compileCondition(restriction)] },
      );
    }
  }
  // Keys name current versions ("Type/id"): the heads collection's (includes reach the clinical types only).
  return restoreDecimalTexts(
    await store.heads
      .find(filter as Filter<HeadDocument>, { session, maxTimeMS: store.queryTimeMs })
      .limit(limit)
      .toArray(),
  );
}

/** Live heads of `type` whose reference field holds one of `references`, at most `limit`. */
export async function findReferencing(
  store: ResourceStore,
  type: string,
  field: string,
  references: string[],
  limit: number,
  session?: ClientSession,
  restriction?: Condition,
): Promise<HeadDocument[]> {
  if (references.length === 0) return [];
  const referencing: Condition = { op: 'in', field, values: references };
  const filter = compileFilter({ types: [type], where: restriction ? { op: 'and', of: [referencing, restriction] } : referencing });
  return restoreDecimalTexts(
    await store
      .currentOf([type])
      .find(filter as Filter<HeadDocument>, { session, maxTimeMS: store.queryTimeMs })
      .sort({ _id: 1 })
      .limit(limit)
      .toArray(),
  );
}

/** The winning plan MongoDB chose for a search's first page (tests assert it uses an index). */
export async function explainSearch(store: ResourceStore, query: StoreQuery, count = 20): Promise<Document> {
  const resolved = { ...query, where: await resolveSubSearches(store, query.where) };
  return store
    .currentOf(query.types)
    .find(compileFilter(resolved) as Filter<HeadDocument>)
    .sort(sortDocument(fullSort(query.sort)))
    .limit(count + 1)
    .explain('queryPlanner');
}
