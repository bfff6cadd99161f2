/**
 * The worker's restart paths, with the real SDK and local network behind a wrapper that misbehaves once:
 * - the network was unreachable when a prepared batch was first sent: the SAME transaction (same id, same
 *   bytes) goes out later;
 * - a prepared transaction expired before it could be sent and the network never saw it: the SAME message goes
 *   out under a new transaction id — the batch number keeps its root;
 * - the receipt was lost after a successful submission: the batch is found by its transaction id, not re-sent.
 */
import t from 'tap';
import { AccountId, Client, PrivateKey, Timestamp, TopicId, TopicMessageSubmitTransaction, TransactionId } from '@hashgraph/sdk';
import { SdkHederaLedger, type PreparedTransaction, type ReceiptOutcome, type SubmitOutcome } from '../../src/ledger/hedera-client.js';
import { decodeBatchMessage } from '../../src/ledger/batch-message.js';
import { bytes } from '../../src/ledger/ledger-store.js';
import type { LocalHedera } from '../../src/dev/hedera/index.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { ForwardingLedger, createPatient, startLedgerApp, startTestNetwork, waitAnchored } from './helpers/ledger-app.js';

/** Delegates to the real SDK client; the test arms one fault at a time. */
class FaultyLedger extends ForwardingLedger {
  failNextSubmit = false;
  expireNextMessage = false;
  loseNextReceipt = false;
  readonly submitted: string[] = [];
  constructor(
    real: SdkHederaLedger,
    private readonly net: LocalHedera,
  ) {
    super(real);
  }
  override async prepareMessage(topicId: string, message: Buffer): Promise<PreparedTransaction> {
    if (!this.expireNextMessage) return super.prepareMessage(topicId, message);
    this.expireNextMessage = false;
    // Valid from 200 s ago for 120 s: expired for 80 s, past the worker's mirror grace period.
    const client = Client.forNetwork({ [this.net.grpcEndpoint]: this.net.nodeAccountId }, { scheduleNetworkUpdate: false });
    const key = PrivateKey.fromStringDer(this.net.operatorKey);
    client.setOperator(this.net.operatorId, key);
    const start = Date.now() - 200_000;
    const id = TransactionId.withValidStart(AccountId.fromString(this.net.operatorId), Timestamp.fromDate(new Date(start)));
    const tx = new TopicMessageSubmitTransaction()
      .setTopicId(TopicId.fromString(topicId))
      .setMessage(message)
      .setTransactionId(id)
      .freezeWith(client);
    await tx.sign(key);
    client.close();
    return { transactionId: id.toString(), signedBytes: Buffer.from(tx.toBytes()), validUntilMs: start + 120_000 };
  }
  override async submit(signedBytes: Buffer): Promise<SubmitOutcome> {
    if (this.failNextSubmit) {
      this.failNextSubmit = false;
      throw new Error('14 UNAVAILABLE: No connection established (simulated)');
    }
    const outcome = await super.submit(signedBytes);
    this.submitted.push(outcome);
    return outcome;
  }
  override async receipt(transactionId: string, wait: boolean): Promise<ReceiptOutcome> {
    if (wait && this.loseNextReceipt) {
      this.loseNextReceipt = false;
      throw new Error('4 DEADLINE_EXCEEDED (simulated)');
    }
    return super.receipt(transactionId, wait);
  }
}

async function topicBatches(net: LocalHedera, topic: string): Promise<Array<{ batch: number; root: string }>> {
  const page = (await (await fetch(`${net.mirrorUrl}/api/v1/topics/${topic}/messages?limit=100`)).json()) as {
    messages: Array<{ message: string }>;
  };
  return page.messages.map((m) => {
    const decoded = decodeBatchMessage(Buffer.from(m.message, 'base64'));
    return { batch: decoded.batchNumber, root: decoded.root.toString('hex') };
  });
}

t.test('restart paths keep one root per batch number', async (t) => {
  const net = await startTestNetwork(t);
  const real = new SdkHederaLedger({
    network: 'local',
    operatorId: net.operatorId,
    operatorKey: net.operatorKey,
    grpcEndpoint: net.grpcEndpoint,
    nodeAccountId: net.nodeAccountId,
    grpcDeadlineMs: 2000,
    requestTimeoutMs: 5000,
  });
  const faulty = new FaultyLedger(real, net);
  const { app, runtime, connection, logs } = await startLedgerApp(t, net, { ledger: faulty });
  const batches = connection.db.collection<{ _id: number; transactionIds: string[]; root: unknown; state: string }>('ledger_batches');
  runtime.start();

  // 1. The first send of batch 1 fails (network): the same transaction goes out on the retry.
  faulty.failNextSubmit = true;
  await createPatient(app, 'NeverSent');
  await waitAnchored(connection, 10_000);
  const b1 = await batches.findOne({ _id: 1 });
  t.equal(b1?.transactionIds.length, 1, 'batch 1 kept its transaction id');
  t.ok(
    logs.some((l) => l.level === 'warn' && /UNAVAILABLE/.test(l.message)),
    'the failed send was logged as an outage',
  );

  // 2. Batch 2's transaction expired unsent: a new id carries the same message.
  faulty.expireNextMessage = true;
  await createPatient(app, 'Expired');
  await waitAnchored(connection, 15_000);
  const b2 = await batches.findOne({ _id: 2 });
  t.equal(b2?.transactionIds.length, 2, 'batch 2 needed a second transaction id');
  t.ok(faulty.submitted.includes('expired'), 'the network refused the expired one');
  t.ok(logs.some((l) => /was never recorded; sending the same message under a new transaction id/.test(l.message)));

  // 3. Batch 3's receipt is lost after the submission: found again by its id, never re-sent.
  faulty.loseNextReceipt = true;
  await createPatient(app, 'LostReceipt');
  await waitAnchored(connection, 15_000);
  const b3 = await batches.findOne({ _id: 3 });
  t.equal(b3?.transactionIds.length, 1);

  const topic = runtime.worker.stats.topicId!;
  const onTopic = await topicBatches(net, topic);
  t.same(
    onTopic.map((m) => m.batch),
    [1, 2, 3],
    'each batch exactly once on the topic, in order',
  );
  for (const b of [b1, b2, b3]) {
    const stored = bytes(b!.root)!.toString('hex');
    t.equal(
      onTopic.find((m) => m.batch === b!._id)?.root,
      stored,
      `batch ${b!._id}: the root prepared before sending is the root on the ledger`,
    );
  }
});

stopMongoAtEnd(t);
