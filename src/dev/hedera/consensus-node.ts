/**
 * The single consensus node of the local network: ingest (prechecks), ordering (consensus
 * timestamps), handling, durable journaling and state. Everything runs on the event loop
 * without awaits between check and commit, so no two transactions interleave.
 *
 * With consensusDelayMs = 0 a transaction is handled before its gRPC response is sent, so
 * its receipt is available at once. With a delay it waits like on a real network: receipt
 * queries answer status UNKNOWN, record queries RECORD_NOT_FOUND, until it is handled.
 * Transactions waiting for consensus are not journaled (as on Hedera, where a precheck OK
 * does not promise consensus); everything handled is.
 */
import type { ConsensusClock } from './consensus-clock.js';
import { formatEntityId, type EntityId } from './ids.js';
import type { Journal } from './journal.js';
import type { LedgerState, TransactionResult } from './ledger-state.js';
import { Status, statusName, type ResponseCode } from './proto.js';
import { PrecheckError, parseTransaction, precheck, type ParsedTransaction } from './transaction-checks.js';
import { handleTransaction } from './transaction-handlers.js';

export interface ConsensusNodeOptions {
  nodeAccount: EntityId;
  consensusDelayMs: number;
  log: (msg: string) => void;
}

export interface SubmitOutcome {
  code: ResponseCode;
  /** Required fee when code is INSUFFICIENT_TX_FEE, else 0. */
  cost: bigint;
}

export type ReceiptLookup = { kind: 'handled'; result: TransactionResult } | { kind: 'pending' } | { kind: 'unknown' };

interface Waiting {
  tx: ParsedTransaction;
  dueMs: number;
}

export class ConsensusNode {
  private readonly waiting: Waiting[] = [];
  private readonly waitingKeys = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly state: LedgerState,
    private readonly journal: Journal,
    private readonly clock: ConsensusClock,
    private readonly options: ConsensusNodeOptions,
  ) {}

  get nodeAccount(): EntityId {
    return this.options.nodeAccount;
  }

  nowNs(): bigint {
    return this.clock.wallNs();
  }

  isKnownTransaction(key: string): boolean {
    return this.state.hasTransaction(key) || this.waitingKeys.has(key);
  }

  /** Ingest raw protobuf Transaction bytes as sent to any transaction gRPC method. */
  submit(raw: Uint8Array): SubmitOutcome {
    let tx: ParsedTransaction;
    try {
      tx = parseTransaction(raw);
      this.precheck(tx);
    } catch (e) {
      if (e instanceof PrecheckError) {
        this.options.log(`precheck ${statusName(e.code)}`);
        return { code: e.code, cost: e.cost };
      }
      throw e;
    }
    this.accept(tx);
    return { code: Status.OK, cost: 0n };
  }

  /** Stateful ingest checks for an already parsed transaction (also used for query payments). */
  precheck(tx: ParsedTransaction): bigint {
    return precheck(tx, {
      nodeAccount: this.options.nodeAccount,
      nowNs: this.nowNs(),
      state: this.state,
      isKnownTransaction: (key) => this.isKnownTransaction(key),
    });
  }

  /** Hands a prechecked transaction to consensus. */
  accept(tx: ParsedTransaction): void {
    if (this.closed) throw new Error('local Hedera node is closed');
    if (this.options.consensusDelayMs <= 0) {
      this.handle(tx);
      return;
    }
    this.waiting.push({ tx, dueMs: Date.now() + this.options.consensusDelayMs });
    this.waitingKeys.add(tx.key);
    this.schedule();
  }

  lookup(key: string): ReceiptLookup {
    const result = this.state.transaction(key);
    if (result) return { kind: 'handled', result };
    return this.waitingKeys.has(key) ? { kind: 'pending' } : { kind: 'unknown' };
  }

  /** Handles every waiting transaction now (used on close, so accepted work is not dropped). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.waiting.length > 0) this.handleNextWaiting();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  private schedule(): void {
    if (this.timer || this.waiting.length === 0) return;
    const delay = Math.max(0, this.waiting[0]!.dueMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      // Bounded: at most what was waiting when the timer fired.
      let budget = this.waiting.length;
      while (budget-- > 0 && this.waiting.length > 0 && this.waiting[0]!.dueMs <= Date.now()) this.handleNextWaiting();
      this.schedule();
    }, delay);
    this.timer.unref();
  }

  private handleNextWaiting(): void {
    const next = this.waiting.shift()!;
    try {
      this.handle(next.tx);
    } catch (e) {
      this.options.log(`failed to handle ${next.tx.key}: ${(e as Error).message}`);
    } finally {
      this.waitingKeys.delete(next.tx.key);
    }
  }

  private handle(tx: ParsedTransaction): void {
    const consensusNs = this.clock.next();
    const result = handleTransaction(tx, consensusNs, { state: this.state, nodeAccount: this.options.nodeAccount });
    // Durable before visible: a receipt is never answered for something not on disk.
    this.journal.append(result);
    this.state.apply(result);
    const detail = result.message
      ? ` topic ${result.message.topicId} seq ${result.message.sequenceNumber}`
      : result.createdTopic
        ? ` created topic ${formatEntityId(result.createdTopic.id)}`
        : '';
    this.options.log(`handled ${tx.key} ${result.type} ${statusName(result.status)}${detail}`);
  }
}
