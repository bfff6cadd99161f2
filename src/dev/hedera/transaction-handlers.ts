/**
 * Handling a transaction at its consensus timestamp: the checks Hedera makes after
 * consensus (their failures become the receipt status, and the payer still pays the fee),
 * then the state change itself. Returns a TransactionResult; nothing is mutated here, the
 * caller journals the result and then applies it to the LedgerState.
 */
import { splitFee } from './fees.js';
import {
  accountIdFromProto,
  entityId,
  formatEntityId,
  sameEntity,
  splitNanos,
  topicIdFromProto,
  transactionIdFromProto,
  transactionIdKey,
  type EntityId,
} from './ids.js';
import type { ChunkInfo, LedgerState, TopicDefinition, TopicMessage, TransactionResult, Transfer } from './ledger-state.js';
import { Status, toBigInt, toUint8, type ResponseCode, type proto } from './proto.js';
import { RUNNING_HASH_VERSION, computeRunningHashV3 } from './running-hash.js';
import { decodeKey, encodeKey } from './signatures.js';
import { LIMITS, PrecheckError, checkTimeBox, requiredFee, type ParsedTransaction } from './transaction-checks.js';

/** Hedera's fee collection account; fees beyond the node's share go here. */
export const FEE_COLLECTION_ACCOUNT = entityId(98);

export interface HandleContext {
  state: LedgerState;
  nodeAccount: EntityId;
}

/** Outcome of the operation itself, before fees are merged in. */
interface OperationOutcome {
  status: ResponseCode;
  transfers?: Transfer[];
  entityId?: string | null;
  createdTopic?: TopicDefinition;
  message?: TopicMessage;
}

class Failure extends Error {
  constructor(readonly status: ResponseCode) {
    super(String(status));
  }
}

function fail(status: ResponseCode): never {
  throw new Failure(status);
}

/** Net change per account, zero entries dropped, ordered by account number like Hedera. */
function netTransfers(...lists: Transfer[][]): Transfer[] {
  const net = new Map<string, bigint>();
  for (const list of lists) for (const t of list) net.set(t.account, (net.get(t.account) ?? 0n) + t.amount);
  return [...net.entries()]
    .filter(([, amount]) => amount !== 0n)
    .map(([account, amount]) => ({ account, amount }))
    .sort((a, b) => compareAccountIds(a.account, b.account));
}

