/**
 * What kind of database failure an error is, for the layers above that answer clients: they decide what a kind
 * means to a client (see src/fhir/store-failures.ts), and only this module knows MongoDB's error classes and codes.
 */
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { isQueryTimeout } from './resource-store.js';

/**
 * - `query-timeout`: the query used up its time limit (maxTimeMS) and was stopped;
 * - `sort-memory-limit`: a blocking sort needed more memory than the database allows;
 * - `unavailable`: the database did not answer (a lost connection, a network timeout, no server to select).
 */
export type StoreFailureKind = 'query-timeout' | 'sort-memory-limit' | 'unavailable';

/** QueryExceededMemoryLimitNoDiskUseAllowed: a blocking sort over the 100 MB limit. */
const SORT_MEMORY_LIMIT = 292;

/** The kind of database failure `error` is; undefined for anything else (including the store's own errors). */
export function storeFailureKind(error: unknown): StoreFailureKind | undefined {
  if (isQueryTimeout(error)) return 'query-timeout';
  if (error instanceof MongoServerError && error.code === SORT_MEMORY_LIMIT) return 'sort-memory-limit';
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return 'unavailable';
  return undefined;
}
