// The import CLI, run in-process (its main function with buffers for output) against a test app: --mongodb mode on
// the test's MongoDB, --url mode against the app listening on a socket. NDJSON from a Bulk Data export (a subset of
// ../shared/corpora/bulk-ndjson-10-patients) and Synthea transaction Bundles (test/fixtures/synthea).
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bundle, Encounter, MedicationRequest, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { runImport, type ImportOptions, type ImportResult } from '../../src/cli/import/command.js';
import { FEATURED_ONLY, startTestApp, stopMongoAtEnd, TEST_CONFIG, testValidator, type TestApp } from '../helpers/app.js';
import { testMongo } from '../helpers/mongo.js';
import { withoutServerMeta } from '../helpers/resources.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const NDJSON_DIR = join(FIXTURES, 'bulk-ndjson');
const SYNTHEA_DIR = join(FIXTURES, 'synthea');
/** The types of the NDJSON fixtures (every one hosted), with their line counts. */
const FIXTURE_TYPES: Record<string, number> = {
  Organization: 43,
  Location: 44,
  Practitioner: 43,
  PractitionerRole: 43,
  Patient: 4,
  Device: 3,
  Encounter: 68,
  Condition: 35,
  MedicationRequest: 14,
};
/** Resources in the NDJSON fixtures. */
const TOTAL = Object.values(FIXTURE_TYPES).reduce((a, b) => a + b, 0);
/** The CLI builds the app from the environment like the server: the strict policy makes import order matter. */
const ENV = { BASE_URL: TEST_CONFIG.baseUrl, REFERENCE_POLICY: 'strict', LOG_LEVEL: 'silent' };

interface Run extends ImportResult {
  stdout: string;
  stderr: string;
}

async function run(args: string[], options: ImportOptions = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const result = await runImport(
    args,
    ENV,
    { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } },
    { validator: await testValidator(), ...options },
  );
  return { ...result, stdout, stderr };
}

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fhir-import-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function mongoArgs(test: TestApp): Promise<string[]> {
  return ['--mongodb', (await testMongo()).uri, '--db', test.connection.db.databaseName];
}

async function ndjsonResources(file: string): Promise<Resource[]> {
  return (await readFile(join(NDJSON_DIR, file), 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Resource);
}

/** Type/id of every fixture resource by `Type?identifier=system|value`: what the server resolves conditional references to. */
async function conditionalTargets(): Promise<Map<string, string>> {
  const targets = new Map<string, string>();
  for (const type of Object.keys(FIXTURE_TYPES)) {
    for (const resource of await ndjsonResources(`${type}.000.ndjson`)) {
      for (const identifier of (resource as { identifier?: Array<{ system?: string; value?: string }> }).identifier ?? []) {
        targets.set(`${type}?identifier=${identifier.system}|${identifier.value}`, `${type}/${resource.id}`);
      }
    }
  }
  return targets;
}

/** What the server stores for a source resource: its conditional references resolved to the resources they name. */
function asImported(resource: Resource, targets: Map<string, string>): Resource {
  const text = JSON.stringify(resource).replace(/"reference":"([A-Za-z]+\?identifier=[^"]+)"/g, (whole, conditional: string) => {
    const target = targets.get(conditional);
    return target ? `"reference":"${target}"` : whole;
  });
  return withoutServerMeta(JSON.parse(text) as Resource);
}

async function read(app: FastifyInstance, type: string, id: string): Promise<Resource | undefined> {
  const res = await app.inject({ method: 'GET', url: `/${type}/${id}` });
  return res.statusCode === 200 ? (res.json() as Resource) : undefined;
}

async function versionCount(test: TestApp): Promise<number> {
  // The clinical versions only: the import's writes are audited, and their AuditEvents are not counted here.
  return test.connection.db.collection('resource_versions').countDocuments({ type: { $ne: 'AuditEvent' } });
}

