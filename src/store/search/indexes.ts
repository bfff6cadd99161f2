/**
 * The MongoDB indexes that back searches on `resources`. Each is PARTIAL on {type, deleted: false}: it holds
 * only the live resources of one type, so it is small, and whether one of its paths is multikey (an array in
 * some document) is decided by that type's documents alone. Every search filters on exactly type and
 * deleted:false, so it implies the partial filter and can use them.
 *
 * Which ones: the searches clients make all day (identifier lookups, name prefixes, birth date ranges, a
 * patient's encounters in a period, a patient's active prescriptions, newest encounters first). Each ends with
 * _id when it should also deliver the default order (by key) or a _sort without a blocking sort. A compound
 * index may hold at most one array per document: token parameters are arrays (their variants), so they pair
 * with single-valued (scalar) parameters only: gender + birthdate, patient + status.
 *
 * Every type without tuned indexes (all but the featured types and the audit trail) is searched through ONE
 * compound wildcard index over its index values, {type: 1, 'idx.$**': 1} (search_other_types): a key per (type,
 * parameter path, value), so a search on any parameter of any of ~140 types is an index range, and the index count
 * stays far below MongoDB's 64 per collection whatever the number of types. It serves one parameter per scan (the
 * planner picks the most selective; a disjunction gets an OR of scans), and cannot deliver a sort by another field.
 * The featured types stay out of it (see inAnyTypeIndex): a search on one of their parameters without a tuned index
 * scans the type's heads, as it always did. README, "Index storage for every type", compares this with a table of
 * index rows (HAPI's HFJ_SPIDX_*).
 * createIndexes is idempotent for identical specifications; changing the keys of an existing name needs a
 * drop first (MongoDB refuses a different spec under the same name).
 */
import type { IndexDescription } from 'mongodb';

interface SearchIndex {
  type: string;
  name: string;
  key: Record<string, 1 | -1>;
}

const SEARCH_INDEXES: SearchIndex[] = [
  // Patient
  { type: 'Patient', name: 'identifier', key: { 'idx.identifier': 1, _id: 1 } },
  { type: 'Patient', name: 'family', key: { 'idx.family': 1, _id: 1 } },
  { type: 'Patient', name: 'given', key: { 'idx.given': 1, _id: 1 } },
  { type: 'Patient', name: 'name', key: { 'idx.name': 1, _id: 1 } },
  { type: 'Patient', name: 'birthdate_lo', key: { 'idx.birthdate.lo': 1, _id: 1 } },
  { type: 'Patient', name: 'birthdate_hi', key: { 'idx.birthdate.hi': 1, _id: 1 } },
  { type: 'Patient', name: 'gender_birthdate', key: { 'idx.gender': 1, 'idx.birthdate.lo': 1 } },
  // Patient.link: the Patient compartment's own membership (Patient/[id]/Patient, Patient/[id]/*).
  { type: 'Patient', name: 'link', key: { 'idx.link': 1, _id: 1 } },
  // Encounter
  { type: 'Encounter', name: 'identifier', key: { 'idx.identifier': 1, _id: 1 } },
  { type: 'Encounter', name: 'patient_date', key: { 'idx.patient': 1, 'idx.date.lo': 1 } },
  { type: 'Encounter', name: 'subject_date', key: { 'idx.subject': 1, 'idx.date.lo': 1 } },
  { type: 'Encounter', name: 'date_lo', key: { 'idx.date.lo': 1, _id: 1 } },
  { type: 'Encounter', name: 'date_hi', key: { 'idx.date.hi': -1, _id: -1 } },
  // "Finished encounters, newest first" (status=finished&_sort=-date). date_hi alone delivers the order but not the
  // status: descending by period end, the open periods (in progress, planned: about a tenth) come first, and at
  // 1M resources the scan read 44,826 encounters to find 21 finished ones (0.3 s hot, 10 s cold).
  { type: 'Encounter', name: 'status_date_hi', key: { 'idx.status': 1, 'idx.date.hi': -1, _id: -1 } },
  // MedicationRequest
  { type: 'MedicationRequest', name: 'identifier', key: { 'idx.identifier': 1, _id: 1 } },
  { type: 'MedicationRequest', name: 'patient_status', key: { 'idx.patient': 1, 'idx.status': 1 } },
  { type: 'MedicationRequest', name: 'subject_status', key: { 'idx.subject': 1, 'idx.status': 1 } },
  { type: 'MedicationRequest', name: 'encounter', key: { 'idx.encounter': 1, _id: 1 } },
  { type: 'MedicationRequest', name: 'code', key: { 'idx.code': 1, _id: 1 } },
  { type: 'MedicationRequest', name: 'authoredon', key: { 'idx.authoredon.lo': 1, _id: 1 } },
  // AuditEvent: the compliance team's questions — who touched this record, what did this client or user do, what
  // happened in a period — newest or oldest first by the recorded instant.
  { type: 'AuditEvent', name: 'entity_date', key: { 'idx.entity': 1, 'idx.date.lo': 1 } },
  { type: 'AuditEvent', name: 'patient_date', key: { 'idx.patient': 1, 'idx.date.lo': 1 } },
  // agent: a user's fhirUser reference; agent:identifier: the OAuth client id, or issuer|subject of the user.
  { type: 'AuditEvent', name: 'agent_date', key: { 'idx.agent': 1, 'idx.date.lo': 1 } },
  { type: 'AuditEvent', name: 'agent_identifier_date', key: { 'idx.agent:i': 1, 'idx.date.lo': 1 } },
  { type: 'AuditEvent', name: 'date', key: { 'idx.date.lo': 1, _id: 1 } },
];

