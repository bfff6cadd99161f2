/**
 * create, read, vread, update, delete through the HTTP API, with the headers and status codes of FHIR R4 http.html.
 */
import type { Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

const BASE = 'http://127.0.0.1:8080';
const json = { 'content-type': 'application/fhir+json' };
const patient = (family: string, extra: Partial<Patient> = {}): Patient => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Ann'] }],
  gender: 'female',
  birthDate: '1980-02-29',
  ...extra,
});

t.test('create assigns id, versionId and lastUpdated and answers 201 with Location, ETag, Last-Modified', async (t) => {
  const { app } = await startTestApp(t);
  const res = await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: patient('Smith', { id: 'client-chosen' }) });
  t.equal(res.statusCode, 201);
  const body = res.json() as Patient;
  t.match(body.id, /^[0-9a-f-]{36}$/, 'the server assigns the id (a client id in a create is ignored)');
  t.not(body.id, 'client-chosen');
  t.equal(body.meta?.versionId, '1');
  t.match(body.meta?.lastUpdated, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  t.equal(res.headers.location, `${BASE}/Patient/${body.id}/_history/1`);
  t.equal(res.headers.etag, 'W/"1"');
  t.equal(res.headers['last-modified'], new Date(body.meta!.lastUpdated!).toUTCString());
  t.same(body.name, [{ family: 'Smith', given: ['Ann'] }]);
});

t.test('read and vread, with 304 for If-None-Match and If-Modified-Since', async (t) => {
  const { app } = await startTestApp(t);
  const created = (await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: patient('Read') })).json() as Patient;
  const id = created.id!;

  let res = await app.inject({ url: `/Patient/${id}` });
  t.equal(res.statusCode, 200);
  t.same(res.json(), created, 'read returns exactly what create returned');
  t.equal(res.headers.etag, 'W/"1"');
  t.ok(res.headers['last-modified']);

  res = await app.inject({ url: `/Patient/${id}/_history/1` });
  t.equal(res.statusCode, 200);
  t.same(res.json(), created);

  res = await app.inject({ url: `/Patient/${id}`, headers: { 'if-none-match': 'W/"1"' } });
  t.equal(res.statusCode, 304);
  t.equal(res.body, '');
  res = await app.inject({ url: `/Patient/${id}`, headers: { 'if-none-match': 'W/"2"' } });
  t.equal(res.statusCode, 200);

  const later = new Date(Date.now() + 60_000).toUTCString();
  const earlier = new Date(Date.now() - 3_600_000).toUTCString();
  t.equal((await app.inject({ url: `/Patient/${id}`, headers: { 'if-modified-since': later } })).statusCode, 304);
  t.equal((await app.inject({ url: `/Patient/${id}`, headers: { 'if-modified-since': earlier } })).statusCode, 200);

  res = await app.inject({ url: '/Patient/does-not-exist' });
  t.equal(res.statusCode, 404);
  t.equal(res.json().issue[0].code, 'not-found');
  t.equal((await app.inject({ url: `/Patient/${id}/_history/2` })).statusCode, 404);
  t.equal((await app.inject({ url: `/Patient/${id}/_history/abc` })).statusCode, 404);
  t.equal((await app.inject({ url: `/Encounter/${id}` })).statusCode, 404, 'ids are per type');
});

t.test('_summary and _elements on read', async (t) => {
  const { app } = await startTestApp(t);
  const created = (
    await app.inject({
      method: 'POST',
      url: '/Patient',
      headers: json,
      payload: patient('Summary', {
        text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Ann Summary</div>' },
        maritalStatus: { text: 'married' },
      }),
    })
  ).json() as Patient;

  let body = (await app.inject({ url: `/Patient/${created.id}?_summary=true` })).json() as Patient;
  t.ok(body.name && body.gender && body.birthDate, 'summary elements kept');
  t.equal(body.maritalStatus, undefined, 'non-summary elements dropped');
  t.equal(body.text, undefined);
  t.ok(
    body.meta?.tag?.some((tag) => tag.code === 'SUBSETTED'),
    'tagged SUBSETTED',
  );

  body = (await app.inject({ url: `/Patient/${created.id}?_summary=text` })).json() as Patient;
  t.ok(body.text);
  t.equal(body.name, undefined);

  body = (await app.inject({ url: `/Patient/${created.id}?_summary=data` })).json() as Patient;
  t.equal(body.text, undefined);
  t.ok(body.maritalStatus);

  body = (await app.inject({ url: `/Patient/${created.id}?_elements=birthDate,gender` })).json() as Patient;
  t.same(Object.keys(body).sort(), ['birthDate', 'gender', 'id', 'meta', 'resourceType']);

  const res = await app.inject({ url: `/Patient/${created.id}?_summary=maybe` });
  t.equal(res.statusCode, 400);
});

