/**
 * The resource types this server hosts.
 *
 * - Clinical types: patient data, consultations and treatment. Every interaction; created and changed by clients.
 * - AuditEvent: the audit trail, recorded by the server itself for every access. Readable and searchable with a
 *   scope that names it; never created, changed or deleted through the API; never included implicitly (a system
 *   search or history without _type, $everything, Bulk export without _type, `*` includes leave it out).
 */
export const SUPPORTED_RESOURCE_TYPES = ['Patient', 'Encounter', 'MedicationRequest'] as const;
export type SupportedResourceType = (typeof SUPPORTED_RESOURCE_TYPES)[number];

export const AUDIT_EVENT_TYPE = 'AuditEvent';

/** Every type stored here: what search parameters, indexes and the ledger cover. */
export const STORED_RESOURCE_TYPES: readonly string[] = [...SUPPORTED_RESOURCE_TYPES, AUDIT_EVENT_TYPE];
