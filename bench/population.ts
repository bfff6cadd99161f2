/**
 * A synthetic, deterministic patient population for the benchmark: Patients with their Encounters and
 * MedicationRequests, realistic enough that the searches the benchmark times find what real data would give
 * them (several names per family, accents now and then, birth dates over a century, a few encounters per
 * patient over ten years, prescriptions from a short RxNorm list).
 *
 * Deterministic from (seed, patient number): every patient draws from its own PRNG stream, so patient 73 412 is
 * the same whether it is generated alone or as part of a 100 000-patient run, and the loader, the searches and
 * the tests can compute ids, MRNs and references without asking the server. Ids are derived from the patient
 * number (Patient/pat-73412, Encounter/enc-73412-1, MedicationRequest/mrx-73412-0).
 *
 * The PRNG is mulberry32 (a few lines, public domain algorithm, written here): it is fast, has a 32-bit seed,
 * and is good enough for test data; a package such as pure-rand would add a dependency for no gain here.
 */
import type { BundleEntry, Encounter, MedicationRequest, Patient, Resource } from '@medplum/fhirtypes';

export type Rng = () => number;

/** mulberry32: a uniform float in [0, 1) per call. */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A well-mixed 32-bit seed for one patient's stream (so neighbouring patients do not look alike). */
function streamSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const int = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1));
const pick = <T>(rng: Rng, list: readonly T[]): T => list[Math.floor(rng() * list.length)];
function weighted<T>(rng: Rng, choices: ReadonlyArray<readonly [T, number]>): T {
  const total = choices.reduce((sum, [, w]) => sum + w, 0);
  let r = rng() * total;
  for (const [value, w] of choices) {
    r -= w;
    if (r < 0) return value;
  }
  return choices[choices.length - 1][0];
}

// Common family names; one in seven patients gets one from the accented list instead.
export const FAMILY_NAMES = [
  'Smith',
  'Johnson',
  'Williams',
  'Brown',
  'Jones',
  'Garcia',
  'Miller',
  'Davis',
  'Rodriguez',
  'Martinez',
  'Hernandez',
  'Lopez',
  'Gonzalez',
  'Wilson',
  'Anderson',
  'Thomas',
  'Taylor',
  'Moore',
  'Jackson',
  'Martin',
  'Lee',
  'Perez',
  'Thompson',
  'White',
  'Harris',
  'Sanchez',
  'Clark',
  'Ramirez',
  'Lewis',
  'Robinson',
  'Walker',
  'Young',
  'Allen',
  'King',
  'Wright',
  'Scott',
  'Torres',
  'Nguyen',
  'Hill',
  'Flores',
  'Green',
  'Adams',
  'Nelson',
  'Baker',
  'Hall',
  'Rivera',
  'Campbell',
  'Mitchell',
  'Carter',
  'Roberts',
  'Schmidt',
  'Schneider',
  'Fischer',
  'Weber',
  'Meyer',
  'Wagner',
  'Becker',
  'Hoffmann',
  'Dubois',
  'Moreau',
  'Laurent',
  'Girard',
  'Dupont',
  'Lambert',
  'Rossi',
  'Russo',
  'Ferrari',
  'Esposito',
  'Bianchi',
  'Romano',
  'Colombo',
  'Ricci',
  'Nowak',
  'Kowalski',
  'Novak',
  'Kaya',
  'Demir',
  'Kim',
  'Park',
  'Choi',
  'Tanaka',
  'Suzuki',
  'Takahashi',
  'Wang',
  'Li',
  'Zhang',
  'Liu',
  'Chen',
  'Yang',
  'Huang',
  'Singh',
  'Kumar',
  'Patel',
  'Shah',
  "O'Brien",
  'Murphy',
  'Kelly',
  'Byrne',
  'Ryan',
  'Jansen',
  'de Vries',
  'van Dijk',
  'Bakker',
  'Visser',
  'Smit',
] as const;
export const ACCENTED_FAMILY_NAMES = [
  'Müller',
  'Schäfer',
  'Krüger',
  'Lefèvre',
  'Bézier',
  'Fontaine-Lévêque',
  'García',
  'Fernández',
  'González',
  'Rodríguez',
  'López',
  'Martínez',
  'Sánchez',
  'Pérez',
  'Gómez',
  'Jiménez',
  'Hernández',
  'Díaz',
  'Muñoz',
  'Álvarez',
  'Jørgensen',
  'Søndergaard',
  'Wiśniewski',
  'Dąbrowski',
  'Dvořák',
  'Černý',
  'Yılmaz',
  'Şahin',
  'Çelik',
  'Öztürk',
  'Nguyễn',
  'Trần',
  'Phạm',
  'Ó Súilleabháin',
  'Þórsson',
  'Åberg',
  'Ångström',
  'Gonçalves',
  'Conceição',
  'Björk',
] as const;
const GIVEN_FEMALE = [
  'Mary',
  'Patricia',
  'Jennifer',
  'Linda',
  'Elizabeth',
  'Barbara',
  'Susan',
  'Jessica',
  'Sarah',
  'Karen',
  'Nancy',
  'Lisa',
  'Emma',
  'Olivia',
  'Sophia',
  'Mia',
  'Chloé',
  'Léa',
  'Zoë',
  'Anaïs',
  'Inès',
  'María',
  'Lucía',
  'Sofía',
  'Anna',
  'Hanna',
  'Ingrid',
  'Astrid',
  'Aiko',
  'Yuki',
  'Mei',
  'Priya',
  'Fatima',
  'Amira',
  'Siobhán',
  'Małgorzata',
] as const;
const GIVEN_MALE = [
  'James',
  'John',
  'Robert',
  'Michael',
  'William',
  'David',
  'Richard',
  'Joseph',
  'Thomas',
  'Charles',
  'Daniel',
  'Matthew',
  'Liam',
  'Noah',
  'Lucas',
  'Louis',
  'Hugo',
  'Raphaël',
  'José',
  'Jesús',
  'Andrés',
  'Jürgen',
  'Lukas',
  'Jonas',
  'Søren',
  'Björn',
  'Hiroshi',
  'Kenji',
  'Wei',
  'Arjun',
  'Omar',
  'Mehmet',
  'Seán',
  'Paweł',
  'Tomáš',
  'Ömer',
] as const;
const STREETS = [
  'Main St',
  'Oak Ave',
  'Maple Dr',
  'Cedar Ln',
  'Elm St',
  'Park Rd',
  'Lake View',
  'Hauptstraße',
  'Rue de la Paix',
  'Calle Mayor',
] as const;
const CITIES: ReadonlyArray<readonly [string, string, string]> = [
  ['Boston', 'MA', 'US'],
  ['Springfield', 'IL', 'US'],
  ['Portland', 'OR', 'US'],
  ['Austin', 'TX', 'US'],
  ['Madison', 'WI', 'US'],
  ['Denver', 'CO', 'US'],
  ['Toronto', 'ON', 'CA'],
  ['Montréal', 'QC', 'CA'],
  ['München', 'BY', 'DE'],
  ['Zürich', 'ZH', 'CH'],
  ['Lyon', 'ARA', 'FR'],
  ['Sevilla', 'AN', 'ES'],
];

