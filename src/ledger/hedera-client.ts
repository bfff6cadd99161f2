/**
 * Hedera through the real @hashgraph/sdk: topic creation, message submission, receipts and records.
 *
 * Restart safety starts here: every transaction is built with a TransactionId we generate ourselves, frozen
 * and signed, and its bytes are handed back BEFORE anything is sent, so the caller can store "this batch will
 * be submitted as transaction X, these exact bytes" first. Submitting is then a separate step that sends those
 * bytes, and can send them again after a crash: Hedera deduplicates by transaction id (DUPLICATE_TRANSACTION),
 * so a batch never lands twice under one id. The SDK is told never to swap in a fresh transaction id on its own
 * (locked id, setRegenerateTransactionId(false)), and receipts are read with status validation off, so the
 * SDK's "retry a throttled transaction" path (which would also regenerate the id) is never taken.
 *
 * The same calls reach testnet, mainnet, previewnet or the project's local network; only the Client differs.
 */
import {
  Client,
  MaxAttemptsOrTimeoutError,
  PrecheckStatusError,
  PrivateKey,
  Status,
  TopicCreateTransaction,
  TopicId,
  TopicMessageSubmitTransaction,
  Transaction,
  TransactionId,
  TransactionReceiptQuery,
  TransactionRecordQuery,
} from '@hashgraph/sdk';
import type { HederaNetworkName } from '../config.js';
import { formatConsensusTimestamp } from './hedera-ids.js';
import { networkLabel } from './network.js';

/** Where and as whom to connect. `local` needs the local network's endpoint and node account. */
export interface HederaConnectionSettings {
  network: HederaNetworkName;
  operatorId: string;
  /** DER hex (as the Hedera portal and the local network give it); raw hex is accepted as PrivateKey.fromString reads it. */
  operatorKey: string;
  /** For `local`: "127.0.0.1:PORT" and "0.0.3". */
  grpcEndpoint?: string;
  nodeAccountId?: string;
  /** Per-gRPC-call deadline (SDK default 10 s). */
  grpcDeadlineMs?: number;
  /** Bound of one SDK request including its own retries (SDK default 2 min). */
  requestTimeoutMs?: number;
}

/** A transaction ready to send: its id, its frozen and signed bytes, and when it stops being valid. */
export interface PreparedTransaction {
  transactionId: string;
  signedBytes: Buffer;
  /** validStart + validDuration, in ms since the epoch: after this no node accepts it any more. */
  validUntilMs: number;
}

/** accepted: the node took it (precheck OK). duplicate: it already had this id. expired: its validity is over. */
export type SubmitOutcome = 'accepted' | 'duplicate' | 'expired';

export type ReceiptOutcome =
  /** Reached consensus and succeeded. */
  | { kind: 'success'; sequenceNumber: number | null; runningHash: Buffer | null; topicId: string | null }
  /** Reached consensus and failed: nothing was recorded on the topic. */
  | { kind: 'failed'; status: string }
  /** No receipt: never seen, not yet at consensus, or (on Hedera, after ~3 minutes) the receipt has expired. */
  | { kind: 'unknown' };

/** The SDK operations the anchoring worker needs; an interface so tests can fake a misbehaving network. */
export interface HederaLedger {
  /** "testnet", "mainnet", "previewnet" or "local (not Hedera)". */
  readonly networkLabel: string;
  readonly operatorId: string;
  prepareTopicCreate(memo: string): Promise<PreparedTransaction>;
  prepareMessage(topicId: string, message: Buffer): Promise<PreparedTransaction>;
  submit(signedBytes: Buffer): Promise<SubmitOutcome>;
  /** wait: keep asking while the network says "not yet" (after a submit); otherwise answer quickly (recovery). */
  receipt(transactionId: string, wait: boolean): Promise<ReceiptOutcome>;
  /** The consensus timestamp from the transaction record ("seconds.nanoseconds"). */
  consensusTimestamp(transactionId: string): Promise<string>;
  close(): void;
}

export function parseOperatorKey(text: string): PrivateKey {
  const hex = text.startsWith('0x') ? text.slice(2) : text;
  // DER keys start with a SEQUENCE tag (0x30); raw 32-byte keys are exactly 64 hex digits.
  return hex.length > 64 && hex.startsWith('30') ? PrivateKey.fromStringDer(hex) : PrivateKey.fromString(hex);
}

/** Network failures and "try again" statuses: the worker backs off and retries; anything else needs a human. */
export function isTransientHederaError(error: unknown): boolean {
  if (error instanceof PrecheckStatusError) {
    return [Status.Busy, Status.PlatformTransactionNotCreated, Status.PlatformNotActive, Status.Unknown].includes(error.status);
  }
  if (error instanceof MaxAttemptsOrTimeoutError) return true;
  const text = error instanceof Error ? `${error.name} ${error.message}` : String(error);
  // The SDK reports a node it cannot reach in several words: "All nodes are unhealthy", "failed to find a healthy
  // working node", gRPC UNAVAILABLE or DEADLINE_EXCEEDED, or a socket error.
  return /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|ECONNRESET|ETIMEDOUT|healthy|connectivity|timeout|GrpcServiceError/i.test(text);
}

export class SdkHederaLedger implements HederaLedger {
  readonly networkLabel: string;
  readonly operatorId: string;
  private readonly key: PrivateKey;
  private client: Client;

