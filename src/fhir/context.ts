/**
 * What every FHIR interaction needs, passed explicitly: the store, the validator, the clock and the server's
 * identity. Interactions are functions over this context, free of HTTP, so the same code serves single requests
 * and the entries of a transaction Bundle.
 */
import type { ResourceStore, StoreSession } from '../store/resource-store.js';
import type { AccessPolicy } from './access/access-policy.js';
import type { AuditTrail } from './audit/audit-trail.js';
import type { ResourceValidator } from './validation/index.js';
import { FhirError, issue } from './outcome.js';

export type ReferencePolicy = 'strict' | 'lenient';

export interface FhirContext {
  store: ResourceStore;
  validator: ResourceValidator;
  /** Absolute URL of the FHIR base, for Location headers, fullUrl and recognising our own absolute references. */
  baseUrl: string;
  /** Resource types hosted here. */
  resourceTypes: readonly string[];
  /** strict: a reference to a hosted type must resolve to a stored resource; lenient: stored as given. */
  referencePolicy: ReferencePolicy;
  now(): Date;
  newId(): string;
  /**
   * What the caller may read and write. Every interaction asks it; UNRESTRICTED_ACCESS for the server's own work
   * and for AUTH_MODE=off.
   */
  access: AccessPolicy;
  /** The audit record of the running interaction; absent when auditing is off or for the server's own work. */
  audit?: AuditTrail;
  /**
   * Set while the entries of a transaction Bundle run: every read and write joins this MongoDB transaction, so
   * entries see each other's writes and nothing is committed unless all succeed.
   */
  session?: StoreSession;
  /**
   * Aborted when the request's remaining work should not be done: its client has gone (closed its connection),
   * or the server is shutting down and the request outlived the grace period. Interactions check it between
   * steps (the next Bundle entry, the next search query) with stopIfAborted; the reason says which.
   */
  signal?: AbortSignal;
}

/** The abort reasons of FhirContext.signal. */
export const CLIENT_GONE = 'client-gone';
export const SHUTTING_DOWN = 'shutting-down';

/** Throws when the request's remaining work is not to be done (its client has gone, or the server is stopping). */
export function stopIfAborted(ctx: Pick<FhirContext, 'signal'>): void {
  if (ctx.signal?.aborted) throw abortedError(ctx.signal);
}

/** The error for an aborted request: 503 when the server is shutting down, 499 when the client has gone. */
export function abortedError(signal: AbortSignal): FhirError {
  if (signal.reason === SHUTTING_DOWN) {
    return new FhirError(
      503,
      issue(
        'error',
        'transient',
        'The server is shutting down and stopped this request before it finished (what was not done is not done); try again shortly',
      ),
      { 'retry-after': '5' },
    );
  }
  // 499, as proxies log it ("client closed request"): no client sees it, but the log line and the AuditEvent do.
  return new FhirError(
    499,
    issue('error', 'incomplete', 'The client closed the connection before the answer was ready; the remaining work was not done'),
  );
}