/** RxNorm clinical drugs the MedicationRequests prescribe (code, display). */
export const RXNORM_DRUGS: ReadonlyArray<readonly [string, string]> = [
  ['197361', 'amlodipine 5 MG Oral Tablet'],
  ['314076', 'lisinopril 10 MG Oral Tablet'],
  ['861007', 'metformin hydrochloride 500 MG Oral Tablet'],
  ['259255', 'atorvastatin 80 MG Oral Tablet'],
  ['312961', 'simvastatin 20 MG Oral Tablet'],
  ['310965', 'ibuprofen 200 MG Oral Tablet'],
  ['313782', 'acetaminophen 325 MG Oral Tablet'],
  ['308182', 'amoxicillin 250 MG Oral Capsule'],
  ['966222', 'levothyroxine sodium 0.05 MG Oral Tablet'],
  ['310798', 'hydrochlorothiazide 25 MG Oral Tablet'],
  ['310429', 'furosemide 20 MG Oral Tablet'],
  ['849574', 'naproxen sodium 220 MG Oral Tablet'],
];
export const RXNORM_SYSTEM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
export const MRN_SYSTEM = 'urn:oid:2.16.840.1.113883.19.5.99999.1';

const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const ENCOUNTER_CLASSES: ReadonlyArray<readonly [readonly [string, string], number]> = [
  [['AMB', 'ambulatory'], 70],
  [['EMER', 'emergency'], 12],
  [['IMP', 'inpatient encounter'], 10],
  [['VR', 'virtual'], 6],
  [['HH', 'home health'], 2],
];
const SNOMED = 'http://snomed.info/sct';
const ENCOUNTER_TYPES: ReadonlyArray<readonly [string, string]> = [
  ['185349003', 'Encounter for check up'],
  ['162673000', 'General examination of patient'],
  ['185345009', 'Encounter for symptom'],
  ['390906007', 'Follow-up encounter'],
  ['50849002', 'Emergency room admission'],
  ['32485007', 'Hospital admission'],
  ['698314001', 'Consultation for treatment'],
  ['439740005', 'Postoperative follow-up visit'],
];
const ORGANIZATIONS = ['org-general-hospital', 'org-city-clinic', 'org-riverside-medical', 'org-st-mary'] as const;

