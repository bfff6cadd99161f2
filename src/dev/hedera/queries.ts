/**
 * Queries: receipts and balances (free), records and topic info (paid).
 *
 * Paid queries follow Hedera's flow, which the SDK drives: first COST_ANSWER (the SDK
 * attaches a zero-value payment that is not checked, like Hedera), which returns the cost
 * in the response header; then ANSWER_ONLY with a signed CryptoTransfer paying the node at
 * least that cost. The payment gets the usual transaction prechecks plus the query ones,
 * and once the query itself is valid it is submitted like any transfer, so it has its own
 * receipt and record and moves real balances on this ledger.
 */
import { QUERY_COSTS } from './fees.js';
import {
  accountIdFromProto,
  accountIdToProto,
  formatEntityId,
  parseEntityId,
  sameEntity,
  timestampToProto,
  topicIdFromProto,
  topicIdToProto,
  transactionIdFromProto,
  transactionIdKey,
} from './ids.js';
import type { ConsensusNode } from './consensus-node.js';
import { proto, Status, toBigInt, toLong, type ResponseCode } from './proto.js';
import { pendingReceipt, receiptOf, recordOf } from './records.js';
import { decodeKey } from './signatures.js';
import { PrecheckError, parseTransaction, type ParsedTransaction } from './transaction-checks.js';

/** Hedera's ledger id for a local network ("local-node", 0x03); the SDK maps it by name. */
export const LOCAL_LEDGER_ID = new Uint8Array([3]);

export class UnsupportedQueryError extends Error {}

type Gate = { stop: proto.IResponseHeader } | { payment: ParsedTransaction | null; responseType: proto.ResponseType; cost: bigint };

export class QueryAnswerer {
  constructor(private readonly node: ConsensusNode) {}

  /** Raw protobuf Query in, raw protobuf Response out. */
  answer(raw: Uint8Array): Buffer {
    const query = proto.Query.decode(raw);
    let response: proto.IResponse;
    switch (query.query) {
      case 'transactionGetReceipt':
        response = { transactionGetReceipt: this.receipt(query.transactionGetReceipt!) };
        break;
      case 'transactionGetRecord':
        response = { transactionGetRecord: this.record(query.transactionGetRecord!) };
        break;
      case 'consensusGetTopicInfo':
        response = { consensusGetTopicInfo: this.topicInfo(query.consensusGetTopicInfo!) };
        break;
      case 'cryptogetAccountBalance':
        response = { cryptogetAccountBalance: this.balance(query.cryptogetAccountBalance!) };
        break;
      default:
        throw new UnsupportedQueryError(`query ${query.query ?? '(none)'} is not supported by the local network`);
    }
    return Buffer.from(proto.Response.encode(response).finish());
  }

  private header(responseType: proto.ResponseType, code: ResponseCode, cost: bigint): proto.IResponseHeader {
    return { nodeTransactionPrecheckCode: code, responseType, cost: toLong(cost) };
  }

  /**
   * Response type and payment handling shared by all queries. `cost` null means free.
   * Returns either a header to answer with right away, or the checked payment.
   */
  private gate(header: proto.IQueryHeader | null | undefined, cost: bigint | null): Gate {
    const responseType = header?.responseType ?? proto.ResponseType.ANSWER_ONLY;
    if (responseType === proto.ResponseType.ANSWER_STATE_PROOF || responseType === proto.ResponseType.COST_ANSWER_STATE_PROOF) {
      return { stop: this.header(responseType, Status.NOT_SUPPORTED, 0n) };
    }
    if (responseType === proto.ResponseType.COST_ANSWER) {
      return { stop: this.header(responseType, Status.OK, cost ?? 0n) };
    }
    if (cost === null) return { payment: null, responseType, cost: 0n };
    try {
      return { payment: this.checkPayment(header?.payment, cost), responseType, cost };
    } catch (e) {
      if (e instanceof PrecheckError) return { stop: this.header(responseType, e.code, cost) };
      throw e;
    }
  }

  /** Query payment rules on top of the ordinary transaction prechecks. */
  private checkPayment(payment: proto.ITransaction | null | undefined, cost: bigint): ParsedTransaction {
    if (!payment) throw new PrecheckError(Status.INSUFFICIENT_TX_FEE);
    const tx = parseTransaction(proto.Transaction.encode(payment).finish());
    if (tx.type !== 'CRYPTOTRANSFER') throw new PrecheckError(Status.INSUFFICIENT_TX_FEE);
    const transferFee = this.node.precheck(tx);
    let paidToNode = 0n;
    let payerDebit = 0n;
    for (const aa of tx.body.cryptoTransfer?.transfers?.accountAmounts ?? []) {
      const id = accountIdFromProto(aa.accountID);
      const amount = toBigInt(aa.amount);
      if (id && sameEntity(id, this.node.nodeAccount)) paidToNode += amount;
      if (id && sameEntity(id, tx.transactionId.payer) && amount < 0n) payerDebit -= amount;
    }
    if (paidToNode < cost) throw new PrecheckError(Status.INSUFFICIENT_TX_FEE, cost);
    const payer = this.node.state.accounts.get(formatEntityId(tx.transactionId.payer));
    if (!payer || payer.balance < payerDebit + transferFee) throw new PrecheckError(Status.INSUFFICIENT_PAYER_BALANCE);
    return tx;
  }

