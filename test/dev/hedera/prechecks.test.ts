// Bad inputs: precheck codes in TransactionResponse and failure statuses in receipts, as Hedera answers.
import t from 'tap';
import { proto } from '@hashgraph/proto';
import {
  Client,
  Hbar,
  type Key,
  KeyList,
  Long,
  PrecheckStatusError,
  PrivateKey,
  ReceiptStatusError,
  Status,
  Timestamp,
  TopicCreateTransaction,
  TopicId,
  TopicMessageSubmitTransaction,
  TransactionId,
} from '@hashgraph/sdk';
import {
  accountId,
  expectStatus,
  rawBody,
  rawCall,
  rawQuery,
  rawSubmit,
  signTransaction,
  startTestNet,
  topicId,
} from './fixtures/helpers.js';

const Code = proto.ResponseCodeEnum;

const SUBMIT = '/proto.ConsensusService/submitMessage';

t.test('prechecks and receipt statuses through the real SDK', async (t) => {
  const tn = await startTestNet();
  t.teardown(() => tn.close());
  const { client, net, operatorKey } = tn;
  const topic = (await (await new TopicCreateTransaction().setSubmitKey(operatorKey.publicKey).execute(client)).getReceipt(client))
    .topicId!;

  await t.test('TRANSACTION_EXPIRED for a valid start older than the valid duration', async (t) => {
    const old = TransactionId.withValidStart(client.operatorAccountId!, Timestamp.fromDate(new Date(Date.now() - 300_000)));
    await expectStatus(
      t,
      new TopicMessageSubmitTransaction().setTopicId(topic).setMessage('late').setTransactionId(old).execute(client),
      PrecheckStatusError,
      Status.TransactionExpired,
    );
  });

  await t.test('INVALID_TRANSACTION_START for a valid start in the future', async (t) => {
    const future = TransactionId.withValidStart(client.operatorAccountId!, Timestamp.fromDate(new Date(Date.now() + 60_000)));
    await expectStatus(
      t,
      new TopicMessageSubmitTransaction().setTopicId(topic).setMessage('early').setTransactionId(future).execute(client),
      PrecheckStatusError,
      Status.InvalidTransactionStart,
    );
  });

  await t.test('INSUFFICIENT_TX_FEE when the max fee is below the fee', async (t) => {
    await expectStatus(
      t,
      new TopicMessageSubmitTransaction()
        .setTopicId(topic)
        .setMessage('cheap')
        .setMaxTransactionFee(Hbar.fromTinybars(1000))
        .execute(client),
      PrecheckStatusError,
      Status.InsufficientTxFee,
    );
  });

  await t.test('MESSAGE_SIZE_TOO_LARGE in the receipt for a chunk over 1024 bytes', async (t) => {
    // The SDK chunks at 1024 bytes by default; one 2048-byte chunk bypasses that.
    const response = await new TopicMessageSubmitTransaction()
      .setTopicId(topic)
      .setMessage(Buffer.alloc(1500, 0x61))
      .setChunkSize(2048)
      .setMaxChunks(1)
      .execute(client);
    await expectStatus(t, response.getReceipt(client), ReceiptStatusError, Status.MessageSizeTooLarge);
    const record = await response.getRecord(client).catch((e: unknown) => e);
    t.ok(record instanceof ReceiptStatusError, 'the record query reports the failure too');
  });

  await t.test('INVALID_TOPIC_ID in the receipt for an unknown topic', async (t) => {
    const response = await new TopicMessageSubmitTransaction().setTopicId(TopicId.fromString('0.0.99999')).setMessage('x').execute(client);
    await expectStatus(t, response.getReceipt(client), ReceiptStatusError, Status.InvalidTopicId);
  });

  await t.test('submit key: another key must sign', async (t) => {
    const other = PrivateKey.generateED25519();
    const restricted = (await (await new TopicCreateTransaction().setSubmitKey(other.publicKey).execute(client)).getReceipt(client))
      .topicId!;
    const unsigned = await new TopicMessageSubmitTransaction().setTopicId(restricted).setMessage('no').execute(client);
    await expectStatus(t, unsigned.getReceipt(client), ReceiptStatusError, Status.InvalidSignature);
    const signed = await new TopicMessageSubmitTransaction().setTopicId(restricted).setMessage('yes').freezeWith(client).sign(other);
    const receipt = await (await signed.execute(client)).getReceipt(client);
    t.equal(receipt.topicSequenceNumber?.toNumber(), 1, 'only the properly signed message got a sequence number');
  });

  await t.test('key lists and threshold keys as submit keys', async (t) => {
    const [k1, k2] = [PrivateKey.generateED25519(), PrivateKey.generateECDSA()];
    const create = async (key: Key) =>
      (await (await new TopicCreateTransaction().setSubmitKey(key).execute(client)).getReceipt(client)).topicId!;
    const send = async (topicId: TopicId, signers: PrivateKey[]) => {
      let tx = await new TopicMessageSubmitTransaction().setTopicId(topicId).setMessage('k').freezeWith(client);
      for (const k of signers) tx = await tx.sign(k);
      return (await tx.execute(client)).getReceipt(client);
    };
    const oneOfTwo = await create(new KeyList([k1.publicKey, k2.publicKey], 1));
    t.equal((await send(oneOfTwo, [k2])).status, Status.Success, 'threshold 1 of 2: one signature is enough');
    const both = await create(KeyList.of(k1.publicKey, k2.publicKey));
    await expectStatus(t, send(both, [k1]), ReceiptStatusError, Status.InvalidSignature);
    t.equal((await send(both, [k1, k2])).status, Status.Success, 'key list: all signatures');
  });

  await t.test('INVALID_SIGNATURE precheck when the payer key is wrong', async (t) => {
    const impostor = Client.forNetwork({ [net.grpcEndpoint]: net.nodeAccountId }, { scheduleNetworkUpdate: false })
      .setOperator(net.operatorId, PrivateKey.generateED25519())
      .setGrpcDeadline(2000);
    t.teardown(() => impostor.close());
    await expectStatus(
      t,
      new TopicMessageSubmitTransaction().setTopicId(topic).setMessage('forged').execute(impostor),
      PrecheckStatusError,
      Status.InvalidSignature,
    );
  });

  await t.test('DUPLICATE_TRANSACTION when the same transaction id is sent again', async (t) => {
    const tx = await new TopicCreateTransaction().freezeWith(client).signWithOperator(client);
    const bytes = tx.toBytes();
    await (await tx.execute(client)).getReceipt(client);
    const copy = TopicCreateTransaction.fromBytes(bytes);
    await expectStatus(t, copy.execute(client), PrecheckStatusError, Status.DuplicateTransaction);
  });
});

