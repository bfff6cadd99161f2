/** patch (JSON Patch and FHIRPath Patch) and $validate through the HTTP API. */
import type { Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

const json = { 'content-type': 'application/fhir+json' };
const jsonPatch = { 'content-type': 'application/json-patch+json' };

async function createPatient(app: Awaited<ReturnType<typeof startTestApp>>['app']): Promise<Patient> {
  const res = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: json,
    payload: { resourceType: 'Patient', active: true, name: [{ family: 'Patch', given: ['Pat'] }], gender: 'female' },
  });
  return res.json() as Patient;
}

t.test('JSON Patch makes a new version, validated like an update', async (t) => {
  const { app, store } = await startTestApp(t);
  const patient = await createPatient(app);
  let res = await app.inject({
    method: 'PATCH',
    url: `/Patient/${patient.id}`,
    headers: jsonPatch,
    payload: [
      { op: 'test', path: '/active', value: true },
      { op: 'replace', path: '/active', value: false },
      { op: 'add', path: '/birthDate', value: '1990-05-06' },
    ],
  });
  t.equal(res.statusCode, 200);
  const patched = res.json() as Patient;
  t.equal(patched.active, false);
  t.equal(patched.birthDate, '1990-05-06');
  t.equal(patched.meta?.versionId, '2');
  t.equal(res.headers.etag, 'W/"2"');
  t.equal((await store.readVersion('Patient', patient.id!, 2))?.method, 'PATCH', 'history records PATCH');

  res = await app.inject({
    method: 'PATCH',
    url: `/Patient/${patient.id}`,
    headers: jsonPatch,
    payload: [{ op: 'replace', path: '/gender', value: 'mail' }],
  });
  t.equal(res.statusCode, 400, 'a patch whose result is invalid is refused');
  t.match(JSON.stringify(res.json()), /gender/);

  res = await app.inject({
    method: 'PATCH',
    url: `/Patient/${patient.id}`,
    headers: jsonPatch,
    payload: [{ op: 'test', path: '/active', value: true }],
  });
  t.equal(res.statusCode, 422, 'a failing test op');

  res = await app.inject({ method: 'PATCH', url: `/Patient/${patient.id}`, headers: jsonPatch, payload: { op: 'remove' } });
  t.equal(res.statusCode, 400, 'not a patch document');

  res = await app.inject({
    method: 'PATCH',
    url: `/Patient/${patient.id}`,
    headers: { ...jsonPatch, 'if-match': 'W/"1"' },
    payload: [{ op: 'replace', path: '/active', value: true }],
  });
  t.equal(res.statusCode, 412, 'If-Match honoured');

  res = await app.inject({
    method: 'PATCH',
    url: `/Patient/${patient.id}`,
    headers: jsonPatch,
    payload: [{ op: 'add', path: '/__proto__/polluted', value: 1 }],
  });
  t.equal(res.statusCode, 400);
  t.equal(({} as Record<string, unknown>).polluted, undefined);

  res = await app.inject({ method: 'PATCH', url: `/Patient/${patient.id}`, headers: { 'content-type': 'text/plain' }, payload: 'x' });
  t.equal(res.statusCode, 415);
  t.equal((await app.inject({ method: 'PATCH', url: '/Patient/nope', headers: jsonPatch, payload: [] })).statusCode, 404);
  t.equal((await store.readCurrent('Patient', patient.id!))?.versionId, 2, 'failed patches wrote nothing');
});

