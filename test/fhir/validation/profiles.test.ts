/**
 * Profiles: the US Core profiles shipped in profiles/, requiredProfiles, unknown profiles, and a
 * differential-only test profile (snapshot generated at start) exercising cardinality, slicing, fixed and
 * pattern values, restricted choice types, local value sets and profile invariants.
 */
import t from 'tap';
import { createResourceValidator } from '../../../src/fhir/validation/index.js';
import {
  TEXT,
  US_CORE_ENCOUNTER,
  US_CORE_MEDICATIONREQUEST,
  US_CORE_PATIENT,
  at,
  errors,
  makeValidator,
  profilesDir,
  raw,
  summary,
  testProfilesDir,
  warnings,
} from './fixtures/support.js';

const { validator, logs } = await makeValidator();
const v = (r: unknown, profile?: string): ReturnType<typeof validator.validate> =>
  validator.validate(raw(r), profile ? { profile } : undefined);

const RACE = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race';
const ETHNICITY = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity';
const BIRTHSEX = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex';

function usCorePatient(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    id: 'amy',
    meta: { profile: [US_CORE_PATIENT] },
    text: TEXT,
    extension: [
      {
        url: RACE,
        extension: [
          { url: 'ombCategory', valueCoding: { system: 'urn:oid:2.16.840.1.113883.6.238', code: '2106-3', display: 'White' } },
          { url: 'text', valueString: 'White' },
        ],
      },
      {
        url: ETHNICITY,
        extension: [
          {
            url: 'ombCategory',
            valueCoding: { system: 'urn:oid:2.16.840.1.113883.6.238', code: '2186-5', display: 'Not Hispanic or Latino' },
          },
          { url: 'text', valueString: 'Not Hispanic or Latino' },
        ],
      },
      { url: BIRTHSEX, valueCode: 'F' },
    ],
    identifier: [{ system: 'http://hospital.example/mrn', value: '1032702' }],
    name: [{ family: 'Shaw', given: ['Amy', 'V.'] }],
    telecom: [{ system: 'phone', value: '555-555-5555', use: 'home' }],
    gender: 'female',
    birthDate: '1987-02-20',
    address: [{ line: ['49 Meadow St'], city: 'Mounds', state: 'OK', postalCode: '74047' }],
    ...extra,
  };
}

t.test('profiles/ is loaded by canonical url and url|version', async (t) => {
  for (const url of [US_CORE_PATIENT, US_CORE_ENCOUNTER, US_CORE_MEDICATIONREQUEST, RACE, ETHNICITY, BIRTHSEX]) {
    t.ok(validator.profiles.has(url), url);
  }
  t.ok(validator.profiles.has(`${US_CORE_PATIENT}|5.0.1`));
  t.ok(validator.profiles.get(US_CORE_ENCOUNTER)?.snapshot?.element?.length, 'US Core Encounter: snapshot generated from its differential');
  t.ok(
    logs.some((l) => l.includes('us-core-encounter has no snapshot')),
    'and the generation is logged',
  );
});

t.test('a conformant US Core Patient passes', async (t) => {
  t.same(v(usCorePatient()), []);
});

t.test('a Patient claiming US Core without identifier, name or gender fails', async (t) => {
  for (const missing of ['identifier', 'name', 'gender']) {
    const resource = usCorePatient();
    delete resource[missing];
    const issues = v(resource);
    t.match(
      at(issues, `Patient.${missing}`, 'required'),
      { severity: 'error', diagnostics: /us-core-patient\|5\.0\.1/ },
      `${missing}\n${summary(issues)}`,
    );
    t.same(errors(v({ ...resource, meta: undefined })), [], `without the claim, missing ${missing} is fine for base R4`);
  }
  const noFamily = v(usCorePatient({ name: [{ text: 'Amy Shaw' }] }));
  t.match(at(noFamily, 'Patient', 'invariant'), { diagnostics: /us-core-6/ });
  const identifierWithoutSystem = v(usCorePatient({ identifier: [{ value: '1' }] }));
  t.ok(at(identifierWithoutSystem, 'Patient.identifier[0].system', 'required'), summary(identifierWithoutSystem));
  const telecomWithoutSystem = v(usCorePatient({ telecom: [{ value: '1' }] }));
  t.ok(at(telecomWithoutSystem, 'Patient.telecom[0].system', 'required'), summary(telecomWithoutSystem));
});

