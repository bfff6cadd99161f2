/**
 * Bulk Data export over HTTP: kick-off errors, a full system export whose NDJSON lines equal the stored resources,
 * file splitting, _type and _since, Patient-level scope, 202 progress then the 200 manifest, DELETE, file URLs
 * (unknown jobs and files, path traversal), a snapshot at the transaction time, restart survival (clean stop and
 * crash), jobs that keep being interrupted, retention, and the CapabilityStatement.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CapabilityStatement, Encounter, MedicationRequest, OperationOutcome, Patient, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { parseJsonText } from '../../src/fhir/json-text.js';
import { resourceFromXmlText } from '../../src/fhir/xml/xml-to-json.js';
import { buildApp, type AppConfig } from '../../src/app.js';
import type { FhirContext } from '../../src/fhir/context.js';
import { storeNextVersion } from '../../src/fhir/interactions/versions.js';
import type { BulkExportDependencies } from '../../src/http/routes/bulk-export-routes.js';
import { ExportJobStore } from '../../src/store/export-jobs.js';
import { connectMongo, type MongoConnection } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { TEST_CONFIG, stopMongoAtEnd, testContext, testValidator } from '../helpers/app.js';
import { testMongo, uniqueDbName } from '../helpers/mongo.js';

stopMongoAtEnd(t);

const BASE = TEST_CONFIG.baseUrl;
const KICKOFF = { prefer: 'respond-async', accept: 'application/fhir+json' };

interface ExportApp {
  app: FastifyInstance;
  store: ResourceStore;
  connection: MongoConnection;
  ctx: FhirContext;
  close(): Promise<void>;
}

/** An app with Bulk Data export on database `db` and export directory `dir`; closed (not dropped) by close(). */
async function exportApp(
  db: string,
  dir: string,
  deps: Partial<BulkExportDependencies> = {},
  config: Partial<AppConfig> = {},
): Promise<ExportApp> {
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, db);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const app = await buildApp(
    { ...TEST_CONFIG, bulkExport: { retentionHours: 24, maxResourcesPerFile: 70 }, ...config },
    {
      store,
      validator: await testValidator(),
      logger: false,
      bulkExport: { dir, ...deps, tuning: { pollIntervalMs: 50, ...deps.tuning } },
    },
  );
  await app.ready();
  // Seeding writes skip the per-write transaction (two plain inserts each): the same documents, much faster.
  const ctx = await testContext(new ResourceStore(connection.db, false), BASE);
  let closed = false;
  return {
    app,
    store,
    connection,
    ctx,
    close: async () => {
      if (closed) return;
      closed = true;
      await app.close();
      await connection.close();
    },
  };
}