t.test('prechecks over raw gRPC (inputs the SDK will not build)', async (t) => {
  const tn = await startTestNet();
  t.teardown(() => tn.close());
  const { client, net, operatorKey } = tn;
  const topic = (await (await new TopicCreateTransaction().execute(client)).getReceipt(client)).topicId!.toString();
  const base = { payer: net.operatorId, node: net.nodeAccountId };
  const submit = (message: Uint8Array, extra: Partial<Parameters<typeof rawBody>[0]> = {}, data: Partial<proto.ITransactionBody> = {}) =>
    signTransaction(rawBody({ ...base, ...extra }, { consensusSubmitMessage: { topicID: topicId(topic), message }, ...data }), [
      operatorKey,
    ]);
  const code = async (bytes: Uint8Array, path = SUBMIT) => (await rawSubmit(net.grpcEndpoint, path, bytes)).nodeTransactionPrecheckCode;

  t.equal(await code(submit(Buffer.from('ok'))), Code.OK, 'a well-formed raw submit is accepted');
  t.equal(await code(submit(Buffer.alloc(0))), Code.INVALID_TOPIC_MESSAGE, 'empty message');
  t.equal(
    await code(signTransaction(rawBody(base, { consensusSubmitMessage: { message: Buffer.from('x') } }), [operatorKey])),
    Code.INVALID_TOPIC_ID,
    'no topic id',
  );
  t.equal(await code(submit(Buffer.from('x'), { node: '0.0.4' })), Code.INVALID_NODE_ACCOUNT, 'body names another node');
  t.equal(await code(submit(Buffer.from('x'), { validDurationSeconds: 200 })), Code.INVALID_TRANSACTION_DURATION);
  t.equal(await code(submit(Buffer.from('x'), { memo: 'm'.repeat(101) })), Code.MEMO_TOO_LONG);
  t.equal(await code(submit(Buffer.alloc(7000, 1))), Code.TRANSACTION_OVERSIZE);
  t.equal(
    await code(submit(Buffer.from('x'), { validStartMs: Date.now() - 115_000 })),
    Code.TRANSACTION_EXPIRED,
    'less than 10 s of life left',
  );
  t.equal(await code(Buffer.from([0xff, 0xff, 0xff])), Code.INVALID_TRANSACTION, 'garbage');
  t.equal(await code(signTransaction(rawBody(base, {}), [operatorKey])), Code.INVALID_TRANSACTION_BODY, 'no operation');
  t.equal(
    await code(signTransaction(rawBody(base, { cryptoCreateAccount: {} }), [operatorKey]), '/proto.CryptoService/createAccount'),
    Code.NOT_SUPPORTED,
    'operations this network does not implement',
  );
  t.equal(
    await code(
      signTransaction(
        rawBody({ ...base, payer: '0.0.777' }, { consensusSubmitMessage: { topicID: topicId(topic), message: Buffer.from('x') } }),
        [operatorKey],
      ),
    ),
    Code.PAYER_ACCOUNT_NOT_FOUND,
  );

  const createWith = (submitKey: proto.IKey) =>
    signTransaction(rawBody(base, { consensusCreateTopic: { submitKey, autoRenewPeriod: { seconds: Long.fromNumber(7776000) } } }), [
      operatorKey,
    ]);
  t.equal(await code(createWith({ ed25519: Buffer.alloc(5) }), '/proto.ConsensusService/createTopic'), Code.BAD_ENCODING, 'malformed key');
  const twoEmptyPrefixes = proto.Transaction.encode({
    signedTransactionBytes: proto.SignedTransaction.encode({
      bodyBytes: proto.TransactionBody.encode(
        rawBody(base, { consensusSubmitMessage: { topicID: topicId(topic), message: Buffer.from('x') } }),
      ).finish(),
      sigMap: {
        sigPair: [
          { pubKeyPrefix: Buffer.alloc(0), ed25519: Buffer.alloc(64) },
          { pubKeyPrefix: Buffer.alloc(0), ed25519: Buffer.alloc(64) },
        ],
      },
    }).finish(),
  }).finish();
  t.equal(await code(twoEmptyPrefixes), Code.KEY_PREFIX_MISMATCH);

  const once = submit(Buffer.from('once'));
  t.equal(await code(once), Code.OK);
  t.equal(await code(once), Code.DUPLICATE_TRANSACTION, 'same bytes again');

  // Chunk rules are checked at consensus: the receipt says what was wrong.
  const badChunk = submit(
    Buffer.from('chunk'),
    {},
    {
      consensusSubmitMessage: {
        topicID: topicId(topic),
        message: Buffer.from('chunk'),
        chunkInfo: {
          initialTransactionID: { accountID: accountId(net.operatorId), transactionValidStart: { seconds: Long.ONE, nanos: 0 } },
          number: 0,
          total: 1,
        },
      },
    },
  );
  t.equal(await code(badChunk), Code.OK);
  const body = proto.TransactionBody.decode(
    proto.SignedTransaction.decode(proto.Transaction.decode(badChunk).signedTransactionBytes).bodyBytes,
  );
  const receipt = await rawQuery(net.grpcEndpoint, '/proto.CryptoService/getTransactionReceipts', {
    transactionGetReceipt: { transactionID: body.transactionID },
  });
  t.equal(receipt.transactionGetReceipt?.receipt?.status, Code.INVALID_CHUNK_NUMBER);

  await t.rejects(
    rawCall(net.grpcEndpoint, '/proto.TokenService/createToken', Buffer.alloc(0)),
    { code: 12 },
    'unserved service: gRPC UNIMPLEMENTED',
  );
});