/** Ids of patient number `index` and of its encounters / prescriptions (the k-th of each). */
export const patientId = (index: number): string => `pat-${index}`;
export const encounterId = (index: number, k: number): string => `enc-${index}-${k}`;
export const medicationRequestId = (index: number, k: number): string => `mrx-${index}-${k}`;
export const mrnOf = (index: number): string => `M${String(index + 1).padStart(8, '0')}`;

/** One patient with everything that refers to it. Resources carry ids; meta is left to the server (or loader). */
export interface PatientRecord {
  index: number;
  patient: Patient;
  encounters: Encounter[];
  medicationRequests: MedicationRequest[];
}

const DAY_MS = 86_400_000;
const BIRTH_FROM = Date.UTC(1930, 0, 1);
const BIRTH_TO = Date.UTC(2024, 11, 31);
const ENCOUNTER_FROM = Date.UTC(2015, 0, 1);
const ENCOUNTER_TO = Date.UTC(2026, 11, 31);

const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
/** Seconds precision with an explicit UTC offset, as EHRs typically send it. */
const isoDateTime = (ms: number): string => `${new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19)}Z`;

/** Patient number `index` of the population of `seed`, with its encounters and medication requests. */
export function generatePatient(seed: number, index: number): PatientRecord {
  const rng = mulberry32(streamSeed(seed, index));
  const id = patientId(index);
  const gender = weighted(rng, [
    ['female', 49],
    ['male', 49],
    ['other', 1],
    ['unknown', 1],
  ] as const);
  const family = rng() < 1 / 7 ? pick(rng, ACCENTED_FAMILY_NAMES) : pick(rng, FAMILY_NAMES);
  const givenList = gender === 'female' ? GIVEN_FEMALE : gender === 'male' ? GIVEN_MALE : rng() < 0.5 ? GIVEN_FEMALE : GIVEN_MALE;
  const given = rng() < 0.3 ? [pick(rng, givenList), pick(rng, givenList)] : [pick(rng, givenList)];
  const birthMs = BIRTH_FROM + Math.floor(rng() * ((BIRTH_TO - BIRTH_FROM) / DAY_MS)) * DAY_MS;
  const [city, state, country] = pick(rng, CITIES);
  const phone = `+1-555-${String(int(rng, 100, 999))}-${String(int(rng, 0, 9999)).padStart(4, '0')}`;
  const patient: Patient = {
    resourceType: 'Patient',
    id,
    identifier: [
      {
        use: 'usual',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }] },
        system: MRN_SYSTEM,
        value: mrnOf(index),
      },
    ],
    active: rng() < 0.97,
    name: [{ use: 'official', family, given }],
    telecom: [{ system: 'phone', value: phone, use: rng() < 0.6 ? 'mobile' : 'home' }],
    gender,
    birthDate: isoDate(birthMs),
    address: [
      {
        use: 'home',
        line: [`${int(rng, 1, 9999)} ${pick(rng, STREETS)}`],
        city,
        state,
        postalCode: String(int(rng, 10000, 99999)),
        country,
      },
    ],
  };
  if (rng() < 0.4) {
    patient.telecom!.push({ system: 'email', value: `patient${index}@example.org`, use: 'home' });
  }
  if (rng() < 0.05) patient.deceasedBoolean = true;

  const encounters: Encounter[] = [];
  const encounterCount = weighted(rng, [
    [0, 10],
    [1, 25],
    [2, 30],
    [3, 20],
    [4, 15],
  ] as const);
  for (let k = 0; k < encounterCount; k++) {
    const [classCode, classDisplay] = weighted(rng, ENCOUNTER_CLASSES);
    const [typeCode, typeDisplay] = pick(rng, ENCOUNTER_TYPES);
    const start = ENCOUNTER_FROM + Math.floor(rng() * ((ENCOUNTER_TO - ENCOUNTER_FROM) / 60_000)) * 60_000;
    const minutes = classCode === 'IMP' ? int(rng, 1, 10) * 1440 : classCode === 'EMER' ? int(rng, 120, 720) : int(rng, 15, 90);
    const status = weighted(rng, [
      ['finished', 85],
      ['in-progress', 3],
      ['cancelled', 5],
      ['planned', 5],
      ['arrived', 2],
    ] as const);
    const encounter: Encounter = {
      resourceType: 'Encounter',
      id: encounterId(index, k),
      status,
      class: { system: ACT_CODE, code: classCode, display: classDisplay },
      type: [{ coding: [{ system: SNOMED, code: typeCode, display: typeDisplay }], text: typeDisplay }],
      subject: { reference: `Patient/${id}` },
      period:
        status === 'finished' || status === 'cancelled'
          ? { start: isoDateTime(start), end: isoDateTime(start + minutes * 60_000) }
          : { start: isoDateTime(start) },
    };
    if (rng() < 0.7) encounter.serviceProvider = { reference: `Organization/${pick(rng, ORGANIZATIONS)}` };
    encounters.push(encounter);
  }

  const medicationRequests: MedicationRequest[] = [];
  const prescriptionCount = weighted(rng, [
    [0, 25],
    [1, 30],
    [2, 25],
    [3, 20],
  ] as const);
  for (let k = 0; k < prescriptionCount; k++) {
    const [code, display] = pick(rng, RXNORM_DRUGS);
    const encounter = encounters.length > 0 && rng() < 0.85 ? pick(rng, encounters) : undefined;
    const authoredMs = encounter
      ? Date.parse(encounter.period!.start!) + int(rng, 0, 30) * 60_000
      : ENCOUNTER_FROM + Math.floor(rng() * ((ENCOUNTER_TO - ENCOUNTER_FROM) / 60_000)) * 60_000;
    const request: MedicationRequest = {
      resourceType: 'MedicationRequest',
      id: medicationRequestId(index, k),
      status: weighted(rng, [
        ['active', 45],
        ['completed', 35],
        ['stopped', 10],
        ['on-hold', 5],
        ['cancelled', 5],
      ] as const),
      intent: 'order',
      medicationCodeableConcept: { coding: [{ system: RXNORM_SYSTEM, code, display }], text: display },
      subject: { reference: `Patient/${id}` },
      authoredOn: isoDateTime(authoredMs),
      dosageInstruction: [{ text: pick(rng, ['1 tablet daily', '1 tablet twice daily', '2 tablets at bedtime', 'as needed for pain']) }],
    };
    if (encounter) request.encounter = { reference: `Encounter/${encounter.id}` };
    medicationRequests.push(request);
  }
  return { index, patient, encounters, medicationRequests };
}

