/**
 * fhir-import --url against a secured server listening on a socket (authorization on, its own authorization server,
 * audit on). The access token comes from the token endpoint over the socket (openid-client, private_key_jwt), and
 * reaches the CLI through FHIR_ACCESS_TOKEN or --token-file. Without a token every line is rejected with 401 (exit
 * 1); with a token that may only read, every line is rejected with 403 naming the scope; the token never appears in
 * what the CLI prints or reports.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Resource } from '@medplum/fhirtypes';
import { exportJWK, generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import { freePort } from '../helpers/ports.js';
import t, { type Test } from 'tap';
import { runImport, type ImportResult } from '../../src/cli/import/command.js';
import { IMPORT_EXIT } from '../../src/cli/exit-codes.js';
import { FEATURED_ONLY, stopMongoAtEnd } from '../helpers/app.js';
import { SECURED_CONFIG, startSecuredApp } from '../helpers/auth.js';

stopMongoAtEnd(t);

const FIXTURES = fileURLToPath(new URL('../fixtures/bulk-ndjson/', import.meta.url));
/** The featured types' lines and the Devices of the NDJSON fixtures, in a directory of their own. */
const NDJSON_DIR = await mkdtemp(join(tmpdir(), 'fhir-import-token-input-'));
t.teardown(() => rm(NDJSON_DIR, { recursive: true, force: true }));
for (const type of ['Patient', 'Encounter', 'MedicationRequest', 'Device']) {
  await copyFile(join(FIXTURES, `${type}.000.ndjson`), join(NDJSON_DIR, `${type}.000.ndjson`));
}
const HOSTED = { Patient: 4, Encounter: 68, MedicationRequest: 14 } as const;
const TOTAL = HOSTED.Patient + HOSTED.Encounter + HOSTED.MedicationRequest;

const port = await freePort();
const baseUrl = `http://127.0.0.1:${port}`;
// Hosting the featured types only (RESOURCE_TYPES): the Devices are skipped, so a file without hosted lines is
// "done" whatever the token, and references to Organization, Practitioner and Condition are stored as given.
const secured = await startSecuredApp(t, {
  ...FEATURED_ONLY,
  baseUrl,
  auth: { ...SECURED_CONFIG.auth, audience: baseUrl, server: { enabled: true, tokenTtlSeconds: 300, devClient: false } },
});
const { app } = secured;
await app.listen({ port, host: '127.0.0.1' });
const authServer = app.auth!.server!;

/** A backend client registered with `scopes`, and a token for them from the token endpoint, over the socket. */
async function tokenFor(scopes: string[]): Promise<string> {
  const { publicKey, privateKey } = await generateKeyPair('ES384');
  const kid = `import-${crypto.randomUUID().slice(0, 8)}`;
  const { clientId } = await authServer.clients.register({
    name: 'fhir-import',
    scopes,
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' }] },
  });
  const config = await oidc.discovery(new URL(`${baseUrl}/auth`), clientId, undefined, oidc.PrivateKeyJwt({ key: privateKey, kid }), {
    execute: [oidc.allowInsecureRequests],
  });
  return (await oidc.clientCredentialsGrant(config, { scope: scopes.join(' ') })).access_token;
}

const writerToken = await tokenFor(['system/Patient.cruds', 'system/Encounter.cruds', 'system/MedicationRequest.cruds']);
const readerToken = await tokenFor(['system/*.rs']);

interface Run extends ImportResult {
  stdout: string;
  stderr: string;
}

/**
 * The checkpoint the first three runs share, as a user re-running the same command would: refusals of access
 * (401/403) are no verdict on the data, so the lines they refused are imported by the run with a proper token.
 */
const stateDir = await mkdtemp(join(tmpdir(), 'fhir-import-token-'));
t.teardown(() => rm(stateDir, { recursive: true, force: true }));
const sharedCheckpoint = join(stateDir, 'state.json');