t.test('queries: unknown transactions and the payment rules of paid queries', async (t) => {
  const tn = await startTestNet();
  t.teardown(() => tn.close());
  const { net, operatorKey } = tn;
  const unknownId: proto.ITransactionID = {
    accountID: accountId(net.operatorId),
    transactionValidStart: { seconds: Long.fromNumber(Math.floor(Date.now() / 1000) - 30), nanos: 7 },
  };
  const payment = (amount: number, keys = [operatorKey], node = net.nodeAccountId): proto.ITransaction =>
    proto.Transaction.decode(
      signTransaction(
        rawBody(
          { payer: net.operatorId, node },
          {
            cryptoTransfer: {
              transfers: {
                accountAmounts: [
                  { accountID: accountId(net.operatorId), amount: Long.fromNumber(-amount) },
                  { accountID: accountId(net.nodeAccountId), amount: Long.fromNumber(amount) },
                ],
              },
            },
          },
        ),
        keys,
      ),
    );
  const RECEIPTS = '/proto.CryptoService/getTransactionReceipts';
  const RECORDS = '/proto.CryptoService/getTxRecordByTxID';
  const recordHeader = async (header: proto.IQueryHeader) =>
    (await rawQuery(net.grpcEndpoint, RECORDS, { transactionGetRecord: { header, transactionID: unknownId } })).transactionGetRecord!
      .header!;

  const receipt = await rawQuery(net.grpcEndpoint, RECEIPTS, { transactionGetReceipt: { transactionID: unknownId } });
  t.equal(receipt.transactionGetReceipt?.header?.nodeTransactionPrecheckCode, Code.RECEIPT_NOT_FOUND, 'receipt of an unknown transaction');

  const cost = await recordHeader({ responseType: proto.ResponseType.COST_ANSWER });
  t.equal(cost.nodeTransactionPrecheckCode, Code.OK);
  t.equal(Number(cost.cost), 200_000, 'COST_ANSWER returns the cost');

  t.equal(
    (await recordHeader({ responseType: proto.ResponseType.ANSWER_ONLY })).nodeTransactionPrecheckCode,
    Code.INSUFFICIENT_TX_FEE,
    'no payment',
  );
  t.equal((await recordHeader({ payment: payment(1_000) })).nodeTransactionPrecheckCode, Code.INSUFFICIENT_TX_FEE, 'payment below cost');
  t.equal(
    (await recordHeader({ payment: payment(200_000, [PrivateKey.generateED25519()]) })).nodeTransactionPrecheckCode,
    Code.INVALID_SIGNATURE,
    'payment not signed by the payer',
  );
  t.equal(
    (await recordHeader({ payment: payment(200_000, [operatorKey], '0.0.4') })).nodeTransactionPrecheckCode,
    Code.INVALID_NODE_ACCOUNT,
    'payment for another node',
  );
  t.equal((await recordHeader({ payment: payment(200_000) })).nodeTransactionPrecheckCode, Code.RECORD_NOT_FOUND, 'paid, but unknown');
  t.equal(
    (await recordHeader({ responseType: proto.ResponseType.ANSWER_STATE_PROOF, payment: payment(200_000) })).nodeTransactionPrecheckCode,
    Code.NOT_SUPPORTED,
  );

  const info = await rawQuery(net.grpcEndpoint, '/proto.ConsensusService/getTopicInfo', {
    consensusGetTopicInfo: { header: { payment: payment(200_000) }, topicID: topicId('0.0.5555') },
  });
  t.equal(info.consensusGetTopicInfo?.header?.nodeTransactionPrecheckCode, Code.INVALID_TOPIC_ID);
  const balance = await rawQuery(net.grpcEndpoint, '/proto.CryptoService/cryptoGetBalance', {
    cryptogetAccountBalance: { accountID: accountId('0.0.4242') },
  });
  t.equal(balance.cryptogetAccountBalance?.header?.nodeTransactionPrecheckCode, Code.INVALID_ACCOUNT_ID);
});