t.test('update: versions, If-Match, no-op, update-as-create, id rules', async (t) => {
  const { app } = await startTestApp(t);
  const created = (await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: patient('Before') })).json() as Patient;
  const id = created.id!;

  let res = await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, name: [{ family: 'After' }] } });
  t.equal(res.statusCode, 200);
  t.equal(res.json().meta.versionId, '2');
  t.equal(res.headers.etag, 'W/"2"');
  t.equal(res.headers.location, `${BASE}/Patient/${id}/_history/2`);

  res = await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, name: [{ family: 'After' }] } });
  t.equal(res.statusCode, 200, 'a no-op update succeeds');
  t.equal(res.json().meta.versionId, '2', 'and makes no new version');
  t.equal((await app.inject({ url: `/Patient/${id}/_history/3` })).statusCode, 404);

  res = await app.inject({
    method: 'PUT',
    url: `/Patient/${id}`,
    headers: { ...json, 'if-match': 'W/"1"' },
    payload: { ...created, name: [{ family: 'Stale' }] },
  });
  t.equal(res.statusCode, 412, 'a stale If-Match is refused');
  t.match(res.json().issue[0].diagnostics, /current version .* is 2/);

  res = await app.inject({
    method: 'PUT',
    url: `/Patient/${id}`,
    headers: { ...json, 'if-match': 'W/"2"' },
    payload: { ...created, name: [{ family: 'Fresh' }] },
  });
  t.equal(res.statusCode, 200);
  t.equal(res.json().meta.versionId, '3');

  res = await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: { ...json, 'if-match': 'banana' }, payload: created });
  t.equal(res.statusCode, 400);

  res = await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, id: 'other' } });
  t.equal(res.statusCode, 400, 'an id in the body that differs from the URL');
  t.match(res.json().issue[0].diagnostics, /does not match/);
  t.same(res.json().issue[0].expression, ['Patient.id']);

  const { id: _ignored, ...withoutId } = created;
  res = await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: withoutId });
  t.equal(res.statusCode, 400, 'the body must carry the id');

  res = await app.inject({ method: 'PUT', url: '/Patient/new-id-1', headers: json, payload: patient('New', { id: 'new-id-1' }) });
  t.equal(res.statusCode, 201, 'update-as-create');
  t.equal(res.json().meta.versionId, '1');
  t.equal(res.headers.location, `${BASE}/Patient/new-id-1/_history/1`);

  res = await app.inject({ method: 'PUT', url: '/Patient/bad!id', headers: json, payload: patient('X', { id: 'bad!id' }) });
  t.equal(res.statusCode, 400);

  res = await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { resourceType: 'Encounter', id } });
  t.equal(res.statusCode, 400, 'wrong resourceType');
  t.match(res.json().issue[0].diagnostics, /"Encounter" does not match the URL's Patient/);
});

t.test('Prefer: return=minimal | representation | OperationOutcome', async (t) => {
  const { app } = await startTestApp(t);
  let res = await app.inject({ method: 'POST', url: '/Patient', headers: { ...json, prefer: 'return=minimal' }, payload: patient('Min') });
  t.equal(res.statusCode, 201);
  t.equal(res.body, '');
  t.ok(res.headers.location);

  res = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: { ...json, prefer: 'return=OperationOutcome' },
    payload: patient('OO'),
  });
  t.equal(res.statusCode, 201);
  t.equal(res.json().resourceType, 'OperationOutcome');
  t.match(res.json().issue[0].diagnostics, /^Created Patient\/.+ version 1$/);

  res = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: { ...json, prefer: 'return=representation' },
    payload: patient('Rep'),
  });
  t.equal(res.json().resourceType, 'Patient');
});

t.test('delete keeps the history, answers 410 afterwards, and is harmless twice', async (t) => {
  const { app } = await startTestApp(t);
  const created = (await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: patient('Gone') })).json() as Patient;
  const id = created.id!;

  let res = await app.inject({ method: 'DELETE', url: `/Patient/${id}` });
  t.equal(res.statusCode, 204);
  t.equal(res.headers.etag, 'W/"2"');

  res = await app.inject({ url: `/Patient/${id}` });
  t.equal(res.statusCode, 410);
  t.equal(res.json().issue[0].code, 'deleted');
  t.equal((await app.inject({ url: `/Patient/${id}/_history/2` })).statusCode, 410, 'vread of the deletion');
  t.equal((await app.inject({ url: `/Patient/${id}/_history/1` })).statusCode, 200, 'earlier versions stay readable');

  res = await app.inject({ method: 'DELETE', url: `/Patient/${id}` });
  t.equal(res.statusCode, 204, 'deleting again is harmless');
  t.equal((await app.inject({ url: `/Patient/${id}/_history/3` })).statusCode, 404, 'and makes no version');

  t.equal((await app.inject({ method: 'DELETE', url: '/Patient/never-was' })).statusCode, 404);

  res = await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, name: [{ family: 'Back' }] } });
  t.equal(res.statusCode, 201, 'an update brings a deleted resource back');
  t.equal(res.json().meta.versionId, '3');

  const other = (await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: patient('Locked') })).json() as Patient;
  res = await app.inject({ method: 'DELETE', url: `/Patient/${other.id}`, headers: { 'if-match': 'W/"7"' } });
  t.equal(res.statusCode, 412, 'If-Match is honoured on delete');
});