  /** The query is valid and answered: now the payment goes to consensus. */
  private settle(gate: { payment: ParsedTransaction | null }): void {
    if (gate.payment) this.node.accept(gate.payment);
  }

  private receipt(op: proto.ITransactionGetReceiptQuery): proto.ITransactionGetReceiptResponse {
    const gate = this.gate(op.header, null);
    if ('stop' in gate) return { header: gate.stop };
    const id = transactionIdFromProto(op.transactionID);
    if (!id) return { header: this.header(gate.responseType, Status.INVALID_TRANSACTION_ID, 0n) };
    const found = this.node.lookup(transactionIdKey(id));
    if (found.kind === 'unknown') return { header: this.header(gate.responseType, Status.RECEIPT_NOT_FOUND, 0n) };
    const response: proto.ITransactionGetReceiptResponse = {
      header: this.header(gate.responseType, Status.OK, 0n),
      receipt: found.kind === 'handled' ? receiptOf(found.result) : pendingReceipt(),
    };
    // One node, so never duplicates; no child transactions are ever created.
    if (op.includeDuplicates) response.duplicateTransactionReceipts = [];
    if (op.includeChildReceipts) response.childTransactionReceipts = [];
    return response;
  }

  private record(op: proto.ITransactionGetRecordQuery): proto.ITransactionGetRecordResponse {
    const gate = this.gate(op.header, QUERY_COSTS.transactionGetRecord);
    if ('stop' in gate) return { header: gate.stop };
    const id = transactionIdFromProto(op.transactionID);
    if (!id) return { header: this.header(gate.responseType, Status.INVALID_TRANSACTION_ID, gate.cost) };
    const found = this.node.lookup(transactionIdKey(id));
    if (found.kind !== 'handled') return { header: this.header(gate.responseType, Status.RECORD_NOT_FOUND, gate.cost) };
    this.settle(gate);
    const response: proto.ITransactionGetRecordResponse = {
      header: this.header(gate.responseType, Status.OK, gate.cost),
      transactionRecord: recordOf(found.result),
    };
    if (op.includeDuplicates) response.duplicateTransactionRecords = [];
    if (op.includeChildRecords) response.childTransactionRecords = [];
    return response;
  }

  private topicInfo(op: proto.IConsensusGetTopicInfoQuery): proto.IConsensusGetTopicInfoResponse {
    const gate = this.gate(op.header, QUERY_COSTS.consensusGetTopicInfo);
    if ('stop' in gate) return { header: gate.stop };
    const id = topicIdFromProto(op.topicID);
    const topic = id ? this.node.state.topics.get(formatEntityId(id)) : undefined;
    if (!topic) return { header: this.header(gate.responseType, Status.INVALID_TOPIC_ID, gate.cost) };
    this.settle(gate);
    const autoRenew = topic.autoRenewAccount ? parseEntityId(topic.autoRenewAccount) : null;
    return {
      header: this.header(gate.responseType, Status.OK, gate.cost),
      topicID: topicIdToProto(topic.id),
      topicInfo: {
        memo: topic.memo,
        runningHash: topic.runningHash,
        sequenceNumber: toLong(topic.sequenceNumber),
        expirationTime: timestampToProto(topic.expirationSeconds * 1_000_000_000n),
        adminKey: topic.adminKey ? decodeKey(topic.adminKey) : null,
        submitKey: topic.submitKey ? decodeKey(topic.submitKey) : null,
        autoRenewPeriod: { seconds: toLong(topic.autoRenewPeriodSeconds) },
        autoRenewAccount: autoRenew ? accountIdToProto(autoRenew) : null,
        ledgerId: LOCAL_LEDGER_ID,
      },
    };
  }

  private balance(op: proto.ICryptoGetAccountBalanceQuery): proto.ICryptoGetAccountBalanceResponse {
    const gate = this.gate(op.header, null);
    if ('stop' in gate) return { header: gate.stop };
    if (op.contractID) return { header: this.header(gate.responseType, Status.INVALID_CONTRACT_ID, 0n) };
    const id = accountIdFromProto(op.accountID);
    const account = id ? this.node.state.accounts.get(formatEntityId(id)) : undefined;
    if (!id || !account) return { header: this.header(gate.responseType, Status.INVALID_ACCOUNT_ID, 0n) };
    return {
      header: this.header(gate.responseType, Status.OK, 0n),
      accountID: accountIdToProto(id),
      balance: toLong(account.balance),
    };
  }
}
