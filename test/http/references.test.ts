/** Reference integrity: strict resolves references to hosted types; other types and servers are stored as given. */
import t from 'tap';
import { FEATURED_ONLY, startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

const json = { 'content-type': 'application/fhir+json' };

t.test('strict: references to hosted types must resolve', async (t) => {
  // Hosting the featured types only, so that Practitioner below is a type this server does not host.
  const { app } = await startTestApp(t, { referencePolicy: 'strict', baseUrl: 'https://fhir.example.org', ...FEATURED_ONLY });
  const patientId = (await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: { resourceType: 'Patient' } })).json().id;
  const encounter = (subject: string, extra: Record<string, unknown> = {}) => ({
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: subject },
    ...extra,
  });

  let res = await app.inject({ method: 'POST', url: '/Encounter', headers: json, payload: encounter(`Patient/${patientId}`) });
  t.equal(res.statusCode, 201, 'relative reference to a stored patient');
  res = await app.inject({
    method: 'POST',
    url: '/Encounter',
    headers: json,
    payload: encounter(`https://fhir.example.org/Patient/${patientId}`),
  });
  t.equal(res.statusCode, 201, 'absolute reference under our own base');
  res = await app.inject({ method: 'POST', url: '/Encounter', headers: json, payload: encounter(`Patient/${patientId}/_history/1`) });
  t.equal(res.statusCode, 201, 'version-specific reference');

  res = await app.inject({ method: 'POST', url: '/Encounter', headers: json, payload: encounter('Patient/nobody') });
  t.equal(res.statusCode, 422);
  t.equal(res.json().issue[0].code, 'not-found');
  t.same(res.json().issue[0].expression, ['Encounter.subject.reference']);
  res = await app.inject({ method: 'POST', url: '/Encounter', headers: json, payload: encounter(`Patient/${patientId}/_history/9`) });
  t.equal(res.statusCode, 422, 'a version that does not exist');

  res = await app.inject({
    method: 'POST',
    url: '/Encounter',
    headers: json,
    payload: encounter(`Patient/${patientId}`, {
      participant: [{ individual: { reference: 'Practitioner/unknown-here' } }],
      serviceProvider: { reference: 'https://elsewhere.example/Organization/1' },
    }),
  });
  t.equal(res.statusCode, 201, 'references to other types and other servers are stored as given');

  await app.inject({ method: 'DELETE', url: `/Patient/${patientId}` });
  res = await app.inject({ method: 'POST', url: '/Encounter', headers: json, payload: encounter(`Patient/${patientId}`) });
  t.equal(res.statusCode, 422, 'a deleted resource does not resolve');
});

t.test('lenient: references are stored as given', async (t) => {
  const { app } = await startTestApp(t, { referencePolicy: 'lenient' });
  const res = await app.inject({
    method: 'POST',
    url: '/Encounter',
    headers: json,
    payload: { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: { reference: 'Patient/nobody' } },
  });
  t.equal(res.statusCode, 201);
});

t.test('strict with every type hosted: a reference to any hosted type must resolve, whatever the referring type', async (t) => {
  const { app } = await startTestApp(t, { referencePolicy: 'strict' });
  const post = (payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: `/${String(payload.resourceType)}`, headers: json, payload });
  const patientId = (await post({ resourceType: 'Patient' })).json().id;
  let res = await post({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'weight' },
    subject: { reference: `Patient/${patientId}` },
    performer: [{ reference: 'Practitioner/unknown-here' }],
  });
  t.equal(res.statusCode, 422, 'Practitioner is hosted, so Practitioner/unknown-here must exist');
  t.same(res.json().issue[0].expression, ['Observation.performer[0].reference']);
  const practitionerId = (await post({ resourceType: 'Practitioner', name: [{ family: 'Chalmers' }] })).json().id;
  res = await post({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'weight' },
    subject: { reference: `Patient/${patientId}` },
    performer: [{ reference: `Practitioner/${practitionerId}` }, { reference: 'https://elsewhere.example/Organization/1' }],
  });
  t.equal(res.statusCode, 201, 'a stored Practitioner resolves; another server is stored as given');
  res = await post({ resourceType: 'Condition', subject: { reference: 'Patient/nobody' }, code: { text: 'x' } });
  t.equal(res.statusCode, 422, 'the same rule for every referring type');
  t.same(res.json().issue[0].expression, ['Condition.subject.reference']);
});
