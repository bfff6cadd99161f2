/**
 * What a command handler gets, and helpers for reading its arguments the
 * way mongod validates them.
 */
import type { Document } from 'bson';
import { isNumeric, isPlainObject, toNumber } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import type { MongoInstance } from '../instance.js';
import { validateCollectionName } from '../storage/catalog.js';
import type { ServerSession } from '../txn/sessions.js';
import type { Transaction } from '../txn/transaction.js';

export interface ConnectionInfo {
  readonly id: number;
  readonly remote: string;
  /** Aborted when the connection closes. */
  readonly closed: AbortSignal;
}

export interface CommandContext {
  readonly instance: MongoInstance;
  readonly db: string;
  readonly name: string;
  readonly body: Document;
  readonly session: ServerSession | undefined;
  /** The active transaction when the command runs inside one. */
  readonly txn: Transaction | undefined;
  readonly connection: ConnectionInfo;
  /**
   * performance.now() past which the command stops with MaxTimeMSExpired (50), from its maxTimeMS; undefined
   * without one. Checked while documents are examined, as mongod checks at its interrupt points.
   */
  readonly deadline?: number;
}

export type CommandHandler = (ctx: CommandContext) => Document | Promise<Document>;

export interface CommandDefinition {
  handler: CommandHandler;
  /** May run inside a multi-document transaction. */
  inTransaction?: boolean;
  /** Counts as a retryable write when sent with a txnNumber outside a transaction. */
  retryableWrite?: boolean;
  /** Must be sent to the admin database. */
  adminOnly?: boolean;
}

export function collectionArg(ctx: CommandContext): string {
  const name = ctx.body[ctx.name];
  if (typeof name !== 'string') {
    throw new CommandError(
      ErrorCode.InvalidNamespace,
      `collection name has invalid type ${name === null ? 'null' : Array.isArray(name) ? 'array' : typeof name}`,
    );
  }
  return validateCollectionName(ctx.db, name);
}

export function optionalDocument(ctx: CommandContext, field: string): Document | undefined {
  const v = ctx.body[field];
  if (v === undefined || v === null) return undefined;
  if (!isPlainObject(v)) {
    throw new CommandError(ErrorCode.TypeMismatch, `BSON field '${ctx.name}.${field}' is the wrong type, expected type 'object'`);
  }
  return v;
}

export function optionalNumber(ctx: CommandContext, field: string): number | undefined {
  const v = ctx.body[field];
  if (v === undefined || v === null) return undefined;
  if (!isNumeric(v)) {
    throw new CommandError(ErrorCode.TypeMismatch, `BSON field '${ctx.name}.${field}' is the wrong type, expected a number`);
  }
  return toNumber(v);
}

export function optionalBoolean(ctx: CommandContext, field: string, fallback: boolean): boolean {
  const v = ctx.body[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'boolean') return v;
  if (isNumeric(v)) return toNumber(v) !== 0;
  throw new CommandError(ErrorCode.TypeMismatch, `BSON field '${ctx.name}.${field}' is the wrong type, expected type 'bool'`);
}

export function documentArray(ctx: CommandContext, field: string): Document[] {
  const v = ctx.body[field];
  if (!Array.isArray(v)) {
    throw new CommandError(ErrorCode.FailedToParse, `BSON field '${ctx.name}.${field}' is missing but a required field`);
  }
  for (const item of v) {
    if (!isPlainObject(item)) {
      throw new CommandError(ErrorCode.TypeMismatch, `BSON field '${ctx.name}.${field}' entries must be objects`);
    }
  }
  return v as Document[];
}

export function namespaceOf(ctx: CommandContext, coll: string): string {
  return `${ctx.db}.${coll}`;
}
