/**
 * The resource types this server hosts.
 *
 * - Every storable R4 type by default (RESOURCE_TYPES restricts the list): every interaction, created and changed
 *   by clients. Patient, Encounter and MedicationRequest (patient, consultation, treatment) are the featured ones:
 *   their searches have tuned indexes and benchmarks; the others are searched through the store's index over any
 *   type's index values.
 * - AuditEvent: the audit trail, recorded by the server itself for every access. Readable and searchable with a
 *   scope that names it; never created, changed or deleted through the API; never included implicitly (a system
 *   search or history without _type, $everything, Bulk export without _type, `*` includes leave it out).
 * - Parameters: the one R4 resource without a RESTful endpoint (it carries an operation's input and output);
 *   it can be validated, never stored.
 */
import type { StructureDefinition } from '@medplum/fhirtypes';
import { loadBaseDefinitions } from './validation/definitions.js';

/** The types at the heart of the project: tuned indexes, profiles and benchmarks. */
export const FEATURED_RESOURCE_TYPES = ['Patient', 'Encounter', 'MedicationRequest'] as const;

export const AUDIT_EVENT_TYPE = 'AuditEvent';

/** R4 resource types that are never stored (R4 defines no RESTful endpoint for them). */
const NEVER_STORED: ReadonlySet<string> = new Set(['Parameters']);

let r4Types: readonly string[] | undefined;
let storable: readonly string[] | undefined;
let writable: readonly string[] | undefined;

/** The 146 concrete resource types FHIR R4 defines (from its StructureDefinitions), in name order: what $validate accepts. */
export function r4ResourceTypes(): readonly string[] {
  r4Types ??= [
    ...new Set([...loadBaseDefinitions().structureDefinitions.values()].filter(isConcreteResource).map((sd) => sd.type as string)),
  ].sort();
  return r4Types;
}

/** Every type a resource of which can be stored here (the audit trail's included): what search, indexes and the ledger cover. */
export function storedResourceTypes(): readonly string[] {
  storable ??= r4ResourceTypes().filter((type) => !NEVER_STORED.has(type));
  return storable;
}

/**
 * The types clients may write (every storable type but the audit trail), the featured ones first and the rest in
 * name order: the default of RESOURCE_TYPES, and the order of the CapabilityStatement.
 */
export function clientResourceTypes(): readonly string[] {
  const featured: readonly string[] = FEATURED_RESOURCE_TYPES;
  writable ??= [
    ...FEATURED_RESOURCE_TYPES,
    ...storedResourceTypes().filter((type) => type !== AUDIT_EVENT_TYPE && !featured.includes(type)),
  ];
  return writable;
}

/**
 * Why `type` cannot be hosted for clients, or undefined when it can: the check of each RESOURCE_TYPES entry
 * (a misspelt name must stop the server, not silently host nothing).
 */
export function whyNotHostable(type: string): string | undefined {
  if (type === AUDIT_EVENT_TYPE) return 'AuditEvent is the audit trail, always hosted read-only; it is not listed';
  if (NEVER_STORED.has(type)) return `${type} is never stored (R4 defines no RESTful endpoint for it)`;
  if (!r4ResourceTypes().includes(type)) return `${type} is not an R4 resource type`;
  return undefined;
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
