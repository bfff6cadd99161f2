// State under dataDir survives restarts and kill -9; damaged journals are handled deliberately.
import t from 'tap';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  AccountBalanceQuery,
  Client,
  PrivateKey,
  Status,
  TopicCreateTransaction,
  TopicInfoQuery,
  TopicMessageSubmitTransaction,
  TransactionReceiptQuery,
} from '@hashgraph/sdk';
import { startLocalHedera } from '../../../src/dev/hedera/index.js';
import { JOURNAL_FILE } from '../../../src/dev/hedera/journal.js';
import { computeRunningHashV3 } from '../../../src/dev/hedera/running-hash.js';
import { getJson, startTestNet, type MirrorMessages } from './fixtures/helpers.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'local-hedera-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('restart from dataDir keeps key, topics, messages, receipts and the hash chain', async (t) => {
  const dataDir = tempDir(t);
  const first = await startTestNet({ dataDir });
  const operatorKey = first.net.operatorKey;
  const create = await new TopicCreateTransaction().setSubmitKey(first.operatorKey.publicKey).execute(first.client);
  const topicId = (await create.getReceipt(first.client)).topicId!;
  for (let i = 1; i <= 3; i++) {
    await (
      await new TopicMessageSubmitTransaction().setTopicId(topicId).setMessage(`before ${i}`).execute(first.client)
    ).getReceipt(first.client);
  }
  const before = (await getJson(first.net.mirrorUrl, `/api/v1/topics/${topicId.toString()}/messages`)).body as MirrorMessages;
  const balanceBefore = (await new AccountBalanceQuery().setAccountId('0.0.2').execute(first.client)).hbars.toTinybars().toString();
  await first.close();

  const second = await startTestNet({ dataDir });
  t.teardown(() => second.close());
  t.equal(second.net.operatorKey, operatorKey, 'operator key is stable for a dataDir');
  const after = (await getJson(second.net.mirrorUrl, `/api/v1/topics/${topicId.toString()}/messages`)).body as MirrorMessages;
  t.same(after, before, 'mirror returns the same messages, timestamps and hashes');
  const balanceAfter = (await new AccountBalanceQuery().setAccountId('0.0.2').execute(second.client)).hbars.toTinybars().toString();
  t.equal(balanceAfter, balanceBefore, 'balances persist');
  const oldReceipt = await new TransactionReceiptQuery().setTransactionId(create.transactionId).execute(second.client);
  t.equal(oldReceipt.topicId?.toString(), topicId.toString(), 'receipts of earlier transactions are still answered');

  const next = await new TopicMessageSubmitTransaction().setTopicId(topicId).setMessage('after').execute(second.client);
  const receipt = await next.getReceipt(second.client);
  t.equal(receipt.status, Status.Success);
  t.equal(receipt.topicSequenceNumber?.toNumber(), 4, 'sequence continues');
  const record = await next.getRecord(second.client);
  const last = before.messages[2]!;
  const ts = record.consensusTimestamp;
  t.ok(`${ts.seconds.toString()}.${ts.nanos.toString().padStart(9, '0')}` > last.consensus_timestamp, 'timestamps keep increasing');
  const expected = computeRunningHashV3({
    previousRunningHash: Buffer.from(last.running_hash, 'base64'),
    payer: { shard: 0, realm: 0, num: 2 },
    topic: { shard: 0, realm: 0, num: topicId.num.toNumber() },
    consensusSeconds: BigInt(ts.seconds.toString()),
    consensusNanos: ts.nanos.toNumber(),
    sequenceNumber: 4,
    message: Buffer.from('after'),
  });
  t.same(Buffer.from(receipt.topicRunningHash!), expected, 'chain continues from the persisted running hash');
  const info = await new TopicInfoQuery().setTopicId(topicId).execute(second.client);
  t.equal(info.sequenceNumber.toNumber(), 4);
});

