// Claiming and sealing under crashes and stale workers, seen through the HTTP API and the topic on the mirror:
// - a worker dies between sealing a batch and sending it: the next lease holder sends that very transaction, and
//   nothing is written to the versions on the way;
// - a worker whose lease ran out left a batch half-claimed, listing a version another batch already anchored,
//   or none it could still claim: the batch is cut down to what it claimed (or dropped), so no version is in two
//   batches, none is left out, and every batch number goes on the topic once.
import t from 'tap';
import type { Bundle, Extension, Provenance } from '@medplum/fhirtypes';
import type { Db } from 'mongodb';
import { BATCH_MESSAGE_VERSION, decodeBatchMessage, encodeBatchMessage } from '../../src/ledger/batch-message.js';
import type { LedgerRuntime } from '../../src/ledger/ledger-runtime.js';
import { bytes } from '../../src/ledger/ledger-store.js';
import { buildTree, leafHash } from '../../src/ledger/merkle.js';
import { MirrorClient } from '../../src/ledger/mirror-client.js';
import { parseProofPackage } from '../../src/ledger/proof-package.js';
import { LEDGER_ANCHOR_EXTENSION } from '../../src/ledger/provenance.js';
import { verifyPackage } from '../../src/ledger/verify-package.js';
import type { LocalHedera } from '../../src/dev/hedera/index.js';
import type { VersionDocument } from '../../src/store/resource-store.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import {
  HookedLedger,
  createPatient,
  param,
  runtimeFor,
  sdkLedgerFor,
  startLedgerApp,
  startTestNetwork,
  waitAnchored,
  type LogLine,
} from './helpers/ledger-app.js';
import type { FastifyInstance } from 'fastify';

interface StoredBatch {
  _id: number;
  state: string;
  revision?: number;
  size: number;
  members: string[];
  root: unknown;
  transactionIds: string[];
}

async function topicBatches(
  net: LocalHedera,
  topic: string,
): Promise<Array<{ batch: number; size: number; root: string; prev: string | null }>> {
  const page = (await (await fetch(`${net.mirrorUrl}/api/v1/topics/${topic}/messages?limit=100`)).json()) as {
    messages: Array<{ message: string }>;
  };
  return page.messages.map((m) => {
    const decoded = decodeBatchMessage(Buffer.from(m.message, 'base64'));
    return {
      batch: decoded.batchNumber,
      size: decoded.treeSize,
      root: decoded.root.toString('hex'),
      prev: decoded.previousRoot?.toString('hex') ?? null,
    };
  });
}

async function verifyAnswer(
  app: FastifyInstance,
  key: string,
): Promise<{ status?: string; batch?: number; leafIndex?: number; reasons: string }> {
  const [type, id, vid] = key.split('/');
  const body = (await app.inject({ method: 'GET', url: `/${type}/${id}/_history/${vid}/$verify` })).json() as {
    parameter?: Array<{ name: string; valueString?: string }>;
  };
  return {
    status: param(body, 'status')?.valueCode,
    batch: param(body, 'batch')?.valueInteger,
    leafIndex: param(body, 'leafIndex')?.valueInteger,
    reasons: (body.parameter ?? [])
      .filter((p) => p.name === 'reason')
      .map((p) => p.valueString)
      .join('\n'),
  };
}

/** Bounded poll. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * What a worker that dies (or loses its lease) right after inserting batch `number` and claiming `claimed` leaves
 * behind: a 'claiming' batch listing `members` — versions it read as pending — with its message and signed
 * transaction, exactly as AnchorWorker prepares them.
 */
