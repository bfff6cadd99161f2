/**
 * Transaction Bundles (POST [base], Bundle.type = transaction): one MongoDB transaction, all or nothing,
 * placeholders and conditional references rewritten, processing order DELETE, POST, PUT/PATCH, GET, the
 * answer in the Bundle's order, ledger anchors on every version, and a clear refusal where MongoDB has no
 * transactions.
 */
import type { Bundle, BundleEntry, Encounter, MedicationRequest, OperationOutcome, Patient, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import type { Db, Document } from 'mongodb';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { TEST_CONFIG, startTestApp, stopMongoAtEnd, testValidator } from '../helpers/app.js';
import { BASE, JSON_HEADERS, create } from '../fhir/search/helpers.js';

stopMongoAtEnd(t);

const patient = (value: string, extra: Partial<Patient> = {}): Patient => ({
  resourceType: 'Patient',
  identifier: [{ system: 'urn:mrn', value }],
  name: [{ family: 'Transaction', given: [value] }],
  ...extra,
});

const encounter = (subject: string, extra: Partial<Encounter> = {}): Encounter => ({
  resourceType: 'Encounter',
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
  subject: { reference: subject },
  ...extra,
});

const medicationRequest = (subject: string, encounterRef: string, extra: Partial<MedicationRequest> = {}): MedicationRequest => ({
  resourceType: 'MedicationRequest',
  status: 'active',
  intent: 'order',
  medicationCodeableConcept: { text: 'paracetamol 500 mg' },
  subject: { reference: subject },
  encounter: { reference: encounterRef },
  ...extra,
});

/** A transaction-response Bundle or an OperationOutcome. */
type Answer = Omit<Bundle, 'resourceType'> & Omit<OperationOutcome, 'resourceType'> & { resourceType: string };

function transaction(entry: BundleEntry[]): Bundle {
  return { resourceType: 'Bundle', type: 'transaction', entry };
}

async function post(app: FastifyInstance, body: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'POST', url: '/', headers: { ...JSON_HEADERS, ...headers }, payload: body as object });
  return { status: res.statusCode, body: res.json() as Answer, headers: res.headers };
}

/** Every document of every collection, sorted: the database's whole state. */
async function snapshot(db: Db): Promise<Record<string, Document[]>> {
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  const state: Record<string, Document[]> = {};
  for (const name of names) state[name] = await db.collection(name).find({}).sort({ _id: 1 }).toArray();
  return state;
}

const diagnostics = (outcome: Answer): string => (outcome.issue ?? []).map((i) => i.diagnostics).join(' | ');

