/**
 * Types beyond the featured three, through the same code paths: CRUD, search on their common parameters (each
 * through an index, as explain shows), chains across types, _include of a Practitioner, the Patient compartment
 * and $everything. The types are those a hospital system sends with every patient record (Synthea's, US Core's).
 */
import type {
  AllergyIntolerance,
  Bundle,
  Condition,
  DiagnosticReport,
  Immunization,
  Observation,
  Organization,
  Practitioner,
  Procedure,
  Resource,
} from '@medplum/fhirtypes';
import type { Document } from 'mongodb';
import t from 'tap';
import { explainFhirSearch } from '../../src/fhir/search/search.js';
import { BASE, create, ids, search, update } from '../fhir/search/helpers.js';
import { startTestApp, stopMongoAtEnd, testContext } from '../helpers/app.js';
import { samplePatient } from '../helpers/fhir-samples.js';
import { planStages } from '../helpers/explain.js';

stopMongoAtEnd(t);

const LOINC = 'http://loinc.org';
const SNOMED = 'http://snomed.info/sct';
const CVX = 'http://hl7.org/fhir/sid/cvx';

t.test('the types every patient record carries, beside the featured ones', async (t) => {
  const { app, store } = await startTestApp(t, { referencePolicy: 'strict' });
  const patient = await create(app, samplePatient('Okafor', 'ot-1'));
  const other = await create(app, samplePatient('Lindqvist', 'ot-2'));
  const organization = await create<Organization>(app, {
    resourceType: 'Organization',
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.4.4', value: 'ORG-7' }],
    name: 'Riverside Clinic',
  });
  const practitioner = await create<Practitioner>(app, {
    resourceType: 'Practitioner',
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '9999912345' }],
    name: [{ family: 'Abara', given: ['Chidi'], prefix: ['Dr.'] }],
  });
  const subject = { reference: `Patient/${patient.id}` };
  const observation = await create<Observation>(app, {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: LOINC, code: '29463-7', display: 'Body weight' }] },
    subject,
    performer: [{ reference: `Practitioner/${practitioner.id}` }],
    effectiveDateTime: '2024-03-01T10:30:00Z',
    valueQuantity: { value: 72.5, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
  });
  const condition = await create<Condition>(app, {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    code: { coding: [{ system: SNOMED, code: '44054006', display: 'Diabetes mellitus type 2' }] },
    subject,
    onsetDateTime: '2019-05-04',
  });
  const allergy = await create<AllergyIntolerance>(app, {
    resourceType: 'AllergyIntolerance',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
    code: { coding: [{ system: SNOMED, code: '91936005', display: 'Allergy to penicillin' }] },
    patient: subject,
    recorder: { reference: `Practitioner/${practitioner.id}` },
  });
  const immunization = await create<Immunization>(app, {
    resourceType: 'Immunization',
    status: 'completed',
    vaccineCode: { coding: [{ system: CVX, code: '140', display: 'Influenza, seasonal, injectable' }] },
    patient: subject,
    occurrenceDateTime: '2023-10-12',
  });
  const procedure = await create<Procedure>(app, {
    resourceType: 'Procedure',
    status: 'completed',
    code: { coding: [{ system: SNOMED, code: '80146002', display: 'Appendectomy' }] },
    subject,
    performedDateTime: '2015-06-01',
  });
  const report = await create<DiagnosticReport>(app, {
    resourceType: 'DiagnosticReport',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '24323-8', display: 'Comprehensive metabolic panel' }] },
    subject,
    effectiveDateTime: '2024-03-01',
    result: [{ reference: `Observation/${observation.id}` }],
  });
  // The other patient's, so that every search below has something to leave out.
  await create<Observation>(app, {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '8302-2', display: 'Body height' }] },
    subject: { reference: `Patient/${other.id}` },
    effectiveDateTime: '2022-01-01',
  });
  await create<Condition>(app, {
    resourceType: 'Condition',
    code: { coding: [{ system: SNOMED, code: '38341003', display: 'Hypertension' }] },
    subject: { reference: `Patient/${other.id}` },
  });
  const mine: Resource[] = [observation, condition, allergy, immunization, procedure, report];
  // Others of each type, none matching the searches below, so that an index is worth more than the type's scan.
  const filler: Resource[] = [];
  for (let i = 0; i < 25; i++) {
    const code = { coding: [{ system: 'urn:filler', code: `f${i}` }] };
    const subjectOf = { reference: `Patient/${other.id}` };
    filler.push(
      { resourceType: 'Observation', status: 'preliminary', code, subject: subjectOf, effectiveDateTime: `200${i % 10}-01-01` },
      { resourceType: 'Condition', code, subject: subjectOf, onsetDateTime: `200${i % 10}-02-02` },
      { resourceType: 'Practitioner', name: [{ family: `Filler${i}` }], identifier: [{ system: 'urn:filler', value: `p${i}` }] },
      { resourceType: 'Organization', name: `Filler ${i}`, identifier: [{ system: 'urn:filler', value: `o${i}` }] },
      {
        resourceType: 'AllergyIntolerance',
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'resolved' }] },
        code,
        patient: subjectOf,
      },
      { resourceType: 'Immunization', status: 'not-done', vaccineCode: code, patient: subjectOf, occurrenceDateTime: `200${i % 10}-03-03` },
      { resourceType: 'Procedure', status: 'preparation', code, subject: subjectOf, performedDateTime: `200${i % 10}-04-04` },
      { resourceType: 'DiagnosticReport', status: 'partial', code, subject: subjectOf },
    );
  }
  for (const resource of filler) await create(app, resource);

  await t.test('CRUD: read, update, history, delete', async (t) => {
    for (const resource of [organization, practitioner, ...mine]) {
      const type = resource.resourceType;
      const read = await app.inject({ url: `/${type}/${resource.id}` });
      t.equal(read.statusCode, 200, `${type}: read`);
      t.same(read.json(), resource, `${type}: read back as created`);
    }
    const changed = await update<Practitioner>(app, { ...practitioner, active: true });
    t.equal(changed.meta?.versionId, '2', 'Practitioner: update makes version 2');
    const history = (await app.inject({ url: `/Practitioner/${practitioner.id}/_history` })).json() as Bundle;
    t.same(
      history.entry?.map((e) => e.resource?.meta?.versionId),
      ['2', '1'],
      'its history, newest first',
    );
    const scratch = await create<Organization>(app, { resourceType: 'Organization', name: 'To be removed' });
    t.equal((await app.inject({ method: 'DELETE', url: `/Organization/${scratch.id}` })).statusCode, 204);
    t.equal((await app.inject({ url: `/Organization/${scratch.id}` })).statusCode, 410, 'deleted: gone');
  });

  await t.test('the heads of these types are marked for the wildcard index; the featured types are not in it', async (t) => {
    const heads = store.db.collection('resources');
    t.equal((await heads.findOne({ _id: `Observation/${observation.id}` as never }))?.anyTypeIndexed, true);
    t.equal((await heads.findOne({ _id: `Practitioner/${practitioner.id}` as never }))?.anyTypeIndexed, true);
    t.equal((await heads.findOne({ _id: `Patient/${patient.id}` as never }))?.anyTypeIndexed, undefined, 'Patient has tuned indexes');
    const index = (await heads.indexes()).find((i) => i.name === 'search_other_types');
    t.same(index?.partialFilterExpression, { deleted: false, anyTypeIndexed: true });
    t.notOk(
      (await heads.indexes()).some((i) => i.name === 'search_any_type'),
      'the first version of it is gone',
    );
  });

  await t.test('search on their common parameters, each through an index', async (t) => {
    const ctx = await testContext(store, BASE);
    const cases: Array<[string, string, string[]]> = [
      ['Observation', `code=${LOINC}|29463-7`, [observation.id!]],
      ['Observation', `subject=Patient/${patient.id}&date=ge2024-01-01`, [observation.id!]],
      ['Observation', `patient=${patient.id}&category=vital-signs`, [observation.id!]],
      ['Observation', 'value-quantity=gt70|http://unitsofmeasure.org|kg', [observation.id!]],
      ['Condition', `patient=${patient.id}`, [condition.id!]],
      ['Condition', `code=${SNOMED}|44054006`, [condition.id!]],
      ['Condition', 'onset-date=2019', [condition.id!]],
      ['Practitioner', 'name=abara', [practitioner.id!]],
      ['Practitioner', 'identifier=http://hl7.org/fhir/sid/us-npi|9999912345', [practitioner.id!]],
      ['Organization', 'name=river', [organization.id!]],
      ['Organization', 'identifier=ORG-7', [organization.id!]],
      ['AllergyIntolerance', `patient=${patient.id}`, [allergy.id!]],
      ['AllergyIntolerance', 'clinical-status=active', [allergy.id!]],
      ['Immunization', 'date=ge2023-01-01', [immunization.id!]],
      ['Immunization', `vaccine-code=${CVX}|140`, [immunization.id!]],
      ['Procedure', `code=${SNOMED}|80146002`, [procedure.id!]],
      ['Procedure', 'date=2015-06', [procedure.id!]],
      ['DiagnosticReport', `subject=Patient/${patient.id}`, [report.id!]],
      ['DiagnosticReport', `result=Observation/${observation.id}`, [report.id!]],
    ];
    for (const [type, query, expected] of cases) {
      t.same(await ids(app, `/${type}?${query}`), expected, `${type}?${query}`);
      const explain = await explainFhirSearch(ctx, { types: [type], path: type }, [...new URLSearchParams(query).entries()]);
      const plan = planStages(explain.queryPlanner.winningPlan as Document);
      const summary = plan.map((s) => (s.stage === 'IXSCAN' ? `IXSCAN(${s.indexName})` : s.stage)).join(' < ');
      t.ok(
        plan.some((s) => s.stage === 'IXSCAN' && s.indexName === 'search_other_types'),
        `${type}?${query}: through the index over every type's values [${summary}]`,
      );
      t.notOk(
        plan.some((s) => s.stage === 'COLLSCAN'),
        `${type}?${query}: no collection scan`,
      );
    }
  });

  await t.test('chains across types, and _include of the Practitioner a MedicationRequest names', async (t) => {
    t.same(await ids(app, '/Observation?subject:Patient.name=okafor'), [observation.id], 'Observation?subject:Patient.name=');
    t.same(await ids(app, '/DiagnosticReport?result.code=29463-7'), [report.id], 'DiagnosticReport?result.code=');
    t.same(await ids(app, '/Practitioner?_has:Observation:performer:code=29463-7'), [practitioner.id], 'reverse chain');
    const request = await create(app, {
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      medicationCodeableConcept: { text: 'metformin 500 mg' },
      subject,
      requester: { reference: `Practitioner/${practitioner.id}` },
    });
    const found = await search(app, `/MedicationRequest?_id=${request.id}&_include=MedicationRequest:requester`);
    mine.push(request);
    t.same(found.ids, [request.id]);
    t.same(found.included, [`Practitioner/${practitioner.id}`], 'the requester comes along');
    const rev = await search(app, `/Patient?_id=${patient.id}&_revinclude=Condition:subject&_revinclude=Observation:subject`);
    t.same(rev.included.sort(), [`Condition/${condition.id}`, `Observation/${observation.id}`].sort());
  });

  await t.test('the Patient compartment and $everything follow R4 CompartmentDefinition', async (t) => {
    t.same(await ids(app, `/Patient/${patient.id}/Observation`), [observation.id]);
    t.same(await ids(app, `/Patient/${patient.id}/AllergyIntolerance`), [allergy.id], 'through patient (and recorder, asserter)');
    const all = (await search(app, `/Patient/${patient.id}/*?_count=100`)).ids.sort();
    t.same(all, [patient.id!, ...mine.map((r) => r.id!)].sort(), 'Patient/[id]/*: the patient and everything of theirs');
    const everything = (await app.inject({ url: `/Patient/${patient.id}/$everything?_count=100` })).json() as Bundle;
    const got = (everything.entry ?? []).map((e) => `${e.resource!.resourceType}/${e.resource!.id}`).sort();
    t.same(
      got,
      [`Patient/${patient.id}`, ...mine.map((r) => `${r.resourceType}/${r.id}`)].sort(),
      '$everything: the same, and nothing of the other patient',
    );
    t.equal(
      (await app.inject({ url: `/Patient/${patient.id}/Practitioner` })).statusCode,
      404,
      'Practitioner is not a Patient compartment type',
    );
  });
});