t.test('NDJSON into MongoDB in-process: counts, resources read back equal apart from meta, pending anchors', async (t) => {
  const dir = await tmp(t);
  const test = await startTestApp(t);
  const reportFile = join(dir, 'report.json');
  const result = await run([
    ...(await mongoArgs(test)),
    '--batch-size',
    '40',
    '--quiet',
    '--checkpoint',
    join(dir, 'state.json'),
    '--report',
    reportFile,
    NDJSON_DIR,
  ]);
  t.equal(result.code, 0, result.stdout + result.stderr);
  const totals = result.report!.totals;
  for (const [type, lines] of Object.entries(FIXTURE_TYPES)) {
    t.same(totals[type], { imported: lines, unchanged: 0, skipped: 0, rejected: 0 }, `${type}: every line imported, none skipped`);
  }
  t.same(JSON.parse(await readFile(reportFile, 'utf8')).sum, result.report!.sum, '--report writes the same report');
  t.match(result.stdout, /Encounter\s+68\s+0\s+0\s+0/);
  t.match(result.stdout, /import complete/);

  const targets = await conditionalTargets();
  for (const type of Object.keys(FIXTURE_TYPES)) {
    const originals = await ndjsonResources(`${type}.000.ndjson`);
    const stored = await Promise.all(originals.map((r) => read(test.app, type, r.id!)));
    t.same(
      stored.map((r) => r && withoutServerMeta(r)),
      originals.map((r) => asImported(r, targets)),
      `every ${type} stored, equal apart from meta and resolved conditional references`,
    );
    t.ok(
      stored.every((r) => r?.meta?.versionId === '1'),
      `every ${type} at version 1`,
    );
  }
  t.same(
    result.report!.referenceRewrites,
    { logical: 0, typeOnly: 0, conditional: 0 },
    'conditional references to hosted types are left to the server, which resolves them',
  );
  const mr = (await ndjsonResources('MedicationRequest.000.ndjson'))[0] as MedicationRequest;
  const storedMr = (await read(test.app, 'MedicationRequest', mr.id!)) as MedicationRequest;
  t.match(mr.requester?.reference, /^Practitioner\?identifier=http:\/\/hl7\.org\/fhir\/sid\/us-npi\|\d+$/);
  t.equal(storedMr.requester?.reference, targets.get(mr.requester!.reference!), 'the requester, resolved to the imported Practitioner');
  t.match(storedMr.requester?.reference, /^Practitioner\/[0-9a-f-]+$/);
  t.equal(await versionCount(test), TOTAL, 'one version per resource');
  t.equal(
    await test.connection.db.collection('resource_versions').countDocuments({ 'anchor.state': 'pending', type: { $ne: 'AuditEvent' } }),
    TOTAL,
    'every imported version awaits its anchor',
  );
  const search = await test.app.inject({
    method: 'GET',
    url: '/Encounter?subject=Patient/3af3708d-41f1-cd80-f3dd-ec5ac76072bf&_summary=count',
  });
  t.equal(search.json().total, 20, 'imported resources are indexed for search');
});

t.test('interrupted after 2 chunks, then re-run: resumes from the checkpoint, no duplicates, all present', async (t) => {
  const dir = await tmp(t);
  const test = await startTestApp(t);
  const checkpoint = join(dir, 'state.json');
  const args = [...(await mongoArgs(test)), '--batch-size', '20', '--concurrency', '2', '--quiet', '--checkpoint', checkpoint, NDJSON_DIR];
  const controller = new AbortController();
  let chunks = 0;
  const first = await run(args, {
    signal: controller.signal,
    afterChunk: () => {
      // Organization, Location, Practitioner and PractitionerRole come first (3 chunks of 20 each), then Patient and
      // Device (1 each): the 15th chunk is Encounter's first.
      if (++chunks === 15) controller.abort();
    },
  });
  t.equal(first.code, 130, first.stdout + first.stderr);
  t.match(first.stdout, /import interrupted/);
  const state = JSON.parse(await readFile(checkpoint, 'utf8'));
  const encounterState = Object.entries(state.files).find(([file]) => file.endsWith('Encounter.000.ndjson'));
  t.ok(encounterState, 'the checkpoint records the file in progress');
  const stored = await versionCount(test);
  t.ok(stored > 0 && stored < TOTAL, `part stored (${stored})`);

  const second = await run(args);
  t.equal(second.code, 0, second.stdout + second.stderr);
  t.match(second.report!.resumed.join('\n'), /Patient\.000\.ndjson: done in an earlier run/);
  t.match(second.report!.resumed.join('\n'), /Encounter\.000\.ndjson: from line \d+/);
  const sum = second.report!.sum;
  // The chunks in flight at the interruption were finished and recorded, so the second run sends exactly the rest.
  t.equal(sum.imported + sum.unchanged + stored, TOTAL, 'the second run sends only what the first did not finish');
  t.equal(await versionCount(test), TOTAL, 'no duplicate versions');
  t.equal(
    await test.connection.db.collection('resources').countDocuments({ type: { $ne: 'AuditEvent' } }),
    TOTAL,
    'no duplicate resources',
  );

  // A checkpoint written by hand (as after a crash between a chunk's answer and its checkpoint) re-sends that
  // chunk: PUT with ids makes it idempotent, and unchanged content makes no version.
  const encounterFile = join(NDJSON_DIR, 'Encounter.000.ndjson');
  const lines = (await readFile(encounterFile, 'utf8')).split('\n');
  const offset = Buffer.byteLength(lines.slice(0, 50).join('\n') + '\n');
  const files = state.files as Record<string, { size: number; done: boolean }>;
  const handWritten = {
    format: 'fhir-import-checkpoint',
    version: 1,
    files: Object.fromEntries(
      Object.entries(files).map(([file, p]) => [
        file,
        file.endsWith('Encounter.000.ndjson') ? { size: p.size, offset, line: 51, done: false } : { size: p.size, done: true },
      ]),
    ),
  };
  const patientKey = Object.keys(files).find((f) => f.endsWith('Patient.000.ndjson'))!;
  handWritten.files[patientKey] = { size: files[patientKey].size, done: true };
  await writeFile(checkpoint, JSON.stringify(handWritten));
  const third = await run(args);
  t.equal(third.code, 0, third.stdout + third.stderr);
  t.same(third.report!.totals.Encounter, { imported: 0, unchanged: 18, skipped: 0, rejected: 0 }, 'lines 51-68 re-sent, unchanged');
  t.equal(await versionCount(test), TOTAL, 'still one version per resource');

  const fourth = await run(args);
  t.equal(fourth.code, 0);
  t.equal(fourth.report!.sum.imported + fourth.report!.sum.unchanged, 0, 'a finished import sends nothing');
});

