/**
 * What every FHIR interaction needs, passed explicitly: the store, the validator, the clock and the server's
 * identity. Interactions are functions over this context, free of HTTP, so the same code serves single requests
 * and the entries of a transaction Bundle.
 */
import type { ClientSession } from 'mongodb';
import type { ResourceStore } from '../store/resource-store.js';
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
  session?: ClientSession;
  /**
   * Aborted when the client that asked has gone (closed its connection): work still to do for it (the next Bundle
   * entry, the next search step) is not started. Checked with stopIfClientGone between steps.
   */
  signal?: AbortSignal;
}

/** Throws when the request's client has gone: its answer could not be delivered, so the rest of the work is not done. */
export function stopIfClientGone(ctx: Pick<FhirContext, 'signal'>): void {
  if (ctx.signal?.aborted) throw clientGone();
}

/**
 * The error of a request whose client went away. 499 (as proxies log it, "client closed request"): no client sees
 * it, but the request's log line and AuditEvent record what happened.
 */
export function clientGone(): FhirError {
  return new FhirError(499, issue('error', 'incomplete', 'The client closed the connection before the answer was ready; the remaining work was not done'));
}