t.test('US Core extensions are validated against their definitions (slices, cardinality, types)', async (t) => {
  const base = usCorePatient();
  const ext = base.extension as Record<string, unknown>[];

  const raceWithoutText = v({ ...base, extension: [{ url: RACE, extension: [(ext[0]?.extension as unknown[])[0]] }, ext[1], ext[2]] });
  t.match(at(raceWithoutText, 'Patient.extension[0].extension', 'required'), { diagnostics: /slice 'text'.*us-core-race/ });

  const twoRaces = v({ ...base, extension: [ext[0], ext[0], ext[1], ext[2]] });
  t.match(at(twoRaces, 'Patient.extension', 'structure'), { diagnostics: /slice 'race'; allowed 0..1/ });

  const birthsexCoding = v({ ...base, extension: [ext[0], ext[1], { url: BIRTHSEX, valueCoding: { code: 'F' } }] });
  t.match(at(birthsexCoding, 'Patient.extension[2].valueCoding', 'structure'), { diagnostics: /not allowed for value\[x\].*code/ });

  const birthsexMissingValue = v({ ...base, extension: [ext[0], ext[1], { url: BIRTHSEX, extension: [{ url: 'x', valueString: 'y' }] }] });
  t.ok(at(birthsexMissingValue, 'Patient.extension[2].value', 'required'), summary(birthsexMissingValue));

  // Extensions are checked wherever they appear, claim or not: the definition is known.
  const unclaimed = v({ resourceType: 'Patient', text: TEXT, extension: [{ url: RACE, valueString: 'White' }] });
  t.ok(errors(unclaimed).length >= 2, `value[x] not allowed on a complex extension, text slice missing\n${summary(unclaimed)}`);
});

t.test('US Core Encounter (generated snapshot) and MedicationRequest', async (t) => {
  const encounter = {
    resourceType: 'Encounter',
    text: TEXT,
    meta: { profile: [US_CORE_ENCOUNTER] },
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    identifier: [{ value: 'no-system' }],
  };
  const issues = v(encounter);
  t.ok(at(issues, 'Encounter.type', 'required'), summary(issues));
  t.ok(at(issues, 'Encounter.subject', 'required'), summary(issues));
  t.ok(at(issues, 'Encounter.identifier[0].system', 'required'), summary(issues));
  t.same(
    errors(
      v({
        ...encounter,
        identifier: [{ system: 'http://hospital.example/enc', value: '1' }],
        type: [{ text: 'Office visit' }],
        subject: { reference: 'Patient/amy' },
      }),
    ),
    [],
  );

  const mr = {
    resourceType: 'MedicationRequest',
    text: TEXT,
    status: 'active',
    intent: 'order',
    medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '582620' }] },
    subject: { reference: 'Patient/amy' },
  };
  const withProfile = v(mr, `${US_CORE_MEDICATIONREQUEST}|5.0.1`);
  t.ok(at(withProfile, 'MedicationRequest.requester', 'required'), summary(withProfile));
  t.same(errors(v({ ...mr, requester: { reference: 'Practitioner/1' } }, US_CORE_MEDICATIONREQUEST)), []);
});

t.test('unknown and mismatched profiles', async (t) => {
  const unknown = v({ resourceType: 'Patient', text: TEXT, meta: { profile: ['http://example.org/fhir/StructureDefinition/nope'] } });
  t.same(unknown, [
    {
      severity: 'warning',
      code: 'not-supported',
      expression: ['Patient.meta.profile[0]'],
      diagnostics:
        'Profile http://example.org/fhir/StructureDefinition/nope is not known to this server; the resource was not checked against it',
    },
  ]);
  const requested = v({ resourceType: 'Patient', text: TEXT }, 'http://example.org/fhir/StructureDefinition/nope');
  t.match(at(requested, 'Patient', 'not-supported'), { severity: 'error' }, 'an explicitly requested profile must exist');
  const wrongType = v({ resourceType: 'Patient', text: TEXT, meta: { profile: [US_CORE_ENCOUNTER] } });
  t.match(at(wrongType, 'Patient.meta.profile[0]', 'invalid'), { severity: 'error', diagnostics: /constrains Encounter, not Patient/ });
  const otherVersion = v(usCorePatient({ meta: { profile: [`${US_CORE_PATIENT}|9.9.9`] } }));
  t.same(otherVersion, [], 'an unknown version of a known profile is checked against the version held');
});