t.test('urn:uuid references between Patient, Encounter and MedicationRequest become Type/id', async (t) => {
  const { app, store } = await startTestApp(t, { referencePolicy: 'strict' });
  const p = 'urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a';
  const e = 'urn:uuid:7f2b0a8e-3c55-4d3e-9e0a-2a3b9c1d4e5f';
  const m = 'urn:uuid:0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f';
  const res = await post(
    app,
    transaction([
      // The MedicationRequest comes first in the Bundle and refers to entries that follow it.
      {
        fullUrl: m,
        resource: medicationRequest(p, e, {
          extension: [{ url: 'http://example.org/fhir/StructureDefinition/seen-by', valueReference: { reference: p } }],
          contained: [{ resourceType: 'Patient', id: 'copy', link: [{ other: { reference: p }, type: 'seealso' }] } as Patient],
          reportedReference: { reference: '#copy' },
        }),
        request: { method: 'POST', url: 'MedicationRequest' },
      },
      { fullUrl: p, resource: patient('urn-1'), request: { method: 'POST', url: 'Patient' } },
      { fullUrl: e, resource: encounter(p), request: { method: 'POST', url: 'Encounter' } },
    ]),
  );
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal(res.body.type, 'transaction-response');
  t.equal(res.body.entry?.length, 3);
  const locations = res.body.entry!.map((entry) => entry.response?.location ?? '');
  t.match(locations[0], /^MedicationRequest\/[^/]+\/_history\/1$/, 'answers in the Bundle order');
  t.match(locations[1], /^Patient\/[^/]+\/_history\/1$/);
  t.match(locations[2], /^Encounter\/[^/]+\/_history\/1$/);
  for (const entry of res.body.entry!) {
    t.equal(entry.response?.status, '201 Created');
    t.equal(entry.response?.etag, 'W/"1"');
    t.ok(entry.response?.lastModified && !Number.isNaN(Date.parse(entry.response.lastModified)));
    t.ok(entry.resource, 'return=representation by default, as for single creates');
  }
  const [medId, patientId, encounterId] = locations.map((l) => l.split('/')[1]);
  const patientRef = `Patient/${patientId}`;

  const med = (await app.inject({ method: 'GET', url: `/MedicationRequest/${medId}` })).json() as MedicationRequest;
  t.equal(med.subject?.reference, patientRef);
  t.equal(med.encounter?.reference, `Encounter/${encounterId}`);
  t.equal(med.extension?.[0].valueReference?.reference, patientRef, 'references inside extensions are rewritten');
  t.equal((med.contained?.[0] as Patient).link?.[0].other.reference, patientRef, 'and inside contained resources');
  const enc = (await app.inject({ method: 'GET', url: `/Encounter/${encounterId}` })).json() as Encounter;
  t.equal(enc.subject?.reference, patientRef);

  // Searches see the rewritten references (the index was extracted after the rewrite).
  const search = (await app.inject({ method: 'GET', url: `/MedicationRequest?subject=${patientRef}` })).json() as Bundle;
  t.same(
    search.entry?.map((x) => x.resource?.id),
    [medId],
  );

  // Every version carries its pending ledger anchor.
  const versions = await store.versions.find({}).toArray();
  t.equal(versions.length, 3);
  for (const version of versions) {
    t.equal(version.anchor?.state, 'pending', `${version._id} has a pending anchor`);
    t.ok(version.anchor?.salt && version.anchor?.commitment);
  }
});

t.test('a transaction whose 3rd of 5 entries fails writes nothing at all', async (t) => {
  const { app, connection } = await startTestApp(t);
  const kept = await create(app, patient('kept'));
  const doomed = await create(app, patient('doomed'));
  await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: { ...JSON_HEADERS, 'if-none-exist': 'identifier=urn:mrn|kept' },
    payload: patient('kept'),
  });
  const before = await snapshot(connection.db);
  t.ok(Object.keys(before).length >= 2, `collections: ${Object.keys(before).join(', ')}`);

  const res = await post(
    app,
    transaction([
      { fullUrl: 'urn:uuid:a0000000-0000-4000-8000-000000000001', resource: patient('new-1'), request: { method: 'POST', url: 'Patient' } },
      { resource: { ...kept, active: true }, request: { method: 'PUT', url: `Patient/${kept.id}` } },
      { resource: patient('bad', { gender: 'banana' as Patient['gender'] }), request: { method: 'POST', url: 'Patient' } },
      { resource: encounter('urn:uuid:a0000000-0000-4000-8000-000000000001'), request: { method: 'POST', url: 'Encounter' } },
      { request: { method: 'DELETE', url: `Patient/${doomed.id}` } },
    ]),
  );
  t.equal(res.status, 400);
  t.equal(res.body.resourceType, 'OperationOutcome');
  t.match(diagnostics(res.body), /Bundle\.entry\[2\]/, 'names the failing entry');
  t.match(diagnostics(res.body), /gender|banana/i, 'and says what is wrong with it');
  t.ok(
    res.body.issue?.some((i) => i.expression?.some((x) => x.startsWith('Bundle.entry[2].resource'))),
    'expressions point into the entry',
  );

  const after = await snapshot(connection.db);
  t.strictSame(after, before, 'every collection exactly as before: no version, head, index value or anchor left');
  t.equal(
    (await app.inject({ method: 'GET', url: `/Patient/${doomed.id}` })).statusCode,
    200,
    'the DELETE processed first was rolled back',
  );
});