t.test('one network per data directory', async (t) => {
  const dataDir = tempDir(t);
  const a = await startLocalHedera({ dataDir, log: () => {} });
  await t.rejects(startLocalHedera({ dataDir, log: () => {} }), /already open in this process/);
  await a.close();
  const b = await startLocalHedera({ dataDir, log: () => {} });
  t.equal(b.operatorKey, a.operatorKey, 'reopens after close');
  await b.close();
});

t.test('in memory: nothing persists and every start has a fresh key', async (t) => {
  const a = await startLocalHedera({ log: () => {} });
  const b = await startLocalHedera({ log: () => {} });
  t.not(a.operatorKey, b.operatorKey);
  await a.close();
  await b.close();
  await a.close(); // closing twice is harmless
});

t.test('nothing acknowledged is lost on kill -9', async (t) => {
  const dataDir = tempDir(t);
  const child = spawn(process.execPath, [...process.execArgv, new URL('./fixtures/child-network.ts', import.meta.url).pathname, dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const info = await new Promise<{ grpcEndpoint: string; nodeAccountId: string; operatorId: string; operatorKey: string }>(
    (resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('child did not start in 60 s')), 60_000);
      createInterface({ input: child.stdout! }).once('line', (line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { grpcEndpoint: string; nodeAccountId: string; operatorId: string; operatorKey: string });
      });
      child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    },
  );
  const client = Client.forNetwork({ [info.grpcEndpoint]: info.nodeAccountId }, { scheduleNetworkUpdate: false })
    .setOperator(info.operatorId, PrivateKey.fromStringDer(info.operatorKey))
    .setGrpcDeadline(2000);
  const topicId = (await (await new TopicCreateTransaction().execute(client)).getReceipt(client)).topicId!;
  const acknowledged: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const receipt = await (
      await new TopicMessageSubmitTransaction().setTopicId(topicId).setMessage(`m${i}`).execute(client)
    ).getReceipt(client);
    acknowledged.push(Buffer.from(receipt.topicRunningHash!).toString('base64'));
  }
  client.close();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;

  const restarted = await startLocalHedera({ dataDir, log: () => {} });
  t.teardown(() => restarted.close());
  t.equal(restarted.operatorKey, info.operatorKey);
  const messages = (await getJson(restarted.mirrorUrl, `/api/v1/topics/${topicId.toString()}/messages`)).body as MirrorMessages;
  t.same(
    messages.messages.map((m) => m.running_hash),
    acknowledged,
    'every acknowledged message is there, with the running hash its receipt reported',
  );
});

t.test('journal damage: an unfinished last line is cut, damage elsewhere stops the start', async (t) => {
  const dataDir = tempDir(t);
  const first = await startTestNet({ dataDir });
  const topicId = (await (await new TopicCreateTransaction().execute(first.client)).getReceipt(first.client)).topicId!;
  await (await new TopicMessageSubmitTransaction().setTopicId(topicId).setMessage('kept').execute(first.client)).getReceipt(first.client);
  await first.close();

  const journal = join(dataDir, JOURNAL_FILE);
  const size = statSync(journal).size;
  appendFileSync(journal, '{"kind":"transaction","transactionId":{"pay'); // a write cut short by a crash
  const logs: string[] = [];
  const second = await startLocalHedera({ dataDir, log: (m) => logs.push(m) });
  t.ok(
    logs.some((l) => /cut \d+ bytes of an unfinished last journal line/.test(l)),
    'says what it did',
  );
  t.equal(statSync(journal).size, size, 'the partial line is removed');
  const messages = (await getJson(second.mirrorUrl, `/api/v1/topics/${topicId.toString()}/messages`)).body as MirrorMessages;
  t.equal(messages.messages.length, 1, 'complete entries are kept');
  await second.close();

  const lines = readFileSync(journal, 'utf8').split('\n');
  lines[1] = lines[1]!.slice(0, 20);
  writeFileSync(journal, lines.join('\n'));
  await t.rejects(startLocalHedera({ dataDir, log: () => {} }), /line 2 is damaged/);
});
