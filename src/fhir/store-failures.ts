/**
 * Failures of the store that are the request's doing, as the OperationOutcome the client gets. Used wherever an
 * interaction's error becomes an answer: the HTTP error handler, and each entry of a batch or transaction.
 */
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
  return undefined;
}
