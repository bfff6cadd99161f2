// Exactly one anchoring worker across processes: the MongoDB lease, alone and with two real workers on one database.
import t from 'tap';
import { Lease } from '../../src/ledger/lease.js';
import { decodeBatchMessage } from '../../src/ledger/batch-message.js';
import { connectMongo } from '../../src/store/mongo.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { testMongo, uniqueDbName } from '../helpers/mongo.js';
import { createPatient, runtimeFor, startLedgerApp, startTestNetwork, waitAnchored, type LogLine } from './helpers/ledger-app.js';

t.test('the lease: one holder, renewal, expiry, takeover, release', async (t) => {
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, uniqueDbName('lease'));
  t.teardown(async () => {
    await connection.db.dropDatabase();
    await connection.close();
  });
  let now = 1_000_000;
  const clock = () => now;
  const a = new Lease(connection.db, 'A', 1000, clock);
  const b = new Lease(connection.db, 'B', 1000, clock);
  t.equal(await a.acquire(), true, 'A takes the free lease');
  t.equal(await b.acquire(), false, 'B cannot while A holds it');
  t.equal(a.held, true);
  now += 600;
  t.equal(await a.acquire(), true, 'A renews');
  now += 600;
  t.equal(await b.acquire(), false, 'renewed: still A');
  now += 1001;
  t.equal(a.held, false, 'A knows its lease ran out');
  t.equal(await b.acquire(), true, 'B takes over after expiry');
  t.equal(await a.acquire(), false, 'A cannot renew a lease B holds');
  t.equal((await b.current())?.holder, 'B');
  await b.release();
  t.equal(await a.acquire(), true, 'released: A takes it at once');
  // Racing for a free lease: exactly one wins.
  await a.release();
  const contenders = ['C', 'D', 'E', 'F'].map((h) => new Lease(connection.db, h, 1000, clock));
  const wins = await Promise.all(contenders.map((l) => l.acquire()));
  t.equal(wins.filter(Boolean).length, 1, 'one winner among concurrent takers');
});

t.test('two workers on one database: only the lease holder submits; the other takes over when it dies', async (t) => {
  const net = await startTestNetwork(t);
  const { app, runtime: first, connection } = await startLedgerApp(t, net, { holderId: 'worker-A', config: { leaseTtlMs: 1500 } });
  const logsB: LogLine[] = [];
  const second = runtimeFor(net, connection, logsB, { holderId: 'worker-B', config: { leaseTtlMs: 1500 } });
  t.teardown(() => second.stop());
  first.start();
  second.start();

  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 5; i++) await createPatient(app, `Lease${round}-${i}`);
    await waitAnchored(connection, 10_000);
  }
  const submitters = [first, second].filter((r) => r.worker.stats.submissions > 0);
  t.equal(submitters.length, 1, 'only one worker submitted');
  const holder = submitters[0]!;
  const standby = holder === first ? second : first;
  t.equal(standby.worker.stats.submissions, 0, 'the other stayed on standby');

  // The holder dies without releasing its lease (no clean shutdown): the standby takes over after expiry.
  holder.lease.release = async () => {};
  await holder.stop();
  for (let i = 0; i < 5; i++) await createPatient(app, `AfterTakeover${i}`);
  await waitAnchored(connection, 15_000);
  t.ok(standby.worker.stats.submissions > 0, 'the standby anchored the new versions');

  const topic = holder.worker.stats.topicId!;
  t.equal(standby.worker.stats.topicId, topic, 'same topic, remembered in MongoDB');
  const page = (await (await fetch(`${net.mirrorUrl}/api/v1/topics/${topic}/messages?limit=100`)).json()) as {
    messages: Array<{ message: string }>;
  };
  const numbers = page.messages.map((m) => decodeBatchMessage(Buffer.from(m.message, 'base64')).batchNumber);
  t.same(
    numbers,
    [...numbers].sort((x, y) => x - y),
    'batches in order',
  );
  t.equal(new Set(numbers).size, numbers.length, 'no batch number twice');
  const batches = await connection.db.collection('ledger_batches').countDocuments({ state: 'anchored' });
  t.equal(numbers.length, batches, 'one HCS message per batch');
});

stopMongoAtEnd(t);
