// The verification CLIs, run from source through tap's loader (no build), against the local network's mirror
// REST API: a package exported with $proof verifies; after tampering with the database (a version, a salt, a
// proof — the batch leaves and receipt it is computed from —, a version's claim, a deleted version) $verify, and
// the CLI where the package shows it, report the mismatch; exit codes for the other outcomes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { bytes } from '../../src/ledger/ledger-store.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { spawnTs, waitForExit } from '../helpers/spawn-ts.js';
import { createPatient, param, startLedgerApp, startTestNetwork, updatePatient, waitAnchored } from '../ledger/helpers/ledger-app.js';

// Servers and CLIs in child processes: on a busy 2-core machine this file needs more than the suite's 180 s per
// file (a harness limit, not a speed assertion).
t.setTimeout(420_000);

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function runCli(entry: string, args: string[]): Promise<CliResult> {
  const child = spawnTs(entry, args, {});
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await waitForExit(child, 60_000);
  return { code, stdout, stderr };
}

const verifyCli = (args: string[]) => runCli('src/cli/fhir-ledger-verify.ts', args);
const chainCli = (args: string[]) => runCli('src/cli/fhir-ledger-verify-chain.ts', args);

async function exportPackage(app: FastifyInstance, dir: string, url: string, name: string): Promise<string> {
  const res = await app.inject({ method: 'GET', url });
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
  const file = join(dir, `${name}.json`);
  await writeFile(file, res.body);
  return file;
}

async function verifyStatus(app: FastifyInstance, url: string): Promise<{ status?: string; reasons: string[] }> {
  const res = await app.inject({ method: 'GET', url });
  const body = res.json() as { parameter?: Array<{ name: string; valueCode?: string; valueString?: string }> };
  return {
    status: param(body, 'status')?.valueCode,
    reasons: (body.parameter ?? []).filter((p) => p.name === 'reason').map((p) => p.valueString ?? ''),
  };
}