t.test('requiredProfiles forces profiles per type', async (t) => {
  const { validator: strict } = await makeValidator({ requiredProfiles: { Patient: [US_CORE_PATIENT] } });
  const plain = strict.validate(raw({ resourceType: 'Patient', text: TEXT, name: [{ family: 'x' }] }));
  t.ok(at(plain, 'Patient.identifier', 'required'), summary(plain));
  t.ok(at(plain, 'Patient.gender', 'required'), summary(plain));
  t.same(strict.validate(raw(usCorePatient({ meta: undefined }))), []);
  t.same(
    errors(strict.validate(raw({ resourceType: 'Encounter', text: TEXT, status: 'finished', class: { code: 'AMB' } }))),
    [],
    'other types are not affected',
  );

  await t.rejects(
    createResourceValidator({ profilesDir, log: () => {}, requiredProfiles: { Patient: ['http://example.org/none'] } }),
    /requiredProfiles: Patient requires http:\/\/example.org\/none/,
  );
  await t.rejects(
    createResourceValidator({ profilesDir, log: () => {}, requiredProfiles: { Patient: [US_CORE_ENCOUNTER] } }),
    /constrains Encounter, not Patient/,
  );
});

t.test('a differential-only profile: snapshot, slicing, fixed/pattern, choice restriction, bindings, invariants', async (t) => {
  const logged: string[] = [];
  const local = await createResourceValidator({ profilesDir: testProfilesDir, log: (m) => logged.push(m) });
  const P = 'http://example.org/fhir/StructureDefinition/test-patient';
  t.ok(local.profiles.has(`${P}|1.0.0`));
  t.ok(logged.some((l) => l.includes('test-patient has no snapshot; generated')));

  const ok = {
    resourceType: 'Patient',
    text: TEXT,
    meta: { profile: [P] },
    identifier: [
      { system: 'http://hospital.example/mrn', value: '1' },
      { system: 'http://other.example', value: '2' },
    ],
    telecom: [{ system: 'phone', value: '1' }],
    gender: 'female',
    birthDate: '2000-01-01',
    maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] },
  };
  t.same(local.validate(raw(ok)), []);

  const bad = local.validate(
    raw({
      resourceType: 'Patient',
      text: TEXT,
      meta: { profile: [P] },
      identifier: [{ system: 'http://other.example', value: '2' }],
      gender: 'other',
      deceasedDateTime: '2020-01-01',
      maritalStatus: { coding: [{ system: 'http://example.org/local', code: 'M' }] },
      contact: [{ name: { family: 'x' } }],
    }),
  );
  t.match(at(bad, 'Patient.identifier', 'required'), { diagnostics: /slice 'mrn'; allowed 1..1/ });
  t.ok(at(bad, 'Patient.birthDate', 'required'), summary(bad));
  t.match(at(bad, 'Patient.gender', 'code-invalid'), {
    severity: 'error',
    diagnostics: /http:\/\/example.org\/fhir\/ValueSet\/test-genders \(allowed: male, female\)/,
  });
  t.match(at(bad, 'Patient.deceasedDateTime', 'structure'), { diagnostics: /allowed: boolean/ });
  t.match(at(bad, 'Patient.maritalStatus', 'value'), { diagnostics: /match the pattern/ });
  t.match(at(bad, 'Patient.contact', 'structure'), { diagnostics: /maximum cardinality 0/ });
  t.match(at(bad, 'Patient', 'invariant'), { severity: 'warning', diagnostics: /tp-1/ });
  t.equal(warnings(bad).filter((i) => i.code === 'code-invalid').length, 1, 'base extensible binding on maritalStatus still applies');

  const twoMrns = local.validate(
    raw({
      ...ok,
      identifier: [{ system: 'http://hospital.example/mrn', value: '1' }, { system: 'http://hospital.example/mrn' }],
      deceasedBoolean: true,
      active: true,
    }),
  );
  t.match(at(twoMrns, 'Patient.identifier', 'structure'), { diagnostics: /slice 'mrn'; allowed 1..1/ });
  t.ok(at(twoMrns, 'Patient.identifier[1].value', 'required'), 'slice child cardinality');
  t.match(at(twoMrns, 'Patient', 'invariant'), { severity: 'error', diagnostics: /tp-2/ });
});
