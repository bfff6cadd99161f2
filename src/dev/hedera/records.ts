/** Protobuf receipts and records of handled transactions, shaped as Hedera returns them. */
import { EXCHANGE_RATE } from './fees.js';
import { accountIdToProto, parseEntityId, splitNanos, timestampToProto, topicIdToProto, transactionIdToProto } from './ids.js';
import type { TransactionResult } from './ledger-state.js';
import { type proto, Status, toLong } from './proto.js';

function entity(text: string) {
  const id = parseEntityId(text);
  if (!id) throw new Error(`bad entity id ${text}`);
  return id;
}

/** Rates expire on the hour, as Hedera's exchange-rate file does. */
function exchangeRateSet(consensusNs: bigint): proto.IExchangeRateSet {
  const hourEnd = (splitNanos(consensusNs).seconds / 3600n + 1n) * 3600n;
  const rate = (expiry: bigint): proto.IExchangeRate => ({
    hbarEquiv: EXCHANGE_RATE.hbarEquiv,
    centEquiv: EXCHANGE_RATE.centEquiv,
    expirationTime: { seconds: toLong(expiry) },
  });
  return { currentRate: rate(hourEnd), nextRate: rate(hourEnd + 3600n) };
}

export function receiptOf(result: TransactionResult): proto.ITransactionReceipt {
  const receipt: proto.ITransactionReceipt = { status: result.status, exchangeRate: exchangeRateSet(result.consensusNs) };
  if (result.status !== Status.SUCCESS) return receipt;
  if (result.createdTopic) receipt.topicID = topicIdToProto(result.createdTopic.id);
  if (result.message) {
    receipt.topicSequenceNumber = toLong(result.message.sequenceNumber);
    receipt.topicRunningHash = result.message.runningHash;
    receipt.topicRunningHashVersion = toLong(result.message.runningHashVersion);
  }
  return receipt;
}

/** What a node answers while a transaction waits for (simulated) consensus. */
export function pendingReceipt(): proto.ITransactionReceipt {
  return { status: Status.UNKNOWN };
}

export function recordOf(result: TransactionResult): proto.ITransactionRecord {
  return {
    receipt: receiptOf(result),
    transactionHash: result.transactionHash,
    consensusTimestamp: timestampToProto(result.consensusNs),
    transactionID: transactionIdToProto(result.transactionId),
    memo: result.memo,
    transactionFee: toLong(result.chargedFee),
    transferList: {
      accountAmounts: result.transfers.map((t) => ({ accountID: accountIdToProto(entity(t.account)), amount: toLong(t.amount) })),
    },
  };
}
