/**
 * Batch Bundles (POST [base], Bundle.type = batch): entries are independent, a failing entry answers with its
 * own status and OperationOutcome while the others are stored; and both kinds of Bundle through a real FHIR
 * client (fhir-kit-client) over a listening socket.
 */
import { createServer } from 'node:net';
import type { Bundle, BundleEntry, Encounter, OperationOutcome, Patient, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { Client, type FhirResource } from 'fhir-kit-client';
import t from 'tap';
import { FEATURED_ONLY, startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { JSON_HEADERS, create } from '../fhir/search/helpers.js';

stopMongoAtEnd(t);

const patient = (value: string, extra: Partial<Patient> = {}): Patient => ({
  resourceType: 'Patient',
  identifier: [{ system: 'urn:mrn', value }],
  name: [{ family: 'Batch', given: [value] }],
  ...extra,
});

const encounter = (subject: string): Encounter => ({
  resourceType: 'Encounter',
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
  subject: { reference: subject },
});

function batch(entry: unknown[]): Bundle {
  return { resourceType: 'Bundle', type: 'batch', entry: entry as BundleEntry[] };
}

async function post(app: FastifyInstance, body: unknown): Promise<{ status: number; body: Bundle }> {
  const res = await app.inject({ method: 'POST', url: '/', headers: JSON_HEADERS, payload: body as object });
  return { status: res.statusCode, body: res.json() as Bundle };
}

const outcomeText = (entry: BundleEntry | undefined): string =>
  ((entry?.response?.outcome as OperationOutcome | undefined)?.issue ?? []).map((i) => i.diagnostics).join(' | ');

t.test('a batch with bad entries stores the good ones and reports each bad one', async (t) => {
  const { app } = await startTestApp(t, FEATURED_ONLY);
  const existing = await create(app, patient('b-existing'));
  const res = await post(
    app,
    batch([
      { resource: patient('b-1'), request: { method: 'POST', url: 'Patient' } },
      { resource: patient('b-bad', { gender: 'banana' as Patient['gender'] }), request: { method: 'POST', url: 'Patient' } },
      { resource: { ...existing, active: true }, request: { method: 'PUT', url: `Patient/${existing.id}`, ifMatch: 'W/"9"' } },
      { resource: patient('no-request') },
      {
        resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } as Resource,
        request: { method: 'POST', url: 'Observation' },
      },
      {
        fullUrl: 'urn:uuid:e0000000-0000-4000-8000-000000000001',
        resource: patient('b-2'),
        request: { method: 'POST', url: 'Patient' },
      },
      { resource: encounter('urn:uuid:e0000000-0000-4000-8000-000000000001'), request: { method: 'POST', url: 'Encounter' } },
      { request: { method: 'GET', url: `Patient/${existing.id}` } },
      { request: { method: 'GET', url: 'Patient/nobody-here' } },
      { resource: encounter(`Patient?identifier=urn:mrn|b-existing`), request: { method: 'POST', url: 'Encounter' } },
      42,
    ]),
  );
  t.equal(res.status, 200, 'a batch answers 200 whatever its entries do');
  t.equal(res.body.type, 'batch-response');
  const entries = res.body.entry!;
  t.equal(entries.length, 11, 'one response entry per request entry');
  t.equal(entries[0].response?.status, '201 Created');
  t.equal(entries[1].response?.status, '400 Bad Request');
  t.match(outcomeText(entries[1]), /Bundle\.entry\[1\].*gender|banana/i);
  t.equal(entries[2].response?.status, '412 Precondition Failed', 'If-Match that does not hold: 412 for that entry only');
  t.equal(entries[3].response?.status, '400 Bad Request');
  t.match(outcomeText(entries[3]), /no request/);
  t.equal(entries[4].response?.status, '404 Not Found');
  t.match(outcomeText(entries[4]), /Bundle\.entry\[4\].*Observation is not hosted/);
  t.equal(entries[5].response?.status, '201 Created');
  t.equal(entries[6].response?.status, '400 Bad Request', 'batch entries cannot refer to each other');
  t.match(outcomeText(entries[6]), /batch are independent/);
  t.equal(entries[7].response?.status, '200 OK');
  t.equal((entries[7].resource as Patient).id, existing.id);
  t.equal(entries[7].response?.etag, 'W/"1"', 'the failed PUT changed nothing');
  t.equal(entries[8].response?.status, '404 Not Found');
  t.equal(entries[9].response?.status, '201 Created');
  t.equal(
    (entries[9].resource as Encounter).subject?.reference,
    `Patient/${existing.id}`,
    'conditional references are resolved in batches too',
  );
  t.equal(entries[10].response?.status, '400 Bad Request');

  const stored = (await app.inject({ method: 'GET', url: '/Patient?identifier=urn:mrn|b-1,urn:mrn|b-2' })).json() as Bundle;
  t.equal(stored.total, 2, 'the good entries were stored');
  const bad = (await app.inject({ method: 'GET', url: '/Patient?identifier=urn:mrn|b-bad' })).json() as Bundle;
  t.equal(bad.total, 0);
});

t.test('batch GET entries: read, vread, search, history, If-None-Match', async (t) => {
  const { app } = await startTestApp(t);
  const p = await create(app, patient('g-1'));
  const res = await post(
    app,
    batch([
      { request: { method: 'GET', url: `Patient/${p.id}/_history/1` } },
      { request: { method: 'GET', url: 'Patient?identifier=urn:mrn|g-1' } },
      { request: { method: 'GET', url: `Patient/${p.id}/_history` } },
      { request: { method: 'GET', url: `Patient/${p.id}`, ifNoneMatch: 'W/"1"' } },
      { request: { method: 'GET', url: `Patient/${p.id}/_history/7` } },
      { request: { method: 'GET', url: 'Patient/$everything-or-so' } },
    ]),
  );
  t.equal(res.status, 200);
  const entries = res.body.entry!;
  t.equal((entries[0].resource as Patient).meta?.versionId, '1');
  t.equal((entries[1].resource as Bundle).type, 'searchset');
  t.equal((entries[1].resource as Bundle).total, 1);
  t.equal((entries[2].resource as Bundle).type, 'history');
  t.equal(entries[3].response?.status, '304 Not Modified');
  t.equal(entries[3].resource, undefined);
  t.equal(entries[4].response?.status, '404 Not Found');
  t.equal(entries[5].response?.status, '400 Bad Request');
});

t.test('batch PATCH with a JSON Patch in a Binary, and DELETE', async (t) => {
  const { app } = await startTestApp(t);
  const p = await create(app, patient('p-1'));
  const gone = await create(app, patient('p-2'));
  const patchData = Buffer.from(JSON.stringify([{ op: 'add', path: '/active', value: true }])).toString('base64');
  const res = await post(
    app,
    batch([
      {
        resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: patchData },
        request: { method: 'PATCH', url: `Patient/${p.id}` },
      },
      {
        resource: { resourceType: 'Binary', contentType: 'text/plain', data: patchData },
        request: { method: 'PATCH', url: `Patient/${p.id}` },
      },
      { request: { method: 'DELETE', url: `Patient/${gone.id}` } },
    ]),
  );
  const entries = res.body.entry!;
  t.equal(entries[0].response?.status, '200 OK');
  t.equal((entries[0].resource as Patient).active, true);
  t.equal(entries[1].response?.status, '400 Bad Request');
  t.equal(entries[2].response?.status, '204 No Content');
  t.equal((await app.inject({ method: 'GET', url: `/Patient/${gone.id}` })).statusCode, 410);
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

t.test('fhir-kit-client: client.transaction and client.batch over a socket', async (t) => {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}/fhir`;
  const { app } = await startTestApp(t, { basePath: '/fhir', baseUrl, referencePolicy: 'strict' });
  await app.listen({ port, host: '127.0.0.1' });
  const client = new Client({ baseUrl });

  const p = 'urn:uuid:f0000000-0000-4000-8000-000000000001';
  const response = (await client.transaction({
    body: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: p, resource: patient('kit'), request: { method: 'POST', url: 'Patient' } },
        { resource: encounter(p), request: { method: 'POST', url: 'Encounter' } },
      ],
    } as unknown as FhirResource,
  })) as unknown as Bundle;
  t.equal(response.type, 'transaction-response');
  const patientId = response.entry?.[0].response?.location?.split('/')[1];
  t.ok(patientId);
  t.equal((response.entry?.[1].resource as Encounter).subject?.reference, `Patient/${patientId}`);

  const failure = await client
    .transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ resource: encounter('Patient/missing'), request: { method: 'POST', url: 'Encounter' } }],
      } as unknown as FhirResource,
    })
    .then(
      () => undefined,
      (error: unknown) => error as { response?: { status?: number; data?: OperationOutcome } },
    );
  t.equal(failure?.response?.status, 422, 'a dangling reference fails the transaction (strict policy)');
  t.match(failure?.response?.data?.issue?.[0].diagnostics, /Bundle\.entry\[0\].*Patient\/missing/);

  const batchResponse = (await client.batch({
    body: {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: `Patient/${patientId}` } },
        { resource: encounter('Patient/missing'), request: { method: 'POST', url: 'Encounter' } },
      ],
    } as unknown as FhirResource,
  })) as unknown as Bundle;
  t.equal(batchResponse.type, 'batch-response');
  t.equal(batchResponse.entry?.[0].response?.status, '200 OK');
  t.equal(batchResponse.entry?.[1].response?.status, '422 Unprocessable Entity');
});

t.test('BUNDLE_MAX_ENTRIES, BUNDLE_MAX_SEARCHES and BUNDLE_BODY_LIMIT are read and checked by the configuration', async (t) => {
  const { loadConfig } = await import('../../src/config.js');
  t.same(loadConfig({}).bundle, { maxEntries: 10_000, maxSearches: 100, bodyLimit: 50 * 1024 * 1024 });
  t.same(loadConfig({ BUNDLE_MAX_ENTRIES: '5', BUNDLE_MAX_SEARCHES: '2', BUNDLE_BODY_LIMIT: '2048' }).bundle, {
    maxEntries: 5,
    maxSearches: 2,
    bodyLimit: 2048,
  });
  t.throws(() => loadConfig({ BUNDLE_MAX_SEARCHES: '-1' }), /BUNDLE_MAX_SEARCHES="-1" is invalid/);
  t.throws(() => loadConfig({ BUNDLE_MAX_ENTRIES: '0' }), /BUNDLE_MAX_ENTRIES="0" is invalid/);
  t.throws(() => loadConfig({ BUNDLE_BODY_LIMIT: 'lots' }), /BUNDLE_BODY_LIMIT="lots" is invalid/);
});
