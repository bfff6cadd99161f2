/**
 * Failures of the store that are the request's doing, as the OperationOutcome the client gets. Used wherever an
 * interaction's error becomes an answer: the HTTP error handler, and each entry of a batch or transaction.
 */
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { isQueryTimeout } from '../store/resource-store.js';
import { SubSearchTooLargeError } from '../store/search/query.js';
import { FhirError, issue } from './outcome.js';

export function fhirErrorOfStoreFailure(error: unknown): FhirError | undefined {
  if (error instanceof SubSearchTooLargeError) {
    return new FhirError(400, issue('error', 'too-costly', `${error.message} (at most ${error.limit} resources per chained search)`));
  }
  if (isQueryTimeout(error)) {
    return new FhirError(
      400,
      issue(
        'error',
        'too-costly',
        'The query ran out of time (SEARCH_TIMEOUT_MS) and was stopped to keep the server responsive; narrow it (fewer values, ' +
          'no :contains or phonetic over many resources, a smaller _count) and try again',
      ),
    );
  }
  if (error instanceof MongoServerError && error.code === SORT_MEMORY_LIMIT) {
    return new FhirError(
      400,
      issue('error', 'too-costly', 'The search would sort more matches in memory than the database allows; narrow it or sort by a parameter with an index'),
    );
  }
  // The database did not answer (a timeout, a lost connection, no server to select): the request did not fail on
  // its own account, and may well succeed again shortly.
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) {
    return new FhirError(503, issue('error', 'transient', 'The database did not answer in time; try again shortly'), { 'retry-after': '5' });
  }
  return undefined;
}

/** QueryExceededMemoryLimitNoDiskUseAllowed: a blocking sort over the 100 MB limit. */
const SORT_MEMORY_LIMIT = 292;