/** A database and export directory for one test, dropped and removed at its end. */
async function fixture(t: Test): Promise<{ db: string; dir: string }> {
  const db = uniqueDbName('bulk');
  const dir = await mkdtemp(join(tmpdir(), 'bulk-export-'));
  t.teardown(async () => {
    const mongo = await testMongo();
    const connection = await connectMongo(mongo.uri, db);
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { db, dir };
}

async function write(ctx: FhirContext, resource: Resource): Promise<Resource> {
  const id = resource.id ?? randomUUID();
  const previous = resource.id ? await ctx.store.readCurrent(resource.resourceType, id) : null;
  const version = await storeNextVersion(ctx, {
    type: resource.resourceType,
    id,
    previous,
    resource: { ...resource, id },
    deleted: false,
    method: previous ? 'PUT' : 'POST',
  });
  return version.resource;
}

const encounter = (subject: string | undefined, i: number): Encounter => ({
  resourceType: 'Encounter',
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
  ...(subject ? { subject: { reference: subject } } : {}),
  period: { start: `2024-02-${String(1 + (i % 28)).padStart(2, '0')}` },
  // Parsed from JSON text, as a client's body is: the digits "90.0" are kept beside the number 90 (decimal-text.ts).
  ...(i % 10 === 3 ? (parseJsonText('{"length":{"value":90.0,"unit":"min"}}') as Pick<Encounter, 'length'>) : {}),
});

const medication = (subject: string): MedicationRequest => ({
  resourceType: 'MedicationRequest',
  status: 'active',
  intent: 'order',
  medicationCodeableConcept: { text: `drug ${subject}` },
  subject: { reference: subject },
});

interface Seeded {
  patients: Resource[];
  /** Encounters and MedicationRequests that refer to a patient. */
  linked: Resource[];
  /** Resources in no patient's compartment: encounters without subject, prescriptions for a Group. */
  unlinked: Resource[];
}

/** 60 patients, 150 encounters (20 without a patient), 100 prescriptions (10 for a Group): 310 resources (or a tenth). */
async function seed(ctx: FhirContext, scale = 10): Promise<Seeded> {
  const seeded: Seeded = { patients: [], linked: [], unlinked: [] };
  const tasks: Array<() => Promise<void>> = [];
  for (let i = 0; i < 6 * scale; i++) {
    tasks.push(async () => {
      seeded.patients.push(
        await write(ctx, { resourceType: 'Patient', name: [{ family: `Export${i}`, given: ['Ünïcode', 'line\nbreak'] }] } as Patient),
      );
    });
  }
  await runAll(tasks, 8);
  tasks.length = 0;
  for (let i = 0; i < 15 * scale; i++) {
    const linked = i >= 2 * scale;
    tasks.push(async () => {
      const resource = await write(ctx, encounter(linked ? `Patient/${seeded.patients[i % seeded.patients.length].id}` : undefined, i));
      (linked ? seeded.linked : seeded.unlinked).push(resource);
    });
  }
  for (let i = 0; i < 10 * scale; i++) {
    const linked = i >= scale;
    tasks.push(async () => {
      const resource = await write(ctx, medication(linked ? `Patient/${seeded.patients[i % seeded.patients.length].id}` : 'Group/cohort'));
      (linked ? seeded.linked : seeded.unlinked).push(resource);
    });
  }
  await runAll(tasks, 8);
  return seeded;
}

async function runAll(tasks: Array<() => Promise<void>>, workers: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < tasks.length) await tasks[next++]();
    }),
  );
}

const keyOf = (r: Resource): string => `${r.resourceType}/${r.id}`;
const local = (url: string): string => (url.startsWith(BASE) ? url.slice(BASE.length) : url);

interface Manifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: boolean;
  output: Array<{ type: string; url: string; count: number }>;
  error: Array<{ type: string; url: string; count: number }>;
}

async function kickOff(app: FastifyInstance, url: string, headers: Record<string, string> = KICKOFF): Promise<string> {
  const res = await app.inject({ url, headers });
  if (res.statusCode !== 202) throw new Error(`kick-off ${url}: ${res.statusCode} ${res.body}`);
  return res.headers['content-location'] as string;
}

