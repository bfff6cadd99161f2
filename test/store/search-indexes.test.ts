/**
 * The typical searches use an index: each is run through MongoDB's explain() and the test FAILS when its plan
 * stops using one of the search indexes (an IXSCAN on search_*), or needs a collection scan, or (for sorted
 * and default-ordered searches where the index can deliver the order) a blocking sort.
 */
import type { Document } from 'mongodb';
import t from 'tap';
import { explainFhirSearch } from '../../src/fhir/search/search.js';
import { searchIndexNames } from '../../src/store/search/indexes.js';
import { loadPopulation } from '../../bench/load-population.js';
import { explainBenchSearch, planProblems } from '../../bench/plans.js';
import { patientId } from '../../bench/population.js';
import { BENCH_SEARCHES, queryInputs } from '../../bench/searches.js';
import { BASE, create } from '../fhir/search/helpers.js';
import { startTestApp, stopMongoAtEnd, testContext } from '../helpers/app.js';
import { planStages } from '../helpers/explain.js';

stopMongoAtEnd(t);

t.test('typical searches run on the search indexes', async (t) => {
  const { app, store } = await startTestApp(t);
  const ctx = await testContext(store, BASE);
  // Enough data for the planner to have choices, with arrays where real data has them (multikey paths).
  const patients: string[] = [];
  for (let i = 0; i < 60; i++) {
    const p = await create(app, {
      resourceType: 'Patient',
      identifier: [
        { system: 'urn:mrn', value: `M${i}` },
        { system: 'urn:ssn', value: `S${i}` },
      ],
      name: [{ family: `Fam${i % 7}`, given: [`G${i}`, 'X'] }],
      gender: i % 2 ? 'male' : 'female',
      birthDate: `19${50 + (i % 40)}-0${1 + (i % 9)}-1${i % 10}`,
    });
    patients.push(p.id);
    const e = await create(app, {
      resourceType: 'Encounter',
      // One in four still in progress, with an open period: newest first by period end, those come first.
      status: i % 4 ? 'finished' : 'in-progress',
      class: { code: 'AMB' },
      identifier: [{ value: `E${i}` }],
      subject: { reference: `Patient/${p.id}` },
      period: i % 4 ? { start: `2024-0${1 + (i % 9)}-01`, end: `2024-0${1 + (i % 9)}-02` } : { start: `2024-0${1 + (i % 9)}-01` },
    });
    await create(app, {
      resourceType: 'MedicationRequest',
      status: i % 3 ? 'active' : 'stopped',
      intent: 'order',
      identifier: [{ value: `R${i}` }],
      subject: { reference: `Patient/${p.id}` },
      encounter: { reference: `Encounter/${e.id}` },
      medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: `${1000 + (i % 5)}` }] },
      authoredOn: `2024-0${1 + (i % 9)}-0${1 + (i % 8)}`,
    });
  }
  const p0 = patients[0];
  const names = [...searchIndexNames(), '_id_', 'type_id'];
  const cases: Array<{ type: string; query: string; index: RegExp; sortFromIndex?: boolean }> = [
    { type: 'Patient', query: 'identifier=urn:mrn|M5', index: /^search_Patient_identifier$/, sortFromIndex: true },
    { type: 'Patient', query: 'identifier=M5', index: /^search_Patient_identifier$/ },
    { type: 'Patient', query: 'family=fam3', index: /^search_Patient_family$/ },
    { type: 'Patient', query: 'given=g1', index: /^search_Patient_given$/ },
    { type: 'Patient', query: 'name=fam3', index: /^search_Patient_name$/ },
    { type: 'Patient', query: 'birthdate=1975', index: /^search_Patient_(birthdate_lo|birthdate_hi|gender_birthdate)$/ },
    { type: 'Patient', query: 'birthdate=ge1980&birthdate=lt1985', index: /^search_Patient_birthdate_(lo|hi)$/ },
    { type: 'Patient', query: 'gender=female&birthdate=1975', index: /^search_Patient_gender_birthdate$/ },
    { type: 'Patient', query: '_sort=birthdate', index: /^search_Patient_birthdate_lo$/, sortFromIndex: true },
    { type: 'Encounter', query: `patient=${p0}&date=ge2024-01-01&date=le2024-06-30`, index: /^search_Encounter_patient_date$/ },
    { type: 'Encounter', query: `subject=Patient/${p0}&date=2024-01`, index: /^search_Encounter_subject_date$/ },
    { type: 'Encounter', query: 'identifier=E3', index: /^search_Encounter_identifier$/ },
    { type: 'Encounter', query: '_sort=-date', index: /^search_Encounter_date_hi$/, sortFromIndex: true },
    { type: 'Encounter', query: 'date=ge2024-05&_sort=-date', index: /^search_Encounter_date_hi$/, sortFromIndex: true },
    { type: 'Encounter', query: 'status=finished&_sort=-date', index: /^search_Encounter_status_date_hi$/, sortFromIndex: true },
    { type: 'MedicationRequest', query: `patient=${p0}&status=active`, index: /^search_MedicationRequest_patient_status$/ },
    { type: 'MedicationRequest', query: `subject=Patient/${p0}&status=active`, index: /^search_MedicationRequest_subject_status$/ },
    { type: 'MedicationRequest', query: 'identifier=R7', index: /^search_MedicationRequest_identifier$/ },
    { type: 'MedicationRequest', query: 'code=http://www.nlm.nih.gov/research/umls/rxnorm|1002', index: /^search_MedicationRequest_code$/ },
    { type: 'MedicationRequest', query: 'encounter.patient.identifier=urn:mrn|M5', index: /^search_MedicationRequest_encounter$/ },
    { type: 'MedicationRequest', query: 'authoredon=2024-03', index: /^search_MedicationRequest_authoredon$/ },
    // Reverse chains end as a lookup of the referenced resources by key: the primary key index.
    { type: 'Encounter', query: '_has:MedicationRequest:encounter:identifier=R7', index: /^_id_$/, sortFromIndex: true },
    { type: 'Patient', query: `_id=${p0}`, index: /^_id_$|^type_id$/ },
  ];
  for (const c of cases) {
    const params = [...new URLSearchParams(c.query).entries()];
    const explain = await explainFhirSearch(ctx, { types: [c.type], path: c.type }, params);
    const plan = planStages(explain.queryPlanner.winningPlan as Document);
    const scans = plan.filter((s) => s.stage === 'IXSCAN').map((s) => s.indexName as string);
    const summary = plan.map((s) => (s.stage === 'IXSCAN' ? `IXSCAN(${s.indexName})` : s.stage)).join(' < ');
    t.notOk(
      plan.some((s) => s.stage === 'COLLSCAN'),
      `${c.type}?${c.query}: no collection scan [${summary}]`,
    );
    t.ok(
      scans.length > 0 && scans.every((name) => names.includes(name) && c.index.test(name)),
      `${c.type}?${c.query}: uses ${c.index} [${summary}]`,
    );
    if (c.sortFromIndex)
      t.notOk(
        plan.some((s) => s.stage === 'SORT'),
        `${c.type}?${c.query}: the index delivers the order [${summary}]`,
      );
  }

  // A chain reads the keys of the patients it matches from their index (a covered query: no Patient document is
  // read) and the Encounters referring to them in key order from theirs: only the page's documents are read.
  const scannedObjects = async (): Promise<number> => {
    const status = await store.db.admin().command({ serverStatus: 1 });
    return Number(status.metrics.queryExecutor.scannedObjects);
  };
  const before = await scannedObjects();
  const chained = await app.inject({ url: '/Encounter?subject:Patient.family=Fam3&_count=3' });
  const read = (await scannedObjects()) - before;
  const bundle = chained.json() as { entry?: Array<{ resource: { subject: { reference: string } } }> };
  t.equal(chained.statusCode, 200);
  t.equal(bundle.entry?.length, 3, 'a page of 3 of the Encounters of the 9 Fam3 patients');
  t.ok(read <= 4, `documents read: the page and the one that says more follow (${read}; reading the patients too made it 13)`);
});

