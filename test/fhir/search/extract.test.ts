/**
 * Index extraction: normalised values per parameter type, every date precision and timezones, reference forms.
 * Pure functions: no database.
 */
import type { Resource } from '@medplum/fhirtypes';
import t from 'tap';
import { extractIndex } from '../../../src/fhir/search/extract.js';
import { MAX_DATE, MIN_DATE } from '../../../src/fhir/search/fields.js';
import { foldString, soundex } from '../../../src/fhir/search/normalise.js';
import { searchRegistry } from '../../../src/fhir/search/registry.js';

const BASE = 'http://127.0.0.1:8080';
const registry = searchRegistry();
const idxOf = (resource: Record<string, unknown>): Record<string, unknown> =>
  extractIndex(registry, resource as unknown as Resource, BASE).idx;
const range = (lo: string, hi: string) => ({ lo: new Date(lo), hi: new Date(hi) });

t.test('registry: every parameter of the definitions for the three types, with types and documentation', async (t) => {
  const patient = registry.paramsOf('Patient').map((d) => d.code);
  for (const code of [
    '_id',
    '_lastUpdated',
    '_tag',
    '_profile',
    '_security',
    '_source',
    'identifier',
    'name',
    'family',
    'given',
    'birthdate',
    'gender',
    'address-city',
    'phonetic',
    'telecom',
    'general-practitioner',
    'link',
    'race',
  ]) {
    t.ok(patient.includes(code), `Patient ${code}`);
  }
  const encounter = registry.paramsOf('Encounter').map((d) => d.code);
  for (const code of ['date', 'patient', 'subject', 'status', 'class', 'length', 'location-period', 'participant', 'reason-code']) {
    t.ok(encounter.includes(code), `Encounter ${code}`);
  }
  const request = registry.paramsOf('MedicationRequest').map((d) => d.code);
  for (const code of ['authoredon', 'code', 'medication', 'status', 'intent', 'patient', 'encounter', 'date', 'priority-order']) {
    t.ok(request.includes(code), `MedicationRequest ${code}`);
  }
  t.notOk(patient.includes('_text'), 'parameters without an expression (_text, _content, _query) are not offered');
  t.equal(registry.get('Patient', 'birthdate')?.type, 'date');
  t.match(registry.get('Patient', 'birthdate')?.description, /birth/i);
  t.equal(registry.binding('Patient', 'birthdate')?.single, true, 'birthDate 0..1: a scalar');
  t.equal(registry.binding('Patient', 'family')?.single, false, 'name 0..*: an array');
  t.equal(registry.binding('Encounter', 'date')?.single, true, 'Encounter.period is one range');
  t.equal(registry.binding('MedicationRequest', 'date')?.single, false, 'timing events are many');
  t.equal(registry.binding('Patient', 'gender')?.implicitSystem, 'http://hl7.org/fhir/administrative-gender');
  t.same(registry.patientCompartment.get('Encounter'), ['subject']);
  t.type(registry.indexVersion(BASE), 'number');
  t.not(registry.indexVersion(BASE), registry.indexVersion('https://other.example/fhir'), 'the base URL is part of idxVersion');
});

t.test('strings: folded for matching, as written for :exact; HumanName and Address parts', async (t) => {
  t.equal(foldString('  Ådèle   ÇHAMPS '), 'adele champs');
  t.equal(foldString('Ｍüller'), 'ｍuller'.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase());
  const idx = idxOf({
    resourceType: 'Patient',
    name: [{ family: 'Chalmérs', given: ['Peter', 'James'], prefix: ['Mr.'], text: 'Peter  James Chalmérs' }],
    address: [{ line: ['534 Erewhon St'], city: 'PleasantVille', postalCode: '3999', country: 'Australia' }],
  });
  t.same(idx.family, ['chalmers']);
  t.same(idx['family:x'], ['Chalmérs']);
  t.same(idx.given, ['peter', 'james']);
  t.same(idx.name, ['chalmers', 'peter', 'james', 'mr.', 'peter james chalmers']);
  t.same(idx['address-city'], ['pleasantville']);
  t.same(idx.address, ['534 erewhon st', 'pleasantville', '3999', 'australia']);
  t.equal(idx['given:a'], 'james', 'sort keys: least value');
  t.equal(idx['given:d'], 'peter', 'and greatest');
  t.same(idx.phonetic, ['C456', 'P360', 'J520', 'M600']);
  t.equal(soundex('Smith'), soundex('Smyth'));
  t.equal(soundex('Robert'), 'R163');
  t.equal(soundex('Tymczak'), 'T522');
});

