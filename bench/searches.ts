/**
 * The benchmark's typical searches, as data: each makes its i-th query string from the population (which
 * patient, which name, which dates), and says which index it must run on. bench/run.ts times them over HTTP;
 * test/store/search-indexes.test.ts runs the same definitions through explain() and fails when one of them stops
 * using its index, so the benchmark and the index test cannot drift apart.
 */
import {
  ACCENTED_FAMILY_NAMES,
  FAMILY_NAMES,
  MRN_SYSTEM,
  RXNORM_DRUGS,
  RXNORM_SYSTEM,
  mrnOf,
  mulberry32,
  patientId,
  type Rng,
} from './population.js';

/** What a search's queries are drawn from. */
export interface QueryInputs {
  /** Population size: patient numbers are [0, patients). */
  patients: number;
  /** Draws for this query (deterministic per benchmark seed and query number). */
  rng: Rng;
  /** meta.lastUpdated of the first and last loaded resource (for _lastUpdated windows). */
  loadedFrom: Date;
  loadedTo: Date;
}

export interface BenchSearch {
  name: string;
  type: 'Patient' | 'Encounter' | 'MedicationRequest';
  /** The query string (without '?') of the i-th request. */
  query(inputs: QueryInputs): string;
  /** The index names the plan may scan (every IXSCAN must match; no COLLSCAN). */
  index: RegExp;
  /** The index also delivers the order (no blocking SORT stage). */
  sortFromIndex?: boolean;
  /** The deep-page search: timed at page 50 by following next links (bench/run.ts), explained at a keyset position. */
  deepPage?: boolean;
}

const anyPatient = (q: QueryInputs): string => patientId(Math.floor(q.rng() * q.patients));
const anyFamily = (q: QueryInputs): string => (q.rng() < 1 / 7 ? pick(q.rng, ACCENTED_FAMILY_NAMES) : pick(q.rng, FAMILY_NAMES));
const pick = <T>(rng: Rng, list: readonly T[]): T => list[Math.floor(rng() * list.length)];
const year = (q: QueryInputs, from: number, to: number): number => from + Math.floor(q.rng() * (to - from + 1));
const pad = (n: number): string => String(n).padStart(2, '0');
const enc = encodeURIComponent;