t.test("the compliance team's AuditEvent searches run on their indexes (on resource_versions: AuditEvents have no heads)", async (t) => {
  const { app, store } = await startTestApp(t, { audit: { enabled: true, flushIntervalMs: 50, bufferMax: 5000 } });
  const ctx = await testContext(store, BASE);
  const patients: string[] = [];
  for (let i = 0; i < 30; i++) patients.push((await create(app, { resourceType: 'Patient', name: [{ family: `Audit${i}` }] })).id);
  // Reads leave buffered AuditEvents, creates committed ones: both kinds, each naming its patient.
  for (let round = 0; round < 3; round++) for (const id of patients) await app.inject({ url: `/Patient/${id}` });
  await app.auditRecorder?.flush();
  t.ok((await store.versions.countDocuments({ type: 'AuditEvent' })) >= 120, 'the AuditEvents are stored as versions');
  t.equal(await store.heads.countDocuments({ type: 'AuditEvent' }), 0, 'and have no heads');
  const p0 = patients[7];
  const today = new Date().toISOString().slice(0, 10);
  const names = [...searchIndexNames(), '_id_'];
  const cases: Array<{ query: string; index: RegExp; sortFromIndex?: boolean }> = [
    { query: `entity=Patient/${p0}`, index: /^search_AuditEvent_entity_date$/ },
    { query: `entity=Patient/${p0}&date=ge${today}`, index: /^search_AuditEvent_entity_date$/ },
    { query: `patient=Patient/${p0}&date=ge${today}`, index: /^search_AuditEvent_patient_date$/ },
    { query: 'date=le2000-01-01', index: /^search_AuditEvent_date$/ },
    // What one OAuth client did (clients are recorded by identifier: their client_id).
    { query: `agent:identifier=some-client&date=ge${today}`, index: /^search_AuditEvent_agent_identifier_date$/ },
    { query: `date=ge${today}&_sort=date`, index: /^search_AuditEvent_date$/, sortFromIndex: true },
    { query: '_sort=date', index: /^search_AuditEvent_date$/, sortFromIndex: true },
  ];
  for (const c of cases) {
    const explain = await explainFhirSearch(ctx, { types: ['AuditEvent'], path: 'AuditEvent' }, [
      ...new URLSearchParams(c.query).entries(),
    ]);
    const plan = planStages(explain.queryPlanner.winningPlan as Document);
    const scans = plan.filter((s) => s.stage === 'IXSCAN').map((s) => s.indexName as string);
    const summary = plan.map((s) => (s.stage === 'IXSCAN' ? `IXSCAN(${s.indexName})` : s.stage)).join(' < ');
    t.notOk(
      plan.some((s) => s.stage === 'COLLSCAN'),
      `AuditEvent?${c.query}: no collection scan [${summary}]`,
    );
    t.ok(
      scans.length > 0 && scans.every((name) => names.includes(name) && c.index.test(name)),
      `AuditEvent?${c.query}: uses ${c.index} [${summary}]`,
    );
    if (c.sortFromIndex)
      t.notOk(
        plan.some((s) => s.stage === 'SORT'),
        `AuditEvent?${c.query}: the index delivers the order [${summary}]`,
      );
  }
  // And the answers are right: every read of p0 is found by its entity.
  const found = (await app.inject({ url: `/AuditEvent?entity=Patient/${p0}&_total=accurate` })).json() as { total: number };
  t.equal(found.total, 4, 'its create and three reads (versioned references are indexed as Type/id)');
});

