/**
 * Reference search through the HTTP API: reference forms, :[Type], :identifier, :missing; chaining (several
 * levels), reverse chaining (_has, nested); _include and _revinclude (with :iterate and *); the Patient
 * compartment; system-level search with _type; POST _search.
 */
import type { Encounter, MedicationRequest, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { BASE, create, ids, search, sorted } from '../fhir/search/helpers.js';

stopMongoAtEnd(t);

t.test('references, chains, includes, compartments', async (t) => {
  const { app } = await startTestApp(t);
  const pA = await create<Patient>(app, {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:mrn', value: 'A' }],
    name: [{ family: 'Smith', given: ['Alice'] }],
    birthDate: '1990-04-01',
  });
  const pB = await create<Patient>(app, {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:mrn', value: 'B' }],
    name: [{ family: 'Jones', given: ['Bob'] }],
  });
  const pC = await create<Patient>(app, {
    resourceType: 'Patient',
    name: [{ family: 'Smith', given: ['Carol'] }],
    link: [{ other: { reference: `Patient/${pA.id}` }, type: 'seealso' }],
  });
  const enc = (extra: Partial<Encounter>) =>
    create<Encounter>(app, { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, ...extra });
  const eA1 = await enc({ subject: { reference: `Patient/${pA.id}` }, period: { start: '2024-01-05', end: '2024-01-06' } });
  const eA2 = await enc({ subject: { reference: `${BASE}/Patient/${pA.id}` }, period: { start: '2024-02-05', end: '2024-02-05' } });
  const eB1 = await enc({ subject: { reference: `Patient/${pB.id}` }, period: { start: '2024-01-20' } });
  const eG = await enc({ subject: { reference: 'Group/g1' } });
  const eX = await enc({ subject: { type: 'Patient', identifier: { system: 'urn:mrn', value: '42' } } });
  const eO = await enc({ subject: { reference: 'http://other.example/fhir/Patient/9/_history/2' } });
  const e0 = await enc({});
  const mr = (extra: Partial<MedicationRequest>) =>
    create<MedicationRequest>(app, {
      resourceType: 'MedicationRequest',
      intent: 'order',
      status: 'active',
      medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1049502' }] },
      ...extra,
    } as MedicationRequest);
  const mA1 = await mr({
    subject: { reference: `Patient/${pA.id}` },
    encounter: { reference: `Encounter/${eA1.id}` },
    requester: { reference: 'Practitioner/dr1' },
  });
  const mA2 = await mr({ subject: { reference: `Patient/${pA.id}/_history/1` }, status: 'stopped' });
  const mB1 = await mr({ subject: { reference: `Patient/${pB.id}` }, encounter: { reference: `Encounter/${eB1.id}` } });

  await t.test('reference values: Type/id, id, :Type, our absolute URL, other servers, :identifier, :missing', async (t) => {
    const aEncounters = sorted([eA1.id, eA2.id]);
    t.same(await ids(app, `/Encounter?subject=Patient/${pA.id}`), aEncounters, 'relative and absolute-under-base stored alike');
    t.same(await ids(app, `/Encounter?subject=${pA.id}`), aEncounters, 'a bare id: any target type');
    t.same(await ids(app, `/Encounter?subject:Patient=${pA.id}`), aEncounters);
    t.same(await ids(app, `/Encounter?subject=${BASE}/Patient/${pA.id}`), aEncounters, 'our absolute URL');
    t.same(await ids(app, `/Encounter?patient=${pA.id}`), aEncounters);
    t.same(await ids(app, `/Encounter?patient=${pA.id},${pB.id}`), sorted([eA1.id, eA2.id, eB1.id]));
    t.same(await ids(app, '/Encounter?subject=Group/g1'), [eG.id]);
    t.same(await ids(app, '/Encounter?subject:Group=g1'), [eG.id]);
    t.same(await ids(app, '/Encounter?patient=g1'), [], 'patient keeps only Patient references');
    t.same(
      await ids(app, '/Encounter?subject=http://other.example/fhir/Patient/9'),
      [eO.id],
      'another server: the URL without its version',
    );
    t.same(await ids(app, '/Encounter?subject:identifier=urn:mrn|42'), [eX.id]);
    t.same(await ids(app, '/Encounter?subject:identifier=42'), [eX.id]);
    t.same(
      await ids(app, '/Encounter?subject:missing=true'),
      sorted([eX.id, e0.id]),
      'no reference (an identifier-only reference has none)',
    );
    t.same(
      await ids(app, `/MedicationRequest?subject=${pA.id}`),
      sorted([mA1.id, mA2.id]),
      'version-specific references match the resource',
    );
    t.same(await ids(app, '/MedicationRequest?requester=Practitioner/dr1'), [mA1.id], 'references to types not hosted here');
    t.same(
      await ids(app, '/MedicationRequest?code=http://www.nlm.nih.gov/research/umls/rxnorm|1049502&status=active'),
      sorted([mA1.id, mB1.id]),
    );
  });

  await t.test('chaining, several levels', async (t) => {
    const aEncounters = sorted([eA1.id, eA2.id]);
    t.same(await ids(app, '/Encounter?subject:Patient.name=alice'), aEncounters);
    t.same(await ids(app, '/Encounter?subject.name=alice'), aEncounters, 'only hosted target types are searched');
    t.same(await ids(app, '/Encounter?patient.identifier=urn:mrn|A'), aEncounters);
    t.same(await ids(app, '/Encounter?patient.family=smith'), aEncounters, 'Carol Smith has no encounters');
    t.same(await ids(app, '/Encounter?patient.birthdate=1990'), aEncounters);
    t.same(await ids(app, '/MedicationRequest?encounter.subject:Patient.name=bob'), [mB1.id], 'two levels');
    t.same(await ids(app, '/MedicationRequest?encounter.patient.identifier=urn:mrn|A'), [mA1.id]);
    t.same(await ids(app, '/MedicationRequest?encounter.date=2024-01&encounter.patient.name=alice'), [mA1.id], 'two chains ANDed');
    t.same(await ids(app, '/Encounter?patient.name=nobody'), []);
    const bad = await search(app, '/Encounter?patient.shoe=1', { prefer: 'handling=strict' });
    t.equal(bad.status, 400, 'an unknown parameter at the end of a chain');
    t.equal((await search(app, '/Encounter?status.name=x', { prefer: 'handling=strict' })).status, 400, 'chaining a non-reference');
  });

  await t.test('reverse chaining (_has), nested', async (t) => {
    t.same(await ids(app, '/Patient?_has:Encounter:patient:date=2024-02'), [pA.id]);
    t.same(await ids(app, '/Patient?_has:MedicationRequest:subject:status=active'), sorted([pA.id, pB.id]));
    t.same(await ids(app, '/Patient?_has:MedicationRequest:subject:status=stopped'), [pA.id]);
    t.same(await ids(app, '/Patient?_has:MedicationRequest:subject:status=stopped&name=bob'), []);
    t.same(
      await ids(app, '/Patient?_has:Encounter:patient:_has:MedicationRequest:encounter:status=active'),
      sorted([pA.id, pB.id]),
      'nested',
    );
    t.same(await ids(app, '/Encounter?_has:MedicationRequest:encounter:subject.name=bob'), [eB1.id], '_has with a chain inside');
    t.same(await ids(app, '/Patient?_has:Encounter:patient:status=cancelled'), []);
    t.equal(
      (await search(app, '/Patient?_has:Encounter:status:status=x', { prefer: 'handling=strict' })).status,
      400,
      'not a reference parameter',
    );
  });

  await t.test('_include and _revinclude, :iterate, *', async (t) => {
    let r = await search(app, `/MedicationRequest?_id=${mA1.id}&_include=MedicationRequest:patient`);
    t.same(r.ids, [mA1.id]);
    t.same(r.included, [`Patient/${pA.id}`]);
    t.equal(r.bundle.total, 1, 'total counts matches only');
    r = await search(app, '/MedicationRequest?status=active&_include=MedicationRequest:subject&_include=MedicationRequest:encounter');
    t.same(sorted(r.included), sorted([`Patient/${pA.id}`, `Patient/${pB.id}`, `Encounter/${eA1.id}`, `Encounter/${eB1.id}`]));
    r = await search(app, `/MedicationRequest?_id=${mA1.id}&_include=MedicationRequest:encounter&_include:iterate=Encounter:subject`);
    t.same(sorted(r.included), sorted([`Encounter/${eA1.id}`, `Patient/${pA.id}`]), ':iterate follows the included encounter');
    r = await search(app, `/MedicationRequest?_id=${mA1.id}&_include=MedicationRequest:encounter`);
    t.same(r.included, [`Encounter/${eA1.id}`], 'without :iterate, no second step');
    r = await search(app, `/MedicationRequest?_id=${mA1.id}&_include=*`);
    t.same(
      sorted(r.included),
      sorted([`Encounter/${eA1.id}`, `Patient/${pA.id}`]),
      '* follows every reference (Practitioner is not hosted)',
    );
    r = await search(app, `/Patient?_id=${pA.id}&_revinclude=Encounter:subject`);
    t.same(sorted(r.included), sorted([`Encounter/${eA1.id}`, `Encounter/${eA2.id}`]));
    r = await search(app, `/Patient?_id=${pA.id}&_revinclude=Encounter:subject&_revinclude:iterate=MedicationRequest:encounter`);
    t.same(sorted(r.included), sorted([`Encounter/${eA1.id}`, `Encounter/${eA2.id}`, `MedicationRequest/${mA1.id}`]));
    r = await search(app, `/Patient?_id=${pA.id}&_revinclude=Patient:link`);
    t.same(r.included, [`Patient/${pC.id}`]);
    r = await search(app, `/Patient?_id=${pA.id},${pC.id}&_revinclude=Patient:link`);
    t.same(r.included, [], 'a match is not repeated as an include');
    r = await search(app, `/Patient?_id=${pA.id}&_revinclude=MedicationRequest:*`);
    t.same(sorted(r.included), sorted([`MedicationRequest/${mA1.id}`, `MedicationRequest/${mA2.id}`]), 'Type:* reverse');
    const entries = r.bundle.entry ?? [];
    t.ok(
      entries.every((e) => e.fullUrl === `${BASE}/${e.resource?.resourceType}/${e.resource?.id}`),
      'every entry has its fullUrl',
    );
    t.ok(entries.filter((e) => e.search?.mode === 'include').length === 2);
    t.equal((await search(app, '/Patient?_include=Patient:shoe', { prefer: 'handling=strict' })).status, 400);
    t.equal((await search(app, '/Patient?_include=Encounter:subject', { prefer: 'handling=strict' })).status, 400, 'not the searched type');
  });

  await t.test('Patient compartment: Patient/[id]/[type]', async (t) => {
    let r = await search(app, `/Patient/${pA.id}/Encounter`);
    t.equal(r.status, 200);
    t.same(sorted(r.ids), sorted([eA1.id, eA2.id]));
    t.equal(r.bundle.link?.[0].url, `${BASE}/Patient/${pA.id}/Encounter`);
    t.same(await ids(app, `/Patient/${pA.id}/MedicationRequest?status=active`), [mA1.id]);
    t.same(await ids(app, `/Patient/${pA.id}/Patient`), sorted([pA.id, pC.id]), 'the patient, and patients linking to it');
    r = await search(app, `/Patient/${pA.id}/*`);
    t.same(sorted(r.ids), sorted([pA.id, pC.id, eA1.id, eA2.id, mA1.id, mA2.id]));
    t.same(await ids(app, `/Patient/${pA.id}/Observation`), [], 'a compartment type with nothing in it');
    t.equal((await app.inject({ url: `/Patient/${pA.id}/Organization` })).statusCode, 404, 'not a Patient compartment type');
    t.same(await ids(app, '/Patient/nobody/Encounter'), []);
  });

  await t.test('system search with _type; POST _search', async (t) => {
    let r = await search(app, `/?_type=Patient,Encounter&_id=${pA.id},${eA1.id},${mA1.id}`);
    t.equal(r.status, 200);
    t.same(sorted(r.ids), sorted([pA.id, eA1.id]));
    r = await search(app, `/?_id=${pA.id},${eA1.id},${mA1.id}`);
    t.same(sorted(r.ids), sorted([pA.id, eA1.id, mA1.id]), 'every hosted type without _type');
    r = await search(app, '/?_type=Patient,Encounter&identifier=urn:mrn|A');
    t.same(r.ids, [pA.id], 'a parameter the types share');
    t.equal((await app.inject({ url: '/?_type=Nonsense' })).statusCode, 400);
    const paged: string[] = [];
    let page = await search(app, `/?_type=Patient,Encounter&_count=3&_sort=-_lastUpdated`);
    t.equal(page.bundle.link?.[0].url, `${BASE}?_type=Patient,Encounter&_count=3&_sort=-_lastUpdated`, '_type stays in the links');
    for (;;) {
      paged.push(...page.ids);
      const next = page.bundle.link?.find((l) => l.relation === 'next')?.url;
      if (!next) break;
      page = await search(app, next);
      t.equal(page.status, 200);
    }
    t.equal(paged.length, 10, 'paging a system search: 3 patients and 7 encounters');
    t.equal(new Set(paged).size, 10);
    t.equal((await search(app, '/Patient?_type=Encounter', { prefer: 'handling=strict' })).status, 400, '_type at type level');
    const form = await app.inject({
      method: 'POST',
      url: '/Encounter/_search',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `subject=Patient/${pA.id}&date=2024-02`,
    });
    t.equal(form.statusCode, 200);
    t.same(
      form.json().entry.map((e: { resource: { id: string } }) => e.resource.id),
      [eA2.id],
    );
    t.equal(form.json().link[0].url, `${BASE}/Encounter?subject=Patient/${pA.id}&date=2024-02`, 'self link as a GET');
    const both = await app.inject({
      method: 'POST',
      url: `/Encounter/_search?subject=Patient/${pA.id}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'date=2024-01',
    });
    t.same(
      both.json().entry.map((e: { resource: { id: string } }) => e.resource.id),
      [eA1.id],
      'URL and body parameters together',
    );
    const system = await app.inject({
      method: 'POST',
      url: '/_search',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `_type=MedicationRequest&status=stopped`,
    });
    t.same(
      system.json().entry.map((e: { resource: { id: string } }) => e.resource.id),
      [mA2.id],
    );
    t.equal(
      (
        await app.inject({
          method: 'POST',
          url: '/Patient',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: 'a=b',
        })
      ).statusCode,
      415,
      'forms only where search takes them',
    );
  });
});