  constructor(private readonly settings: HederaConnectionSettings) {
    this.networkLabel = networkLabel(settings.network);
    this.operatorId = settings.operatorId;
    this.key = parseOperatorKey(settings.operatorKey);
    this.client = this.newClient();
  }

  private newClient(): Client {
    const s = this.settings;
    let client: Client;
    if (s.network === 'local') {
      if (!s.grpcEndpoint || !s.nodeAccountId) throw new Error('the local network needs its gRPC endpoint and node account id');
      client = Client.forNetwork({ [s.grpcEndpoint]: s.nodeAccountId }, { scheduleNetworkUpdate: false });
    } else {
      client = Client.forName(s.network);
    }
    client.setOperator(s.operatorId, this.key);
    if (s.grpcDeadlineMs !== undefined) client.setGrpcDeadline(s.grpcDeadlineMs);
    client.setRequestTimeout(s.requestTimeoutMs ?? 30_000);
    // The SDK's node backoff grows to an hour; during an outage the worker has its own backoff, and a node
    // that is back must be tried again within seconds, so the SDK's is kept short.
    client.setNodeMinBackoff(250);
    client.setNodeMaxBackoff(4000);
    client.setNodeMinReadmitPeriod(250);
    client.setNodeMaxReadmitPeriod(4000);
    return client;
  }

  private prepared(tx: Transaction, transactionId: TransactionId): PreparedTransaction {
    const start = transactionId.validStart!;
    const validStartMs = start.seconds.toNumber() * 1000 + Math.floor(start.nanos.toNumber() / 1_000_000);
    return {
      transactionId: transactionId.toString(),
      signedBytes: Buffer.from(tx.toBytes()),
      validUntilMs: validStartMs + tx.transactionValidDuration * 1000,
    };
  }

  async prepareTopicCreate(memo: string): Promise<PreparedTransaction> {
    const transactionId = TransactionId.generate(this.operatorId);
    // Submit key = the operator's: only this server can post batch roots. No admin key: nobody, not even
    // us, can delete the topic or change its submit key afterwards, so the evidence stays put.
    const tx = new TopicCreateTransaction()
      .setSubmitKey(this.key.publicKey)
      .setTopicMemo(memo)
      .setTransactionId(transactionId)
      .setRegenerateTransactionId(false)
      .freezeWith(this.client);
    await tx.signWithOperator(this.client);
    return this.prepared(tx, transactionId);
  }

  async prepareMessage(topicId: string, message: Buffer): Promise<PreparedTransaction> {
    const transactionId = TransactionId.generate(this.operatorId);
    const tx = new TopicMessageSubmitTransaction()
      .setTopicId(TopicId.fromString(topicId))
      .setMessage(message)
      // One transaction, one message: a batch message is ~170 bytes, and chunking would mean several ids.
      .setMaxChunks(1)
      .setTransactionId(transactionId)
      .setRegenerateTransactionId(false)
      .freezeWith(this.client);
    await tx.signWithOperator(this.client);
    return this.prepared(tx, transactionId);
  }

  async submit(signedBytes: Buffer): Promise<SubmitOutcome> {
    const tx = Transaction.fromBytes(signedBytes);
    try {
      await tx.execute(this.client);
      return 'accepted';
    } catch (error) {
      if (error instanceof PrecheckStatusError) {
        if (error.status === Status.DuplicateTransaction) return 'duplicate';
        if (error.status === Status.TransactionExpired) return 'expired';
      }
      throw error;
    }
  }

  async receipt(transactionId: string, wait: boolean): Promise<ReceiptOutcome> {
    const query = new TransactionReceiptQuery().setTransactionId(TransactionId.fromString(transactionId)).setValidateStatus(false);
    if (!wait) query.setMaxAttempts(3);
    let receipt;
    try {
      receipt = await query.execute(this.client);
    } catch (error) {
      // The SDK retries RECEIPT_NOT_FOUND / UNKNOWN until it gives up; its error names the last status.
      if (error instanceof MaxAttemptsOrTimeoutError && /RECEIPT_NOT_FOUND|UNKNOWN/.test(error.message)) return { kind: 'unknown' };
      if (error instanceof PrecheckStatusError && error.status === Status.ReceiptNotFound) return { kind: 'unknown' };
      throw error;
    }
    if (receipt.status === Status.Success) {
      return {
        kind: 'success',
        sequenceNumber: receipt.topicSequenceNumber === null ? null : receipt.topicSequenceNumber.toNumber(),
        runningHash: receipt.topicRunningHash ? Buffer.from(receipt.topicRunningHash) : null,
        topicId: receipt.topicId ? receipt.topicId.toString() : null,
      };
    }
    if (receipt.status === Status.Unknown) return { kind: 'unknown' };
    return { kind: 'failed', status: receipt.status.toString() };
  }

  async consensusTimestamp(transactionId: string): Promise<string> {
    const record = await new TransactionRecordQuery()
      .setTransactionId(TransactionId.fromString(transactionId))
      .setValidateReceiptStatus(false)
      .execute(this.client);
    const ts = record.consensusTimestamp;
    return formatConsensusTimestamp(BigInt(ts.seconds.toString()), ts.nanos.toNumber());
  }

  close(): void {
    this.client.close();
  }
}