t.test(
  'over HTTP: a malformed line and an invalid resource are reported with line and diagnostics, exit 1, the rest imported',
  async (t) => {
    const dir = await tmp(t);
    // A server that hosts the featured types only: the Observation line is skipped, and counted.
    const test = await startTestApp(t, FEATURED_ONLY);
    const address = await test.app.listen({ port: 0, host: '127.0.0.1' });
    const file = join(dir, 'mixed.ndjson');
    const patient = (id: string, extra: object = {}): string =>
      JSON.stringify({ resourceType: 'Patient', id, name: [{ family: id }], ...extra });
    await writeFile(
      file,
      [
        patient('ok-1'),
        '{"resourceType": "Patient", "id": "broken"',
        patient('bad-gender', { gender: 'robot' }),
        '',
        JSON.stringify({ resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'x' } }),
        JSON.stringify({ resourceType: 'Patient', name: [{ family: 'NoId' }] }),
        patient('ok-2'),
      ].join('\r\n'),
    );
    const result = await run(['--url', address, '--quiet', '--batch-size', '3', '--checkpoint', join(dir, 's.json'), file]);
    t.equal(result.code, 1, result.stdout + result.stderr);
    const rejections = result.report!.rejections;
    t.equal(rejections.length, 2);
    t.match(rejections[0], { line: 2, status: undefined, diagnostics: [/Line 2 is not valid JSON/] });
    t.match(rejections[1], { line: 3, resourceType: 'Patient', id: 'bad-gender', diagnostics: [/gender|robot/] });
    t.ok(rejections[1].status! >= 400 && rejections[1].status! < 500, `a 4xx (${rejections[1].status})`);
    t.same(result.report!.totals.Patient, { imported: 3, unchanged: 0, skipped: 0, rejected: 1 });
    t.same(result.report!.totals.Observation, { imported: 0, unchanged: 0, skipped: 1, rejected: 0 });
    t.same(result.report!.totals['(unknown)'], { imported: 0, unchanged: 0, skipped: 0, rejected: 1 });
    t.match(result.stdout, /REJECTED .*mixed\.ndjson line 3 Patient\/bad-gender: 4\d\d /);
    t.ok(await read(test.app, 'Patient', 'ok-1'));
    t.ok(await read(test.app, 'Patient', 'ok-2'));
    const noId = await test.app.inject({ method: 'GET', url: '/Patient?family=NoId' });
    t.equal(noId.json().total ?? noId.json().entry?.length, 1, 'a line without id is created by POST');
  },
);