async function leftBehind(db: Db, runtime: LedgerRuntime, number: number, members: string[], claimed: string[]): Promise<void> {
  const versions = db.collection<VersionDocument>('resource_versions');
  const batches = db.collection<StoredBatch>('ledger_batches');
  const commitments = await Promise.all(members.map(async (key) => bytes((await versions.findOne({ _id: key }))!.anchor!.commitment)!));
  const tree = buildTree(commitments.map((c) => leafHash(c)));
  const previousRoot = bytes((await batches.findOne({ _id: number - 1 }))!.root)!;
  const message = encodeBatchMessage({
    version: BATCH_MESSAGE_VERSION,
    batchNumber: number,
    treeSize: members.length,
    root: tree.root,
    previousRoot,
  });
  const topicId = runtime.worker.stats.topicId!;
  const prepared = await runtime.ledger.prepareMessage(topicId, message);
  await db.collection('ledger_batches').insertOne({
    _id: number as never,
    state: 'claiming',
    revision: 0,
    root: tree.root,
    previousRoot,
    size: members.length,
    members,
    leaves: Buffer.concat(commitments),
    message,
    topicId,
    network: runtime.ledger.networkLabel,
    transactionIds: [prepared.transactionId],
    signedTransaction: prepared.signedBytes,
    validUntilMs: prepared.validUntilMs,
    preparedBy: 'a-worker-whose-lease-ran-out',
    preparedAt: new Date(),
  });
  await versions.updateMany({ _id: { $in: claimed } }, { $set: { 'anchor.state': 'batched', 'anchor.batch': number } });
}

function anchorPart(p: Provenance, url: string): Extension | undefined {
  return p.extension?.find((e) => e.url === LEDGER_ANCHOR_EXTENSION)?.extension?.find((e) => e.url === url);
}

t.test('a crash between sealing and sending: the next worker sends the same transaction; versions are not written again', async (t) => {
  const net = await startTestNetwork(t);
  const ledger = new HookedLedger(sdkLedgerFor(net));
  let attempts = 0;
  ledger.beforeSubmit = async () => {
    attempts++;
    throw new Error('simulated crash: the process died before sending');
  };
  const { app, runtime, connection } = await startLedgerApp(t, net, { ledger, holderId: 'dies', config: { leaseTtlMs: 1000 } });
  const versions = connection.db.collection<VersionDocument>('resource_versions');
  const batches = connection.db.collection<StoredBatch>('ledger_batches');
  const ids = [(await createPatient(app, 'One')).id, (await createPatient(app, 'Two')).id, (await createPatient(app, 'Three')).id];
  runtime.start();
  await until('batch 1 sealed and about to be sent', async () => attempts > 0 && (await batches.findOne({ _id: 1 }))?.state === 'prepared');
  // The process dies: its lease is not released, another process takes over once it expires.
  runtime.lease.release = async () => {};
  await runtime.worker.stop();
  const sealed = (await batches.findOne({ _id: 1 }))!;
  t.equal(sealed.size, 3);
  t.equal(
    await versions.countDocuments({ 'anchor.state': 'batched', 'anchor.batch': 1 }),
    3,
    'every member was claimed before the batch was sealed',
  );

  // Meanwhile, through the API: pending, in batch 1.
  const meanwhile = await verifyAnswer(app, `Patient/${ids[0]}/1`);
  t.equal(meanwhile.status, 'pending');
  t.equal(meanwhile.batch, 1);
  const prov = ((await app.inject({ method: 'GET', url: `/Patient/${ids[0]}/$provenance` })).json() as Bundle<Provenance>).entry![0]!
    .resource!;
  t.equal(anchorPart(prov, 'status')?.valueCode, 'pending');
  t.equal(anchorPart(prov, 'batch')?.valueInteger, 1);
  const before = await versions.find({}, { sort: { _id: 1 } }).toArray();

  const logs: LogLine[] = [];
  const successor = runtimeFor(net, connection, logs, { holderId: 'successor', config: { leaseTtlMs: 1000 } });
  t.teardown(() => successor.stop());
  successor.start();
  await waitAnchored(connection, 15_000);

  t.equal(successor.worker.stats.batchesRecovered, 1, 'the successor finished the batch it found');
  const anchored = (await batches.findOne({ _id: 1 }))!;
  t.same(anchored.transactionIds, sealed.transactionIds, 'sent under the transaction id it was sealed with');
  t.same(await versions.find({}, { sort: { _id: 1 } }).toArray(), before, 'no version was written during recovery');
  const topic = await topicBatches(net, successor.worker.stats.topicId!);
  t.same(
    topic.map((m) => [m.batch, m.size]),
    [[1, 3]],
    'batch 1 on the topic once',
  );
  for (const id of ids) {
    const answer = await verifyAnswer(app, `Patient/${id}/1`);
    t.equal(answer.status, 'anchored', `Patient/${id} anchored after the takeover`);
  }
});

