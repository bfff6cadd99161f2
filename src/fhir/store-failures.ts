/**
 * Failures of the store that are the request's doing, as the OperationOutcome the client gets. Used wherever an
 * interaction's error becomes an answer: the HTTP error handler, and each entry of a batch or transaction.
 * Which database error is which kind of failure is the store's knowledge (src/store/failures.ts); what each kind
 * means to a client is decided here.
 */
import { storeFailureKind } from '../store/failures.js';
import { SubSearchTooLargeError } from '../store/search/query.js';
import { FhirError, issue } from './outcome.js';

/** The FhirError a client gets for a failure of the store; undefined for any other error. */
export function fhirErrorOfStoreFailure(error: unknown): FhirError | undefined {
  if (error instanceof SubSearchTooLargeError) {
    return new FhirError(400, issue('error', 'too-costly', `${error.message} (at most ${error.limit} resources per chained search)`));
  }
  switch (storeFailureKind(error)) {
    case 'query-timeout':
      return new FhirError(
        400,
        issue(
          'error',
          'too-costly',
          'The query ran out of time (SEARCH_TIMEOUT_MS) and was stopped to keep the server responsive; narrow it (fewer values, ' +
            'no :contains or phonetic over many resources, a smaller _count) and try again',
        ),
      );
    case 'sort-memory-limit':
      return new FhirError(
        400,
        issue(
          'error',
          'too-costly',
          'The search would sort more matches in memory than the database allows; narrow it or sort by a parameter with an index',
        ),
      );
    case 'unavailable':
      // The database did not answer: the request did not fail on its own account, and may well succeed again shortly.
      return new FhirError(503, issue('error', 'transient', 'The database did not answer in time; try again shortly'), {
        'retry-after': '5',
      });
    case undefined:
      return undefined;
  }
}