t.test('every search of the benchmark (bench/searches.ts) runs on its index', async (t) => {
  const { store } = await startTestApp(t);
  const ctx = await testContext(store, BASE);
  // A small slice of the benchmark's own population, loaded as the benchmark loads it.
  const patients = 400;
  const loaded = await loadPopulation({ store, baseUrl: BASE, seed: 11, from: 0, to: patients, chunkSize: 500 });
  t.ok(loaded.resources > 1500, `${loaded.resources} resources loaded`);
  t.ok(BENCH_SEARCHES.length >= 15, `${BENCH_SEARCHES.length} benchmark searches`);
  // The check itself can fail: a collection scan, a foreign index and a blocking sort are all reported.
  const identifier = BENCH_SEARCHES[0];
  t.same(planProblems(identifier, { stages: [{ stage: 'COLLSCAN' }], summary: '' }), ['collection scan', 'no index scan']);
  t.match(planProblems(identifier, { stages: [{ stage: 'SORT' }, { stage: 'IXSCAN', indexName: 'type_lastUpdated' }], summary: '' }), [
    /scans type_lastUpdated/,
    /blocking SORT/,
  ]);
  for (const [n, search] of BENCH_SEARCHES.entries()) {
    // Three draws each: different patients, names and dates must all stay on the index.
    for (let i = 0; i < 3; i++) {
      const query = search.query(queryInputs(11, n, i, { patients, loadedFrom: loaded.firstUpdated, loadedTo: loaded.lastUpdated }));
      const afterId = search.deepPage ? `Patient/${patientId(150 + i)}` : undefined;
      const plan = await explainBenchSearch(ctx, search, query, afterId);
      t.same(planProblems(search, plan), [], `${search.type}?${query}${afterId ? ` after ${afterId}` : ''}: [${plan.summary}]`);
    }
  }
});