function compareAccountIds(a: string, b: string): number {
  const pa = a.split('.').map(BigInt);
  const pb = b.split('.').map(BigInt);
  for (let i = 0; i < 3; i++) {
    if (pa[i]! !== pb[i]!) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return 0;
}

export function handleTransaction(tx: ParsedTransaction, consensusNs: bigint, ctx: HandleContext): TransactionResult {
  const base = {
    transactionId: tx.transactionId,
    consensusNs,
    type: tx.type,
    node: formatEntityId(ctx.nodeAccount),
    transactionHash: tx.hash,
    memo: tx.body.memo ?? '',
    maxFee: toBigInt(tx.body.transactionFee),
    validDurationSeconds: toBigInt(tx.body.transactionValidDuration?.seconds),
  };
  const unpaid = (status: ResponseCode): TransactionResult => ({
    ...base,
    status,
    chargedFee: 0n,
    transfers: [],
    entityId: null,
    createdTopic: null,
    message: null,
  });

  // Due diligence at consensus time: a transaction that expired while waiting for
  // consensus, or whose payer cannot pay, is recorded without charging the payer.
  try {
    checkTimeBox(tx.body, consensusNs, 0n);
  } catch (e) {
    if (e instanceof PrecheckError) return unpaid(e.code);
    throw e;
  }
  const payerId = formatEntityId(tx.transactionId.payer);
  const payer = ctx.state.accounts.get(payerId);
  if (!payer) return unpaid(Status.PAYER_ACCOUNT_NOT_FOUND);
  const fee = requiredFee(tx.type);
  if (payer.balance < fee) return unpaid(Status.INSUFFICIENT_PAYER_BALANCE);

  const share = splitFee(fee);
  const feeTransfers: Transfer[] = [
    { account: payerId, amount: -fee },
    { account: formatEntityId(ctx.nodeAccount), amount: share.node },
    { account: formatEntityId(FEE_COLLECTION_ACCOUNT), amount: share.network },
  ];

  let outcome: OperationOutcome;
  try {
    outcome = runOperation(tx, consensusNs, ctx, fee);
  } catch (e) {
    if (e instanceof Failure) outcome = { status: e.status };
    else throw e;
  }
  return {
    ...base,
    status: outcome.status,
    chargedFee: fee,
    transfers: netTransfers(feeTransfers, outcome.transfers ?? []),
    entityId: outcome.entityId ?? null,
    createdTopic: outcome.createdTopic ?? null,
    message: outcome.message ?? null,
  };
}

function runOperation(tx: ParsedTransaction, consensusNs: bigint, ctx: HandleContext, fee: bigint): OperationOutcome {
  switch (tx.type) {
    case 'CONSENSUSCREATETOPIC':
      return createTopic(tx, tx.body.consensusCreateTopic!, consensusNs, ctx);
    case 'CONSENSUSSUBMITMESSAGE':
      return submitMessage(tx, tx.body.consensusSubmitMessage!, consensusNs, ctx);
    case 'CRYPTOTRANSFER':
      return cryptoTransfer(tx, tx.body.cryptoTransfer!, ctx, fee);
  }
}

function createTopic(
  tx: ParsedTransaction,
  op: proto.IConsensusCreateTopicTransactionBody,
  consensusNs: bigint,
  ctx: HandleContext,
): OperationOutcome {
  // An admin key must sign its own creation (so nobody can claim a key they do not hold);
  // so must an auto-renew account. The submit key does not need to sign.
  if (op.adminKey && !tx.signatures.satisfies(op.adminKey)) fail(Status.INVALID_SIGNATURE);
  let autoRenewAccount: string | null = null;
  if (op.autoRenewAccount) {
    const id = accountIdFromProto(op.autoRenewAccount);
    const account = id ? ctx.state.accounts.get(formatEntityId(id)) : undefined;
    if (!account) fail(Status.INVALID_AUTORENEW_ACCOUNT);
    if (!account.key || !tx.signatures.satisfies(decodeKey(account.key))) fail(Status.INVALID_SIGNATURE);
    autoRenewAccount = account.id;
  }
  const period = toBigInt(op.autoRenewPeriod?.seconds);
  if (period < LIMITS.minAutoRenewPeriodSeconds || period > LIMITS.maxAutoRenewPeriodSeconds) {
    fail(Status.AUTORENEW_DURATION_NOT_IN_RANGE);
  }
  const id = entityId(ctx.state.nextEntityNum);
  const topic: TopicDefinition = {
    id,
    memo: op.memo ?? '',
    adminKey: op.adminKey ? encodeKey(op.adminKey) : null,
    submitKey: op.submitKey ? encodeKey(op.submitKey) : null,
    autoRenewPeriodSeconds: period,
    autoRenewAccount,
    createdNs: consensusNs,
    expirationSeconds: splitNanos(consensusNs).seconds + period,
  };
  return { status: Status.SUCCESS, entityId: formatEntityId(id), createdTopic: topic };
}

function submitMessage(
  tx: ParsedTransaction,
  op: proto.IConsensusSubmitMessageTransactionBody,
  consensusNs: bigint,
  ctx: HandleContext,
): OperationOutcome {
  const topicId = topicIdFromProto(op.topicID);
  const topic = topicId ? ctx.state.topics.get(formatEntityId(topicId)) : undefined;
  if (!topicId || !topic) fail(Status.INVALID_TOPIC_ID);
  const entity = formatEntityId(topicId);
  if (topic.submitKey && !tx.signatures.satisfies(decodeKey(topic.submitKey))) fail(Status.INVALID_SIGNATURE);
  const message = toUint8(op.message);
  if (message.length > LIMITS.messageMaxBytes) fail(Status.MESSAGE_SIZE_TOO_LARGE);
  const chunkInfo = checkChunkInfo(tx, op.chunkInfo);

  const sequenceNumber = topic.sequenceNumber + 1n;
  const { seconds, nanos } = splitNanos(consensusNs);
  const runningHash = computeRunningHashV3({
    previousRunningHash: topic.runningHash,
    payer: tx.transactionId.payer,
    topic: topicId,
    consensusSeconds: seconds,
    consensusNanos: nanos,
    sequenceNumber,
    message,
  });
  return {
    status: Status.SUCCESS,
    entityId: entity,
    message: {
      topicId: entity,
      sequenceNumber,
      consensusNs,
      runningHash,
      runningHashVersion: RUNNING_HASH_VERSION,
      message: Buffer.from(message),
      payer: formatEntityId(tx.transactionId.payer),
      chunkInfo,
    },
  };
}

/** Chunk rules of ConsensusSubmitMessageHandler.validateChunkInfo. */
function checkChunkInfo(tx: ParsedTransaction, info: proto.IConsensusMessageChunkInfo | null | undefined): ChunkInfo | null {
  if (!info) return null;
  const number = info.number ?? 0;
  const total = info.total ?? 0;
  if (number < 1 || number > total) fail(Status.INVALID_CHUNK_NUMBER);
  const initial = transactionIdFromProto(info.initialTransactionID);
  if (!initial || !sameEntity(initial.payer, tx.transactionId.payer)) fail(Status.INVALID_CHUNK_TRANSACTION_ID);
  if (number === 1 && transactionIdKey(initial) !== tx.key) fail(Status.INVALID_CHUNK_TRANSACTION_ID);
  return { initialTransactionId: initial, number, total };
}

function cryptoTransfer(
  tx: ParsedTransaction,
  op: proto.ICryptoTransferTransactionBody,
  ctx: HandleContext,
  fee: bigint,
): OperationOutcome {
  const transfers: Transfer[] = [];
  for (const aa of op.transfers?.accountAmounts ?? []) {
    const id = accountIdFromProto(aa.accountID);
    const account = id ? ctx.state.accounts.get(formatEntityId(id)) : undefined;
    if (!account) fail(Status.INVALID_ACCOUNT_ID);
    const amount = toBigInt(aa.amount);
    // Every account that gives hbar must sign.
    if (amount < 0n && (!account.key || !tx.signatures.satisfies(decodeKey(account.key)))) {
      fail(Status.INVALID_SIGNATURE);
    }
    const payerFee = account.id === formatEntityId(tx.transactionId.payer) ? fee : 0n;
    if (account.balance - payerFee + amount < 0n) fail(Status.INSUFFICIENT_ACCOUNT_BALANCE);
    transfers.push({ account: account.id, amount });
  }
  return { status: Status.SUCCESS, transfers };
}