t.test('invalid resources are refused with 400 and nothing is written', async (t) => {
  const { app, store } = await startTestApp(t);
  const cases: Array<[string, unknown, RegExp]> = [
    ['unknown element', { resourceType: 'Patient', colour: 'blue' }, /colour/],
    ['wrong type', { resourceType: 'Patient', active: 'yes' }, /active/],
    ['invalid code', { resourceType: 'Patient', gender: 'mail' }, /gender/],
    ['bad date', { resourceType: 'Patient', birthDate: '1980-13-45' }, /birthDate/],
    ['operator key', { resourceType: 'Patient', $where: 'sleep(1000)' }, /\$where/],
    ['nested operator', { resourceType: 'Patient', name: [{ family: { $gt: '' } }] }, /family/],
    ['constructor key', { resourceType: 'Patient', constructor: { name: 'x' } }, /constructor/],
    ['not an object', [1, 2, 3], /must be a Patient resource/],
    ['no resourceType', { name: [{ family: 'X' }] }, /no resourceType/],
  ];
  for (const [label, payload, pattern] of cases) {
    const res = await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: JSON.stringify(payload) });
    t.equal(res.statusCode, 400, label);
    const outcome = res.json();
    t.equal(outcome.resourceType, 'OperationOutcome', label);
    t.match(JSON.stringify(outcome.issue), pattern, `${label}: the issue names the problem`);
    t.ok(
      outcome.issue.every((i: { severity: string; code: string }) => i.severity && i.code),
      `${label}: severity and code`,
    );
  }
  t.equal(await store.versions.countDocuments({}), 0, 'nothing was written');
  t.equal(await store.heads.countDocuments({}), 0);
  t.equal((await app.inject({ url: '/metadata' })).statusCode, 200, 'the server keeps serving');
});

t.test('concurrent updates: If-Match lets exactly one win; without it every update lands as its own version', async (t) => {
  const { app } = await startTestApp(t);
  const created = (await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: patient('Race') })).json() as Patient;
  const id = created.id!;
  const guarded = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      app.inject({
        method: 'PUT',
        url: `/Patient/${id}`,
        headers: { ...json, 'if-match': 'W/"1"' },
        payload: { ...created, name: [{ family: `Guarded${i}` }] },
      }),
    ),
  );
  const statuses = guarded.map((r) => r.statusCode).sort();
  t.same(statuses, [200, ...Array(9).fill(412)], 'one 200, nine 412');

  const unguarded = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, name: [{ family: `Free${i}` }] } }),
    ),
  );
  t.ok(
    unguarded.every((r) => r.statusCode === 200),
    'all succeed',
  );
  const versions = unguarded.map((r) => Number(r.json().meta.versionId)).sort((a, b) => a - b);
  t.same(versions, [3, 4, 5, 6, 7, 8, 9, 10], 'each update its own version, none lost');
});

t.test('body-less interactions answer as usual when the client sends a Content-Type with no body (over a socket)', async (t) => {
  const { app } = await startTestApp(t);
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const send = (method: string, path: string, contentType: string, body?: string) =>
    fetch(`${address}${path}`, { method, headers: { 'content-type': contentType, accept: 'application/fhir+json' }, body });
  const create = async (family: string) =>
    ((await (await send('POST', '/Patient', 'application/fhir+json', JSON.stringify(patient(family)))).json()) as Patient).id!;

  // What FHIR clients send on every request: Content-Type: application/fhir+json (fetch adds Content-Length: 0).
  const first = await create('NoBodyDelete');
  let res = await send('DELETE', `/Patient/${first}`, 'application/fhir+json');
  t.equal(res.status, 204, 'DELETE with a JSON Content-Type and no body deletes');
  t.equal((await app.inject({ url: `/Patient/${first}` })).statusCode, 410, 'and the resource is gone');

  const second = await create('NoBodyDeletePlain');
  res = await send('DELETE', `/Patient/${second}`, 'text/plain');
  t.equal(res.status, 204, 'whatever the Content-Type: there is nothing to parse');

  await create('NoBodyConditional');
  res = await send('DELETE', '/Patient?family=NoBodyConditional', 'application/fhir+json');
  t.equal(res.status, 204, 'a conditional DELETE too');
  t.equal(
    ((await (await send('GET', '/Patient?family=NoBodyConditional', 'application/fhir+json')).json()) as { total?: number }).total ?? 0,
    0,
  );

  await create('NoBodySearch');
  res = await send('POST', '/Patient/_search?family=NoBodySearch', 'application/fhir+json');
  t.equal(res.status, 200, 'POST _search with its parameters in the URL and an empty body');
  t.equal(((await res.json()) as { entry?: unknown[] }).entry?.length, 1);

  res = await send('POST', '/Patient', 'application/fhir+json');
  t.equal(res.status, 400, 'a create still needs its body');
  res = await send('DELETE', `/Patient/${second}`, 'application/fhir+json', '{"not":');
  t.equal(res.status, 400, 'a DELETE that does carry a body still has it parsed (and refused when it is not JSON)');
});
