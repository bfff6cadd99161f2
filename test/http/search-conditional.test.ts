/**
 * Conditional create (If-None-Exist), conditional update (PUT [type]?criteria) and conditional delete
 * (DELETE [type]?criteria) with the rules for no, one and several matches; concurrent conditional creates
 * with the same criteria make ONE resource.
 */
import type { Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { BASE, JSON_HEADERS, create, ids } from '../fhir/search/helpers.js';

stopMongoAtEnd(t);

const patient = (value: string, extra: Partial<Patient> = {}): Patient => ({
  resourceType: 'Patient',
  identifier: [{ system: 'urn:mrn', value }],
  name: [{ family: 'Conditional' }],
  ...extra,
});

t.test('conditional create: 0 matches creates, 1 returns it, several are 412', async (t) => {
  const { app } = await startTestApp(t);
  const post = (body: Patient, criteria: string) =>
    app.inject({ method: 'POST', url: '/Patient', headers: { ...JSON_HEADERS, 'if-none-exist': criteria }, payload: body });
  let res = await post(patient('1'), 'identifier=urn:mrn|1');
  t.equal(res.statusCode, 201);
  const id = res.json().id;
  res = await post(patient('1', { gender: 'male' }), 'identifier=urn:mrn|1');
  t.equal(res.statusCode, 200, 'a match: nothing created');
  t.equal(res.json().id, id);
  t.equal(res.json().gender, undefined, 'the existing resource, unchanged');
  t.equal(res.headers.location, `${BASE}/Patient/${id}/_history/1`);
  res = await post(patient('1'), `${BASE}/Patient?identifier=urn:mrn|1`);
  t.equal(res.statusCode, 200, 'criteria given as a full URL');
  await create(app, patient('2'));
  await create(app, patient('2'));
  res = await post(patient('2'), 'identifier=urn:mrn|2');
  t.equal(res.statusCode, 412, 'several matches');
  res = await post(patient('3'), 'shoe-size=3');
  t.equal(res.statusCode, 400, 'criteria are parsed strictly: an unknown parameter is an error');
  res = await post(patient('3'), '_count=1');
  t.equal(res.statusCode, 400, 'result parameters are not criteria');
  res = await post({ resourceType: 'Encounter' } as unknown as Patient, 'identifier=x');
  t.equal(res.statusCode, 400, 'the body is checked before anything else');
  t.same(await ids(app, '/Patient?identifier=urn:mrn|1'), [id]);
});

t.test('ten simultaneous conditional creates with the same criteria make one resource', async (t) => {
  const { app } = await startTestApp(t);
  for (const round of [1, 2, 3]) {
    const value = `race-${round}`;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        app.inject({
          method: 'POST',
          url: '/Patient',
          headers: { ...JSON_HEADERS, 'if-none-exist': `identifier=urn:mrn|${value}` },
          payload: patient(value, { name: [{ family: `Racer${i}` }] }),
        }),
      ),
    );
    const statuses = results.map((r) => r.statusCode).sort();
    t.same(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 201], `round ${round}: one 201, nine 200`);
    t.equal(new Set(results.map((r) => r.json().id)).size, 1, 'all answer with the same resource');
    t.equal((await ids(app, `/Patient?identifier=urn:mrn|${value}`)).length, 1, 'one resource stored');
  }
  t.equal((await app.inject({ url: '/Patient?_summary=count&family=racer' })).json().total, 3);
});

t.test('conditional update: creates, updates, 400 on an id mismatch, 412 on several', async (t) => {
  const { app } = await startTestApp(t);
  const put = (body: Patient, query: string, headers: Record<string, string> = {}) =>
    app.inject({ method: 'PUT', url: `/Patient?${query}`, headers: { ...JSON_HEADERS, ...headers }, payload: body });
  let res = await put(patient('u1'), 'identifier=urn:mrn|u1');
  t.equal(res.statusCode, 201, 'no match, no id: created');
  const id = res.json().id;
  res = await put(patient('u1', { gender: 'female' }), 'identifier=urn:mrn|u1');
  t.equal(res.statusCode, 200, 'one match: updated');
  t.equal(res.json().id, id);
  t.equal(res.json().meta.versionId, '2');
  t.equal(res.json().gender, 'female');
  res = await put({ ...patient('u1', { gender: 'male' }), id }, 'identifier=urn:mrn|u1', { 'if-match': 'W/"2"' });
  t.equal(res.statusCode, 200, 'the matching id in the body, and If-Match');
  res = await put({ ...patient('u1'), id: 'someone-else' }, 'identifier=urn:mrn|u1');
  t.equal(res.statusCode, 400, 'a body id that is not the match');
  res = await put(patient('u1'), 'identifier=urn:mrn|u1', { 'if-match': 'W/"1"' });
  t.equal(res.statusCode, 412, 'a stale If-Match');
  res = await put({ ...patient('u2'), id: 'chosen-id' }, 'identifier=urn:mrn|u2');
  t.equal(res.statusCode, 201, 'no match, an id in the body: update as create');
  t.equal(res.json().id, 'chosen-id');
  await create(app, patient('u3'));
  await create(app, patient('u3'));
  t.equal((await put(patient('u3'), 'identifier=urn:mrn|u3')).statusCode, 412);
  t.equal(
    (await app.inject({ method: 'PUT', url: '/Patient', headers: JSON_HEADERS, payload: patient('u4') })).statusCode,
    400,
    'no id, no criteria',
  );
  const racing = await Promise.all(Array.from({ length: 6 }, () => put(patient('u5'), 'identifier=urn:mrn|u5')));
  t.equal(racing.filter((r) => r.statusCode === 201).length, 1, 'concurrent conditional updates with no match create once');
  t.equal((await ids(app, '/Patient?identifier=urn:mrn|u5')).length, 1);
});

t.test('conditional delete: one match is deleted, none is a no-op, several are 412', async (t) => {
  const { app } = await startTestApp(t);
  const one = await create(app, patient('d1'));
  let res = await app.inject({ method: 'DELETE', url: '/Patient?identifier=urn:mrn|d1' });
  t.equal(res.statusCode, 204);
  t.equal(res.headers.etag, 'W/"2"');
  t.equal((await app.inject({ url: `/Patient/${one.id}` })).statusCode, 410);
  res = await app.inject({ method: 'DELETE', url: '/Patient?identifier=urn:mrn|d1' });
  t.equal(res.statusCode, 204, 'nothing matches any more: nothing to do');
  await create(app, patient('d2'));
  await create(app, patient('d2'));
  res = await app.inject({ method: 'DELETE', url: '/Patient?identifier=urn:mrn|d2' });
  t.equal(res.statusCode, 412);
  t.equal((await ids(app, '/Patient?identifier=urn:mrn|d2')).length, 2, 'nothing deleted');
  t.equal((await app.inject({ method: 'DELETE', url: '/Patient' })).statusCode, 400, 'no criteria');
  t.equal((await app.inject({ method: 'DELETE', url: '/Patient?shoe=1' })).statusCode, 400);
  const cs = (await app.inject({ url: '/metadata' })).json().rest[0].resource.find((r: { type: string }) => r.type === 'Patient');
  t.equal(cs.conditionalCreate, true);
  t.equal(cs.conditionalUpdate, true);
  t.equal(cs.conditionalDelete, 'single');
});