/** Patients [from, to) of the population of `seed`. */
export function* generatePopulation(seed: number, from: number, to: number): Generator<PatientRecord> {
  for (let index = from; index < to; index++) yield generatePatient(seed, index);
}

/** Every resource of a record, patient first (the order a loader or client must create them in). */
export function resourcesOf(record: PatientRecord): Resource[] {
  return [record.patient, ...record.encounters, ...record.medicationRequests];
}

/** A deterministic UUID (version 4 layout) from a PRNG, for urn:uuid fullUrls. */
function uuidFrom(rng: Rng): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rng() * 16).toString(16));
  hex[12] = '4';
  hex[16] = ((Number.parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/**
 * A patient record as transaction entries: no ids (the server assigns them), fullUrls urn:uuid:..., and the
 * references between the record's resources rewritten to those urns, as a client sending new data would.
 */
export function transactionEntries(seed: number, record: PatientRecord): BundleEntry[] {
  const rng = mulberry32(streamSeed(seed ^ 0x5bd1e995, record.index));
  const urns = new Map<string, string>();
  for (const resource of resourcesOf(record)) urns.set(`${resource.resourceType}/${resource.id}`, `urn:uuid:${uuidFrom(rng)}`);
  return resourcesOf(record).map((resource) => {
    const { id, ...body } = structuredClone(resource) as Resource & {
      subject?: { reference?: string };
      encounter?: { reference?: string };
    };
    for (const ref of [body.subject, body.encounter]) {
      if (ref?.reference && urns.has(ref.reference)) ref.reference = urns.get(ref.reference);
    }
    return {
      fullUrl: urns.get(`${resource.resourceType}/${id}`),
      resource: body as Resource,
      request: { method: 'POST', url: resource.resourceType },
    };
  });
}

/**
 * Transaction Bundles of exactly `entriesPerBundle` entries (the last may be smaller), filled with whole patient
 * records starting at patient `from`; a record that does not fit whole is cut after its patient and first
 * resources (references only point backwards within a record, so a cut record stays consistent).
 * Returns the bundles and the first patient number not used.
 */
export function transactionBundles(
  seed: number,
  from: number,
  bundleCount: number,
  entriesPerBundle: number,
): { bundles: Array<{ resourceType: 'Bundle'; type: 'transaction'; entry: BundleEntry[] }>; next: number } {
  const bundles: Array<{ resourceType: 'Bundle'; type: 'transaction'; entry: BundleEntry[] }> = [];
  let index = from;
  for (let b = 0; b < bundleCount; b++) {
    const entry: BundleEntry[] = [];
    while (entry.length < entriesPerBundle) {
      const entries = transactionEntries(seed, generatePatient(seed, index++));
      entry.push(...entries.slice(0, entriesPerBundle - entry.length));
    }
    bundles.push({ resourceType: 'Bundle', type: 'transaction', entry });
  }
  return { bundles, next: index };
}
