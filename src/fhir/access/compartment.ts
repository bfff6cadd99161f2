/**
 * The Patient compartment (R4 CompartmentDefinition "patient") as the access policy and the audit trail need it:
 * which stored resources belong to a patient, judged from their write-time index values, and the search
 * condition that confines a query to one patient's compartment.
 */
import type { FieldSelection, IndexValues } from '../../store/resource-store.js';
import type { Condition } from '../../store/search/query.js';
import { idxPath } from '../search/fields.js';
import { searchRegistry } from '../search/registry.js';

/** Whether resources of `type` can belong to a Patient compartment at all. */
export function inPatientCompartmentDefinition(type: string): boolean {
  return type === 'Patient' || searchRegistry().patientCompartment.has(type);
}

/**
 * The condition that puts a resource of `type` in Patient/`patientId`'s compartment: over heads (the patient
 * itself by its key, which the _id index serves), or over version documents (`versions`: by its id field).
 */
export function compartmentCondition(type: string, patientId: string, options: { versions?: boolean } = {}): Condition {
  const reference = `Patient/${patientId}`;
  const branches: Condition[] = (searchRegistry().patientCompartment.get(type) ?? []).map((param) => ({
    op: 'in',
    field: idxPath(param),
    values: [reference],
  }));
  // The patient belongs to its own compartment.
  if (type === 'Patient') {
    branches.push(options.versions ? { op: 'in', field: 'id', values: [patientId] } : { op: 'in', field: '_id', values: [reference] });
  }
  if (branches.length === 0) return { op: 'none' };
  return branches.length === 1 ? branches[0] : { op: 'or', of: branches };
}

function referencesIn(idx: IndexValues | undefined, param: string): string[] {
  const value = idx?.[param];
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return values.filter((v): v is string => typeof v === 'string');
}

/** The patients ("Patient/id") whose compartment a stored resource is in, from its index values. */
export function patientsOf(type: string, id: string, idx: IndexValues | undefined): string[] {
  const patients = new Set<string>();
  if (type === 'Patient') patients.add(`Patient/${id}`);
  for (const param of searchRegistry().patientCompartment.get(type) ?? []) {
    // Patient.link puts other patients' records in this patient's compartment, not this record in theirs.
    if (type === 'Patient') continue;
    for (const reference of referencesIn(idx, param)) if (reference.startsWith('Patient/')) patients.add(reference);
  }
  return [...patients];
}

/** Whether a stored resource (its id and index values) is in Patient/`patientId`'s compartment. */
export function inPatientCompartment(type: string, id: string, idx: IndexValues | undefined, patientId: string): boolean {
  if (type === 'Patient' && id === patientId) return true;
  const reference = `Patient/${patientId}`;
  return (searchRegistry().patientCompartment.get(type) ?? []).some((param) => referencesIn(idx, param).includes(reference));
}

/**
 * The fields of stored heads that answering reads and searches of `types` needs: everything but the index values,
 * of which only the Patient-compartment references (the access policy and the audit trail judge from them) and
 * `paths` (e.g. a search's sort keys, for its paging links). As a MongoDB projection: the index values are two
 * thirds of a stored Patient (2.2 of 3.2 KB) and not carrying them halves what every read moves and decodes.
 */
export function resultFields(types: readonly string[], paths: readonly string[] = []): FieldSelection {
  // Asked on every read and search page, with few distinct arguments: computed once each.
  const key = `${types.join(',')}|${paths.join(',')}`;
  let fields = resultFieldsCache.get(key);
  if (!fields) {
    fields = computeResultFields(types, paths);
    if (resultFieldsCache.size < 1000) resultFieldsCache.set(key, fields);
  }
  return fields;
}

const resultFieldsCache = new Map<string, Readonly<FieldSelection>>();

function computeResultFields(types: readonly string[], paths: readonly string[]): FieldSelection {
  const wanted = new Set(['type', 'id', 'versionId', 'lastUpdated', 'deleted', 'resource', 'idxVersion', ...paths]);
  for (const type of types) for (const param of searchRegistry().patientCompartment.get(type) ?? []) wanted.add(idxPath(param));
  // A path inside another one wanted whole would be a collision MongoDB refuses ("idx.a" and "idx.a.lo").
  const kept = [...wanted].filter((path) => ![...wanted].some((other) => other !== path && path.startsWith(`${other}.`)));
  return Object.fromEntries(kept.sort().map((path) => [path, 1]));
}
