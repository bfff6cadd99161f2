/**
 * Transaction lifecycle and the lock table.
 *
 * Locks are taken on first write of a document ("d|ns|id") and on every
 * unique-index key a transaction writes ("u|ns|index|key"). A second
 * transaction touching a locked item gets WriteConflict at once (and is
 * aborted), exactly like mongod; a non-transactional write waits for the
 * holder to finish and retries, which is what mongod's internal
 * write-conflict retry loop amounts to.
 */
import type { Document } from 'bson';
import { writeConflict } from '../errors.js';
import type { StorageEngine } from '../storage/engine.js';
import { Transaction } from './transaction.js';

/** Thrown by a non-transactional write that must wait for a transaction to end. */
export class LockWait extends Error {
  constructor(readonly until: Promise<void>) {
    super('waiting for a transaction to release a lock');
  }
}

export function docLockKey(ns: string, idKey: string): string {
  return `d|${ns}|${idKey}`;
}

export function uniqueLockKey(ns: string, index: string, key: string): string {
  return `u|${ns}|${index}|${key}`;
}

/** mongod's default transactionLifetimeLimitSeconds. */
export const TRANSACTION_LIFETIME_MS = 60_000;

export class TransactionManager {
  private readonly locks = new Map<string, Transaction>();
  private readonly active = new Set<Transaction>();

  constructor(
    private readonly engine: StorageEngine,
    private readonly lifetimeMs = TRANSACTION_LIFETIME_MS,
  ) {}

  begin(sessionKey: string, txnNumber: number): Transaction {
    const txn = new Transaction(sessionKey, txnNumber, this.engine.openSnapshot());
    this.active.add(txn);
    txn.expiry = setTimeout(() => this.abort(txn), this.lifetimeMs);
    txn.expiry.unref();
    return txn;
  }

  /** Takes a lock for a transaction, or aborts it with WriteConflict. */
  acquire(txn: Transaction, key: string): void {
    const owner = this.locks.get(key);
    if (owner && owner !== txn) {
      this.abort(txn);
      throw writeConflict();
    }
    if (!owner) {
      this.locks.set(key, txn);
      txn.locks.add(key);
    }
  }

  /** For a non-transactional writer: wait if a transaction holds the lock. */
  checkFree(key: string): void {
    const owner = this.locks.get(key);
    if (owner) throw new LockWait(owner.done);
  }

  commit(txn: Transaction): void {
    if (txn.state !== 'active') return;
    this.engine.apply(txn.toStorageOps());
    this.finish(txn, 'committed');
  }

  abort(txn: Transaction): void {
    if (txn.state !== 'active') return;
    this.finish(txn, 'aborted');
  }

  abortAll(): void {
    for (const txn of [...this.active]) this.abort(txn);
  }

  isLocked(key: string): boolean {
    return this.locks.has(key);
  }

  get hasLocks(): boolean {
    return this.locks.size > 0;
  }

  get activeCount(): number {
    return this.active.size;
  }

  describe(): Document {
    return { activeTransactions: this.active.size, locks: this.locks.size };
  }

  private finish(txn: Transaction, state: 'committed' | 'aborted'): void {
    for (const key of txn.locks) if (this.locks.get(key) === txn) this.locks.delete(key);
    txn.locks.clear();
    this.active.delete(txn);
    this.engine.closeSnapshot(txn.snapshot);
    txn.end(state);
  }
}
