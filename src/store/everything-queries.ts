/**
 * The MongoDB query of Patient/$everything that search's findPage does not cover: a page of one type read along
 * the _id index (hinted). fhir/operations/everything.ts builds the store query and decides when to use it.
 */
import type { Document, Filter } from 'mongodb';
import type { HeadDocument, ResourceStore } from './resource-store.js';
import { compileFilter, fullSort, keysetAfter, sortDocument } from './search/compile.js';
import type { Page, PagePosition } from './search/execute.js';
import type { StoreQuery } from './search/query.js';

/** A forward position: a page read along the _id index is never read backwards. */
export type ForwardPosition = Extract<PagePosition, { kind: 'first' | 'after' }>;

/**
 * One page of heads of a (resolved) query in key order, count + 1 read to tell whether more exist. Hinted to the
 * _id index: when the query bounds a type's key range, the index both bounds the scan and gives the order, so a
 * page reads about a page of documents. Left to itself a planner may prefer a reference's index, which would sort
 * every match for every page. Unlike findPage it reads `resources` (heads) whatever the types.
 */
export async function findPageByKey(store: ResourceStore, query: StoreQuery, count: number, position: ForwardPosition): Promise<Page> {
  const sort = fullSort(query.sort);
  const filter = compileFilter(query);
  if (position.kind === 'after') filter.$and = [...((filter.$and as Document[] | undefined) ?? []), keysetAfter(sort, position.values)];
  const heads = await store.heads
    .find(filter as Filter<HeadDocument>, { maxTimeMS: store.queryTimeMs })
    .sort(sortDocument(sort))
    .hint({ _id: 1 })
    .limit(count + 1)
    .toArray();
  return { heads: heads.slice(0, count), more: heads.length > count };
}