t.test('tokens: code, system|code, |code, system| variants; texts; of-type; implicit systems; booleans', async (t) => {
  const idx = idxOf({
    resourceType: 'Patient',
    active: true,
    gender: 'female',
    identifier: [
      {
        system: 'urn:oid:1.2.36.146.595.217.0.1',
        value: '12345',
        type: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }],
          text: 'MRN',
        },
      },
      { value: 'no-system' },
    ],
    telecom: [
      { system: 'phone', value: '(03) 5555 6473' },
      { system: 'email', value: 'ann@example.org' },
    ],
    communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'nl-NL', display: 'Dutch' }], text: 'Nederlands' } }],
    meta: { tag: [{ system: 'http://example.org/tags', code: 'vip' }] },
  });
  t.same(idx.identifier, ['12345', 'urn:oid:1.2.36.146.595.217.0.1|12345', 'urn:oid:1.2.36.146.595.217.0.1|', 'no-system', '|no-system']);
  t.same(idx['identifier:o'], ['http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345']);
  t.same(idx['identifier:t'], ['mrn', 'medical record number', 'medical', 'record', 'number']);
  t.same(idx.gender, ['female', 'http://hl7.org/fhir/administrative-gender|female', 'http://hl7.org/fhir/administrative-gender|']);
  t.same(idx.active, ['true', '|true']);
  t.same(idx.phone, ['(03) 5555 6473', '|(03) 5555 6473']);
  t.same(idx.email, ['ann@example.org', '|ann@example.org']);
  t.same(idx.language, ['nl-NL', 'urn:ietf:bcp:47|nl-NL', 'urn:ietf:bcp:47|']);
  t.same(idx['language:t'], ['dutch', 'nederlands']);
  t.same(idx._tag, ['vip', 'http://example.org/tags|vip', 'http://example.org/tags|']);
  t.same(idx.deceased, ['false', '|false'], 'deceased is false when absent (its expression says so)');
  t.equal(idx._id, undefined, '_id is the head id, not copied');
});

t.test('references: relative, absolute under our base, version-specific, contained, external, identifiers', async (t) => {
  const encounter = (subject: unknown) => idxOf({ resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject });
  t.equal(encounter({ reference: 'Patient/p1' }).subject, 'Patient/p1', 'single-valued: a scalar');
  t.equal(encounter({ reference: 'Patient/p1' }).patient, 'Patient/p1');
  t.equal(encounter({ reference: `${BASE}/Patient/p1` }).subject, 'Patient/p1', 'absolute under our base: relative');
  t.equal(encounter({ reference: 'Patient/p1/_history/3' }).subject, 'Patient/p1', 'version stripped');
  t.equal(encounter({ reference: `${BASE}/Patient/p1/_history/3` }).patient, 'Patient/p1');
  t.equal(encounter({ reference: '#p1' }).subject, undefined, 'contained: not indexed');
  t.equal(encounter({ reference: 'http://other.example/fhir/Patient/9/_history/1' }).subject, 'http://other.example/fhir/Patient/9');
  t.equal(
    encounter({ reference: 'http://other.example/fhir/Patient/9' }).patient,
    'http://other.example/fhir/Patient/9',
    'resolve() is Patient reads the type from the URL',
  );
  const group = encounter({ reference: 'Group/g1' });
  t.equal(group.subject, 'Group/g1');
  t.equal(group.patient, undefined, 'patient keeps only references to a Patient');
  const logical = encounter({ type: 'Patient', identifier: { system: 'urn:mrn', value: '42' } });
  t.equal(logical.subject, undefined);
  t.same(logical['subject:i'], ['42', 'urn:mrn|42', 'urn:mrn|']);
  t.same(logical['patient:i'], ['42', 'urn:mrn|42', 'urn:mrn|'], 'Reference.type says Patient');
  const participants = idxOf({
    resourceType: 'Encounter',
    status: 'finished',
    class: { code: 'AMB' },
    participant: [{ individual: { reference: 'Practitioner/d1' } }, { individual: { reference: 'RelatedPerson/r1' } }],
  });
  t.same(participants.participant, ['Practitioner/d1', 'RelatedPerson/r1']);
  t.same(participants.practitioner, ['Practitioner/d1']);
});

