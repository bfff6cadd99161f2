/**
 * Session and transaction-control commands: endSessions, killSessions,
 * killAllSessions, refreshSessions, commitTransaction, abortTransaction.
 */
import type { Document } from 'bson';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import type { MongoInstance } from '../instance.js';
import type { ServerSession } from '../txn/sessions.js';
import type { CommandContext, CommandDefinition } from './context.js';

export function endSession(instance: MongoInstance, session: ServerSession): void {
  if (session.txn?.state === 'active') instance.txns.abort(session.txn);
  instance.cursors.killForSession(session.key);
  instance.sessions.remove(session);
}

function lsidList(ctx: CommandContext): unknown[] {
  const v = ctx.body[ctx.name];
  if (!Array.isArray(v)) throw new CommandError(ErrorCode.TypeMismatch, `${ctx.name} requires an array of session ids`);
  return v;
}

function endSessions(ctx: CommandContext): Document {
  for (const lsid of lsidList(ctx)) {
    if (!isPlainObject(lsid)) continue;
    const session = ctx.instance.sessions.find(lsid);
    if (session) endSession(ctx.instance, session);
  }
  return { ok: 1 };
}

function killAllSessions(ctx: CommandContext): Document {
  for (const session of ctx.instance.sessions.all()) endSession(ctx.instance, session);
  return { ok: 1 };
}

function requireTxnNumber(ctx: CommandContext): number {
  if (!ctx.session || ctx.body.txnNumber === undefined) {
    throw new CommandError(ErrorCode.InvalidOptions, `${ctx.name} must be run within a transaction`);
  }
  return Number(ctx.body.txnNumber);
}

function noSuchTransaction(message: string): CommandError {
  return new CommandError(ErrorCode.NoSuchTransaction, message, {}, ['TransientTransactionError']);
}

async function commitTransaction(ctx: CommandContext): Promise<Document> {
  const n = requireTxnNumber(ctx);
  const session = ctx.session!;
  const txn = session.txn;
  if (n < session.txnNumber) {
    throw new CommandError(
      ErrorCode.TransactionTooOld,
      `Cannot commit transaction ${n} on session because a newer transaction ${session.txnNumber} has already started`,
    );
  }
  if (!txn || txn.txnNumber !== n) throw noSuchTransaction(`Given transaction number ${n} does not match any in-progress transactions.`);
  if (txn.state === 'aborted') throw noSuchTransaction(`Transaction with { txnNumber: ${n} } has been aborted.`);
  // A retried commit of a committed transaction succeeds again, as in mongod.
  if (txn.state === 'active') ctx.instance.txns.commit(txn);
  await ctx.instance.engine.durable();
  return { ok: 1 };
}

function abortTransaction(ctx: CommandContext): Document {
  const n = requireTxnNumber(ctx);
  const session = ctx.session!;
  const txn = session.txn;
  if (!txn || txn.txnNumber !== n) throw noSuchTransaction(`Given transaction number ${n} does not match any in-progress transactions.`);
  if (txn.state === 'committed') {
    throw new CommandError(ErrorCode.TransactionCommitted, `Transaction with { txnNumber: ${n} } has been committed.`);
  }
  if (txn.state === 'aborted') throw noSuchTransaction(`Transaction with { txnNumber: ${n} } has been aborted.`);
  ctx.instance.txns.abort(txn);
  return { ok: 1 };
}

export const sessionCommands: Record<string, CommandDefinition> = {
  endSessions: { handler: endSessions },
  killSessions: { handler: endSessions },
  killAllSessions: { handler: killAllSessions },
  killAllSessionsByPattern: { handler: killAllSessions },
  refreshSessions: { handler: () => ({ ok: 1 }) },
  commitTransaction: { handler: commitTransaction, inTransaction: true, adminOnly: true },
  abortTransaction: { handler: abortTransaction, inTransaction: true, adminOnly: true },
};