t.test('CLI verifies exported packages; tampering is reported by $verify and the CLI', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ledger-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const net = await startTestNetwork(t);
  const { app, runtime, connection } = await startLedgerApp(t, net);
  const versions = connection.db.collection('resource_versions');

  const p = await createPatient(app, 'Original');
  await updatePatient(app, p.id, 'Second');
  await updatePatient(app, p.id, 'Third');
  const others = [await createPatient(app, 'Other1'), await createPatient(app, 'Other2'), await createPatient(app, 'Other3')];

  // Before anchoring: the CLI says pending (exit 3).
  const pendingFile = await exportPackage(app, dir, `/Patient/${p.id}/$proof`, 'pending');
  const pending = await verifyCli([pendingFile]);
  t.equal(pending.code, 3, pending.stdout + pending.stderr);
  t.match(pending.stdout, /RESULT: PENDING/);

  runtime.start();
  await waitAnchored(connection, 10_000);

  // An untouched package verifies (exit 0), with the consensus timestamp printed.
  const good = await exportPackage(app, dir, `/Patient/${p.id}/$proof`, 'good');
  const ok = await verifyCli([good, '--mirror', net.mirrorUrl]);
  t.equal(ok.code, 0, ok.stdout + ok.stderr);
  t.match(ok.stdout, /Patient\/[^/]+\/_history\/1 {2}VERIFIED/);
  t.match(ok.stdout, /consensus time +\d+\.\d{9} \(\d{4}-\d\d-\d\dT[\d:.]+Z\)/);
  t.match(ok.stdout, /ok running-hash-chain/);
  t.match(ok.stdout, /NOTE: this package was anchored on a LOCAL development ledger/);
  t.match(ok.stdout, /history {2}complete/);
  t.match(ok.stdout, /RESULT: VERIFIED \(exit 0\)/);

  // One version's package; the mirror URL comes from the package.
  const single = await exportPackage(app, dir, `/Patient/${p.id}/_history/2/$proof`, 'single');
  const one = await verifyCli([single]);
  t.equal(one.code, 0, one.stdout);
  t.match(one.stdout, /history {2}not checked/);

  // The topic's chain, against the same mirror.
  const topic = runtime.worker.stats.topicId!;
  const chain = await chainCli(['--topic', topic, '--from', '1', '--to', '1', '--mirror', net.mirrorUrl]);
  t.equal(chain.code, 0, chain.stdout + chain.stderr);
  t.match(chain.stdout, /#1 .* running hash ok {2}batch 1 root [0-9a-f]{64} size 6/);
  const past = await chainCli(['--topic', topic, '--from', '1', '--to', '5', '--mirror', net.mirrorUrl]);
  t.equal(past.code, 3, 'messages past the last one: incomplete');

  // 1. A version edited directly in MongoDB.
  const key1 = `Patient/${p.id}/1`;
  await versions.updateOne({ _id: key1 } as never, { $set: { 'resource.name.0.family': 'Forged' } });
  const edited = await verifyStatus(app, `/Patient/${p.id}/_history/1/$verify`);
  t.equal(edited.status, 'failed');
  t.match(edited.reasons.join('\n'), /changed after it was written/);
  const editedCli = await verifyCli([await exportPackage(app, dir, `/Patient/${p.id}/$proof`, 'edited')]);
  t.equal(editedCli.code, 1, editedCli.stdout);
  t.match(editedCli.stdout, /FAIL commitment/);
  t.match(editedCli.stdout, /RESULT: MISMATCH/);
  await versions.updateOne({ _id: key1 } as never, { $set: { 'resource.name.0.family': 'Original' } });
  t.equal((await verifyStatus(app, `/Patient/${p.id}/_history/1/$verify`)).status, 'anchored', 'restoring the content restores the proof');

  // 2. A changed salt.
  const o1 = `Patient/${others[0]!.id}/1`;
  await versions.updateOne({ _id: o1 } as never, { $set: { 'anchor.salt': Buffer.alloc(32, 7) } });
  const salted = await verifyStatus(app, `/Patient/${others[0]!.id}/_history/1/$verify`);
  t.equal(salted.status, 'failed');
  const saltedCli = await verifyCli([await exportPackage(app, dir, `/Patient/${others[0]!.id}/$proof`, 'salted')]);
  t.equal(saltedCli.code, 1, saltedCli.stdout);

  // 3a. A changed proof. Nothing proof-related is stored per version any more: a version's audit path is
  // computed from its batch's stored leaves. Changing another member's leaf changes one hash of the path.
  const batches = connection.db.collection<{ _id: number; members: string[]; leaves: unknown; receipt: { sequenceNumber: number } }>(
    'ledger_batches',
  );
  const o2 = `Patient/${others[1]!.id}/1`;
  const stored = (await batches.findOne({ members: o2 }))!;
  const goodLeaves = bytes(stored.leaves)!;
  const at = stored.members.indexOf(o2);
  const sibling = at % 2 === 0 ? at + 1 : at - 1;
  const forged = Buffer.from(goodLeaves);
  forged.fill(1, sibling * 32, (sibling + 1) * 32);
  await batches.updateOne({ _id: stored._id }, { $set: { leaves: forged } });
  const pathChanged = await verifyStatus(app, `/Patient/${others[1]!.id}/_history/1/$verify`);
  t.equal(pathChanged.status, 'failed');
  t.match(pathChanged.reasons.join('\n'), /folds along its audit path/);
  t.match(pathChanged.reasons.join('\n'), new RegExp(`the leaves stored with batch ${stored._id} no longer give its root`));
  const pathCli = await verifyCli([await exportPackage(app, dir, `/Patient/${others[1]!.id}/$proof`, 'path')]);
  t.equal(pathCli.code, 1, pathCli.stdout);
  t.match(pathCli.stdout, /FAIL audit-path/);
  await batches.updateOne({ _id: stored._id }, { $set: { leaves: goodLeaves } });
  t.equal(
    (await verifyStatus(app, `/Patient/${others[1]!.id}/_history/1/$verify`)).status,
    'anchored',
    'restoring the leaves restores the proof',
  );

  // 3b. A changed proof: the batch's recorded sequence number, so every proof of the batch points at another
  // (absent) message.
  const o3 = `Patient/${others[2]!.id}/1`;
  const o3Batch = (await batches.findOne({ members: o3 }))!;
  await batches.updateOne({ _id: o3Batch._id }, { $set: { 'receipt.sequenceNumber': 2 } });
  const seqChanged = await verifyStatus(app, `/Patient/${others[2]!.id}/_history/1/$verify`);
  t.equal(seqChanged.status, 'failed', 'a proof pointing at another (absent) message fails');
  const seqCli = await verifyCli([await exportPackage(app, dir, `/Patient/${others[2]!.id}/$proof`, 'seq')]);
  t.equal(seqCli.code, 1, seqCli.stdout);
  await batches.updateOne({ _id: o3Batch._id }, { $set: { 'receipt.sequenceNumber': o3Batch.receipt.sequenceNumber } });

  // 3c. A version's claim moved to another batch: $verify sees that the claim and the member lists disagree.
  await versions.updateOne({ _id: o3 } as never, { $set: { 'anchor.batch': 99 } });
  const moved = await verifyStatus(app, `/Patient/${others[2]!.id}/_history/1/$verify`);
  t.equal(moved.status, 'failed');
  t.match(moved.reasons.join('\n'), new RegExp(`names batch 99, but batch ${o3Batch._id} lists it`));
  await versions.updateOne({ _id: o3 } as never, { $set: { 'anchor.batch': o3Batch._id } });
  t.equal((await verifyStatus(app, `/Patient/${others[2]!.id}/_history/1/$verify`)).status, 'anchored');

  // 4. A version deleted from history.
  await versions.deleteOne({ _id: `Patient/${p.id}/2` } as never);
  const gone = await verifyStatus(app, `/Patient/${p.id}/_history/2/$verify`);
  t.equal(gone.status, 'failed');
  t.match(gone.reasons.join('\n'), /version 2 is missing from the database, but batch 1 anchored it/);
  const neighbour = await verifyStatus(app, `/Patient/${p.id}/_history/3/$verify`);
  t.equal(neighbour.status, 'failed', 'the neighbouring versions report the gap');
  t.match(neighbour.reasons.join('\n'), /version 2 is missing, but batch 1 anchored it/);
  const goneCli = await verifyCli([await exportPackage(app, dir, `/Patient/${p.id}/$proof`, 'gone')]);
  t.equal(goneCli.code, 1, goneCli.stdout);
  t.match(goneCli.stdout, /history {2}INCOMPLETE/);
  t.match(goneCli.stdout, /version 2 is missing, but batch 1 anchored it/);
});

t.test('exit codes: usage 2, mirror unreachable 4', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ledger-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const usage = await verifyCli([]);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /Usage: fhir-ledger-verify/);
  const notJson = join(dir, 'x.json');
  await writeFile(notJson, '{"format":"something else"}');
  const wrong = await verifyCli([notJson]);
  t.equal(wrong.code, 2);
  t.match(wrong.stderr, /not a valid proof package/);
  const chainUsage = await chainCli(['--topic', 'x']);
  t.equal(chainUsage.code, 2);

  const net = await startTestNetwork(t);
  const { app, runtime, connection } = await startLedgerApp(t, net);
  const p = await createPatient(app, 'Unreachable');
  runtime.start();
  await waitAnchored(connection, 10_000);
  const file = await exportPackage(app, dir, `/Patient/${p.id}/$proof`, 'p');
  const down = await verifyCli([file, '--mirror', 'http://127.0.0.1:9']);
  t.equal(down.code, 4, down.stdout);
  t.match(down.stdout, /MIRROR UNREACHABLE/);
  const chainDown = await chainCli(['--topic', '0.0.1001', '--from', '1', '--to', '2', '--mirror', 'http://127.0.0.1:9']);
  t.equal(chainDown.code, 4);
});

stopMongoAtEnd(t);
