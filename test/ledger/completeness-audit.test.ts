// The completeness audit end to end, through the real local Hedera network and the app: several patients with
// several versions anchored in small batches audit clean; then the database is tampered with directly (a deleted
// version, a resource deleted with its whole history, an edited version, an edited leaf, a removed batch record, a
// version left pending) and each finding must appear with the right batch, resource and version, in the JSON report
// and in the HTML report. The CLI runs in-process (runLedgerAudit), so its exit codes are tested too.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runLedgerAudit } from '../../src/cli/ledger-audit-command.js';
import { escapeHtml } from '../../src/ledger/audit-report-html.js';
import type { AuditReport, Finding } from '../../src/ledger/completeness-audit.js';
import { LedgerStore, bytes } from '../../src/ledger/ledger-store.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { testMongo } from '../helpers/mongo.js';
import { createPatient, startLedgerApp, startTestNetwork, updatePatient, waitAnchored } from './helpers/ledger-app.js';

// A local network, an app and several CLI runs: more than the suite's default per file on a busy 2-core machine.
t.setTimeout(300_000);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function audit(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runLedgerAudit(
    args,
    { write: (text: string) => (stdout += text) },
    { write: (text: string) => (stderr += text) },
    { LOCAL_LEDGER_MIRROR_PORT: '9' },
  );
  return { code, stdout, stderr };
}

const VERSIONS = 3;
const PATIENTS = 6;

