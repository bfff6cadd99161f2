/**
 * Patient/$everything over HTTP: one patient's compartment (and nobody else's), _type, _since, _count with paging
 * by next links (each resource exactly once), all patients, 404/410, bad parameters, and the query plans (indexes
 * only, no collection scan).
 */
import type { Bundle, Encounter, MedicationRequest, Patient, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import type { Document } from 'mongodb';
import t from 'tap';
import { everythingQuery } from '../../src/fhir/operations/everything.js';
import { compileFilter } from '../../src/store/search/compile.js';
import { explainSearch } from '../../src/store/search/execute.js';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { BASE, JSON_HEADERS, create } from './search/helpers.js';

stopMongoAtEnd(t);

const encounter = (patient: string | undefined, i: number): Encounter => ({
  resourceType: 'Encounter',
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
  ...(patient ? { subject: { reference: `Patient/${patient}` } } : {}),
  period: { start: `2024-01-${String(1 + (i % 28)).padStart(2, '0')}` },
});

const medication = (patient: string): MedicationRequest => ({
  resourceType: 'MedicationRequest',
  status: 'active',
  intent: 'order',
  medicationCodeableConcept: { text: 'aspirin' },
  subject: { reference: `Patient/${patient}` },
});

const key = (r: Resource): string => `${r.resourceType}/${r.id}`;

async function get(app: FastifyInstance, url: string, headers: Record<string, string> = {}) {
  const path = url.startsWith(BASE) ? url.slice(BASE.length) : url;
  const res = await app.inject({ url: path, headers });
  return { status: res.statusCode, body: res.json() as Bundle & { issue?: Array<{ diagnostics?: string }> } };
}

function matches(bundle: Bundle): string[] {
  return (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => key(e.resource!));
}

/** Follows next links; returns every match key in order and the page sizes. */
async function pageThrough(app: FastifyInstance, url: string): Promise<{ keys: string[]; sizes: number[] }> {
  const keys: string[] = [];
  const sizes: number[] = [];
  let next: string | undefined = url;
  for (let page = 0; next && page < 100; page++) {
    const { status, body } = await get(app, next);
    if (status !== 200) throw new Error(`${next}: ${status} ${JSON.stringify(body)}`);
    keys.push(...matches(body));
    sizes.push(matches(body).length);
    next = body.link?.find((l) => l.relation === 'next')?.url;
  }
  return { keys, sizes };
}

t.test('Patient/$everything', async (t) => {
  const { app, store } = await startTestApp(t);
  const alice = await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Alice' }] });
  const bob = await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Bob' }] });
  const gone = await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Gone' }] });
  const aliceEncounters: Encounter[] = [];
  for (let i = 0; i < 12; i++) aliceEncounters.push(await create(app, encounter(alice.id, i)));
  const aliceMeds: MedicationRequest[] = [];
  for (let i = 0; i < 8; i++) aliceMeds.push(await create(app, medication(alice.id)));
  const bobEncounters: Encounter[] = [];
  for (let i = 0; i < 3; i++) bobEncounters.push(await create(app, encounter(bob.id, i)));
  const orphan = await create(app, encounter(undefined, 0));
  // Other patients' prescriptions, so that an index on the compartment reference is visibly better than a type scan.
  for (let i = 0; i < 30; i++) await create(app, medication(bob.id));
  const aliceKeys = [alice, ...aliceEncounters, ...aliceMeds].map(key);
  t.equal((await app.inject({ method: 'DELETE', url: `/Patient/${gone.id}` })).statusCode, 204);

  await t.test('one patient: the patient first, then its compartment, nobody else', async (t) => {
    const { status, body } = await get(app, `/Patient/${alice.id}/$everything?_count=100`);
    t.equal(status, 200);
    t.equal(body.type, 'searchset');
    const keys = matches(body);
    t.equal(keys[0], key(alice), 'the patient comes first');
    t.same([...keys].sort(), [...aliceKeys].sort(), 'exactly the patient and its 20 resources');
    t.equal(body.total, 21);
    const byKey = new Map((body.entry ?? []).map((e) => [key(e.resource!), e]));
    t.same(byKey.get(key(aliceEncounters[3]))?.resource, aliceEncounters[3], 'resources as stored');
    t.equal(byKey.get(key(alice))?.fullUrl, `${BASE}/Patient/${alice.id}`);
  });

  await t.test('_count pages through next links: every resource exactly once', async (t) => {
    const { keys, sizes } = await pageThrough(app, `/Patient/${alice.id}/$everything?_count=5`);
    t.same(sizes, [5, 5, 5, 5, 1]);
    t.equal(new Set(keys).size, keys.length, 'no duplicates');
    t.same([...keys].sort(), [...aliceKeys].sort(), 'no gaps');
    // A page that ends exactly at the end of the last type has no next link.
    const exact = await pageThrough(app, `/Patient/${alice.id}/$everything?_count=7`);
    t.same(exact.sizes, [7, 7, 7]);
    const { body } = await get(app, `/Patient/${alice.id}/$everything?_count=3`);
    const self = body.link?.find((l) => l.relation === 'self')?.url;
    t.equal(self, `${BASE}/Patient/${alice.id}/$everything?_count=3`);
  });

  await t.test('_type restricts the types', async (t) => {
    const encounters = await pageThrough(app, `/Patient/${alice.id}/$everything?_type=Encounter&_count=5`);
    t.same([...encounters.keys].sort(), aliceEncounters.map(key).sort());
    const { body } = await get(app, `/Patient/${alice.id}/$everything?_type=MedicationRequest,Patient`);
    t.same(matches(body), [key(alice), ...aliceMeds.map(key).sort()], 'Patient first whatever the order asked');
    const lenient = await get(app, `/Patient/${alice.id}/$everything?_type=Organization,Encounter`);
    t.equal(lenient.status, 200);
    t.equal(matches(lenient.body).length, 12);
    const outcome = lenient.body.entry?.find((e) => e.search?.mode === 'outcome');
    t.match(JSON.stringify(outcome?.resource), /Organization ignored/, 'not a Patient compartment type');
    const posted = await app.inject({
      method: 'POST',
      url: `/Patient/${alice.id}/$everything`,
      headers: JSON_HEADERS,
      payload: {
        resourceType: 'Parameters',
        parameter: [
          { name: '_type', valueString: 'Encounter' },
          { name: '_count', valueInteger: 100 },
        ],
      },
    });
    t.equal(posted.statusCode, 200, 'POST with a Parameters body');
    t.same([...matches(posted.json() as Bundle)].sort(), aliceEncounters.map(key).sort());
    const notParameters = await app.inject({
      method: 'POST',
      url: `/Patient/${alice.id}/$everything`,
      headers: JSON_HEADERS,
      payload: { resourceType: 'Patient' },
    });
    t.equal(notParameters.statusCode, 400);
    const strict = await get(app, `/Patient/${alice.id}/$everything?_type=Organization`, { prefer: 'handling=strict' });
    t.equal(strict.status, 400);
    t.equal(strict.body.resourceType, 'OperationOutcome');
  });

  await t.test('_since: only what changed at or after the instant (the patient too)', async (t) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const since = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const changed = await app.inject({
      method: 'PUT',
      url: `/Encounter/${aliceEncounters[0].id}`,
      headers: JSON_HEADERS,
      payload: { ...aliceEncounters[0], status: 'cancelled', meta: undefined },
    });
    t.equal(changed.statusCode, 200);
    const added = await create(app, medication(alice.id));
    await create(app, encounter(bob.id, 9));
    const { status, body } = await get(app, `/Patient/${alice.id}/$everything?_since=${encodeURIComponent(since)}`);
    t.equal(status, 200);
    t.same(matches(body).sort(), [key(aliceEncounters[0]), key(added)].sort());
    aliceKeys.push(key(added));
    const bad = await get(app, `/Patient/${alice.id}/$everything?_since=yesterday`);
    t.equal(bad.status, 400);
    t.match(bad.body.issue?.[0]?.diagnostics, /_since/);
  });

  await t.test('unknown patient 404, deleted 410, bad _count and _cursor 400', async (t) => {
    t.equal((await get(app, '/Patient/nobody/$everything')).status, 404);
    t.equal((await get(app, '/Patient/bad$id/$everything')).status, 404);
    const deleted = await get(app, `/Patient/${gone.id}/$everything`);
    t.equal(deleted.status, 410);
    t.equal(deleted.body.resourceType, 'OperationOutcome');
    t.equal((await get(app, `/Patient/${alice.id}/$everything?_count=abc`)).status, 400);
    t.equal((await get(app, `/Patient/${alice.id}/$everything?_count=0`)).status, 400);
    t.equal((await get(app, `/Patient/${alice.id}/$everything?_cursor=garbage`)).status, 400);
    // A cursor of another patient's $everything is refused.
    const { body } = await get(app, `/Patient/${alice.id}/$everything?_count=2`);
    const next = body.link?.find((l) => l.relation === 'next')?.url ?? '';
    const cursor = new URL(next).searchParams.get('_cursor') ?? '';
    t.equal((await get(app, `/Patient/${bob.id}/$everything?_count=2&_cursor=${cursor}`)).status, 400);
    t.equal((await app.inject({ method: 'DELETE', url: `/Patient/${alice.id}/$everything` })).statusCode, 405);
  });

  await t.test('all patients: every live patient and every resource that refers to one', async (t) => {
    const { keys } = await pageThrough(app, '/Patient/$everything?_count=4');
    t.equal(new Set(keys).size, keys.length, 'no duplicates');
    t.ok(keys.includes(key(alice)) && keys.includes(key(bob)));
    t.notOk(keys.includes(key(gone)), 'deleted patients are left out');
    t.notOk(keys.includes(key(orphan)), 'an encounter without a patient is not in any compartment');
    for (const k of [...aliceKeys, ...bobEncounters.map(key)]) if (!keys.includes(k)) t.fail(`missing ${k}`);
    t.equal(keys.length, 2 + 12 + 9 + 4 + 30);
    t.equal(
      keys.slice(0, 2).every((k) => k.startsWith('Patient/')),
      true,
      'patients first',
    );
    const onlyMeds = await pageThrough(app, '/Patient/$everything?_type=MedicationRequest&_count=100');
    t.equal(onlyMeds.keys.length, 39);
  });

  await t.test('every query is answered through an index', async (t) => {
    const stages = (plan: Document): Document[] => (plan ? [plan, ...stages(plan.inputStage as Document)] : []);
    // The planner caches a plan per query shape, as mongod does: Bob's first page (5 of his 30 encounters) is
    // fastest along _id and that plan is kept for the shape until it does 10x worse than when cached. This test
    // asks what the planner chooses for Alice's query itself.
    await store.heads.db.command({ planCacheClear: store.heads.collectionName });
    for (const patientId of [alice.id, undefined]) {
      for (const type of ['Patient', 'Encounter', 'MedicationRequest']) {
        const query = everythingQuery(type, patientId, undefined);
        // All patients' pages are read along the _id index (hinted); one patient's through its compartment index.
        const explain =
          patientId === undefined
            ? await store.heads.find(compileFilter(query)).sort({ _id: 1 }).hint({ _id: 1 }).limit(21).explain('queryPlanner')
            : await explainSearch(store, query);
        const plan = stages(explain.queryPlanner.winningPlan as Document);
        const summary = plan.map((s) => (s.stage === 'IXSCAN' ? `IXSCAN(${s.indexName})` : s.stage)).join(' < ');
        t.notOk(
          plan.some((s) => s.stage === 'COLLSCAN'),
          `${type} ${patientId ?? 'all'}: ${summary}`,
        );
        const indexes = plan.filter((s) => s.stage === 'IXSCAN').map((s) => s.indexName as string);
        const expected = patientId === undefined || type === 'Patient' ? /^_id_$/ : new RegExp(`^search_${type}_subject_`);
        t.ok(indexes.length > 0 && indexes.every((name) => expected.test(name)), `${type} ${patientId ?? 'all'}: ${summary}`);
      }
    }
  });
});
