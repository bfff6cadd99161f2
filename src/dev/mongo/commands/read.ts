/**
 * Read commands: find, getMore, killCursors, count, distinct.
 */
import { Long, type Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { CommandError, ErrorCode } from '../errors.js';
import { compileProjection } from '../query/filter.js';
import { collectPathValues, pathExists } from '../query/paths.js';
import { runQuery } from '../query/planner.js';
import {
  collectionArg,
  namespaceOf,
  optionalBoolean,
  optionalDocument,
  optionalNumber,
  type CommandContext,
  type CommandDefinition,
} from './context.js';
import { filterOptions, queryRequest } from './query-support.js';

export function cursorIdOf(v: unknown): bigint {
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  if (typeof v === 'bigint') return v;
  if (Long.isLong(v)) return v.toBigInt();
  throw new CommandError(ErrorCode.TypeMismatch, 'cursor id must be a 64-bit integer');
}

function nonNegative(ctx: CommandContext, field: string): number | undefined {
  const n = optionalNumber(ctx, field);
  if (n !== undefined && n < 0) throw new CommandError(ErrorCode.BadValue, `${field} must be non-negative, but received: ${n}`);
  return n;
}

function find(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const ns = namespaceOf(ctx, name);
  const filter = optionalDocument(ctx, 'filter') ?? {};
  const projection = optionalDocument(ctx, 'projection');
  const variables = optionalDocument(ctx, 'let');
  const limitArg = optionalNumber(ctx, 'limit') ?? 0;
  const batchSize = nonNegative(ctx, 'batchSize');
  if (ctx.body.tailable === true) {
    throw new CommandError(ErrorCode.BadValue, 'error processing query: tailable cursor requested on non capped collection');
  }
  if (ctx.body.min !== undefined || ctx.body.max !== undefined) {
    throw new CommandError(ErrorCode.NotImplemented, 'find min/max are not supported by the embedded server');
  }
  const coll = ctx.instance.collection(ctx.db, name);
  const req = queryRequest(ctx, ns, coll, {
    filter,
    sort: ctx.body.sort,
    skip: nonNegative(ctx, 'skip'),
    limit: limitArg,
    hint: ctx.body.hint,
    collation: ctx.body.collation,
    variables,
    projection,
  });
  const transform = compileProjection(filter, projection, filterOptions(ctx, variables));
  const outcome = runQuery(req);
  // A negative limit (legacy) or singleBatch closes the cursor after the first batch.
  const singleBatch = optionalBoolean(ctx, 'singleBatch', false) || limitArg < 0;
  const batch = ctx.instance.cursors.open(ns, outcome.docs, {
    batchSize,
    singleBatch,
    transform,
    sessionKey: ctx.session?.key,
  });
  return { ...batch, ok: 1 };
}

function getMore(ctx: CommandContext): Document {
  const id = cursorIdOf(ctx.body.getMore);
  const coll = ctx.body.collection;
  if (typeof coll !== 'string')
    throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'getMore.collection' is the wrong type, expected type 'string'");
  const batchSize = nonNegative(ctx, 'batchSize') ?? 0;
  const batch = ctx.instance.cursors.getMore(id, namespaceOf(ctx, coll), batchSize, ctx.session?.key);
  return { ...batch, ok: 1 };
}

function killCursors(ctx: CommandContext): Document {
  collectionArg(ctx);
  const ids = ctx.body.cursors;
  if (!Array.isArray(ids))
    throw new CommandError(ErrorCode.FailedToParse, "BSON field 'killCursors.cursors' is missing but a required field");
  const killed: Long[] = [];
  const notFound: Long[] = [];
  for (const raw of ids) {
    const id = cursorIdOf(raw);
    (ctx.instance.cursors.kill(id) ? killed : notFound).push(Long.fromBigInt(id));
  }
  return { cursorsKilled: killed, cursorsNotFound: notFound, cursorsAlive: [], cursorsUnknown: [], ok: 1 };
}

function count(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const ns = namespaceOf(ctx, name);
  const query = optionalDocument(ctx, 'query') ?? {};
  const skip = nonNegative(ctx, 'skip') ?? 0;
  const limit = Math.abs(optionalNumber(ctx, 'limit') ?? 0);
  const coll = ctx.instance.collection(ctx.db, name);
  if (!coll) return { n: 0, ok: 1 };
  if (Object.keys(query).length === 0 && !ctx.txn && ctx.body.hint === undefined) {
    // estimatedDocumentCount path: collection metadata, as mongod answers it.
    const total = Math.max(0, coll.docs.size - skip);
    return { n: limit ? Math.min(limit, total) : total, ok: 1 };
  }
  const outcome = runQuery(
    queryRequest(ctx, ns, coll, { filter: query, skip, limit, hint: ctx.body.hint, collation: ctx.body.collation, countOnly: true }),
  );
  return { n: outcome.count, ok: 1 };
}

function distinct(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const ns = namespaceOf(ctx, name);
  const key = ctx.body.key;
  if (typeof key !== 'string')
    throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'distinct.key' is the wrong type, expected type 'string'");
  const query = optionalDocument(ctx, 'query') ?? {};
  const coll = ctx.instance.collection(ctx.db, name);
  if (!coll) return { values: [], ok: 1 };
  const outcome = runQuery(queryRequest(ctx, ns, coll, { filter: query, hint: ctx.body.hint, collation: ctx.body.collation }));
  const seen = new Map<string, unknown>();
  for (const doc of outcome.docs) {
    if (!pathExists(doc, key)) continue;
    for (const v of collectPathValues(doc, key).values) {
      if (v === undefined) continue;
      const k = encodeValue(v);
      if (!seen.has(k)) seen.set(k, v);
    }
  }
  const values = [...seen.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, v]) => v);
  return { values, ok: 1 };
}

export const readCommands: Record<string, CommandDefinition> = {
  find: { handler: find, inTransaction: true },
  getMore: { handler: getMore, inTransaction: true },
  killCursors: { handler: killCursors, inTransaction: true },
  count: { handler: count },
  distinct: { handler: distinct, inTransaction: true },
};