t.test('the audit is clean on an untouched database, and finds each kind of tampering', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ledger-audit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const net = await startTestNetwork(t);
  // Batches of at most 4 versions: 18 versions make several batches.
  const { app, runtime, connection } = await startLedgerApp(t, net, { config: { batchMaxLeaves: 4, batchIntervalMs: 50 } });
  const mongo = await testMongo();
  const base = ['--mongodb-uri', mongo.uri, '--db', connection.db.databaseName, '--mirror', net.mirrorUrl, '--progress-every', '1'];

  const ids: string[] = [];
  for (let i = 0; i < PATIENTS; i++) ids.push((await createPatient(app, `Family${i}`)).id);
  for (let v = 2; v <= VERSIONS; v++) for (const [i, id] of ids.entries()) await updatePatient(app, id, `Family${i}v${v}`);
  runtime.start();
  await waitAnchored(connection, 20_000);
  // Nothing may be anchored behind the tampering's back.
  await runtime.worker.stop();

  const batches = connection.db.collection<{ _id: number; members: string[]; leaves: unknown }>('ledger_batches');
  const all = await batches.find({}, { sort: { _id: 1 } }).toArray();
  t.ok(all.length >= 5, `several batches (${all.length})`);
  const batchOf = (key: string): number => all.find((b) => b.members.includes(key))!._id;

  // ---- clean
  const cleanJson = join(dir, 'clean.json');
  const cleanHtml = join(dir, 'clean.html');
  const clean = await audit([...base, '--json', cleanJson, '--html', cleanHtml]);
  t.equal(clean.code, 0, clean.stdout + clean.stderr);
  t.match(clean.stdout, /RESULT: COMPLETE: nothing found \(exit 0\)/);
  t.match(clean.stdout, /MIRROR: .* given with --mirror/);
  t.match(clean.stdout, /NOTE: this database anchored on a LOCAL development ledger/);
  t.match(clean.stderr, new RegExp(`progress: batches ${all.length}/${all.length}, versions checked ${PATIENTS * VERSIONS}`));
  const cleanReport = JSON.parse(await readFile(cleanJson, 'utf8')) as AuditReport;
  t.equal(cleanReport.outcome, 'clean');
  t.equal(cleanReport.summary.findings, 0);
  t.equal(cleanReport.summary.batchesChecked, all.length);
  t.equal(cleanReport.summary.batchesOnLedger, all.length);
  t.equal(cleanReport.summary.versionsChecked, PATIENTS * VERSIONS);
  t.equal(cleanReport.summary.versionsScanned, PATIENTS * VERSIONS);
  t.ok(
    cleanReport.batches.every((b) => b.status === 'ok' && b.sequenceNumber === b.batch),
    'every batch ok, batch n is message n',
  );
  const cleanPage = await readFile(cleanHtml, 'utf8');
  t.match(cleanPage, /^<!DOCTYPE html>/);
  t.match(cleanPage, /Complete: nothing found/);
  t.notMatch(cleanPage, /<script|<link|src=/, 'self-contained: no script, no outside resource');

  // The same over HTTP, and its bound.
  const viaHttp = await app.inject({ method: 'GET', url: `/$ledger-audit?from=1&to=${all.length}` });
  t.equal(viaHttp.statusCode, 200, viaHttp.body.slice(0, 400));
  t.match(viaHttp.json(), { format: 'fhir-ledger-audit', outcome: 'clean', summary: { batchesChecked: all.length, versionsChecked: 18 } });
  const wholeRange = await app.inject({ method: 'GET', url: '/$ledger-audit' });
  t.match(wholeRange.json(), { outcome: 'clean', range: { from: 1, to: all.length } }, 'without a range: every batch, up to the bound');
  const tooWide = await app.inject({ method: 'GET', url: '/$ledger-audit?from=1&to=1001' });
  t.equal(tooWide.statusCode, 400);
  t.match(tooWide.body, /at most 1000 batches per request/);
  t.equal((await app.inject({ method: 'GET', url: '/$ledger-audit?from=x' })).statusCode, 400);

  // The pass over every version reads pages in key order: across page boundaries, every version once.
  const paged: string[] = [];
  for await (const row of new LedgerStore(connection.db).versionAnchors(4)) paged.push(row.key);
  const everyKey = (
    await connection.db
      .collection<{ _id: string }>('resource_versions')
      .find({}, { projection: { _id: 1 }, sort: { _id: 1 } })
      .toArray()
  ).map((d) => d._id);
  t.ok(everyKey.length > 8, `several pages of 4 (${everyKey.length} versions)`);
  t.same(paged, everyKey, 'pages of 4 keys: every version once, in key order');

  // ---- choose the targets so that their findings do not overlap
  const key = (i: number, v: number): string => `Patient/${ids[i]}/${v}`;
  // (2) the whole resource: patient 0; (5) the batch record: one that holds nothing of patient 0.
  const wholeBatches = new Set([1, 2, 3].map((v) => batchOf(key(0, v))));
  const removedBatch = all.find((b) => !wholeBatches.has(b._id))!._id;
  const free = (): string[] => {
    const out: string[] = [];
    for (let i = 1; i < PATIENTS; i++) for (let v = 1; v <= VERSIONS; v++) if (batchOf(key(i, v)) !== removedBatch) out.push(key(i, v));
    return out;
  };
  const [deletedKey, editedKey, leafKey] = free();
  t.ok(deletedKey && editedKey && leafKey, 'three versions outside the removed batch');
  const versions = connection.db.collection<{ _id: string }>('resource_versions');
  const heads = connection.db.collection<{ _id: string }>('resources');

  // (1) one version deleted
  await versions.deleteOne({ _id: deletedKey! });
  // (2) one resource deleted with all its versions and its head
  await versions.deleteMany({ _id: { $in: [1, 2, 3].map((v) => key(0, v)) } });
  await heads.deleteOne({ _id: `Patient/${ids[0]}` });
  // (3) one version edited
  await versions.updateOne({ _id: editedKey! }, { $set: { 'resource.gender': 'male' } });
  // (4) one leaf edited in its batch document
  const leafBatch = batchOf(leafKey!);
  const stored = (await batches.findOne({ _id: leafBatch }))!;
  const leafIndex = stored.members.indexOf(leafKey!);
  const forged = Buffer.from(bytes(stored.leaves)!);
  forged.fill(7, leafIndex * 32, (leafIndex + 1) * 32);
  await batches.updateOne({ _id: leafBatch }, { $set: { leaves: forged } });
  // (5) one batch document removed
  const removedMembers = all.find((b) => b._id === removedBatch)!.members;
  await batches.deleteOne({ _id: removedBatch });
  // (6) a version left pending for an hour: a fourth version of patient 5, written around the worker
  const source = (await connection.db.collection('resource_versions').findOne({ _id: key(5, 3) } as never))!;
  const pendingKey = `Patient/${ids[5]}/4`;
  await connection.db.collection('resource_versions').insertOne({
    ...source,
    _id: pendingKey,
    versionId: 4,
    lastUpdated: new Date(Date.now() - 60 * 60_000),
    anchor: { state: 'pending', salt: Buffer.alloc(32, 1), commitment: Buffer.alloc(32, 2) },
  } as never);

  // ---- findings
  const json = join(dir, 'tampered.json');
  const html = join(dir, 'tampered.html');
  const run = await audit([...base, '--json', json, '--html', html]);
  t.equal(run.code, 1, run.stdout + run.stderr);
  t.match(run.stdout, /RESULT: FINDINGS: \d+ \(exit 1\)/);
  const report = JSON.parse(await readFile(json, 'utf8')) as AuditReport;
  const page = await readFile(html, 'utf8');
  t.equal(report.outcome, 'findings');
  const of = (kind: Finding['kind']): Finding[] => report.findings.filter((f) => f.kind === kind);
  const inPage = (f: Finding, label: string): void => {
    t.ok(page.includes(escapeHtml(f.explanation)), `${label}: in the HTML report`);
  };

  const missing = of('version-missing');
  t.equal(missing.length, 1, 'one version missing (the removed resource is reported once, not per version)');
  t.match(missing[0], {
    batch: batchOf(deletedKey!),
    resource: deletedKey!.replace(/\/\d+$/, ''),
    versionId: Number(deletedKey!.split('/')[2]),
  });
  inPage(missing[0]!, 'deleted version');

  const removed = of('resource-removed');
  t.equal(removed.length, 1);
  t.match(removed[0], { resource: `Patient/${ids[0]}`, versions: [1, 2, 3], batch: Math.min(...wholeBatches) });
  t.match(removed[0]!.explanation, /deleted from the database with its whole history/);
  inPage(removed[0]!, 'removed resource');
  t.ok(page.includes(escapeHtml(`Patient/${ids[0]}`)));

  const altered = of('version-altered');
  t.equal(altered.length, 1, 'only the edited version is altered (not the one whose leaf was edited)');
  t.match(altered[0], {
    batch: batchOf(editedKey!),
    resource: editedKey!.replace(/\/\d+$/, ''),
    versionId: Number(editedKey!.split('/')[2]),
  });
  inPage(altered[0]!, 'edited version');

  const adds = of('batch-does-not-add-up');
  t.equal(adds.length, 2, 'the root no longer follows from the leaves, and which leaf changed');
  t.ok(adds.every((f) => f.batch === leafBatch));
  t.match(adds.map((f) => f.explanation).join('\n'), new RegExp(`leaf ${leafIndex} \\(${leafKey!.replace(/[/.]/g, '\\$&')}\\)`));
  for (const f of adds) inPage(f, 'edited leaf');

  const batchRemoved = of('batch-document-removed');
  t.equal(batchRemoved.length, 1);
  t.match(batchRemoved[0], { batch: removedBatch, resource: null });
  t.match(batchRemoved[0]!.explanation, new RegExp(`${removedMembers.length} versions? still say they belong to it`));
  inPage(batchRemoved[0]!, 'removed batch record');

  const unanchored = of('unanchored-version');
  t.equal(unanchored.length, 1);
  t.match(unanchored[0], { batch: null, resource: `Patient/${ids[5]}`, versionId: 4 });
  inPage(unanchored[0]!, 'pending version');

  t.equal(report.summary.findings, 7, 'nothing else is reported');
  t.same(report.summary.findingsByKind, {
    'version-missing': 1,
    'resource-removed': 1,
    'version-altered': 1,
    'batch-does-not-add-up': 2,
    'batch-document-removed': 1,
    'unanchored-version': 1,
  });
  t.equal(report.batches.find((b) => b.batch === removedBatch)?.status, 'findings');
  t.match(page, /Record deleted with its whole history/);
  const httpTampered = await app.inject({ method: 'GET', url: `/$ledger-audit?from=1&to=${all.length}` });
  t.match(
    httpTampered.json(),
    { outcome: 'findings', summary: { findings: 7, findingsByKind: report.summary.findingsByKind } },
    'HTTP finds the same',
  );
  t.match(page, /Batch record deleted/);

  // A range that goes past the ledger's end: incomplete (3), unless something is found; here only the last batch.
  const last = all.at(-1)!._id;
  const lastOk = last !== removedBatch && last !== leafBatch && ![deletedKey, editedKey].some((k) => batchOf(k!) === last);
  if (lastOk && !wholeBatches.has(last)) {
    const past = await audit([...base, '--from', String(last), '--to', String(last + 2), '--grace-minutes', '1000']);
    t.equal(past.code, 3, past.stdout + past.stderr);
    t.match(past.stdout, /RESULT: INCOMPLETE/);
  }
});