/** Polls a status URL until it is no longer 202 (bounded); returns the final response and the progress seen. */
async function poll(app: FastifyInstance, statusUrl: string, timeoutMs = 15_000) {
  const progress: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await app.inject({ url: local(statusUrl) });
    if (res.statusCode !== 202) return { res, progress };
    progress.push(String(res.headers['x-progress']));
    if (Date.now() > deadline) throw new Error(`export still running after ${timeoutMs} ms: ${progress.at(-1)}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Downloads every output file; returns the resources by key and the lines per file. */
async function download(t: Test, app: FastifyInstance, manifest: Manifest): Promise<Map<string, Resource>> {
  const resources = new Map<string, Resource>();
  for (const file of manifest.output) {
    const res = await app.inject({ url: local(file.url) });
    t.equal(res.statusCode, 200, `${file.url} downloads`);
    t.match(res.headers['content-type'], /^application\/fhir\+ndjson/);
    const lines = res.body.split('\n');
    t.equal(lines.pop(), '', 'the file ends with a newline');
    t.equal(lines.length, file.count, `${file.url}: count matches the lines`);
    for (const line of lines) {
      const resource = JSON.parse(line) as Resource;
      t.equal(resource.resourceType, file.type, 'one type per file');
      if (resources.has(keyOf(resource))) t.fail(`${keyOf(resource)} exported twice`);
      resources.set(keyOf(resource), resource);
    }
  }
  return resources;
}

async function complete(t: Test, app: FastifyInstance, statusUrl: string): Promise<Manifest> {
  const { res } = await poll(app, statusUrl);
  t.equal(res.statusCode, 200, `export completed: ${res.statusCode === 200 ? '' : res.body}`);
  t.match(res.headers['content-type'], /^application\/json/);
  return res.json() as Manifest;
}

t.test('kick-off refuses what it cannot do, with a 400 OperationOutcome', async (t) => {
  const { db, dir } = await fixture(t);
  const server = await exportApp(db, dir, { startRunner: false });
  t.teardown(server.close);
  const { app } = server;
  const cases: Array<{ url: string; headers: Record<string, string>; why: RegExp; method?: 'GET' | 'POST'; payload?: unknown }> = [
    { url: '/$export', headers: { accept: 'application/fhir+json' }, why: /Prefer: respond-async/ },
    { url: '/$export', headers: { ...KICKOFF, prefer: 'return=minimal' }, why: /Prefer: respond-async/ },
    { url: '/$export', headers: { ...KICKOFF, accept: 'application/fhir+xml' }, why: /Accept/ },
    { url: '/$export?_outputFormat=text/csv', headers: KICKOFF, why: /_outputFormat/ },
    { url: '/$export?_since=last-tuesday', headers: KICKOFF, why: /_since/ },
    { url: '/$export?_since=2024-13-45T00:00:00Z', headers: KICKOFF, why: /_since/ },
    { url: '/$export?_since=2024-01-01&_since=2024-02-01', headers: KICKOFF, why: /more than once/ },
    { url: '/$export?_type=Nonsense', headers: KICKOFF, why: /Nonsense/ },
    { url: '/Patient/$export?_typeFilter=Patient%3Factive%3Dtrue', headers: KICKOFF, why: /_typeFilter/ },
    {
      url: '/$export',
      method: 'POST',
      headers: { ...KICKOFF, 'content-type': 'application/fhir+json' },
      payload: { resourceType: 'Patient' },
      why: /Parameters/,
    },
    {
      url: '/$export',
      method: 'POST',
      headers: { ...KICKOFF, 'content-type': 'application/fhir+json' },
      payload: { resourceType: 'Parameters', parameter: [{ name: '_outputFormat', valueString: 'application/fhir+xml' }] },
      why: /_outputFormat/,
    },
  ];
  for (const c of cases) {
    const res = await app.inject({ url: c.url, method: c.method ?? 'GET', headers: c.headers, payload: c.payload as never });
    t.equal(res.statusCode, 400, `${c.method ?? 'GET'} ${c.url} ${JSON.stringify(c.headers)}: 400`);
    // A client that asked for XML is told so in XML (the kick-off itself takes FHIR JSON only, as the IG says).
    const xml = /xml/.test(String(res.headers['content-type']));
    t.equal(xml, c.headers.accept === 'application/fhir+xml', 'the refusal in the format asked for');
    const outcome = (xml ? resourceFromXmlText(res.body) : res.json()) as OperationOutcome;
    t.equal(outcome.resourceType, 'OperationOutcome');
    t.match(outcome.issue?.map((i) => i.diagnostics).join(' '), c.why);
  }
  t.equal((await app.inject({ method: 'HEAD', url: '/$export', headers: KICKOFF })).statusCode, 405, 'HEAD does not start an export');
  t.equal(await server.connection.db.collection('bulk_export_jobs').countDocuments(), 0, 'no job was created');

  // Accepted forms: every NDJSON spelling, Accept */* or none, POST with a Parameters body.
  for (const format of ['application/fhir+ndjson', 'application/ndjson', 'ndjson']) {
    t.equal((await app.inject({ url: `/$export?_outputFormat=${encodeURIComponent(format)}`, headers: KICKOFF })).statusCode, 202, format);
  }
  t.equal((await app.inject({ url: '/$export', headers: { prefer: 'respond-async', accept: '*/*' } })).statusCode, 202);
  t.equal((await app.inject({ url: '/$export', headers: { prefer: 'respond-async' } })).statusCode, 202);
  const posted = await app.inject({
    url: '/Patient/$export',
    method: 'POST',
    headers: { ...KICKOFF, 'content-type': 'application/fhir+json' },
    payload: {
      resourceType: 'Parameters',
      parameter: [
        { name: '_type', valueString: 'Encounter' },
        { name: '_since', valueInstant: '2024-01-01T00:00:00Z' },
      ],
    },
  });
  t.equal(posted.statusCode, 202);
  const job = await new ExportJobStore(server.connection.db).get(String(posted.headers['content-location']).split('/').pop()!);
  t.same(job?.params.types, ['Encounter']);
  t.same(job?.params.since, new Date('2024-01-01T00:00:00Z'));
  t.equal(job?.request, `${BASE}/Patient/$export`, 'a POST kick-off URL carries no parameters');

  // handling=lenient: an unsupported type or parameter is ignored and reported.
  const lenient = await app.inject({
    url: '/$export?_type=Nonsense,Patient&_elements=id',
    headers: { ...KICKOFF, prefer: 'respond-async, handling=lenient' },
  });
  t.equal(lenient.statusCode, 202);
  t.match(JSON.stringify(lenient.json()), /Ignored _type=Nonsense.*Ignored _elements/);
  t.match(lenient.headers['content-location'], new RegExp(`^${BASE.replace(/[.]/g, '\\.')}/\\$export-status/[0-9a-f-]{36}$`));
  // A queued job answers 202 with its place and a Retry-After.
  const status = await app.inject({ url: local(String(lenient.headers['content-location'])) });
  t.equal(status.statusCode, 202);
  t.match(status.headers['x-progress'], /queued|waiting/);
  t.ok(Number(status.headers['retry-after']) > 0);
  t.equal((await app.inject({ url: '/$export', method: 'PUT', headers: KICKOFF })).statusCode, 405);
});

t.test('exports of one seeded database (310 resources)', async (t) => {
  const { db, dir } = await fixture(t);
  const server = await exportApp(db, dir, { tuning: { batchSize: 7 } });
  t.teardown(server.close);
  const { app, store, ctx } = server;
  const seeded = await seed(ctx);
  const deleted = seeded.linked[5];
  t.equal((await app.inject({ method: 'DELETE', url: `/${deleted.resourceType}/${deleted.id}` })).statusCode, 204);
  let completedStatusUrl = '';
  let completedManifest: Manifest | undefined;

  await t.test('a system export: every live resource exactly as stored, split into files', async (t) => {
    const url = `/$export?_outputFormat=${encodeURIComponent('application/fhir+ndjson')}`;
    const statusUrl = await kickOff(app, url);
    const { res, progress } = await poll(app, statusUrl);
    t.equal(res.statusCode, 200);
    t.ok(progress.length > 0, 'answered 202 while running');
    t.ok(
      progress.some((p) => /^exporting (Patient|Encounter|MedicationRequest): \d+ of ~\d+$/.test(p)),
      `X-Progress names the type and counts: ${progress.slice(-3).join(' | ')}`,
    );
    t.ok(res.headers.expires && Date.parse(String(res.headers.expires)) > Date.now(), 'Expires is set');
    const manifest = res.json() as Manifest;
    t.equal(manifest.request, `${BASE}${url}`);
    t.equal(manifest.requiresAccessToken, false);
    t.same(manifest.error, []);
    t.ok(Date.parse(manifest.transactionTime) <= Date.now());
    t.same(
      manifest.output.map((f) => [f.type, f.count]),
      [
        ['Patient', 60],
        ['Encounter', 70],
        ['Encounter', 70],
        ['Encounter', 9],
        ['MedicationRequest', 70],
        ['MedicationRequest', 30],
      ],
      'types in order, at most 70 per file',
    );

    const exported = await download(t, app, manifest);
    const live = await store.heads.find({ deleted: false }).toArray();
    t.equal(exported.size, 309);
    t.equal(exported.size, live.length);
    t.notOk(exported.has(keyOf(deleted)), 'deleted resources are left out');
    const different = live.filter((head) => JSON.stringify(exported.get(head._id)) !== JSON.stringify(head.resource));
    t.same(
      different.map((h) => h._id),
      [],
      'every line is the stored resource, byte for byte',
    );
    const encounterFiles = await Promise.all(
      manifest.output.filter((f) => f.type === 'Encounter').map(async (f) => (await app.inject({ url: local(f.url) })).body),
    );
    const withLength = [...exported.values()].filter((r) => (r as Encounter).length?.value === 90).length;
    t.ok(withLength >= 14, `${withLength} encounters with a length`);
    t.equal(
      encounterFiles.join('').match(/"length":\{"value":90\.0,"unit":"min"\}/g)?.length,
      withLength,
      'decimals in the digits they were written with',
    );
    for (const head of live.slice(0, 5)) {
      t.same(exported.get(head._id), (await app.inject({ url: `/${head.type}/${head.id}` })).json(), `${head._id} as the server serves it`);
    }
    completedStatusUrl = statusUrl;
    completedManifest = manifest;
  });

  await t.test('_type and the Patient level', async (t) => {
    const patientsOnly = await complete(t, app, await kickOff(app, '/$export?_type=Patient'));
    t.same([...new Set(patientsOnly.output.map((f) => f.type))], ['Patient']);
    t.equal((await download(t, app, patientsOnly)).size, 60);
    const patientLevel = await complete(t, app, await kickOff(app, '/Patient/$export'));
    const inCompartments = await download(t, app, patientLevel);
    t.equal(inCompartments.size, 60 + seeded.linked.length - 1);
    for (const r of seeded.unlinked) if (inCompartments.has(keyOf(r))) t.fail(`${keyOf(r)} has no patient and was exported`);
    const encountersOfPatients = await complete(t, app, await kickOff(app, '/Patient/$export?_type=Encounter'));
    t.equal((await download(t, app, encountersOfPatients)).size, 130 - (deleted.resourceType === 'Encounter' ? 1 : 0));
  });

  await t.test('_since: only what changed after it', async (t) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const since = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const changed = [
      await write(ctx, { ...seeded.patients[3], active: true } as Patient),
      await write(ctx, { ...seeded.linked[10], status: 'cancelled' } as Encounter),
      await write(ctx, medication(`Patient/${seeded.patients[0].id}`)),
    ];
    const delta = await complete(t, app, await kickOff(app, `/$export?_since=${encodeURIComponent(since)}`));
    t.same([...(await download(t, app, delta)).keys()].sort(), changed.map(keyOf).sort());
    const deltaEncounters = await complete(t, app, await kickOff(app, `/$export?_since=${encodeURIComponent(since)}&_type=Encounter`));
    t.same([...(await download(t, app, deltaEncounters)).keys()], [keyOf(changed[1])]);
    const later = await complete(
      t,
      app,
      await kickOff(app, `/$export?_since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`),
    );
    t.same(later.output, [], 'nothing changed after a future instant: an empty output list');
  });

  await t.test('file URLs: only the files of completed jobs, no path traversal', async (t) => {
    const jobId = completedStatusUrl.split('/').pop()!;
    const fileUrl = local(completedManifest!.output[0].url);
    t.match(fileUrl, new RegExp(`^/\\$export-file/${jobId}/Patient-1\\.ndjson$`));
    for (const url of [
      `/$export-file/${randomUUID()}/Patient-1.ndjson`,
      `/$export-file/not-a-job/Patient-1.ndjson`,
      `/$export-file/${jobId}/Patient-99.ndjson`,
      `/$export-file/${jobId}/..%2F..%2Fpackage.json`,
      `/$export-file/${jobId}/%2e%2e%2f${jobId}%2fPatient-1.ndjson`,
      `/$export-file/${jobId}/../../package.json`,
      `/$export-file/..%2F..%2F..%2Fetc/passwd`,
    ]) {
      const res = await app.inject({ url });
      t.equal(res.statusCode, 404, `${url}: 404`);
      t.equal((res.json() as OperationOutcome).resourceType, 'OperationOutcome');
    }
    t.equal((await app.inject({ url: `/$export-status/${randomUUID()}` })).statusCode, 404);
    t.equal((await app.inject({ url: '/$export-status/not-a-job' })).statusCode, 404);
  });

  await t.test('DELETE of a completed job removes it and its files', async (t) => {
    const jobId = completedStatusUrl.split('/').pop()!;
    const fileUrl = local(completedManifest!.output[0].url);
    t.ok(existsSync(join(dir, jobId)), 'the files are on disk');
    const cancelled = await app.inject({ method: 'DELETE', url: local(completedStatusUrl) });
    t.equal(cancelled.statusCode, 202);
    t.equal((cancelled.json() as OperationOutcome).resourceType, 'OperationOutcome');
    t.notOk(existsSync(join(dir, jobId)), 'the files are gone');
    t.equal((await app.inject({ url: local(completedStatusUrl) })).statusCode, 404, 'status 404 after DELETE');
    t.equal((await app.inject({ url: fileUrl })).statusCode, 404, 'files 404 after DELETE');
    t.equal((await app.inject({ method: 'DELETE', url: local(completedStatusUrl) })).statusCode, 404, 'a second DELETE: 404');
  });

  await t.test('DELETE of a running job stops it and leaves nothing', async (t) => {
    await server.close();
    // One resource per batch, so that the job is still running when it is cancelled.
    const slow = await exportApp(db, dir, { tuning: { batchSize: 1 } });
    t.teardown(slow.close);
    const running = await kickOff(slow.app, '/$export');
    const runningId = running.split('/').pop()!;
    const deadline = Date.now() + 10_000;
    let status = await slow.app.inject({ url: local(running) });
    while (status.statusCode === 202 && !/exporting/.test(String(status.headers['x-progress'])) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      status = await slow.app.inject({ url: local(running) });
    }
    t.match(status.headers['x-progress'], /^exporting /, 'the job is running');
    t.equal((await slow.app.inject({ method: 'DELETE', url: local(running) })).statusCode, 202);
    t.equal((await slow.app.inject({ url: local(running) })).statusCode, 404);
    t.notOk(existsSync(join(dir, runningId)), 'no files left of the cancelled job');
    t.equal(await slow.connection.db.collection('bulk_export_jobs').countDocuments({ _id: runningId as never }), 0);
  });
});

t.test('a snapshot at the transaction time, and a restart after a clean stop', async (t) => {
  const { db, dir } = await fixture(t);
  // The first server accepts the job but stops before its runner exports anything.
  const first = await exportApp(db, dir, { startRunner: false });
  t.teardown(first.close);
  const seeded = await seed(first.ctx, 1);
  const statusUrl = await kickOff(first.app, '/$export');
  const transactionTime = new Date();
  await new Promise((resolve) => setTimeout(resolve, 5));
  // Written after the kick-off: updates, a deletion and a creation.
  const before = seeded.patients[4];
  await write(first.ctx, { ...before, active: false } as Patient);
  const deletedLater = seeded.linked[0];
  t.equal((await first.app.inject({ method: 'DELETE', url: `/${deletedLater.resourceType}/${deletedLater.id}` })).statusCode, 204);
  const createdLater = await write(first.ctx, { resourceType: 'Patient', name: [{ family: 'Later' }] } as Patient);
  t.equal((await first.app.inject({ url: local(statusUrl) })).statusCode, 202);
  await first.close();

  const second = await exportApp(db, dir);
  t.teardown(second.close);
  const manifest = await complete(t, second.app, statusUrl);
  t.ok(Date.parse(manifest.transactionTime) <= transactionTime.getTime(), "the transaction time is the kick-off's");
  const exported = await download(t, second.app, manifest);
  t.equal(exported.size, 31, 'exactly the resources that existed at the transaction time');
  t.same(exported.get(keyOf(before)), before, 'a resource updated later is exported as it was');
  t.same(exported.get(keyOf(deletedLater)), deletedLater, 'a resource deleted later is exported as it was');
  t.notOk(exported.has(keyOf(createdLater)), 'a resource created later is not exported');
});

t.test("a crashed runner's job is taken over; one interrupted too often fails clearly", async (t) => {
  const { db, dir } = await fixture(t);
  const server = await exportApp(db, dir, { startRunner: false });
  t.teardown(server.close);
  await seed(server.ctx, 1);
  const crashed = await kickOff(server.app, '/$export?_type=Patient');
  const doomed = await kickOff(server.app, '/$export?_type=Patient');
  const jobs = new ExportJobStore(server.connection.db);
  const past = new Date(Date.now() - 1000);
  // As a runner that died mid-export leaves them: in progress, a lapsed lease, a partial directory.
  await jobs.jobs.updateOne(
    { _id: crashed.split('/').pop()! },
    { $set: { state: 'in-progress', owner: 'dead', leaseUntil: past, attempts: 1 } },
  );
  await jobs.jobs.updateOne(
    { _id: doomed.split('/').pop()! },
    { $set: { state: 'in-progress', owner: 'dead', leaseUntil: past, attempts: 3 } },
  );
  await server.close();

  const restarted = await exportApp(db, dir);
  t.teardown(restarted.close);
  const manifest = await complete(t, restarted.app, crashed);
  t.equal((await download(t, restarted.app, manifest)).size, 6);
  const { res } = await poll(restarted.app, doomed);
  t.equal(res.statusCode, 500);
  const outcome = res.json() as OperationOutcome;
  t.equal(outcome.resourceType, 'OperationOutcome');
  t.match(outcome.issue?.[0]?.diagnostics, /interrupted 3 times/);
});

t.test('completed exports expire; orphaned directories are removed', async (t) => {
  const { db, dir } = await fixture(t);
  const orphan = join(dir, randomUUID());
  await rm(orphan, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(orphan));
  // About a third of a second of retention, cleanup every 100 ms.
  const server = await exportApp(
    db,
    dir,
    { tuning: { cleanupIntervalMs: 100 } },
    { bulkExport: { retentionHours: 0.0001, maxResourcesPerFile: 100 } },
  );
  t.teardown(server.close);
  await write(server.ctx, { resourceType: 'Patient', name: [{ family: 'Brief' }] } as Patient);
  const statusUrl = await kickOff(server.app, '/$export');
  const manifest = await complete(t, server.app, statusUrl);
  t.equal(manifest.output.length, 1);
  const deadline = Date.now() + 5000;
  while ((await server.app.inject({ url: local(statusUrl) })).statusCode !== 404 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.equal((await server.app.inject({ url: local(statusUrl) })).statusCode, 404, 'the job expired');
  t.same(await readdir(dir), [], 'its files and the orphaned directory are gone');
});

t.test('the CapabilityStatement declares the export and $everything operations', async (t) => {
  const { db, dir } = await fixture(t);
  const server = await exportApp(db, dir, { startRunner: false });
  t.teardown(server.close);
  const statement = (await server.app.inject({ url: '/metadata' })).json() as CapabilityStatement;
  t.same(statement.instantiates, ['http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data']);
  t.same(
    statement.rest?.[0].operation?.find((o) => o.name === 'export')?.definition,
    'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export',
  );
  const patient = statement.rest?.[0].resource?.find((r) => r.type === 'Patient');
  t.same(
    patient?.operation?.find((o) => o.name === 'export')?.definition,
    'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export',
  );
  t.same(
    patient?.operation?.find((o) => o.name === 'everything')?.definition,
    'http://hl7.org/fhir/OperationDefinition/Patient-everything',
  );
  const issues = (await testValidator()).validate(statement);
  t.same(
    issues.filter((i) => i.severity === 'error' || i.severity === 'fatal'),
    [],
    'still a valid CapabilityStatement',
  );
});
