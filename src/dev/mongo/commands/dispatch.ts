/**
 * Command dispatch: finds the handler, applies session semantics (multi-
 * document transactions, retryable writes), maps failures to mongod's error
 * replies, waits for durability, and stamps cluster time on the reply.
 */
import { Binary, Long, type Document } from 'bson';
import { CommandError, ErrorCode, toCommandError } from '../errors.js';
import type { MongoInstance } from '../instance.js';
import type { ServerSession } from '../txn/sessions.js';
import type { Transaction } from '../txn/transaction.js';
import { aggregateCommands } from './aggregate.js';
import { catalogCommands } from './catalog.js';
import type { CommandContext, CommandDefinition, ConnectionInfo } from './context.js';
import { explainCommands } from './explain.js';
import { findAndModifyCommands } from './find-and-modify.js';
import { planCacheCommands } from './plan-cache.js';
import { readCommands } from './read.js';
import { serverInfoCommands } from './server-info.js';
import { sessionCommands } from './sessions.js';
import { writeCommands } from './write.js';

const REGISTRY: ReadonlyMap<string, CommandDefinition> = new Map(
  Object.entries({
    ...serverInfoCommands,
    ...sessionCommands,
    ...catalogCommands,
    ...readCommands,
    ...writeCommands,
    ...findAndModifyCommands,
    ...aggregateCommands,
    ...explainCommands,
    ...planCacheCommands,
  }),
);

/** Labels mongod attaches so drivers retry the whole transaction. */
const TRANSIENT_CODES = new Set<number>([ErrorCode.WriteConflict, ErrorCode.NoSuchTransaction]);

function transactionError(code: number, message: string): CommandError {
  return new CommandError(code, message, {}, TRANSIENT_CODES.has(code) ? ['TransientTransactionError'] : []);
}

interface Routing {
  session: ServerSession | undefined;
  txn: Transaction | undefined;
  /** Set for a retryable write: where to remember the reply. */
  retryable?: { session: ServerSession; txnNumber: number };
  /** A cached reply of an already executed retryable write. */
  cached?: Document;
}

function txnNumberOf(body: Document): number | undefined {
  const v = body.txnNumber;
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (Long.isLong(v)) return v.toNumber();
  throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'txnNumber' is the wrong type, expected type 'long'");
}

function route(instance: MongoInstance, name: string, def: CommandDefinition, body: Document): Routing {
  const session = body.lsid !== undefined ? instance.sessions.get(body.lsid) : undefined;
  const n = txnNumberOf(body);
  if (n === undefined) {
    if (body.autocommit !== undefined || body.startTransaction !== undefined) {
      throw new CommandError(ErrorCode.InvalidOptions, 'txnNumber must be specified for a transaction');
    }
    return { session, txn: undefined };
  }
  if (!session) throw new CommandError(ErrorCode.InvalidOptions, 'Transaction number requires a session ID to also be specified');
  if (body.autocommit === true) throw new CommandError(ErrorCode.InvalidOptions, 'autocommit must be false when specified');

  if (body.autocommit === false) {
    if (name === 'commitTransaction' || name === 'abortTransaction') return { session, txn: undefined };
    if (body.startTransaction === true) {
      if (n < session.txnNumber) {
        throw new CommandError(
          ErrorCode.TransactionTooOld,
          `Cannot start transaction ${n} on session because a newer transaction ${session.txnNumber} has already started.`,
        );
      }
      if (n === session.txnNumber) {
        const state = session.txn?.txnNumber === n ? session.txn.state : 'unknown';
        throw new CommandError(
          state === 'committed' ? ErrorCode.TransactionCommitted : ErrorCode.ConflictingOperationInProgress,
          `Cannot start a transaction at given transaction number ${n}: a transaction with the same number is in state ${state}`,
        );
      }
      if (session.txn?.state === 'active') instance.txns.abort(session.txn);
      session.txnNumber = n;
      session.retryable = undefined;
      session.txn = instance.txns.begin(session.key, n);
    } else {
      const txn = session.txn;
      if (!txn || txn.txnNumber !== n || n !== session.txnNumber) {
        throw transactionError(
          ErrorCode.NoSuchTransaction,
          `Given transaction number ${n} does not match any in-progress transactions. The active transaction number is ${session.txnNumber}`,
        );
      }
      if (txn.state === 'aborted')
        throw transactionError(ErrorCode.NoSuchTransaction, `Transaction with { txnNumber: ${n} } has been aborted.`);
      if (txn.state === 'committed')
        throw transactionError(ErrorCode.TransactionCommitted, `Transaction with { txnNumber: ${n} } has been committed.`);
    }
    const txn = session.txn!;
    if (!def.inTransaction) {
      instance.txns.abort(txn);
      throw new CommandError(ErrorCode.OperationNotSupportedInTransaction, `Cannot run '${name}' in a multi-document transaction.`);
    }
    return { session, txn };
  }

  if (!def.retryableWrite) {
    throw new CommandError(
      ErrorCode.IllegalOperation,
      `txnNumber may only be provided for multi-document transactions and retryable write commands. Found: ${name}`,
    );
  }
  if (n < session.txnNumber) {
    throw new CommandError(
      ErrorCode.TransactionTooOld,
      `Retryable write with txnNumber ${n} is prohibited on session because a newer retryable write with txnNumber ${session.txnNumber} has already started on this session.`,
    );
  }
  if (n === session.txnNumber && session.retryable?.txnNumber === n) {
    return { session, txn: undefined, cached: session.retryable.reply };
  }
  if (n > session.txnNumber) {
    if (session.txn?.state === 'active') instance.txns.abort(session.txn);
    session.txnNumber = n;
  }
  return { session, txn: undefined, retryable: { session, txnNumber: n } };
}