async function importWith(t: Test, env: NodeJS.ProcessEnv, extra: string[] = [], checkpoint = sharedCheckpoint): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'fhir-import-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let stdout = '';
  let stderr = '';
  const result = await runImport(
    [
      '--url',
      baseUrl,
      '--quiet',
      '--batch-size',
      '25',
      '--checkpoint',
      checkpoint,
      '--report',
      join(dir, 'report.json'),
      ...extra,
      NDJSON_DIR,
    ],
    env,
    { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } },
  );
  const written = await readFile(join(dir, 'report.json'), 'utf8');
  const state = await readFile(checkpoint, 'utf8');
  for (const token of [writerToken, readerToken]) {
    t.notOk(
      [stdout, stderr, written, state].some((text) => text.includes(token)),
      'the token is not printed, reported or kept in the checkpoint',
    );
  }
  return { ...result, stdout, stderr };
}

async function read(type: string, id: string): Promise<number> {
  const response = await fetch(`${baseUrl}/${type}/${id}`, { headers: { authorization: `Bearer ${readerToken}` } });
  await response.body?.cancel();
  return response.status;
}

async function firstId(type: keyof typeof HOSTED): Promise<string> {
  const line = (await readFile(join(NDJSON_DIR, `${type}.000.ndjson`), 'utf8')).split('\n')[0]!;
  return (JSON.parse(line) as Resource).id!;
}

t.test('without a token every line is rejected with 401, exit code 1, nothing stored', async (t) => {
  const run = await importWith(t, {});
  t.equal(run.code, IMPORT_EXIT.REJECTED, run.stderr);
  t.same(run.report!.sum, { imported: 0, unchanged: 0, skipped: 3, rejected: TOTAL }, 'every hosted line rejected, Devices skipped');
  for (const [type, count] of Object.entries(HOSTED)) {
    t.same(run.report!.totals[type], { imported: 0, unchanged: 0, skipped: 0, rejected: count }, `${type}: all ${count} rejected`);
  }
  t.equal(run.report!.rejections.length, TOTAL, 'each rejection listed');
  t.ok(
    run.report!.rejections.every((r) => r.status === 401),
    'each one with status 401',
  );
  t.match(run.report!.rejections[0]!.diagnostics, [/access token is required/]);
  t.match(run.stdout, /REJECTED .*Patient\.000\.ndjson line 1 Patient\/\S+: 401 /);
  t.match(
    run.stdout,
    /86 lines were refused access \(HTTP 401\/403\/429: .*the checkpoint was not moved past them; run the same command again/,
    'the report says how to go on',
  );
  t.equal(await read('Patient', await firstId('Patient')), 404, 'nothing was stored');
});

t.test('a token that may only read: every line rejected with 403 naming the scope', async (t) => {
  const run = await importWith(t, { FHIR_ACCESS_TOKEN: readerToken });
  t.equal(run.code, IMPORT_EXIT.REJECTED);
  t.same(
    run.report!.resumed,
    [`${join(NDJSON_DIR, 'Device.000.ndjson')}: done in an earlier run`],
    'only the file without hosted types counts as done: every refused line is sent again',
  );
  t.equal(run.report!.sum.rejected, TOTAL);
  t.ok(
    run.report!.rejections.every((r) => r.status === 403),
    'each one with status 403',
  );
  t.match(
    run.report!.rejections.find((r) => r.resourceType === 'Encounter')?.diagnostics.join(' '),
    /Encounter needs a scope such as system\/Encounter\.[cu]/,
  );
});

t.test('FHIR_ACCESS_TOKEN, the same command again: everything imported over the socket, exit code 0', async (t) => {
  const run = await importWith(t, { FHIR_ACCESS_TOKEN: writerToken });
  t.equal(run.code, IMPORT_EXIT.OK, run.stdout + run.stderr);
  t.same(run.report!.resumed, [`${join(NDJSON_DIR, 'Device.000.ndjson')}: done in an earlier run`], 'no refused line was skipped as done');
  for (const [type, count] of Object.entries(HOSTED)) {
    t.same(run.report!.totals[type], { imported: count, unchanged: 0, skipped: 0, rejected: 0 }, `${type}: all ${count} imported`);
  }
  t.match(run.stdout, /import complete/);
  t.notMatch(run.stdout, /refused access/);
  for (const type of Object.keys(HOSTED) as Array<keyof typeof HOSTED>)
    t.equal(await read(type, await firstId(type)), 200, `${type} readable`);

  const again = await importWith(t, { FHIR_ACCESS_TOKEN: writerToken });
  t.equal(again.code, IMPORT_EXIT.OK);
  t.equal(
    again.report!.sum.imported + again.report!.sum.unchanged + again.report!.sum.rejected,
    0,
    'now the checkpoint says done: nothing is sent',
  );
  t.equal(again.report!.resumed.length, 4, 'every file done in an earlier run');
});

t.test('a batch Bundle whose entries were refused for access is sent again by the next run', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fhir-import-token-batch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'batch.json');
  const entry = (id: string) => ({
    resource: { resourceType: 'Patient', id, name: [{ family: id }] },
    request: { method: 'PUT', url: `Patient/${id}` },
  });
  await writeFile(file, JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [entry('batch-1'), entry('batch-2')] }));
  const checkpoint = join(dir, 'state.json');
  const runBatch = (env: NodeJS.ProcessEnv) =>
    runImport(['--url', baseUrl, '--quiet', '--checkpoint', checkpoint, file], env, {
      stdout: { write: () => true },
      stderr: { write: () => true },
    });

  const refused = await runBatch({ FHIR_ACCESS_TOKEN: readerToken });
  t.equal(refused.code, IMPORT_EXIT.REJECTED);
  t.same(refused.report!.totals.Patient, { imported: 0, unchanged: 0, skipped: 0, rejected: 2 });
  t.ok(
    refused.report!.rejections.every((r) => r.status === 403),
    'both entries refused with 403',
  );
  const imported = await runBatch({ FHIR_ACCESS_TOKEN: writerToken });
  t.equal(imported.code, IMPORT_EXIT.OK);
  t.same(imported.report!.resumed, [], 'the refused batch was not recorded as done');
  t.same(imported.report!.totals.Patient, { imported: 2, unchanged: 0, skipped: 0, rejected: 0 });
  t.equal(await read('Patient', 'batch-2'), 200);
  const again = await runBatch({ FHIR_ACCESS_TOKEN: writerToken });
  t.equal(again.report!.resumed.length, 1, 'a stored batch is done');
});