t.test(
  "a stale worker's half-claimed batch is cut down to what it claimed, or dropped: no version in two batches, none left out",
  async (t) => {
    const net = await startTestNetwork(t);
    const { app, runtime, connection, logs } = await startLedgerApp(t, net);
    const versions = connection.db.collection<VersionDocument>('resource_versions');
    const batches = connection.db.collection<StoredBatch>('ledger_batches');
    const key = (id: string): string => `Patient/${id}/1`;

    const [a, b, c] = [await createPatient(app, 'A'), await createPatient(app, 'B'), await createPatient(app, 'C')];
    runtime.start();
    await waitAnchored(connection, 10_000);
    await runtime.worker.stop();
    t.same((await batches.findOne({ _id: 1 }))!.members.sort(), [a, b, c].map((p) => key(p.id)).sort(), 'batch 1: A, B, C');

    // A worker that read C as pending before batch 1 claimed it, and D and E, prepared batch 2, claimed D and
    // died (or lost its lease). F is written afterwards.
    const [d, e] = [await createPatient(app, 'D'), await createPatient(app, 'E')];
    await leftBehind(connection.db, runtime, 2, [key(c.id), key(d.id), key(e.id)], [key(d.id)]);
    const f = await createPatient(app, 'F');
    const stale = await verifyAnswer(app, key(d.id));
    t.equal(stale.status, 'pending', 'D: claimed by a batch not sent yet');

    runtime.start();
    await waitAnchored(connection, 15_000);
    t.ok(
      logs.some((l) => /batch 2 could claim 2 of its 3 versions/.test(l.message)),
      'the cut is logged',
    );
    const b2 = (await batches.findOne({ _id: 2 }))!;
    t.same(b2.members, [key(d.id), key(e.id)], 'batch 2 went out with D and E only');
    t.equal(b2.revision, 1);
    t.equal(b2.transactionIds.length, 1, 'a new transaction for the new content; the old one was never sent');
    const b3 = (await batches.findOne({ _id: 3 }))!;
    t.same(b3.members, [key(f.id)], 'F in the next batch');

    t.equal((await verifyAnswer(app, key(c.id))).batch, 1, 'C stays in batch 1');
    for (const [p, batch, leaf] of [
      [c, 1, undefined],
      [d, 2, 0],
      [e, 2, 1],
      [f, 3, 0],
    ] as const) {
      const answer = await verifyAnswer(app, key(p.id));
      t.equal(answer.status, 'anchored', `${key(p.id)} anchored ${answer.reasons}`);
      t.equal(answer.batch, batch);
      if (leaf !== undefined) t.equal(answer.leafIndex, leaf);
    }

    // Then a stale batch 4 listing only versions that are anchored already: it can claim none, and is dropped.
    await runtime.worker.stop();
    await leftBehind(connection.db, runtime, 4, [key(a.id), key(b.id)], []);
    const g = await createPatient(app, 'G');
    runtime.start();
    await waitAnchored(connection, 15_000);
    t.ok(
      logs.some((l) => /batch 4 could claim none of its 2 versions/.test(l.message)),
      'the drop is logged',
    );
    t.same((await batches.findOne({ _id: 4 }))!.members, [key(g.id)], 'batch number 4 went to G');

    // Every version in exactly one batch; every batch number on the topic once, with its final size, chained.
    const listed = (await batches.find({}, { sort: { _id: 1 } }).toArray()).flatMap((x) => x.members);
    t.equal(new Set(listed).size, listed.length, 'no version listed by two batches');
    t.same(listed.sort(), (await versions.find({}, { projection: { _id: 1 } }).toArray()).map((v) => v._id).sort(), 'and none left out');
    const topic = await topicBatches(net, runtime.worker.stats.topicId!);
    t.same(
      topic.map((m) => [m.batch, m.size]),
      [
        [1, 3],
        [2, 2],
        [3, 1],
        [4, 1],
      ],
    );
    topic.forEach((m, i) => {
      if (i > 0) t.equal(m.prev, topic[i - 1]!.root, `batch ${m.batch} chains to batch ${m.batch - 1}`);
    });
    for (const p of [c, d]) {
      const pkg = parseProofPackage((await app.inject({ method: 'GET', url: `/Patient/${p.id}/$proof` })).json());
      t.equal(
        (await verifyPackage(pkg, new MirrorClient(net.mirrorUrl))).outcome,
        'verified',
        `${key(p.id)}: its package verifies offline`,
      );
    }
  },
);

stopMongoAtEnd(t);