t.test('Synthea transaction Bundles over HTTP: every entry stored, references kept working', async (t) => {
  const dir = await tmp(t);
  const test = await startTestApp(t, { referencePolicy: 'strict' });
  const address = await test.app.listen({ port: 0, host: '127.0.0.1' });
  const metadata = (await test.app.inject({ method: 'GET', url: '/metadata' })).json();
  t.ok(
    (metadata.rest?.[0]?.interaction ?? []).some((i: { code: string }) => i.code === 'transaction'),
    'the CapabilityStatement declares transaction, which the importer relies on for Bundles',
  );
  const result = await run(['--url', address, '--quiet', '--checkpoint', join(dir, 's.json'), SYNTHEA_DIR]);
  t.equal(result.code, 0, result.stdout + result.stderr);
  const totals = result.report!.totals;
  const expected = new Map<string, number>();
  for (const name of await readdir(SYNTHEA_DIR)) {
    if (!name.endsWith('.json')) continue;
    const bundle = JSON.parse(await readFile(join(SYNTHEA_DIR, name), 'utf8')) as Bundle;
    for (const entry of bundle.entry ?? [])
      expected.set(entry.resource!.resourceType, (expected.get(entry.resource!.resourceType) ?? 0) + 1);
  }
  t.ok(expected.get('Observation')! > 0 && expected.get('Claim')! > 0);
  t.same(
    Object.fromEntries(Object.entries(totals).sort()),
    Object.fromEntries([...expected].sort().map(([type, count]) => [type, { imported: count, unchanged: 0, skipped: 0, rejected: 0 }])),
    'every entry of every type imported, none skipped',
  );
  t.same(result.report!.referenceRewrites, { logical: 0, typeOnly: 0, conditional: 0 }, 'no reference had to be rewritten');

  for (const name of [
    'Brett_Gottlieb_0d2177ba-f67b-4f29-addb-91040de55388.json',
    'Xavier_Lueilwitz_1af31141-7c85-4dc9-8472-8fd3fa953ee8.json',
  ]) {
    const bundle = JSON.parse(await readFile(join(SYNTHEA_DIR, name), 'utf8')) as Bundle;
    const source = bundle.entry!.map((e) => e.resource!);
    const sourcePatient = source.find((r) => r.resourceType === 'Patient')!;
    const family = (sourcePatient as { name: Array<{ family: string }> }).name[0].family;
    const patients = (
      await test.app.inject({ method: 'GET', url: `/Patient?family:exact=${encodeURIComponent(family)}` })
    ).json() as Bundle;
    t.equal(patients.entry?.length, 1, `one Patient ${family}`);
    const patientId = patients.entry![0].resource!.id;
    const encounters = (
      await test.app.inject({ method: 'GET', url: `/Encounter?subject=Patient/${patientId}&_count=100` })
    ).json() as Bundle<Encounter>;
    t.equal(
      encounters.entry?.length,
      source.filter((r) => r.resourceType === 'Encounter').length,
      'every Encounter stored, subject = the stored patient',
    );
    const requests = (
      await test.app.inject({ method: 'GET', url: `/MedicationRequest?subject=Patient/${patientId}` })
    ).json() as Bundle<MedicationRequest>;
    t.equal(requests.entry?.length, source.filter((r) => r.resourceType === 'MedicationRequest').length, 'every MedicationRequest stored');
    for (const entry of requests.entry ?? []) {
      const mr = entry.resource!;
      t.match(mr.encounter?.reference, /^Encounter\/[^/]+$/, 'MedicationRequest.encounter points at a stored Encounter');
      t.ok(await read(test.app, 'Encounter', mr.encounter!.reference!.split('/')[1]));
      t.match(mr.requester?.reference, /^Practitioner\/[0-9a-f-]+$/, 'requester: the stored Practitioner');
      t.ok(await read(test.app, 'Practitioner', mr.requester!.reference!.split('/')[1]));
    }
    for (const entry of encounters.entry ?? []) {
      const participant = entry.resource!.participant?.[0]?.individual?.reference;
      if (participant) t.match(participant, /^Practitioner\//);
      t.match(entry.resource!.serviceProvider?.reference ?? 'Organization/', /^Organization\//);
    }
  }

  const again = await run(['--url', address, '--quiet', '--checkpoint', join(dir, 's.json'), SYNTHEA_DIR]);
  t.equal(again.code, 0);
  t.equal(again.report!.sum.imported, 0, 'Bundles done are not sent again (their POSTs would duplicate)');
  t.equal(again.report!.resumed.length, 2);
});

t.test('Bundle files: a refused transaction names the entry of the file; wrong kinds rejected; stray JSON ignored', async (t) => {
  const dir = await tmp(t);
  const inputs = join(dir, 'in');
  await mkdir(inputs);
  // A server that hosts the featured types only: the Observation entry is left out of the transaction, and counted.
  const test = await startTestApp(t, FEATURED_ONLY);
  const address = await test.app.listen({ port: 0, host: '127.0.0.1' });
  const metadata = (await test.app.inject({ method: 'GET', url: '/metadata' })).json();
  t.ok(
    (metadata.rest?.[0]?.interaction ?? []).some((i: { code: string }) => i.code === 'transaction'),
    'the CapabilityStatement declares transaction, which the importer relies on for Bundles',
  );
  const failing: Bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:o',
        resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' } },
        request: { method: 'POST', url: 'Observation' },
      },
      { resource: { resourceType: 'Patient', id: 'tx-ok', name: [{ family: 'TxOk' }] }, request: { method: 'PUT', url: 'Patient/tx-ok' } },
      {
        resource: { resourceType: 'Patient', id: 'tx-bad', gender: 'robot' } as unknown as Resource,
        request: { method: 'PUT', url: 'Patient/tx-bad' },
      },
    ],
  };
  await writeFile(join(inputs, 'a-failing.json'), JSON.stringify(failing));
  await writeFile(join(inputs, 'b-collection.json'), JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [] }));
  await writeFile(join(inputs, 'c-notes.json'), JSON.stringify({ note: 'a manifest, not FHIR' }));
  await writeFile(join(inputs, 'd-broken.json'), '{"resourceType": "Bundle", ');

  const result = await run(['--url', address, '--quiet', '--checkpoint', join(dir, 's.json'), inputs]);
  t.equal(result.code, 1, result.stdout + result.stderr);
  const [tx, collection, broken] = result.report!.rejections;
  t.match(tx, { file: /a-failing\.json$/, entry: 2, resourceType: 'Patient', id: 'tx-bad' });
  t.ok(tx.status! >= 400 && tx.status! < 500, `the transaction's 4xx (${tx.status})`);
  t.match(tx.diagnostics[0], /^The transaction was refused; none of its 2 entries was stored: .*entry\[2\]/);
  t.match(collection, { file: /b-collection\.json$/, diagnostics: [/a Bundle of type collection; only transaction and batch/] });
  t.match(broken, { file: /d-broken\.json$/, diagnostics: [/not valid JSON/] });
  t.equal(result.report!.rejections.length, 3);
  t.match(result.report!.ignored, [/c-notes\.json \(JSON without a resourceType/]);
  t.same(result.report!.totals.Patient, { imported: 0, unchanged: 0, skipped: 0, rejected: 2 });
  t.same(result.report!.totals.Observation, { imported: 0, unchanged: 0, skipped: 1, rejected: 0 });
  t.notOk(await read(test.app, 'Patient', 'tx-ok'), 'all or nothing: the valid entry was not stored');

  const state = JSON.parse(await readFile(join(dir, 's.json'), 'utf8')) as { files: Record<string, { done: boolean }> };
  t.notOk(
    Object.keys(state.files).some((f) => f.endsWith('a-failing.json')),
    'a refused Bundle is not marked done',
  );
});