t.test('conditional create inside a transaction: a match creates nothing and answers 200', async (t) => {
  const { app, store } = await startTestApp(t, { referencePolicy: 'strict' });
  const existing = await create(app, patient('cond-1'));
  const p = 'urn:uuid:b0000000-0000-4000-8000-000000000001';
  const res = await post(
    app,
    transaction([
      {
        fullUrl: p,
        resource: patient('cond-1', { gender: 'female' }),
        request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:mrn|cond-1' },
      },
      { resource: encounter(p), request: { method: 'POST', url: 'Encounter' } },
      { resource: patient('cond-2'), request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:mrn|cond-2' } },
    ]),
  );
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal(res.body.entry?.[0].response?.status, '200 OK');
  t.equal(res.body.entry?.[0].response?.location, `Patient/${existing.id}/_history/1`);
  t.equal((res.body.entry?.[0].resource as Patient).gender, undefined, 'the existing resource, unchanged');
  t.equal(
    (res.body.entry?.[1].resource as Encounter).subject?.reference,
    `Patient/${existing.id}`,
    'the placeholder names the matched patient',
  );
  t.equal(res.body.entry?.[2].response?.status, '201 Created', 'no match: created');
  t.equal(await store.heads.countDocuments({ type: 'Patient' }), 2);
});

t.test('conditional references resolve by search: exactly one match, else the transaction fails', async (t) => {
  const { app } = await startTestApp(t);
  const one = await create(app, patient('ref-1'));
  await create(app, patient('twin'));
  await create(app, patient('twin'));
  let res = await post(
    app,
    transaction([{ resource: encounter('Patient?identifier=urn:mrn|ref-1'), request: { method: 'POST', url: 'Encounter' } }]),
  );
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal((res.body.entry?.[0].resource as Encounter).subject?.reference, `Patient/${one.id}`);

  res = await post(
    app,
    transaction([
      { resource: patient('fine'), request: { method: 'POST', url: 'Patient' } },
      { resource: encounter('Patient?identifier=urn:mrn|nobody'), request: { method: 'POST', url: 'Encounter' } },
    ]),
  );
  t.equal(res.status, 412);
  t.match(diagnostics(res.body), /Bundle\.entry\[1\].*Patient\?identifier=urn:mrn\|nobody.*matches no resource/);
  t.ok(res.body.issue?.[0].expression?.includes('Bundle.entry[1].resource.subject.reference'));

  res = await post(
    app,
    transaction([{ resource: encounter('Patient?identifier=urn:mrn|twin'), request: { method: 'POST', url: 'Encounter' } }]),
  );
  t.equal(res.status, 412);
  t.match(diagnostics(res.body), /more than one/);

  res = await post(app, transaction([{ resource: encounter('Patient?shoe-size=42'), request: { method: 'POST', url: 'Encounter' } }]));
  t.equal(res.status, 400, 'criteria are parsed strictly');
  t.equal(
    (await app.inject({ method: 'GET', url: '/Patient?identifier=urn:mrn|fine' })).json().total,
    0,
    'nothing of the failed ones was written',
  );
});

t.test('processing order DELETE, POST, PUT/PATCH, GET; answers in Bundle order', async (t) => {
  const { app } = await startTestApp(t);
  const old = await create(app, patient('order-old'));
  const patched = await create(app, patient('order-patch'));
  const res = await post(
    app,
    transaction([
      // GETs listed first still run last, so they see the transaction's own writes.
      { request: { method: 'GET', url: 'Patient/order-put' } },
      { request: { method: 'GET', url: 'Patient?identifier=urn:mrn|order-post' } },
      { request: { method: 'GET', url: 'Patient?identifier=urn:mrn|order-old' } },
      { request: { method: 'GET', url: `Patient/${patched.id}` } },
      { resource: { ...patient('order-put'), id: 'order-put' }, request: { method: 'PUT', url: 'Patient/order-put' } },
      {
        resource: {
          resourceType: 'Parameters',
          parameter: [
            {
              name: 'operation',
              part: [
                { name: 'type', valueCode: 'add' },
                { name: 'path', valueString: 'Patient' },
                { name: 'name', valueString: 'active' },
                { name: 'value', valueBoolean: true },
              ],
            },
          ],
        },
        request: { method: 'PATCH', url: `Patient/${patched.id}` },
      },
      { resource: patient('order-post'), request: { method: 'POST', url: 'Patient' } },
      { request: { method: 'DELETE', url: `Patient/${old.id}` } },
    ]),
  );
  t.equal(res.status, 200, JSON.stringify(res.body));
  const entries = res.body.entry!;
  t.equal(entries[0].response?.status, '200 OK');
  t.equal((entries[0].resource as Patient).identifier?.[0].value, 'order-put', 'the GET sees the PUT that follows it in the Bundle');
  t.equal(entries[0].response?.etag, 'W/"1"');
  t.equal((entries[1].resource as Bundle).total, 1, 'a search sees the POST of the same transaction');
  t.equal((entries[2].resource as Bundle).total, 0, 'a search after the DELETE of the same transaction no longer finds it');
  t.equal((entries[3].resource as Patient).active, true, 'the GET sees the PATCH');
  t.equal(entries[3].response?.etag, 'W/"2"');
  t.equal(entries[4].response?.status, '201 Created');
  t.equal(entries[5].response?.status, '200 OK');
  t.equal(entries[6].response?.status, '201 Created');
  t.equal(entries[7].response?.status, '204 No Content');
});

t.test('If-Match on a transaction entry: 412 fails the whole transaction', async (t) => {
  const { app, connection } = await startTestApp(t);
  const p = await create(app, patient('im'));
  const before = await snapshot(connection.db);
  let res = await post(
    app,
    transaction([
      { resource: patient('im-new'), request: { method: 'POST', url: 'Patient' } },
      { resource: { ...p, active: true }, request: { method: 'PUT', url: `Patient/${p.id}`, ifMatch: 'W/"7"' } },
    ]),
  );
  t.equal(res.status, 412);
  t.match(diagnostics(res.body), /Bundle\.entry\[1\]: If-Match W\/"7" does not hold/);
  t.strictSame(await snapshot(connection.db), before);
  res = await post(
    app,
    transaction([{ resource: { ...p, active: true }, request: { method: 'PUT', url: `Patient/${p.id}`, ifMatch: 'W/"1"' } }]),
  );
  t.equal(res.status, 200);
  t.equal(res.body.entry?.[0].response?.etag, 'W/"2"');
  res = await post(app, transaction([{ request: { method: 'DELETE', url: `Patient/${p.id}`, ifMatch: 'W/"1"' } }]));
  t.equal(res.status, 412, 'If-Match on DELETE too');
  res = await post(app, transaction([{ request: { method: 'DELETE', url: `Patient/${p.id}`, ifMatch: 'nonsense' } }]));
  t.equal(res.status, 400, 'a malformed ifMatch is a 400');
  res = await post(
    app,
    transaction([
      { resource: patient('im-get'), request: { method: 'POST', url: 'Patient' } },
      { request: { method: 'GET', url: 'Patient/never-was' } },
    ]),
  );
  t.equal(res.status, 404, 'a failing GET fails the transaction too');
  t.match(diagnostics(res.body), /Bundle\.entry\[1\]: Patient\/never-was is not known/);
  t.equal((await app.inject({ method: 'GET', url: '/Patient?identifier=urn:mrn|im-get' })).json().total, 0);
});

t.test('conditional update and conditional delete entries', async (t) => {
  const { app } = await startTestApp(t);
  const a = await create(app, patient('cu-a'));
  const b = await create(app, patient('cd-b'));
  const res = await post(
    app,
    transaction([
      { resource: patient('cu-a', { active: false }), request: { method: 'PUT', url: 'Patient?identifier=urn:mrn|cu-a' } },
      { resource: patient('cu-new'), request: { method: 'PUT', url: 'Patient?identifier=urn:mrn|cu-new' } },
      { request: { method: 'DELETE', url: 'Patient?identifier=urn:mrn|cd-b' } },
      { request: { method: 'DELETE', url: 'Patient?identifier=urn:mrn|nobody' } },
    ]),
  );
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal(res.body.entry?.[0].response?.location, `Patient/${a.id}/_history/2`);
  t.equal(res.body.entry?.[1].response?.status, '201 Created');
  t.equal(res.body.entry?.[2].response?.status, '204 No Content');
  t.equal(res.body.entry?.[3].response?.status, '204 No Content', 'nothing matched: nothing to delete');
  t.equal((await app.inject({ method: 'GET', url: `/Patient/${b.id}` })).statusCode, 410);
});

t.test('Bundle-level problems are 400s, 404s and 413s with an OperationOutcome', async (t) => {
  const { app } = await startTestApp(t, { bundle: { maxEntries: 3, maxSearches: 100, bodyLimit: 4096 } });
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['not a Bundle', patient('x'), 400, /takes a Bundle/],
    ['an array', [1, 2], 400, /JSON object/],
    ['a searchset', { resourceType: 'Bundle', type: 'searchset' }, 400, /batch or transaction/],
    ['no request', transaction([{ resource: patient('x') }]), 400, /Bundle\.entry\[0\].*no request/],
    ['no method', transaction([{ resource: patient('x'), request: { url: 'Patient' } as BundleEntry['request'] }]), 400, /request\.method/],
    ['no url', transaction([{ resource: patient('x'), request: { method: 'POST' } as BundleEntry['request'] }]), 400, /request\.url/],
    ['POST without resource', transaction([{ request: { method: 'POST', url: 'Patient' } }]), 400, /needs a resource/],
    ['an operation', transaction([{ request: { method: 'POST', url: 'Patient/$validate' }, resource: patient('x') }]), 400, /operations/],
    [
      'a type that is not hosted',
      transaction([
        { resource: patient('x'), request: { method: 'POST', url: 'Patient' } },
        {
          resource: { resourceType: 'Nonsense', status: 'final', code: { text: 'x' } } as unknown as Resource,
          request: { method: 'POST', url: 'Nonsense' },
        },
      ]),
      404,
      /Bundle\.entry\[1\].*Nonsense is not hosted/,
    ],
    [
      'duplicate fullUrls',
      transaction([
        { fullUrl: 'urn:uuid:c0000000-0000-4000-8000-000000000001', resource: patient('x'), request: { method: 'POST', url: 'Patient' } },
        { fullUrl: 'urn:uuid:c0000000-0000-4000-8000-000000000001', resource: patient('y'), request: { method: 'POST', url: 'Patient' } },
      ]),
      400,
      /fullUrls must be unique/,
    ],
    [
      'two entries on one resource',
      transaction([
        { resource: { ...patient('x'), id: 'same' }, request: { method: 'PUT', url: 'Patient/same' } },
        { request: { method: 'DELETE', url: 'Patient/same' } },
      ]),
      400,
      /Bundle\.entry\[[01]\].*Bundle\.entry\[[01]\] acts on Patient\/same/,
    ],
    [
      'an unresolvable urn:uuid',
      transaction([
        { resource: encounter('urn:uuid:d0000000-0000-4000-8000-000000000009'), request: { method: 'POST', url: 'Encounter' } },
      ]),
      400,
      /fullUrl of no entry/,
    ],
    [
      'too many entries',
      transaction(Array.from({ length: 4 }, () => ({ request: { method: 'GET' as const, url: 'Patient' } }))),
      413,
      /4 entries; at most 3/,
    ],
    [
      'too large',
      transaction([{ resource: patient('x'.repeat(5000)), request: { method: 'POST', url: 'Patient' } }]),
      413,
      /BUNDLE_BODY_LIMIT/,
    ],
  ];
  for (const [name, body, status, message] of cases) {
    const res = await post(app, body);
    t.equal(res.status, status, `${name}: ${JSON.stringify(res.body)}`);
    t.equal(res.body.resourceType, 'OperationOutcome', name);
    t.match(diagnostics(res.body), message, name);
  }
  t.equal((await app.inject({ method: 'GET', url: '/Patient' })).json().total, 0, 'none of them wrote anything');
});