t.test('a birth-date range bounds its index at both ends', async (t) => {
  const { app, store } = await startTestApp(t);
  const ctx = await testContext(store, BASE);
  // Day, month and year precision: a year-precision value is the widest a date can be.
  const births = ['1979-12-31', '1980', '1980-06', '1980-06-15', '1981-01-01', '1950-01-01', '2000-05-05'];
  const ids = new Map<string, string>();
  for (const birthDate of births) ids.set(birthDate, (await create(app, { resourceType: 'Patient', birthDate })).id);
  const found = async (query: string): Promise<string[]> => {
    const bundle = (await app.inject({ url: `/Patient?${query}&_count=100` })).json() as {
      entry?: Array<{ resource: { birthDate: string } }>;
    };
    return (bundle.entry ?? []).map((e) => e.resource.birthDate).sort();
  };
  // The implied bounds change no result (search.html's prefix semantics over [low, high] ranges).
  t.same(await found('birthdate=ge1980-06-10&birthdate=le1980-06-20'), ['1980', '1980-06', '1980-06-15']);
  t.same(await found('birthdate=ge1980-12-01'), ['1980', '1981-01-01', '2000-05-05']);
  t.same(await found('birthdate=le1980-01-15'), ['1950-01-01', '1979-12-31', '1980']);
  t.same(await found('birthdate=gt1980-06-30'), ['1980', '1981-01-01', '2000-05-05']);
  t.same(await found('birthdate=lt1980-02-01'), ['1950-01-01', '1979-12-31', '1980']);

  const explain = await explainFhirSearch(ctx, { types: ['Patient'], path: 'Patient' }, [
    ['birthdate', 'ge1980-06-10'],
    ['birthdate', 'le1980-06-20'],
  ]);
  const scan = planStages(explain.queryPlanner.winningPlan as Document).find((s) => s.stage === 'IXSCAN');
  t.match(scan?.indexName, /^search_Patient_birthdate_(lo|hi)$/);
  const dateBounds = JSON.stringify(Object.values((scan?.indexBounds ?? {}) as Record<string, unknown>)[0]);
  t.match(dateBounds, /^\["\[new Date\(\d+\), new Date\(\d+\)\]"\]$/, `the date key is bounded at both ends: ${dateBounds}`);
});