t.test('references that resolve later in the input: held back and sent again; what never resolves is rejected', async (t) => {
  const dir = await tmp(t);
  const test = await startTestApp(t);
  const file = join(dir, 'forward.ndjson');
  const observation = (id: string, extra: object = {}): string =>
    JSON.stringify({
      resourceType: 'Observation',
      id,
      status: 'final',
      code: { text: id },
      subject: { reference: 'Patient/later' },
      ...extra,
    });
  await writeFile(
    file,
    [
      // Each refers to a line further down: no order of files can help, only a second pass.
      observation('panel', { hasMember: [{ reference: 'Observation/member' }] }),
      observation('member'),
      observation('orphan', { hasMember: [{ reference: 'Observation/not-in-the-input' }] }),
      JSON.stringify({ resourceType: 'Patient', id: 'later', name: [{ family: 'Later' }] }),
    ].join('\n'),
  );
  const checkpoint = join(dir, 's.json');
  const args = [...(await mongoArgs(test)), '--batch-size', '1', '--quiet', '--checkpoint', checkpoint, file];
  const result = await run(args);
  t.equal(result.code, 1, 'one line could not be imported');
  t.same(result.report!.totals.Observation, { imported: 2, unchanged: 0, skipped: 0, rejected: 1 });
  t.same(result.report!.totals.Patient, { imported: 1, unchanged: 0, skipped: 0, rejected: 0 });
  t.match(result.report!.rejections, [
    { line: 3, id: 'orphan', status: 422, diagnostics: [/Reference Observation\/not-in-the-input does not resolve/] },
  ]);
  t.ok(await read(test.app, 'Observation', 'panel'), 'stored on the second pass, once its member was');
  const state = JSON.parse(await readFile(checkpoint, 'utf8')) as { files: Record<string, { done: boolean }> };
  t.notOk(Object.values(state.files)[0]?.done, 'a file with a line that never resolved is not done');
  const again = await run(args);
  t.same(again.report!.totals.Observation, { imported: 0, unchanged: 2, skipped: 0, rejected: 1 }, 'a second run sends it all again');
});

