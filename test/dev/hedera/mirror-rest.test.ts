// Mirror-node REST API: field names and formats, filters, paging, errors, and the running-hash chain.
import t from 'tap';
import { TopicCreateTransaction, TopicMessageSubmitTransaction, type TransactionResponse } from '@hashgraph/sdk';
import { computeRunningHashV3, initialRunningHash } from '../../../src/dev/hedera/running-hash.js';
import { getJson, startTestNet, type MirrorMessages } from './fixtures/helpers.js';

const MESSAGE_FIELDS = [
  'chunk_info',
  'consensus_timestamp',
  'message',
  'payer_account_id',
  'running_hash',
  'running_hash_version',
  'sequence_number',
  'topic_id',
];

function entity(text: string) {
  const [shard, realm, num] = text.split('.').map(BigInt);
  return { shard: shard!, realm: realm!, num: num! };
}

t.test('mirror REST over a topic with plain and chunked messages', async (t) => {
  const tn = await startTestNet();
  t.teardown(() => tn.close());
  const { client, net, operatorKey } = tn;
  const base = net.mirrorUrl;

  const topicId = (
    await (await new TopicCreateTransaction().setSubmitKey(operatorKey.publicKey).setTopicMemo('m').execute(client)).getReceipt(client)
  ).topicId!.toString();
  const responses: TransactionResponse[] = [];
  for (let i = 1; i <= 5; i++) {
    const r = await new TopicMessageSubmitTransaction().setTopicId(topicId).setMessage(`message ${i}`).execute(client);
    await r.getReceipt(client);
    responses.push(r);
  }
  // 2500 bytes: the SDK sends three chunks (sequence numbers 6, 7, 8).
  const big = Buffer.alloc(2500, 0x62);
  const chunks = await new TopicMessageSubmitTransaction().setTopicId(topicId).setMessage(big).executeAll(client);
  t.equal(chunks.length, 3);
  for (const c of chunks) await c.getReceipt(client);

  await t.test('says it is local', async (t) => {
    const root = await getJson(base, '/api/v1');
    t.equal(root.status, 200);
    t.match(root.body, { network: 'local (not Hedera)', node_account_id: '0.0.3', grpc_endpoint: net.grpcEndpoint });
    t.equal(root.headers.get('x-ledger-network'), 'local (not Hedera)');
  });

  const all = (await getJson(base, `/api/v1/topics/${topicId}/messages`)).body as MirrorMessages;

  await t.test('message list: fields and formats', async (t) => {
    t.equal(all.messages.length, 8);
    t.equal(all.links.next, null, 'fewer than the limit: no next link');
    for (const [i, m] of all.messages.entries()) {
      t.same(Object.keys(m).sort(), MESSAGE_FIELDS, 'exactly the mirror node fields');
      t.equal(m.sequence_number, i + 1);
      t.equal(m.topic_id, topicId);
      t.equal(m.payer_account_id, '0.0.2');
      t.equal(m.running_hash_version, 3);
      t.match(m.consensus_timestamp, /^\d{10}\.\d{9}$/);
      t.equal(Buffer.from(m.running_hash, 'base64').length, 48);
    }
    t.equal(Buffer.from(all.messages[0]!.message, 'base64').toString(), 'message 1');
    t.match(all.messages[0]!.chunk_info, {
      number: 1,
      total: 1,
      initial_transaction_id: { account_id: '0.0.2', nonce: 0, scheduled: false },
    });
    const chunked = all.messages.slice(5).map((m) => m.chunk_info!);
    t.same(
      chunked.map((c) => [c.number, c.total]),
      [
        [1, 3],
        [2, 3],
        [3, 3],
      ],
    );
    t.same(
      new Set(chunked.map((c) => c.initial_transaction_id.transaction_valid_start)).size,
      1,
      'chunks share the initial transaction id',
    );
    t.same(Buffer.concat(all.messages.slice(5).map((m) => Buffer.from(m.message, 'base64'))), big, 'chunks reassemble');
  });

  await t.test('running hash chain recomputed from mirror data alone', async (t) => {
    let previous = initialRunningHash();
    for (const m of all.messages) {
      const [seconds, nanos] = m.consensus_timestamp.split('.');
      const expected = computeRunningHashV3({
        previousRunningHash: previous,
        payer: entity(m.payer_account_id),
        topic: entity(m.topic_id),
        consensusSeconds: BigInt(seconds!),
        consensusNanos: Number(nanos),
        sequenceNumber: m.sequence_number,
        message: Buffer.from(m.message, 'base64'),
      });
      t.equal(m.running_hash, expected.toString('base64'), `seq ${m.sequence_number}`);
      previous = expected;
    }
  });

  await t.test('paging with links.next, both orders', async (t) => {
    for (const order of ['asc', 'desc'] as const) {
      const seen: number[] = [];
      let path: string | null = `/api/v1/topics/${topicId}/messages?limit=3&order=${order}`;
      let pages = 0;
      while (path !== null && pages < 10) {
        const page = (await getJson(base, path)).body as MirrorMessages;
        seen.push(...page.messages.map((m) => m.sequence_number));
        path = page.links.next;
        pages++;
      }
      const expected = [1, 2, 3, 4, 5, 6, 7, 8];
      t.same(seen, order === 'asc' ? expected : expected.reverse(), `${order}: every message once, in order`);
      t.equal(pages, 3, `${order}: 3 + 3 + 2`);
    }
    const first = (await getJson(base, `/api/v1/topics/${topicId}/messages?limit=2`)).body as MirrorMessages;
    t.equal(first.links.next, `/api/v1/topics/${topicId}/messages?limit=2&timestamp=gt:${first.messages[1]!.consensus_timestamp}`);
  });

  await t.test('filters', async (t) => {
    const seqs = async (query: string) =>
      ((await getJson(base, `/api/v1/topics/${topicId}/messages?${query}`)).body as MirrorMessages).messages.map((m) => m.sequence_number);
    t.same(await seqs('sequencenumber=gt:2&sequencenumber=lte:5'), [3, 4, 5]);
    t.same(await seqs('sequencenumber=2'), [2]);
    t.same(await seqs('sequencenumber=eq:7'), [7]);
    t.same(await seqs('sequencenumber=gte:7&order=desc'), [8, 7]);
    t.same(await seqs('sequencenumber=lt:3'), [1, 2]);
    const ts = (seq: number) => all.messages[seq - 1]!.consensus_timestamp;
    t.same(await seqs(`timestamp=gte:${ts(3)}&timestamp=lt:${ts(6)}`), [3, 4, 5]);
    t.same(await seqs(`timestamp=${ts(4)}`), [4]);
    t.same(await seqs(`timestamp=lte:${ts(2)}&timestamp=ne:${ts(1)}`), [2]);
    t.same(await seqs('limit=1000&sequencenumber=lte:2'), [1, 2], 'limit above 100 is capped, not refused');
    const utf8 = (await getJson(base, `/api/v1/topics/${topicId}/messages?encoding=utf-8&limit=1`)).body as MirrorMessages;
    t.equal(utf8.messages[0]!.message, 'message 1');
  });

  await t.test('single messages', async (t) => {
    const bySeq = await getJson(base, `/api/v1/topics/${topicId}/messages/4`);
    t.equal(bySeq.status, 200);
    t.same(bySeq.body, all.messages[3]);
    const byTs = await getJson(base, `/api/v1/topics/messages/${all.messages[3]!.consensus_timestamp}`);
    t.same(byTs.body, all.messages[3]);
    const short = topicId.split('.')[2]!;
    t.same((await getJson(base, `/api/v1/topics/${short}/messages/4`)).body, all.messages[3], 'topic given as its number');
  });

  await t.test('topic and transaction entities', async (t) => {
    const topic = await getJson(base, `/api/v1/topics/${topicId}`);
    t.equal(topic.status, 200);
    t.match(topic.body, {
      admin_key: null,
      auto_renew_account: '0.0.2',
      auto_renew_period: 7776000,
      custom_fees: { fixed_fees: [] },
      deleted: false,
      fee_exempt_key_list: [],
      fee_schedule_key: null,
      memo: 'm',
      submit_key: { _type: 'ED25519', key: Buffer.from(operatorKey.publicKey.toBytesRaw()).toString('hex') },
      timestamp: { to: null },
      topic_id: topicId,
    });

    const response = responses[1]!;
    const id = response.transactionId;
    const mirrorId = `${id.accountId!.toString()}-${id.validStart!.seconds.toString()}-${id.validStart!.nanos.toString().padStart(9, '0')}`;
    const tx = await getJson(base, `/api/v1/transactions/${mirrorId}`);
    t.equal(tx.status, 200);
    const [detail] = (tx.body as { transactions: Array<Record<string, unknown>> }).transactions;
    t.match(detail, {
      name: 'CONSENSUSSUBMITMESSAGE',
      result: 'SUCCESS',
      entity_id: topicId,
      node: '0.0.3',
      transaction_id: mirrorId,
      consensus_timestamp: all.messages[1]!.consensus_timestamp,
      charged_tx_fee: 200_000,
      transaction_hash: Buffer.from(response.transactionHash).toString('base64'),
      scheduled: false,
      nonce: 0,
    });
    t.same((await getJson(base, `/api/v1/transactions/${id.toString()}`)).body, tx.body, 'SDK form of the id works too');
  });

  await t.test('errors look like the mirror node', async (t) => {
    const expectError = async (path: string, status: number, message: string) => {
      const r = await getJson(base, path);
      t.equal(r.status, status, path);
      t.same(r.body, { _status: { messages: [{ message }] } }, path);
    };
    await expectError(`/api/v1/topics/${topicId}/messages?limit=0`, 400, 'Invalid parameter: limit');
    await expectError(`/api/v1/topics/${topicId}/messages?order=sideways`, 400, 'Invalid parameter: order');
    await expectError(`/api/v1/topics/${topicId}/messages?sequencenumber=ne:3`, 400, 'Invalid parameter: sequencenumber');
    await expectError(`/api/v1/topics/${topicId}/messages?timestamp=yesterday`, 400, 'Invalid parameter: timestamp');
    await expectError('/api/v1/topics/0.0.424242/messages', 404, 'No such topic id - 0.0.424242');
    await expectError('/api/v1/topics/not-a-topic/messages', 400, 'Invalid parameter: topic.id');
    await expectError(`/api/v1/topics/${topicId}/messages/99`, 404, 'Not found');
    await expectError('/api/v1/topics/messages/1.000000001', 404, 'Not found');
    await expectError('/api/v1/topics/messages/soon', 400, 'Invalid parameter: consensus_timestamp');
    await expectError('/api/v1/topics/0.0.424242', 404, 'Not found');
    await expectError('/api/v1/transactions/0.0.2-1-000000001', 404, 'Not found');
    await expectError('/api/v1/no/such/route', 404, 'Not found');
    const bad = await getJson(base, '/api/v1/transactions/nope');
    t.equal(bad.status, 400);
  });

  await t.test('an empty topic', async (t) => {
    const empty = (await (await new TopicCreateTransaction().execute(client)).getReceipt(client)).topicId!.toString();
    const r = (await getJson(base, `/api/v1/topics/${empty}/messages`)).body as MirrorMessages;
    t.same(r, { messages: [], links: { next: null } });
    const topic = (await getJson(base, `/api/v1/topics/${empty}`)).body as { submit_key: unknown };
    t.equal(topic.submit_key, null);
  });
});
