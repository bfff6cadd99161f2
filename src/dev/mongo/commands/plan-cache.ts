/**
 * Plan cache introspection and control, as mongod offers them: the
 * `$planCacheStats` aggregation stage (one document per cache entry) and the
 * `planCacheClear` command (every entry of a collection, or one query
 * shape's).
 */
import { Long, type Document } from 'bson';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { queryShape, shapeHash } from '../query/shape.js';
import { parseSort } from '../query/sort.js';
import { collectionArg, optionalDocument, type CommandContext, type CommandDefinition } from './context.js';

/** The documents `$planCacheStats` produces for a collection (none when it does not exist). */
export function planCacheStats(ctx: CommandContext, collName: string | undefined, spec: unknown): Document[] {
  if (collName === undefined) {
    throw new CommandError(ErrorCode.InvalidNamespace, '$planCacheStats must be run against a collection');
  }
  if (!isPlainObject(spec)) throw new CommandError(ErrorCode.FailedToParse, '$planCacheStats value must be an object');
  if (ctx.txn) throw new CommandError(ErrorCode.OperationNotSupportedInTransaction, '$planCacheStats cannot be used in a transaction');
  const coll = ctx.instance.collection(ctx.db, collName);
  if (!coll) return [];
  const host = ctx.instance.identity.me;
  return ctx.instance.planCaches
    .forCollection(coll)
    .list()
    .map((entry) => ({
      version: '1',
      queryHash: entry.queryHash,
      planCacheKey: entry.planCacheKey,
      isActive: entry.isActive,
      works: Long.fromNumber(entry.works),
      timeOfCreation: entry.timeOfCreation,
      createdFromQuery: entry.createdFromQuery,
      cachedPlan: entry.cachedPlan,
      candidatePlanScores: entry.candidatePlanScores,
      indexFilterSet: false,
      estimatedSizeBytes: Long.fromNumber(JSON.stringify(entry.createdFromQuery).length + JSON.stringify(entry.cachedPlan).length),
      host,
    }));
}

/**
 * planCacheClear: the whole collection's cache, or with `query` (and `sort`)
 * the entries of that shape, whatever their skip, limit and count variants.
 */
function planCacheClear(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const coll = ctx.instance.collection(ctx.db, name);
  if (!coll) return { ok: 1 };
  const cache = ctx.instance.planCaches.forCollection(coll);
  const query = optionalDocument(ctx, 'query');
  if (query === undefined) {
    if (ctx.body.sort !== undefined || ctx.body.projection !== undefined) {
      throw new CommandError(ErrorCode.BadValue, 'sort or projection provided without query');
    }
    cache.clear();
    return { ok: 1 };
  }
  const sort = parseSort(ctx.body.sort);
  const hashes = new Set<string>();
  for (const countOnly of [false, true]) {
    for (const skip of [0, 1]) {
      for (const limit of [0, 1]) hashes.add(shapeHash(queryShape({ filter: query, sort, skip, limit, countOnly })));
    }
  }
  cache.clearQueryHashes(hashes);
  return { ok: 1 };
}

export const planCacheCommands: Record<string, CommandDefinition> = {
  planCacheClear: { handler: planCacheClear },
};