t.test('Prefer: return=minimal and return=OperationOutcome', async (t) => {
  const { app } = await startTestApp(t);
  const body = transaction([{ resource: patient('pref'), request: { method: 'POST', url: 'Patient' } }]);
  let res = await post(app, body, { prefer: 'return=minimal' });
  t.equal(res.status, 200);
  t.equal(res.body.entry?.[0].resource, undefined);
  t.match(res.body.entry?.[0].response?.location, /^Patient\//);
  res = await post(app, body, { prefer: 'return=OperationOutcome' });
  t.equal(res.body.entry?.[0].response?.outcome?.resourceType, 'OperationOutcome');
});

t.test('concurrent transactions: conflicts retry, conditional creates make one resource', async (t) => {
  const { app, store } = await startTestApp(t);
  const p = await create(app, patient('busy'));
  const updates = await Promise.all(
    Array.from({ length: 4 }, (_, i) =>
      post(app, transaction([{ resource: { ...p, name: [{ family: `Busy${i}` }] }, request: { method: 'PUT', url: `Patient/${p.id}` } }])),
    ),
  );
  for (const res of updates) t.ok(res.status === 200 || res.status === 409, `200, or 409 after bounded retries: ${res.status}`);
  const succeeded = updates.filter((r) => r.status === 200).length;
  t.ok(succeeded >= 1);
  t.equal(await store.versions.countDocuments({ type: 'Patient', id: p.id }), 1 + succeeded, 'one version per successful transaction');

  const racers = await Promise.all(
    Array.from({ length: 4 }, (_, i) =>
      i % 2 === 0
        ? post(
            app,
            transaction([
              { resource: patient('race'), request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:mrn|race' } },
            ]),
          )
        : app
            .inject({
              method: 'POST',
              url: '/Patient',
              headers: { ...JSON_HEADERS, 'if-none-exist': 'identifier=urn:mrn|race' },
              payload: patient('race'),
            })
            .then((r) => ({ status: r.statusCode })),
    ),
  );
  for (const res of racers) t.ok([200, 201, 409].includes(res.status), `conditional create: ${res.status}`);
  t.equal(await store.heads.countDocuments({ type: 'Patient', 'resource.identifier.value': 'race' }), 1, 'one resource in all');
  t.equal(await store.db.collection('conditional_keys').countDocuments(), 0, 'no key left held');
});

t.test('without MongoDB transactions a transaction Bundle is refused and nothing is written; batches still work', async (t) => {
  const { connection } = await startTestApp(t);
  const store = new ResourceStore(connection.db, false);
  const app = await buildApp(TEST_CONFIG, { store, validator: await testValidator(), logger: false });
  t.teardown(() => app.close());
  const res = await post(app, transaction([{ resource: patient('standalone'), request: { method: 'POST', url: 'Patient' } }]));
  t.equal(res.status, 422);
  t.equal(res.body.issue?.[0].code, 'not-supported');
  t.match(diagnostics(res.body), /standalone mongod.*nothing was written/);
  t.equal(await store.heads.countDocuments(), 0);
  const batch = await post(app, {
    ...transaction([{ resource: patient('standalone'), request: { method: 'POST', url: 'Patient' } }]),
    type: 'batch',
  });
  t.equal(batch.status, 200);
  t.equal(batch.body.entry?.[0].response?.status, '201 Created');
});

t.test('the CapabilityStatement declares transaction and batch', async (t) => {
  const { app } = await startTestApp(t);
  const statement = (await app.inject({ method: 'GET', url: '/metadata' })).json();
  const codes = (statement.rest[0].interaction ?? []).map((i: { code: string }) => i.code);
  t.ok(codes.includes('transaction'));
  t.ok(codes.includes('batch'));
});

t.test('absolute request URLs under the base and fullUrls that are URLs', async (t) => {
  const { app } = await startTestApp(t);
  const res = await post(
    app,
    transaction([
      { fullUrl: `${BASE}/Patient/client-side-1`, resource: patient('abs'), request: { method: 'POST', url: `${BASE}/Patient` } },
      { resource: encounter(`${BASE}/Patient/client-side-1`), request: { method: 'POST', url: 'Encounter' } },
    ]),
  );
  t.equal(res.status, 200, JSON.stringify(res.body));
  const patientId = res.body.entry?.[0].response?.location?.split('/')[1];
  t.not(patientId, 'client-side-1', 'POST ignores the id the client had in mind');
  t.equal(
    (res.body.entry?.[1].resource as Encounter).subject?.reference,
    `Patient/${patientId}`,
    'references to the fullUrl follow the new id',
  );
});
