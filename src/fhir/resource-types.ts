/**
 * The resource types this server hosts.
 *
 * - Clinical types: patient data, consultations and treatment. Every interaction; created and changed by clients.
 * - AuditEvent: the audit trail, recorded by the server itself for every access. Readable and searchable with a
 *   scope that names it; never created, changed or deleted through the API; never included implicitly (a system
 *   search or history without _type, $everything, Bulk export without _type, `*` includes leave it out).
 */
import type { StructureDefinition } from '@medplum/fhirtypes';
import { loadBaseDefinitions } from './validation/definitions.js';

export const SUPPORTED_RESOURCE_TYPES = ['Patient', 'Encounter', 'MedicationRequest'] as const;
export type SupportedResourceType = (typeof SUPPORTED_RESOURCE_TYPES)[number];

export const AUDIT_EVENT_TYPE = 'AuditEvent';

/** Every type stored here: what search parameters, indexes and the ledger cover. */
export const STORED_RESOURCE_TYPES: readonly string[] = [...SUPPORTED_RESOURCE_TYPES, AUDIT_EVENT_TYPE];

let r4Types: readonly string[] | undefined;

/** The 146 concrete resource types FHIR R4 defines (from its StructureDefinitions), in name order: what $validate accepts. */
export function r4ResourceTypes(): readonly string[] {
  r4Types ??= [
    ...new Set([...loadBaseDefinitions().structureDefinitions.values()].filter(isConcreteResource).map((sd) => sd.type as string)),
  ].sort();
  return r4Types;
}

/** A concrete resource of R4 itself (the definitions also carry R4B's SubscriptionStatus, which R4 does not know). */
function isConcreteResource(sd: StructureDefinition): boolean {
  return (
    sd.kind === 'resource' &&
    sd.abstract !== true &&
    sd.derivation === 'specialization' &&
    sd.fhirVersion === '4.0.1' &&
    sd.url === `http://hl7.org/fhir/StructureDefinition/${sd.type}`
  );
}
