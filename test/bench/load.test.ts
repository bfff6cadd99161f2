/**
 * The benchmark's bulk loader writes what the write path writes: resources it loads are read, searched,
 * versioned and updated through the HTTP API exactly like resources created through it, and a second load of
 * the same resources fails rather than overwriting them.
 */
import type { Bundle, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { firstVersionOf, loadPopulation } from '../../bench/load-population.js';
import { MRN_SYSTEM, generatePatient, mrnOf, patientId } from '../../bench/population.js';
import { BulkLoadError, insertNewVersions } from '../../src/store/bulk-load.js';
import { BASE, JSON_HEADERS } from '../fhir/search/helpers.js';
import { startTestApp, stopMongoAtEnd, testValidator } from '../helpers/app.js';

stopMongoAtEnd(t);

const keys = (o: object): string[] => Object.keys(o).sort();

t.test('bulk-loaded resources behave like created ones', async (t) => {
  const { app, store } = await startTestApp(t);
  const loaded = await loadPopulation({
    store,
    baseUrl: BASE,
    seed: 5,
    from: 0,
    to: 40,
    validateEvery: 10,
    validator: await testValidator(),
    chunkSize: 25,
  });
  t.equal(loaded.patients, 40);
  t.equal(loaded.byType.Patient, 40);
  t.equal(loaded.resources, loaded.byType.Patient + (loaded.byType.Encounter ?? 0) + (loaded.byType.MedicationRequest ?? 0));
  t.ok(loaded.validated > 0, 'a sample was validated');
  t.equal(await store.heads.countDocuments({}), loaded.resources, 'one head per resource');
  t.equal(await store.versions.countDocuments({}), loaded.resources, 'one version per resource');

  // Same document shapes as a create through the API.
  const { id: _id, ...body } = generatePatient(5, 99).patient;
  const created = await app.inject({ method: 'POST', url: '/Patient', headers: JSON_HEADERS, payload: body });
  t.equal(created.statusCode, 201);
  const createdId = (created.json() as Patient).id!;
  const [apiHead, bulkHead] = await Promise.all([
    store.heads.findOne({ _id: `Patient/${createdId}` }),
    store.heads.findOne({ _id: 'Patient/pat-3' }),
  ]);
  t.same(keys(bulkHead!), keys(apiHead!), 'head documents have the same fields');
  t.same(keys(bulkHead!.idx!), keys(apiHead!.idx!), 'and the same index fields');
  const [apiVersion, bulkVersion] = await Promise.all([
    store.versions.findOne({ _id: `Patient/${createdId}/1` }),
    store.versions.findOne({ _id: 'Patient/pat-3/1' }),
  ]);
  t.same(keys(bulkVersion!), keys(apiVersion!), 'version documents have the same fields');
  t.same(keys(bulkVersion!.anchor!), keys(apiVersion!.anchor!), 'with the same pending anchor');
  t.equal(bulkVersion!.anchor!.state, 'pending');

  const read = await app.inject({ method: 'GET', url: `/Patient/${patientId(3)}` });
  t.equal(read.statusCode, 200);
  t.equal(read.headers.etag, 'W/"1"');
  const patient = read.json() as Patient;
  t.equal(patient.meta?.versionId, '1');
  t.equal(patient.meta?.lastUpdated, bulkHead!.lastUpdated.toISOString(), 'meta.lastUpdated is the stored lastUpdated');
  t.same({ ...patient, meta: undefined }, { ...generatePatient(5, 3).patient, meta: undefined }, 'served as generated');

  const byMrn = await app.inject({ method: 'GET', url: `/Patient?identifier=${encodeURIComponent(MRN_SYSTEM)}|${mrnOf(7)}` });
  t.same(
    (byMrn.json() as Bundle).entry?.map((e) => e.resource?.id),
    [patientId(7)],
    'found by identifier',
  );
  const withEncounters = [...Array(40).keys()].find((i) => generatePatient(5, i).encounters.length >= 2)!;
  const encounters = await app.inject({ method: 'GET', url: `/Encounter?patient=${patientId(withEncounters)}&_total=accurate` });
  t.equal(
    (encounters.json() as Bundle).total,
    generatePatient(5, withEncounters).encounters.length,
    "a patient's encounters are found by reference",
  );

  // The write path carries on from a loaded version.
  const updated = await app.inject({
    method: 'PUT',
    url: `/Patient/${patientId(3)}`,
    headers: JSON_HEADERS,
    payload: { ...generatePatient(5, 3).patient, active: false },
  });
  t.equal(updated.statusCode, 200);
  t.equal(updated.headers.etag, 'W/"2"');
  const history = await app.inject({ method: 'GET', url: `/Patient/${patientId(3)}/_history` });
  t.equal((history.json() as Bundle).entry?.length, 2, 'history holds the loaded version and the update');
});

t.test('the bulk loader never overwrites and only takes first versions', async (t) => {
  const { store } = await startTestApp(t);
  const version = firstVersionOf(generatePatient(9, 0).patient, new Date(), BASE);
  await insertNewVersions(store, [version]);
  await t.rejects(
    insertNewVersions(store, [firstVersionOf({ ...generatePatient(9, 0).patient, active: false }, new Date(), BASE)]),
    BulkLoadError,
  );
  t.equal((await store.heads.findOne({ _id: 'Patient/pat-0' }))!.resource.id, 'pat-0');
  t.equal(
    ((await store.heads.findOne({ _id: 'Patient/pat-0' }))!.resource as Patient).active,
    version.resource && (version.resource as Patient).active,
    'unchanged',
  );
  await t.rejects(insertNewVersions(store, [{ ...version, versionId: 2 }]), BulkLoadError, 'a second version is refused');
  await insertNewVersions(store, []);
  // Resuming an interrupted load: what is there stays, what is missing is added.
  const next = firstVersionOf(generatePatient(9, 1).patient, new Date(), BASE);
  await insertNewVersions(store, [firstVersionOf({ ...generatePatient(9, 0).patient, active: false }, new Date(), BASE), next], {
    skipExisting: true,
  });
  t.equal(
    ((await store.heads.findOne({ _id: 'Patient/pat-0' }))!.resource as Patient).active,
    (version.resource as Patient).active,
    'still unchanged',
  );
  t.ok(await store.heads.findOne({ _id: 'Patient/pat-1' }), 'the missing one is added');
  t.ok(await store.versions.findOne({ _id: 'Patient/pat-1/1' }));
});