t.test('exit codes: usage 2, mirror unreachable 4, database unreachable 6', async (t) => {
  const usage = await audit(['--from', '0']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /Usage: fhir-ledger-audit/);
  const reversed = await audit(['--mongodb-uri', 'mongodb://127.0.0.1:1', '--from', '5', '--to', '2']);
  t.equal(reversed.code, 2);

  const net = await startTestNetwork(t);
  const { app, runtime, connection } = await startLedgerApp(t, net);
  await createPatient(app, 'Unreachable');
  runtime.start();
  await waitAnchored(connection, 10_000);
  const mongo = await testMongo();
  const down = await audit(['--mongodb-uri', mongo.uri, '--db', connection.db.databaseName, '--mirror', 'http://127.0.0.1:9']);
  t.equal(down.code, 4, down.stdout);
  t.match(down.stdout, /MIRROR UNREACHABLE/);
  // Without --mirror on the local ledger: its mirror port from LOCAL_LEDGER_MIRROR_PORT (9 here: nothing listens), said plainly.
  const local = await audit(['--mongodb-uri', mongo.uri, '--db', connection.db.databaseName]);
  t.match(local.stdout, /MIRROR: http:\/\/127\.0\.0\.1:9, the mirror of the LOCAL development ledger, .*not independent/);
  t.equal(local.code, 4);

  const noDb = await audit(['--mongodb-uri', 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500', '--mirror', net.mirrorUrl]);
  t.equal(noDb.code, 6, noDb.stdout);
});

stopMongoAtEnd(t);