t.test('dates: ranges at every precision, timezones, periods, timing events', async (t) => {
  const birth = (birthDate: string) => idxOf({ resourceType: 'Patient', birthDate }).birthdate;
  t.same(birth('1974'), range('1974-01-01T00:00:00.000Z', '1974-12-31T23:59:59.999Z'), 'year');
  t.same(birth('1974-02'), range('1974-02-01T00:00:00.000Z', '1974-02-28T23:59:59.999Z'), 'month');
  t.same(birth('2024-02'), range('2024-02-01T00:00:00.000Z', '2024-02-29T23:59:59.999Z'), 'leap month');
  t.same(birth('1974-12-25'), range('1974-12-25T00:00:00.000Z', '1974-12-25T23:59:59.999Z'), 'day');

  const authored = (authoredOn: string) =>
    idxOf({
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      subject: { reference: 'Patient/p' },
      medicationCodeableConcept: { text: 'x' },
      authoredOn,
    }).authoredon;
  t.same(authored('2024-03-10T10:00:00Z'), range('2024-03-10T10:00:00.000Z', '2024-03-10T10:00:00.999Z'), 'second');
  t.same(authored('2024-03-10T10:00:00.5Z'), range('2024-03-10T10:00:00.500Z', '2024-03-10T10:00:00.599Z'), 'tenth of a second');
  t.same(authored('2024-03-10T10:00:00.123Z'), range('2024-03-10T10:00:00.123Z', '2024-03-10T10:00:00.123Z'), 'millisecond');
  t.same(authored('2024-03-10T10:00:00.123456Z'), range('2024-03-10T10:00:00.123Z', '2024-03-10T10:00:00.123Z'), 'beyond milliseconds');
  t.same(authored('2024-03-10T23:30:00-05:00'), range('2024-03-11T04:30:00.000Z', '2024-03-11T04:30:00.999Z'), 'negative offset');
  t.same(authored('2024-03-10T01:30:00+14:00'), range('2024-03-09T11:30:00.000Z', '2024-03-09T11:30:00.999Z'), 'positive offset');
  t.same(authored('2024-03-10T10:00:00'), range('2024-03-10T10:00:00.000Z', '2024-03-10T10:00:00.999Z'), 'no timezone: UTC');

  const period = (p: unknown) => idxOf({ resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, period: p }).date;
  t.same(period({ start: '2024-01-01', end: '2024-01-03' }), range('2024-01-01T00:00:00.000Z', '2024-01-03T23:59:59.999Z'));
  t.same(period({ start: '2024-01-01T08:00:00+01:00' }), { lo: new Date('2024-01-01T07:00:00.000Z'), hi: MAX_DATE }, 'open end');
  t.same(period({ end: '2024' }), { lo: MIN_DATE, hi: new Date('2024-12-31T23:59:59.999Z') }, 'open start');
  t.equal(period({}), undefined);

  const timing = idxOf({
    resourceType: 'MedicationRequest',
    status: 'active',
    intent: 'order',
    subject: { reference: 'Patient/p' },
    medicationCodeableConcept: { text: 'x' },
    dosageInstruction: [{ timing: { event: ['2024-05-02', '2024-05-01T08:00:00Z'] } }, { timing: { event: ['2024-06'] } }],
  });
  t.same(timing.date, [
    range('2024-05-02T00:00:00.000Z', '2024-05-02T23:59:59.999Z'),
    range('2024-05-01T08:00:00.000Z', '2024-05-01T08:00:00.999Z'),
    range('2024-06-01T00:00:00.000Z', '2024-06-30T23:59:59.999Z'),
  ]);
  t.same(timing['date:a'], new Date('2024-05-01T08:00:00.000Z'), 'ascending sort key: earliest start');
  t.same(timing['date:d'], new Date('2024-06-30T23:59:59.999Z'), 'descending sort key: latest end');

  t.same(
    idxOf({ resourceType: 'Patient', deceasedDateTime: '2020-05' })['death-date'],
    range('2020-05-01T00:00:00.000Z', '2020-05-31T23:59:59.999Z'),
  );
});

t.test('quantities, numbers and uris', async (t) => {
  const encounter = idxOf({
    resourceType: 'Encounter',
    status: 'finished',
    class: { code: 'AMB' },
    length: { value: 90, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' },
    meta: { profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter'], source: 'http://example.org/ehr#1' },
  });
  t.same(
    encounter.length,
    { v: 90, s: 'http://unitsofmeasure.org', c: 'min', u: 'min', cv: 5400, cc: 's' },
    'with the value in UCUM base units',
  );
  t.same(encounter._profile, ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter']);
  t.equal(encounter._source, 'http://example.org/ehr#1');
  const request = idxOf({
    resourceType: 'MedicationRequest',
    status: 'active',
    intent: 'order',
    priority: 'stat',
    subject: { reference: 'Patient/p' },
    medicationCodeableConcept: { text: 'x' },
  });
  t.same(request['priority-order'], [50], 'Medplum priority-order: a computed number');
});
