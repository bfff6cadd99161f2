/**
 * Batch Bundles (http.html#transaction): each entry is processed on its own, as if it were a separate request;
 * one failing entry does not affect the others, and its response entry carries the status and the
 * OperationOutcome. Entries must not depend on each other, so a reference to another entry's fullUrl
 * (urn:uuid:…) is an error of that entry; conditional references are resolved per entry. Entries run in the
 * transaction processing order (DELETE, POST, PUT/PATCH, GET/HEAD) so that both kinds of Bundle behave alike.
 */
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { SHUTTING_DOWN, abortedError, type FhirContext } from '../context.js';
import { FhirError, errors } from '../outcome.js';
import { fhirErrorOfStoreFailure } from '../store-failures.js';
import type { BundleRequest, BundleRequestEntry } from './bundle-request.js';
import { entryInteraction, errorEntry, runEntry, type BundleOptions } from './entry.js';
import { rewriteActionReferences, type ReferenceRewriteOptions } from './references.js';
import { namedError, processingOrder } from './transaction.js';

async function runBatchEntry(
  ctx: FhirContext,
  entry: BundleRequestEntry,
  options: BundleOptions,
  references: ReferenceRewriteOptions,
  onUnexpectedError: (error: unknown, index: number) => void,
): Promise<BundleEntry> {
  if (entry.error) return errorEntry(entry.error);
  const action = entry.action!;
  try {
    const resolved = await rewriteActionReferences(ctx, entry.index, action, references);
    return (await runEntry(ctx, resolved, entry.method!, options)).entry;
  } catch (error) {
    const failure = error instanceof FhirError ? error : fhirErrorOfStoreFailure(error);
    if (failure) return errorEntry(namedError(entry.index, failure, 'resource' in action ? action.resource.resourceType : action.type));
    onUnexpectedError(error, entry.index);
    return errorEntry(errors.internal(`Bundle.entry[${entry.index}]: the server could not process this entry; the incident was logged`));
  }
}

/** The status of a response entry ("201 Created" -> 201). */
function statusOf(entry: BundleEntry): number {
  return Number.parseInt(entry.response?.status ?? '500', 10) || 500;
}

export async function runBatch(
  ctx: FhirContext,
  request: BundleRequest,
  options: BundleOptions,
  onUnexpectedError: (error: unknown, index: number) => void = () => {},
): Promise<Bundle> {
  const responses = new Array<BundleEntry>(request.entries.length);
  const references: ReferenceRewriteOptions = { placeholders: new Map(), allowPlaceholders: false, conditionalCache: new Map() };
  // Each entry is an interaction of its own, with its own AuditEvent; the batch adds none.
  const trail = ctx.audit;
  trail?.delegate();
  for (const entry of processingOrder(request.entries)) {
    if (ctx.signal?.aborted) {
      // Shutting down: the entries done so far stand, and the answer says which were not run (each a 503 to retry).
      // A client that has gone gets nothing: stop.
      if (ctx.signal.reason !== SHUTTING_DOWN) throw abortedError(ctx.signal);
      responses[entry.index] = errorEntry(namedError(entry.index, abortedError(ctx.signal)));
      continue;
    }
    // A conditional reference resolved for one entry may no longer hold for the next (entries are separate requests).
    references.conditionalCache.clear();
    const kind = entry.action ? entryInteraction(entry.action).interaction : 'batch';
    const entryTrail = trail?.forEntry(entry.index, kind, `${entry.method ?? '?'} ${entry.url ?? ''}`.trim());
    const response = await runBatchEntry({ ...ctx, audit: entryTrail }, entry, options, references, onUnexpectedError);
    responses[entry.index] = response;
    await entryTrail?.finish(statusOf(response), response.response?.outcome?.issue?.[0]?.diagnostics);
  }
  return { resourceType: 'Bundle', type: 'batch-response', entry: responses };
}
