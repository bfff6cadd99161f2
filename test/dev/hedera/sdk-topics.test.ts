// The real @hashgraph/sdk against the local network: topics, messages, receipts, records, queries.
import t from 'tap';
import {
  AccountBalanceQuery,
  Hbar,
  PrivateKey,
  ReceiptStatusError,
  Status,
  TopicCreateTransaction,
  TopicInfoQuery,
  TopicMessageSubmitTransaction,
  TransactionReceiptQuery,
  TransactionRecordQuery,
  TransferTransaction,
} from '@hashgraph/sdk';
import { computeRunningHashV3, initialRunningHash } from '../../../src/dev/hedera/running-hash.js';
import { proto } from '@hashgraph/proto';
import { expectStatus, rawQuery, startTestNet } from './fixtures/helpers.js';

t.test('topic create, messages, receipts, records, topic info, balances', async (t) => {
  const tn = await startTestNet();
  t.teardown(() => tn.close());
  const { client, net, operatorKey } = tn;

  t.equal(net.nodeAccountId, '0.0.3');
  t.equal(net.operatorId, '0.0.2');
  t.match(net.grpcEndpoint, /^127\.0\.0\.1:\d+$/);
  t.match(net.mirrorUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.ok(
    tn.logs.some((l) => /LOCAL ledger started, NOT Hedera/.test(l)),
    'says it is local',
  );

  const create = await new TopicCreateTransaction()
    .setSubmitKey(operatorKey.publicKey)
    .setTopicMemo('fhir ledger test')
    .setTransactionMemo('create memo')
    .execute(client);
  const createReceipt = await create.getReceipt(client);
  t.equal(createReceipt.status, Status.Success);
  const topicId = createReceipt.topicId!;
  t.equal(topicId.toString(), '0.0.1001', 'first entity number');
  t.ok(createReceipt.exchangeRate, 'receipt carries the exchange rate');

  const createRecord = await create.getRecord(client);
  t.equal(createRecord.transactionMemo, 'create memo');
  t.equal(Buffer.from(createRecord.transactionHash).toString('hex'), Buffer.from(create.transactionHash).toString('hex'));
  t.ok(createRecord.transactionFee.toTinybars().toNumber() > 0, 'fee charged');

  let previous = initialRunningHash();
  let lastTimestamp = 0n;
  for (let i = 1; i <= 3; i++) {
    const text = `root-${i}`;
    const response = await new TopicMessageSubmitTransaction().setTopicId(topicId).setMessage(text).execute(client);
    const receipt = await response.getReceipt(client);
    t.equal(receipt.status, Status.Success);
    t.equal(receipt.topicSequenceNumber?.toNumber(), i, 'sequence number');
    // The SDK's TransactionReceipt has no running-hash-version field; read it raw.
    const raw = await rawQuery(net.grpcEndpoint, '/proto.CryptoService/getTransactionReceipts', {
      transactionGetReceipt: { transactionID: response.transactionId._toProtobuf() },
    });
    t.equal(Number(raw.transactionGetReceipt?.receipt?.topicRunningHashVersion), 3, 'running hash version 3');
    const record = await response.getRecord(client);
    t.same(Buffer.from(record.transactionHash), Buffer.from(response.transactionHash), 'record hash = SDK hash');
    const ts = record.consensusTimestamp;
    const ns = BigInt(ts.seconds.toString()) * 1_000_000_000n + BigInt(ts.nanos.toString());
    t.ok(ns > lastTimestamp, 'consensus timestamps strictly increase');
    lastTimestamp = ns;
    const expected = computeRunningHashV3({
      previousRunningHash: previous,
      payer: { shard: 0, realm: 0, num: 2 },
      topic: { shard: 0, realm: 0, num: topicId.num.toNumber() },
      consensusSeconds: BigInt(ts.seconds.toString()),
      consensusNanos: ts.nanos.toNumber(),
      sequenceNumber: i,
      message: Buffer.from(text),
    });
    t.same(Buffer.from(receipt.topicRunningHash!), expected, `running hash ${i} recomputed from the record`);
    previous = expected;
  }

  // Paid query: the SDK asks for the cost (COST_ANSWER), then pays it (ANSWER_ONLY).
  const infoQuery = new TopicInfoQuery().setTopicId(topicId);
  const cost = await infoQuery.getCost(client);
  t.equal(cost.toTinybars().toNumber(), 220_000, 'cost is 200 000 tinybar (+10% SDK margin)');
  const balanceBefore = (await new AccountBalanceQuery().setAccountId(net.operatorId).execute(client)).hbars.toTinybars();
  const nodeBefore = (await new AccountBalanceQuery().setAccountId('0.0.3').execute(client)).hbars.toTinybars();
  const info = await infoQuery.execute(client);
  t.equal(info.topicMemo, 'fhir ledger test');
  t.equal(info.sequenceNumber.toNumber(), 3);
  t.same(Buffer.from(info.runningHash), previous);
  t.equal(info.submitKey?.toString(), operatorKey.publicKey.toString());
  t.equal(info.ledgerId?.toString(), 'local-node');
  t.equal(info.autoRenewAccountId?.toString(), '0.0.2', 'SDK defaults the auto-renew account to the operator');
  const balanceAfter = (await new AccountBalanceQuery().setAccountId(net.operatorId).execute(client)).hbars.toTinybars();
  const nodeAfter = (await new AccountBalanceQuery().setAccountId('0.0.3').execute(client)).hbars.toTinybars();
  t.equal(balanceBefore.subtract(balanceAfter).toNumber(), 220_000 + 200_000, 'operator paid the query and the payment transfer fee');
  t.equal(nodeAfter.subtract(nodeBefore).toNumber(), 220_000 + 10_000, 'node got the payment and its fee share');

  // Receipts and records can be asked for by transaction id too.
  const again = await new TransactionReceiptQuery().setTransactionId(create.transactionId).execute(client);
  t.equal(again.topicId?.toString(), topicId.toString());
  const record = await new TransactionRecordQuery().setTransactionId(create.transactionId).execute(client);
  t.equal(record.receipt.topicId?.toString(), topicId.toString());
});

t.test('hbar transfers and a second payer', async (t) => {
  const tn = await startTestNet();
  t.teardown(() => tn.close());
  const { client } = tn;
  const transfer = await new TransferTransaction()
    .addHbarTransfer('0.0.2', Hbar.fromTinybars(-5_000))
    .addHbarTransfer('0.0.98', Hbar.fromTinybars(5_000))
    .execute(client);
  t.equal((await transfer.getReceipt(client)).status, Status.Success);
  const record = await transfer.getRecord(client);
  const byAccount = new Map(record.transfers.map((x) => [x.accountId.toString(), x.amount.toTinybars().toNumber()]));
  t.equal(byAccount.get('0.0.2'), -(5_000 + 200_000), 'payer: amount + fee');
  t.equal(byAccount.get('0.0.3'), 10_000, 'node fee share');
  t.equal(byAccount.get('0.0.98'), 5_000 + 190_000, 'fee collection + transfer');

  // A transfer debiting an account whose key did not sign fails at consensus.
  const stolen = await new TransferTransaction()
    .addHbarTransfer('0.0.98', Hbar.fromTinybars(-1))
    .addHbarTransfer('0.0.2', Hbar.fromTinybars(1))
    .execute(client);
  await expectStatus(t, stolen.getReceipt(client), ReceiptStatusError, Status.InvalidSignature);

  // ECDSA keys can sign too: a topic whose submit key is ECDSA(secp256k1).
  const ecdsa = PrivateKey.generateECDSA();
  const topic = (await (await new TopicCreateTransaction().setSubmitKey(ecdsa.publicKey).execute(client)).getReceipt(client)).topicId!;
  const signed = await new TopicMessageSubmitTransaction().setTopicId(topic).setMessage('ecdsa').freezeWith(client).sign(ecdsa);
  const receipt = await (await signed.execute(client)).getReceipt(client);
  t.equal(receipt.status, Status.Success);
  t.equal(receipt.topicSequenceNumber?.toNumber(), 1);
});

t.test('ECDSA operator key', async (t) => {
  const tn = await startTestNet({ operatorKeyType: 'ecdsa' });
  t.teardown(() => tn.close());
  t.equal(tn.operatorKey.type, 'secp256k1');
  const receipt = await (
    await new TopicCreateTransaction().setSubmitKey(tn.operatorKey.publicKey).execute(tn.client)
  ).getReceipt(tn.client);
  const submit = await new TopicMessageSubmitTransaction().setTopicId(receipt.topicId!).setMessage('m').execute(tn.client);
  t.equal((await submit.getReceipt(tn.client)).topicSequenceNumber?.toNumber(), 1);
});

t.test('simulated consensus delay: receipt is UNKNOWN until consensus, the SDK waits', async (t) => {
  const tn = await startTestNet({ consensusDelayMs: 300 });
  t.teardown(() => tn.close());
  const { client } = tn;
  const create = await new TopicCreateTransaction().execute(client);
  const start = Date.now();
  const receipt = await create.getReceipt(client);
  t.equal(receipt.status, Status.Success);
  t.ok(Date.now() - start >= 200, 'receipt only after the delay');
  const response = await new TopicMessageSubmitTransaction().setTopicId(receipt.topicId!).setMessage('later').execute(client);
  const early = await rawQuery(tn.net.grpcEndpoint, '/proto.CryptoService/getTransactionReceipts', {
    transactionGetReceipt: { transactionID: response.transactionId._toProtobuf() },
  });
  t.equal(early.transactionGetReceipt?.header?.nodeTransactionPrecheckCode, proto.ResponseCodeEnum.OK);
  t.equal(early.transactionGetReceipt?.receipt?.status, proto.ResponseCodeEnum.UNKNOWN, 'not yet at consensus');
  const earlyRecord = await rawQuery(tn.net.grpcEndpoint, '/proto.CryptoService/getTxRecordByTxID', {
    transactionGetRecord: { header: { responseType: proto.ResponseType.COST_ANSWER }, transactionID: response.transactionId._toProtobuf() },
  });
  t.equal(earlyRecord.transactionGetRecord?.header?.nodeTransactionPrecheckCode, proto.ResponseCodeEnum.OK, 'cost answer');
  const final = await response.getReceipt(client);
  t.equal(final.topicSequenceNumber?.toNumber(), 1);
});
