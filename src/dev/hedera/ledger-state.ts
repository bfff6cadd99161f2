/**
 * The ledger's state: accounts, topics with their messages, and every handled transaction
 * with its receipt/record data. It changes only through apply(), which the live path and
 * journal replay both use, so a restarted network rebuilds exactly what it acknowledged.
 */
import { formatEntityId, type EntityId, type TransactionIdParts, transactionIdKey } from './ids.js';
import type { ResponseCode } from './proto.js';
import { initialRunningHash } from './running-hash.js';

export interface AccountState {
  id: string;
  balance: bigint;
  /** Protobuf-encoded Key; null for system accounts nobody can sign for here. */
  key: Buffer | null;
}

export interface ChunkInfo {
  initialTransactionId: TransactionIdParts;
  number: number;
  total: number;
}

export interface TopicMessage {
  topicId: string;
  sequenceNumber: bigint;
  consensusNs: bigint;
  runningHash: Buffer;
  runningHashVersion: number;
  message: Buffer;
  payer: string;
  chunkInfo: ChunkInfo | null;
}

/** A topic as created; its mutable part (sequence number, running hash) lives in TopicState. */
export interface TopicDefinition {
  id: EntityId;
  memo: string;
  adminKey: Buffer | null;
  submitKey: Buffer | null;
  autoRenewPeriodSeconds: bigint;
  autoRenewAccount: string | null;
  createdNs: bigint;
  expirationSeconds: bigint;
}

export interface TopicState extends TopicDefinition {
  sequenceNumber: bigint;
  runningHash: Buffer;
  /** messages[i] has sequence number i + 1 */
  messages: TopicMessage[];
}

export type TransactionType = 'CONSENSUSCREATETOPIC' | 'CONSENSUSSUBMITMESSAGE' | 'CRYPTOTRANSFER';

export interface Transfer {
  account: string;
  amount: bigint;
}

/** Everything a handled transaction changed and reports; this is what the journal stores. */
export interface TransactionResult {
  transactionId: TransactionIdParts;
  consensusNs: bigint;
  type: TransactionType;
  status: ResponseCode;
  node: string;
  /** SHA-384 of the signed transaction bytes, as Hedera and the SDK compute it. */
  transactionHash: Buffer;
  memo: string;
  maxFee: bigint;
  chargedFee: bigint;
  validDurationSeconds: bigint;
  /** Net hbar changes (fees and transfers), one entry per account. */
  transfers: Transfer[];
  /** Topic created or written to; null for transfers. */
  entityId: string | null;
  createdTopic: TopicDefinition | null;
  message: TopicMessage | null;
}

export interface Genesis {
  accounts: AccountState[];
  firstEntityNum: bigint;
}

export class LedgerState {
  readonly accounts = new Map<string, AccountState>();
  readonly topics = new Map<string, TopicState>();
  private readonly transactions = new Map<string, TransactionResult>();
  private readonly messagesByTimestamp = new Map<bigint, TopicMessage>();
  nextEntityNum: bigint;
  lastConsensusNs = 0n;

  constructor(genesis: Genesis) {
    for (const a of genesis.accounts) this.accounts.set(a.id, { ...a });
    this.nextEntityNum = genesis.firstEntityNum;
  }

  transaction(key: string): TransactionResult | undefined {
    return this.transactions.get(key);
  }

  hasTransaction(key: string): boolean {
    return this.transactions.has(key);
  }

  messageAt(consensusNs: bigint): TopicMessage | undefined {
    return this.messagesByTimestamp.get(consensusNs);
  }

  apply(result: TransactionResult): void {
    if (result.consensusNs <= this.lastConsensusNs) {
      // Consensus order is the journal order; anything else means a corrupt journal.
      throw new Error(`consensus timestamp ${result.consensusNs} is not after ${this.lastConsensusNs}`);
    }
    this.lastConsensusNs = result.consensusNs;
    this.transactions.set(transactionIdKey(result.transactionId), result);

    for (const t of result.transfers) {
      const account = this.accounts.get(t.account);
      if (!account) throw new Error(`transfer to unknown account ${t.account}`);
      account.balance += t.amount;
    }

    if (result.createdTopic) {
      const def = result.createdTopic;
      const id = formatEntityId(def.id);
      this.topics.set(id, { ...def, sequenceNumber: 0n, runningHash: initialRunningHash(), messages: [] });
      if (def.id.num >= this.nextEntityNum) this.nextEntityNum = def.id.num + 1n;
    }

    if (result.message) {
      const m = result.message;
      const topic = this.topics.get(m.topicId);
      if (!topic) throw new Error(`message for unknown topic ${m.topicId}`);
      if (m.sequenceNumber !== topic.sequenceNumber + 1n) {
        throw new Error(`topic ${m.topicId}: sequence number ${m.sequenceNumber} after ${topic.sequenceNumber}`);
      }
      topic.messages.push(m);
      topic.sequenceNumber = m.sequenceNumber;
      topic.runningHash = m.runningHash;
      this.messagesByTimestamp.set(m.consensusNs, m);
    }
  }
}
