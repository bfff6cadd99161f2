/**
 * Running work in one MongoDB multi-document transaction, retried as a whole a bounded number of times.
 *
 * The driver's session.withTransaction retries for up to two minutes; a FHIR client waiting on a transaction
 * Bundle is better served by a few quick attempts and then a 409 it can act on. Retried: errors MongoDB labels
 * TransientTransactionError (write conflicts with concurrent writers, an aborted transaction), and whatever the
 * caller's `retryable` accepts (e.g. a version written by someone else after our snapshot). A commit whose
 * result is unknown (UnknownTransactionCommitResult) is committed again: commitTransaction is idempotent.
 */
import { MongoError, type ClientSession } from 'mongodb';
import type { ResourceStore } from './resource-store.js';

const COMMIT_ATTEMPTS = 3;

export interface TransactionRunOptions {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Errors besides MongoDB's transient ones after which the whole transaction is worth running again. */
  retryable?: (error: unknown) => boolean;
}

/** The transaction kept meeting concurrent writers; `lastError` is the last reason. */
export class TransactionRetriesExhaustedError extends Error {
  constructor(
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    super(`The transaction conflicted with concurrent writes ${attempts} times in a row`, { cause: lastError });
    this.name = 'TransactionRetriesExhaustedError';
  }
}

/** Whether MongoDB marked the error (or an error it caused) as transient for transactions. */
export function isTransientTransactionError(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof MongoError && current.hasErrorLabel('TransientTransactionError')) return true;
  }
  return false;
}

function pause(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(100, 10 * attempt)));
}

async function commit(session: ClientSession): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await session.commitTransaction();
      return;
    } catch (error) {
      const unknownResult = error instanceof MongoError && error.hasErrorLabel('UnknownTransactionCommitResult');
      if (!unknownResult || attempt >= COMMIT_ATTEMPTS) throw error;
    }
  }
}

/**
 * Runs `work` in a snapshot transaction and commits it; on an error the transaction is aborted (nothing of it
 * is written) and the error rethrown, unless it is retryable and attempts remain.
 */
export async function runInTransaction<T>(
  store: ResourceStore,
  work: (session: ClientSession) => Promise<T>,
  options: TransactionRunOptions,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const session = store.db.client.startSession();
    try {
      session.startTransaction({ readConcern: { level: 'snapshot' }, writeConcern: { w: 'majority' } });
      let result: T;
      try {
        result = await work(session);
      } catch (error) {
        await session.abortTransaction().catch(() => undefined);
        throw error;
      }
      await commit(session);
      return result;
    } catch (error) {
      const retryable = isTransientTransactionError(error) || (options.retryable?.(error) ?? false);
      if (!retryable) throw error;
      if (attempt >= options.maxAttempts) throw new TransactionRetriesExhaustedError(attempt, error);
      await pause(attempt);
    } finally {
      await session.endSession();
    }
  }
}
