/** The CapabilityStatement is a valid R4 resource and says exactly what the server does. */
import type { CapabilityStatement } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd, testValidator } from '../helpers/app.js';

stopMongoAtEnd(t);

t.test('GET /metadata validates against the R4 CapabilityStatement definition', async (t) => {
  const { app } = await startTestApp(t);
  const statement = (await app.inject({ url: '/metadata' })).json() as CapabilityStatement;
  const issues = (await testValidator()).validate(statement);
  t.same(
    issues.filter((i) => i.severity === 'error' || i.severity === 'fatal'),
    [],
    'no errors',
  );

  const patient = statement.rest?.[0].resource?.find((r) => r.type === 'Patient');
  t.same(
    patient?.interaction?.map((i) => i.code).sort(),
    ['create', 'delete', 'history-instance', 'history-type', 'patch', 'read', 'search-type', 'update', 'vread'],
    'every interaction this server serves, and no other',
  );
  t.equal(patient?.versioning, 'versioned-update');
  t.ok(
    patient?.supportedProfile?.includes('http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'),
    'profiles loaded from profiles/ are listed',
  );
  t.same(statement.rest?.[0].interaction?.map((i) => i.code).sort(), ['batch', 'history-system', 'search-system', 'transaction']);

  // Each interaction it claims answers something other than 404/405.
  const json = { 'content-type': 'application/fhir+json' };
  const created = await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: { resourceType: 'Patient' } });
  const id = created.json().id;
  const probes: Record<string, () => Promise<number>> = {
    create: async () => created.statusCode,
    read: async () => (await app.inject({ url: `/Patient/${id}` })).statusCode,
    vread: async () => (await app.inject({ url: `/Patient/${id}/_history/1` })).statusCode,
    update: async () =>
      (await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { resourceType: 'Patient', id, active: true } }))
        .statusCode,
    patch: async () =>
      (
        await app.inject({
          method: 'PATCH',
          url: `/Patient/${id}`,
          headers: { 'content-type': 'application/json-patch+json' },
          payload: [{ op: 'add', path: '/active', value: false }],
        })
      ).statusCode,
    'history-instance': async () => (await app.inject({ url: `/Patient/${id}/_history` })).statusCode,
    'history-type': async () => (await app.inject({ url: '/Patient/_history' })).statusCode,
    'search-type': async () => (await app.inject({ url: `/Patient?_id=${id}` })).statusCode,
    delete: async () => (await app.inject({ method: 'DELETE', url: `/Patient/${id}` })).statusCode,
  };
  for (const code of patient?.interaction?.map((i) => i.code) ?? []) {
    const status = await probes[code as string]();
    t.ok(status >= 200 && status < 300, `${code} answers ${status}`);
  }
});