t.test('--token-file: the same import again is recognised as unchanged', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fhir-import-token-file-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${writerToken}\n`, { mode: 0o600 });
  // The file wins over the environment (here: a token that may only read).
  const run = await importWith(t, { FHIR_ACCESS_TOKEN: readerToken }, ['--token-file', tokenFile], join(dir, 'state.json'));
  t.equal(run.code, IMPORT_EXIT.OK, run.stdout + run.stderr);
  t.same(run.report!.sum, { imported: 0, unchanged: TOTAL, skipped: 3, rejected: 0 }, 'every line unchanged');
});

t.test('an unreadable --token-file is a usage error', async (t) => {
  const run = await runImport(
    ['--url', baseUrl, '--token-file', join(tmpdir(), `no-such-token-${process.pid}`), NDJSON_DIR],
    {},
    { stdout: { write: () => true }, stderr: { write: () => true } },
  );
  t.equal(run.code, IMPORT_EXIT.USAGE);
});

t.test('the refused and the imported lines are in the audit trail', async (t) => {
  await secured.flushAudit();
  const response = await fetch(`${baseUrl}/AuditEvent?_count=1&_summary=count`, {
    headers: { authorization: `Bearer ${await tokenFor(['system/AuditEvent.rs'])}` },
  });
  t.equal(response.status, 200);
  const bundle = (await response.json()) as { total?: number };
  t.ok((bundle.total ?? 0) >= TOTAL * 2, `${bundle.total} AuditEvents: the refused lines and the imported ones`);
});