t.test('FHIRPath Patch', async (t) => {
  const { app } = await startTestApp(t);
  const patient = await createPatient(app);
  const res = await app.inject({
    method: 'PATCH',
    url: `/Patient/${patient.id}`,
    headers: json,
    payload: {
      resourceType: 'Parameters',
      parameter: [
        {
          name: 'operation',
          part: [
            { name: 'type', valueCode: 'replace' },
            { name: 'path', valueString: 'Patient.active' },
            { name: 'value', valueBoolean: false },
          ],
        },
        {
          name: 'operation',
          part: [
            { name: 'type', valueCode: 'add' },
            { name: 'path', valueString: 'Patient' },
            { name: 'name', valueString: 'birthDate' },
            { name: 'value', valueDate: '2001-02-03' },
          ],
        },
      ],
    },
  });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.json().active, false);
  t.equal(res.json().birthDate, '2001-02-03');
  t.equal(res.json().meta.versionId, '2');
});

t.test('$validate: type and instance level, mode and profile', async (t) => {
  const { app } = await startTestApp(t);
  let res = await app.inject({
    method: 'POST',
    url: '/Patient/$validate',
    headers: json,
    payload: { resourceType: 'Patient', gender: 'female' },
  });
  t.equal(res.statusCode, 200);
  t.equal(res.json().resourceType, 'OperationOutcome');
  t.equal(res.json().issue[0].severity, 'information');

  res = await app.inject({
    method: 'POST',
    url: '/Patient/$validate',
    headers: json,
    payload: { resourceType: 'Patient', gender: 'mail' },
  });
  t.equal(res.statusCode, 200, 'an invalid resource is still a successful $validate');
  t.ok(
    res
      .json()
      .issue.some((i: { severity: string; expression?: string[] }) => i.severity === 'error' && i.expression?.[0]?.includes('gender')),
  );

  res = await app.inject({
    method: 'POST',
    url: '/Patient/$validate',
    headers: json,
    payload: {
      resourceType: 'Parameters',
      parameter: [
        { name: 'resource', resource: { resourceType: 'Patient', gender: 'female' } },
        { name: 'mode', valueCode: 'create' },
        { name: 'profile', valueUri: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient' },
      ],
    },
  });
  t.equal(res.statusCode, 200);
  t.ok(
    res.json().issue.some((i: { severity: string }) => i.severity === 'error'),
    'US Core requires identifier and name: the profile parameter is applied',
  );

  res = await app.inject({
    method: 'POST',
    url: '/Patient/$validate?profile=http://example.org/unknown',
    headers: json,
    payload: { resourceType: 'Patient' },
  });
  t.equal(res.statusCode, 400, 'an unknown profile cannot be validated against');

  const patient = await createPatient(app);
  res = await app.inject({ method: 'POST', url: `/Patient/${patient.id}/$validate`, headers: json, payload: { ...patient, id: 'other' } });
  t.equal(res.statusCode, 200);
  t.match(JSON.stringify(res.json()), /does not match the URL/);

  res = await app.inject({
    method: 'POST',
    url: `/Patient/${patient.id}/$validate`,
    headers: json,
    payload: { resourceType: 'Parameters', parameter: [{ name: 'mode', valueCode: 'delete' }] },
  });
  t.equal(res.statusCode, 200);
  t.equal(res.json().issue[0].severity, 'information', 'deleting an existing resource is allowed');

  res = await app.inject({
    method: 'POST',
    url: '/Patient/$validate',
    headers: json,
    payload: { resourceType: 'Parameters', parameter: [{ name: 'mode', valueCode: 'explode' }] },
  });
  t.equal(res.statusCode, 400);
  res = await app.inject({ method: 'POST', url: '/Patient/$validate', headers: json, payload: { resourceType: 'Encounter' } });
  t.equal(res.statusCode, 400);

  const statement = (await app.inject({ url: '/metadata' })).json();
  const patientCaps = statement.rest[0].resource.find((r: { type: string }) => r.type === 'Patient');
  t.ok(
    patientCaps.operation.some((o: { name: string }) => o.name === 'validate'),
    'the CapabilityStatement lists $validate',
  );
  t.ok(patientCaps.interaction.some((i: { code: string }) => i.code === 'patch'));
  t.same(statement.patchFormat, ['application/json-patch+json', 'application/fhir+json', 'application/fhir+xml']);
});