export const BENCH_SEARCHES: BenchSearch[] = [
  {
    name: 'Patient by identifier (system|MRN)',
    type: 'Patient',
    query: (q) => `identifier=${enc(MRN_SYSTEM)}|${mrnOf(Math.floor(q.rng() * q.patients))}`,
    index: /^search_Patient_identifier$/,
    sortFromIndex: true,
  },
  {
    name: 'Patient by family-name prefix (3 letters)',
    type: 'Patient',
    query: (q) => `family=${enc(anyFamily(q).slice(0, 3))}`,
    index: /^search_Patient_family$/,
  },
  {
    name: 'Patient birthdate range (ge&le, 1 month)',
    type: 'Patient',
    query: (q) => {
      const y = year(q, 1931, 2023);
      const m = 1 + Math.floor(q.rng() * 11);
      return `birthdate=ge${y}-${pad(m)}-01&birthdate=le${y}-${pad(m)}-28`;
    },
    index: /^search_Patient_birthdate_(lo|hi)$/,
  },
  {
    name: 'Patient gender + birthdate (month)',
    type: 'Patient',
    query: (q) => `gender=${q.rng() < 0.5 ? 'female' : 'male'}&birthdate=${year(q, 1931, 2023)}-${pad(1 + Math.floor(q.rng() * 12))}`,
    // gender + birthdate.lo is the compound index for this; on close calls the planner may take birthdate alone.
    index: /^search_Patient_(gender_birthdate|birthdate_lo|birthdate_hi)$/,
  },
  {
    name: 'Encounters of a patient in a date range',
    type: 'Encounter',
    query: (q) => `patient=${anyPatient(q)}&date=ge2018-01-01&date=le2023-12-31`,
    index: /^search_Encounter_patient_date$/,
  },
  {
    name: 'active MedicationRequests of a patient',
    type: 'MedicationRequest',
    query: (q) => `status=active&subject=Patient/${anyPatient(q)}`,
    index: /^search_MedicationRequest_subject_status$/,
  },
  {
    name: 'Encounter chained subject:Patient.family',
    type: 'Encounter',
    // A whole family name (a prefix match, as FHIR string search is): hundreds of patients at 100 000.
    query: (q) => `subject:Patient.family=${enc(anyFamily(q))}`,
    index: /^search_Encounter_subject_date$/,
  },
  {
    name: 'Encounter chained patient.identifier',
    type: 'Encounter',
    query: (q) => `patient.identifier=${enc(MRN_SYSTEM)}|${mrnOf(Math.floor(q.rng() * q.patients))}`,
    index: /^search_Encounter_patient_date$/,
  },
  {
    name: 'Encounter of a patient + _include=Encounter:subject',
    type: 'Encounter',
    query: (q) => `patient=${anyPatient(q)}&_include=Encounter:subject`,
    index: /^search_Encounter_patient_date$/,
  },
  {
    name: 'Patient by _id + _revinclude=Encounter:subject',
    type: 'Patient',
    query: (q) => `_id=${anyPatient(q)}&_revinclude=Encounter:subject`,
    index: /^_id_$|^type_id$/,
  },
  {
    name: 'Encounter status=finished, _sort=-date',
    type: 'Encounter',
    query: () => `status=finished&_sort=-date`,
    index: /^search_Encounter_status_date_hi$/,
    sortFromIndex: true,
  },
  {
    name: 'Encounter class + date (EMER since a recent month)',
    type: 'Encounter',
    // "Emergency encounters since <month>": one of the last six months of the population's span (2015-2026).
    query: (q) => `class=EMER&date=ge2026-${pad(7 + Math.floor(q.rng() * 6))}-01`,
    index: /^search_Encounter_date_(lo|hi)$/,
  },
  {
    name: 'MedicationRequest by code (RxNorm)',
    type: 'MedicationRequest',
    query: (q) => `code=${enc(RXNORM_SYSTEM)}|${pick(q.rng, RXNORM_DRUGS)[0]}`,
    index: /^search_MedicationRequest_code$/,
    sortFromIndex: true,
  },
  {
    name: 'Patient name + birthdate (year)',
    type: 'Patient',
    query: (q) => `name=${enc(anyFamily(q))}&birthdate=${year(q, 1931, 2023)}`,
    index: /^search_Patient_(name|birthdate_lo|birthdate_hi)$/,
  },
  {
    name: 'Patient _lastUpdated range (load window)',
    type: 'Patient',
    query: (q) => {
      // A window of 1/100 of the load's duration, somewhere in it: about 1% of the patients. (The loader stamps
      // resources in bursts, a chunk at a time, so a much narrower window can fall between two chunks.)
      const span = q.loadedTo.getTime() - q.loadedFrom.getTime();
      const width = Math.max(2, Math.floor(span / 100));
      const from = q.loadedFrom.getTime() + Math.floor(q.rng() * Math.max(1, span - width));
      return `_lastUpdated=ge${new Date(from).toISOString()}&_lastUpdated=lt${new Date(from + width).toISOString()}`;
    },
    index: /^type_lastUpdated$/,
  },
  {
    name: 'Encounters of a patient, _total=accurate',
    type: 'Encounter',
    query: (q) => `patient=${anyPatient(q)}&_total=accurate`,
    index: /^search_Encounter_patient_date$/,
  },
  {
    name: 'active MedicationRequests of a patient, _summary=count',
    type: 'MedicationRequest',
    query: (q) => `patient=${anyPatient(q)}&status=active&_summary=count`,
    index: /^search_MedicationRequest_patient_status$/,
  },
  {
    name: 'deep page: Patient?gender=…&_count=20, page 50',
    type: 'Patient',
    query: (q) => `gender=${q.rng() < 0.5 ? 'female' : 'male'}&_count=20`,
    index: /^_id_$|^type_id$|^search_Patient_gender_birthdate$/,
    deepPage: true,
  },
];

/** The inputs of query number i of a search (same seed, same queries). */
export function queryInputs(seed: number, search: number, i: number, base: Omit<QueryInputs, 'rng'>): QueryInputs {
  return { ...base, rng: mulberry32((seed * 31 + search * 1_000_003 + i * 7919) >>> 0) };
}