/** The types with tuned indexes above: the wildcard index leaves them out. */
const TUNED_TYPES: ReadonlySet<string> = new Set(SEARCH_INDEXES.map((index) => index.type));

/**
 * Whether a type's heads are in the wildcard index: every type without tuned indexes. Those heads carry
 * `anyTypeIndexed: true`, which the index's partial filter names, and every search of such types only says it too
 * (compile.ts), so that MongoDB may use the index. A marker rather than `type: {$nin: [...]}`: MongoDB 7's partial
 * filters take equalities, not $nin. The featured types stay out because the index would cost each of their
 * writes a key per index value (a Patient has ~60) and a larger data file, which their tuned indexes do not need:
 * measured, creates at 100,000 resources went from 166 to 94 per second with them in it.
 */
export function inAnyTypeIndex(type: string): boolean {
  return !TUNED_TYPES.has(type);
}

/** The field that marks the heads in the wildcard index (see inAnyTypeIndex). */
export const ANY_TYPE_MARKER = 'anyTypeIndexed';

/** The name of the wildcard index over the index values of every type without tuned indexes. */
export const ANY_TYPE_INDEX = 'search_other_types';
/** Its name in the first version, which also held the featured types (dropped at start where it exists). */
export const FORMER_ANY_TYPE_INDEX = 'search_any_type';

/** The wildcard index over the index values of every type without tuned indexes (on the heads). */
export const anyTypeIndexDescription: IndexDescription = {
  key: { type: 1, 'idx.$**': 1 },
  name: ANY_TYPE_INDEX,
  partialFilterExpression: { deleted: false, [ANY_TYPE_MARKER]: true },
};

/** Index descriptions for createIndexes, for the types `which` selects (heads and versions hold different types). */
export function searchIndexDescriptions(which: (type: string) => boolean = () => true): IndexDescription[] {
  return SEARCH_INDEXES.filter((index) => which(index.type)).map((index) => ({
    key: index.key,
    name: `search_${index.type}_${index.name}`,
    partialFilterExpression: { type: index.type, deleted: false },
  }));
}

/** The names of the search indexes (the index test asserts each typical search uses one of them). */
export function searchIndexNames(): string[] {
  return [...searchIndexDescriptions().map((d) => d.name!), ANY_TYPE_INDEX];
}
