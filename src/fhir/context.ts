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
}