t.test('decimals keep the digits the file wrote them with (NDJSON and Bundle files)', async (t) => {
  const dir = await tmp(t);
  const test = await startTestApp(t);
  const line = (id: string, value: string): string =>
    `{"resourceType":"Observation","id":"${id}","status":"final","code":{"text":"x"},"valueQuantity":{"value":${value},"unit":"g"}}`;
  await writeFile(join(dir, 'observations.ndjson'), [line('d1', '0.50'), line('d2', '1.10e2'), line('d3', '7')].join('\n'));
  await writeFile(
    join(dir, 'bundle.json'),
    `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":${line('d4', '2.000')},"request":{"method":"PUT","url":"Observation/d4"}}]}`,
  );
  const result = await run([...(await mongoArgs(test)), '--quiet', dir]);
  t.equal(result.code, 0, JSON.stringify(result.report?.rejections));
  for (const [id, digits] of [
    ['d1', '0.50'],
    ['d2', '1.10e2'],
    ['d3', '7'],
    ['d4', '2.000'],
  ]) {
    const res = await test.app.inject({ url: `/Observation/${id}` });
    t.match(res.body, `"valueQuantity":{"value":${digits},"unit":"g"}`, `${id}: ${digits}`);
  }
});

t.test('usage errors exit 2, an unreachable target exits 3, --help', async (t) => {
  const dir = await tmp(t);
  const help = await run(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: fhir-import/);
  t.match(help.stdout, /Exit codes: 0 all imported, 1 some rejected/);

  const cases: Array<[string[], RegExp]> = [
    [[NDJSON_DIR], /give a target/],
    [['--url', 'http://127.0.0.1:1', '--mongodb', 'mongodb://x', NDJSON_DIR], /either --url or --mongodb/],
    [['--url', 'http://127.0.0.1:1'], /name at least one/],
    [['--url', 'http://127.0.0.1:1', '--batch-size', '0', NDJSON_DIR], /--batch-size 0 must be an integer/],
    [['--url', 'http://127.0.0.1:1', '--bogus', NDJSON_DIR], /Unknown option '--bogus'/],
    [['--url', 'http://127.0.0.1:1', join(dir, 'missing.ndjson')], /no such file/],
    [['--url', 'http://127.0.0.1:1', join(FIXTURES, 'synthea', 'README.md')], /not an input this tool reads/],
    [['--url', 'ftp://x', '--checkpoint', join(dir, 'c.json'), NDJSON_DIR], /must be http/],
    [['--url', 'http://127.0.0.1:1', '--checkpoint', join(dir, 'no', 'such', 'dir', 'c.json'), NDJSON_DIR], /cannot write the checkpoint/],
  ];
  for (const [args, message] of cases) {
    const result = await run(args);
    t.equal(result.code, 2, args.join(' '));
    t.match(result.stderr, message);
  }
  t.notOk(existsSync(`${NDJSON_DIR}.import-state.json`), 'a usage error leaves no checkpoint behind');
  await writeFile(join(dir, 'bad-state.json'), 'not json');
  const badState = await run(['--url', 'http://127.0.0.1:1', '--checkpoint', join(dir, 'bad-state.json'), NDJSON_DIR]);
  t.equal(badState.code, 2);
  t.match(badState.stderr, /is not JSON; delete it or pass --restart/);

  const closedPort = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
  const url = `http://127.0.0.1:${closedPort}`;
  const unreachable = await run(['--url', url, '--quiet', '--checkpoint', join(dir, 'u.json'), NDJSON_DIR]);
  t.equal(unreachable.code, 3, unreachable.stderr);
  t.match(unreachable.stderr, `target unreachable: GET ${url}/metadata: ECONNREFUSED`);
});

stopMongoAtEnd(t);