function databaseOf(body: Document): string {
  const db = body.$db;
  if (typeof db !== 'string' || db.length === 0) {
    throw new CommandError(ErrorCode.InvalidNamespace, "BSON field '$db' is missing but a required field");
  }
  return db;
}

/** The deadline a command's maxTimeMS sets (a non-negative integer; 0 means none, as in mongod). */
function deadlineOf(body: Document): number | undefined {
  const raw = body.maxTimeMS;
  if (raw === undefined || raw === null) return undefined;
  const ms = typeof raw === 'number' ? raw : typeof raw === 'bigint' ? Number(raw) : Long.isLong(raw) ? raw.toNumber() : Number.NaN;
  if (!Number.isInteger(ms) || ms < 0 || ms > 2 ** 31 - 1) {
    throw new CommandError(
      ErrorCode.BadValue,
      `${JSON.stringify(raw)} is not a valid value for maxTimeMS; it must be a non-negative 32-bit integer`,
    );
  }
  return ms === 0 ? undefined : performance.now() + ms;
}

async function execute(instance: MongoInstance, connection: ConnectionInfo, body: Document): Promise<Document> {
  const name = Object.keys(body)[0];
  if (name === undefined) throw new CommandError(ErrorCode.FailedToParse, 'Empty command object');
  const def = REGISTRY.get(name);
  if (!def) throw new CommandError(ErrorCode.CommandNotFound, `no such command: '${name}'`);
  const db = databaseOf(body);
  if (def.adminOnly && db !== 'admin') {
    throw new CommandError(ErrorCode.Unauthorized, `${name} may only be run against the admin database.`);
  }
  const routing = route(instance, name, def, body);
  if (routing.cached) return routing.cached;
  const ctx: CommandContext = {
    instance,
    db,
    name,
    body,
    session: routing.session,
    txn: routing.txn,
    connection,
    deadline: deadlineOf(body),
  };
  let reply: Document;
  try {
    reply = await def.handler(ctx);
  } catch (err) {
    // mongod aborts a transaction on any failed statement.
    if (routing.txn) instance.txns.abort(routing.txn);
    throw err;
  }
  if (routing.txn && Array.isArray(reply.writeErrors) && reply.writeErrors.length) instance.txns.abort(routing.txn);
  if (routing.retryable) routing.retryable.session.retryable = { txnNumber: routing.retryable.txnNumber, reply };
  return reply;
}

/** Commands whose success acknowledges a write, possibly one made by an earlier attempt. */
const ACKNOWLEDGING_COMMANDS = new Set(['insert', 'update', 'delete', 'findAndModify', 'findandmodify', 'commitTransaction', 'fsync']);

const ZERO_SIGNATURE = { hash: new Binary(Buffer.alloc(20)), keyId: Long.fromNumber(0) };

/** Runs one command and always returns a reply document (errors included). */
export async function dispatch(instance: MongoInstance, connection: ConnectionInfo, body: Document): Promise<Document> {
  let reply: Document;
  const name = Object.keys(body)[0] ?? '?';
  const clockBefore = instance.engine.timestamp;
  try {
    reply = await execute(instance, connection, body);
  } catch (err) {
    const error = toCommandError(err);
    if (!(err instanceof CommandError))
      instance.log(`command ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    reply = error.toResponse();
  }
  try {
    // Acknowledge only what is on disk (group commit: concurrent commands share one fsync). A command that changed
    // nothing has nothing to wait for, as a read in mongod does not wait for the journal; a write command always
    // waits, since its reply may acknowledge an earlier attempt (a retried write, a retried commit).
    if (instance.engine.timestamp !== clockBefore || ACKNOWLEDGING_COMMANDS.has(name)) await instance.engine.durable();
  } catch (err) {
    reply = new CommandError(
      ErrorCode.InternalError,
      `storage sync failed: ${err instanceof Error ? err.message : String(err)}`,
    ).toResponse();
  }
  const time = instance.clusterTime();
  return { ...reply, $clusterTime: { clusterTime: time, signature: ZERO_SIGNATURE }, operationTime: time };
}
