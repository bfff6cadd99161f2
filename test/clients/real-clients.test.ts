/**
 * FHIR client libraries written by others, against a real listening server: fhir-kit-client and @medplum/core's
 * MedplumClient each create, read, vread, update, patch, delete and read history. If our headers, status codes
 * or bodies stray from the specification, their own parsing fails here.
 */
import { createServer } from 'node:net';
import { MedplumClient } from '@medplum/core';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { Client, type FhirResource } from 'fhir-kit-client';
import t, { type Test } from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function listen(t: Test, basePath: string): Promise<string> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}${basePath}`;
  const { app } = await startTestApp(t, { basePath, baseUrl });
  await app.listen({ port, host: '127.0.0.1' });
  return baseUrl;
}

const newPatient = (): Patient => ({
  resourceType: 'Patient',
  identifier: [{ system: 'urn:oid:2.16.840.1.113883.2.4.6.3', value: '738472983' }],
  name: [{ family: 'van de Heuvel', given: ['Pieter'] }],
  gender: 'male',
  birthDate: '1944-11-17',
});

t.test('fhir-kit-client', async (t) => {
  const baseUrl = await listen(t, '');
  const client = new Client({ baseUrl });

  const created = (await client.create({ resourceType: 'Patient', body: newPatient() as unknown as FhirResource })) as Patient;
  t.ok(created.id);
  t.equal(created.meta?.versionId, '1');

  const read = (await client.read({ resourceType: 'Patient', id: created.id! })) as Patient;
  t.same(read, created);

  const updated = (await client.update({
    resourceType: 'Patient',
    id: created.id!,
    body: { ...read, active: true } as unknown as FhirResource,
  })) as Patient;
  t.equal(updated.meta?.versionId, '2');
  t.equal(updated.active, true);

  const patched = (await client.patch({
    resourceType: 'Patient',
    id: created.id!,
    jsonPatch: [{ op: 'replace', path: '/active', value: false }],
  })) as Patient;
  t.equal(patched.meta?.versionId, '3');
  t.equal(patched.active, false);

  const v1 = (await client.vread({ resourceType: 'Patient', id: created.id!, version: '1' })) as Patient;
  t.same(v1, created);

  await client.delete({ resourceType: 'Patient', id: created.id! });
  const failure = await client.read({ resourceType: 'Patient', id: created.id! }).then(
    () => undefined,
    (error: unknown) => error as { response?: { status?: number } },
  );
  t.equal(failure?.response?.status, 410, 'a deleted resource reads as 410 Gone');

  const history = (await client.history({ resourceType: 'Patient', id: created.id! })) as unknown as Bundle;
  t.equal(history.type, 'history');
  t.same(
    history.entry?.map((e) => e.request?.method),
    ['DELETE', 'PATCH', 'PUT', 'POST'],
  );

  const statement = (await client.capabilityStatement()) as { resourceType: string };
  t.equal(statement.resourceType, 'CapabilityStatement');
});

t.test('MedplumClient (@medplum/core), with the FHIR base under a path prefix', async (t) => {
  const baseUrl = await listen(t, '/fhir/R4');
  const medplum = new MedplumClient({
    baseUrl: baseUrl.replace(/fhir\/R4$/, ''),
    fhirUrlPath: 'fhir/R4',
    cacheTime: 0,
    fetch: (url: string | URL | Request, init?: RequestInit) => fetch(url, init),
  });

  const created = await medplum.createResource<Patient>(newPatient());
  t.equal(created.meta?.versionId, '1');
  const read = await medplum.readResource('Patient', created.id!);
  t.same(read, created);
  const updated = await medplum.updateResource<Patient>({ ...read, gender: 'other' });
  t.equal(updated.meta?.versionId, '2');
  t.equal(updated.gender, 'other');
  const patched = await medplum.patchResource('Patient', created.id!, [{ op: 'add', path: '/active', value: true }]);
  t.equal(patched.meta?.versionId, '3');
  const v2 = await medplum.readVersion('Patient', created.id!, '2');
  t.equal(v2.gender, 'other');
  const history = await medplum.readHistory('Patient', created.id!);
  t.equal(history.entry?.length, 3);
  await medplum.deleteResource('Patient', created.id!);
  await t.rejects(medplum.readResource('Patient', created.id!), /deleted|Gone/i);
});
