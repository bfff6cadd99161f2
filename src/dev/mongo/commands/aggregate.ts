/**
 * aggregate. The pipeline's leading $match / $sort / $skip / $limit stages
 * are pushed into the query planner (so they use indexes, as in mongod);
 * the remaining stages run in mingo. $out and $merge are executed here
 * because they write through the storage engine.
 *
 * Explain shape (mongod classic engine): when the whole pipeline was pushed
 * down, queryPlanner/executionStats sit at the top level like a find's;
 * otherwise `stages[0].$cursor` holds them, followed by the other stages.
 */
import type { Document } from 'bson';
import { Aggregator } from 'mingo/aggregator';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { compileFilter, translateMingoError } from '../query/filter.js';
import { explainSections, type Verbosity } from '../query/explain.js';
import { mingoOptions } from '../query/mingo-context.js';
import { runQuery, type QueryOutcome } from '../query/planner.js';
import { Collection, idKeyOf } from '../storage/collection.js';
import { applyUpdate } from '../write/update.js';
import { prepareForInsert } from '../write/validation.js';
import { namespaceOf, optionalDocument, type CommandContext, type CommandDefinition } from './context.js';
import { planCacheStats } from './plan-cache.js';
import { collectionResolver, queryRequest, splitNaturalSort } from './query-support.js';
import { retryOnLock } from './write.js';

interface PushedDown {
  filter: Document;
  sort?: unknown;
  skip?: number;
  limit?: number;
  rest: Document[];
}

function stageName(stage: Document): string {
  const keys = Object.keys(stage);
  if (keys.length !== 1) {
    throw new CommandError(ErrorCode.Location40324 as number, 'A pipeline stage specification object must contain exactly one field.');
  }
  return keys[0]!;
}

export function splitPipeline(pipeline: Document[]): PushedDown {
  const matches: Document[] = [];
  let i = 0;
  while (i < pipeline.length && stageName(pipeline[i]!) === '$match') {
    const m = pipeline[i]!.$match;
    if (!isPlainObject(m)) throw new CommandError(ErrorCode.TypeMismatch, 'the match filter must be an expression in an object');
    matches.push(m);
    i++;
  }
  const out: PushedDown = { filter: matches.length <= 1 ? (matches[0] ?? {}) : { $and: matches }, rest: [] };
  if (i < pipeline.length && stageName(pipeline[i]!) === '$sort') out.sort = pipeline[i++]!.$sort;
  if (i < pipeline.length && stageName(pipeline[i]!) === '$skip') out.skip = Number(pipeline[i++]!.$skip);
  if (i < pipeline.length && stageName(pipeline[i]!) === '$limit') out.limit = Number(pipeline[i++]!.$limit);
  out.rest = pipeline.slice(i);
  return out;
}

function targetOf(ctx: CommandContext, spec: unknown): { db: string; coll: string } {
  if (typeof spec === 'string') return { db: ctx.db, coll: spec };
  if (isPlainObject(spec) && typeof spec.coll === 'string') return { db: typeof spec.db === 'string' ? spec.db : ctx.db, coll: spec.coll };
  throw new CommandError(ErrorCode.FailedToParse, 'invalid $out/$merge target');
}

/** $out: replaces the target's documents in one commit, keeping its indexes; all or nothing. */
function runOut(ctx: CommandContext, spec: unknown, docs: Document[]): void {
  const { db, coll: name } = targetOf(ctx, spec);
  const { coll: target } = ctx.instance.ensureCollection(db, name);
  const staging = new Collection(db, name);
  for (const index of target.indexes) if (!index.isIdIndex) staging.buildIndex(index.spec);
  const inserts: Document[] = [];
  for (const raw of docs) {
    const doc = prepareForInsert(raw);
    const idKey = idKeyOf(doc);
    if (staging.docs.has(idKey)) throw staging.indexes[0]!.duplicateKeyError(target.ns, [doc._id]);
    const violation = staging.uniqueViolations(doc, idKey)[0];
    if (violation) throw violation.index.duplicateKeyError(target.ns, violation.values);
    staging.insertDoc(idKey, doc);
    inserts.push(doc);
  }
  ctx.instance.engine.apply([
    ...[...target.docs.values()].map((d) => ({ op: 'delete' as const, ns: target.ns, id: d._id })),
    ...inserts.map((doc) => ({ op: 'insert' as const, ns: target.ns, doc })),
  ]);
}

async function runMerge(ctx: CommandContext, spec: unknown, docs: Document[]): Promise<void> {
  const options: Document = typeof spec === 'string' || (isPlainObject(spec) && !('into' in spec)) ? { into: spec } : (spec as Document);
  const { db, coll: name } = targetOf(ctx, options.into);
  const on: string[] = options.on === undefined ? ['_id'] : Array.isArray(options.on) ? (options.on as string[]) : [String(options.on)];
  const whenMatched = options.whenMatched ?? 'merge';
  const whenNotMatched = options.whenNotMatched ?? 'insert';
  const writer = ctx.instance.writer(undefined);
  for (const doc of docs) {
    await retryOnLock(() => {
      const { coll } = ctx.instance.ensureCollection(db, name);
      const filter: Document = {};
      for (const f of on) filter[f] = doc[f] ?? null;
      const req = queryRequest(ctx, coll.ns, coll, { filter, limit: 1 });
      const existing = runQuery({ ...req, source: ctx.instance.source(coll.ns, coll, undefined) }).docs[0];
      if (existing) {
        if (whenMatched === 'keepExisting') return;
        if (whenMatched === 'fail') {
          throw new CommandError(
            ErrorCode.DuplicateKey,
            `$merge with whenMatched: fail found an existing document with the same values for ${on.join(', ')}`,
          );
        }
        let next: Document;
        if (whenMatched === 'replace') next = { ...doc, _id: existing._id };
        else if (whenMatched === 'merge') next = { ...existing, ...doc, _id: existing._id };
        else if (Array.isArray(whenMatched)) {
          next = applyUpdate(
            existing,
            { kind: 'pipeline', stages: whenMatched as Document[] },
            {
              query: filter,
              inserting: false,
              variables: { ...(isPlainObject(options.let) ? options.let : {}), new: doc },
            },
          );
        } else {
          throw new CommandError(ErrorCode.FailedToParse, `unsupported $merge whenMatched: ${String(whenMatched)}`);
        }
        writer.replace(coll, existing, next);
        return;
      }
      if (whenNotMatched === 'discard') return;
      if (whenNotMatched === 'fail') {
        throw new CommandError(
          13113,
          '$merge could not find a matching document in the target collection for at least one document in the source collection',
        );
      }
      writer.insert(coll, prepareForInsert(doc));
    });
  }
}

export interface AggregateRun {
  ns: string;
  docs: Document[];
  outcome: QueryOutcome;
  pushed: PushedDown;
}

/** A count's $group ({ _id: <constant>, n: { $sum: 1 } }, what countDocuments sends): its _id and output field. */
interface CountGroup {
  id: unknown;
  field: string;
}

function countGroupOf(stages: Document[]): CountGroup | undefined {
  if (stages.length !== 1 || !isPlainObject(stages[0]!.$group) || Object.keys(stages[0]!).length !== 1) return undefined;
  const group = stages[0]!.$group;
  const keys = Object.keys(group);
  if (keys.length !== 2 || keys[0] !== '_id') return undefined;
  const id: unknown = group._id;
  const constant = id === null || typeof id === 'number' || typeof id === 'boolean' || (typeof id === 'string' && !id.startsWith('$'));
  const field = keys[1]!;
  const acc: unknown = group[field];
  if (!constant || field.startsWith('$') || field.includes('.') || !isPlainObject(acc)) return undefined;
  return Object.keys(acc).length === 1 && acc.$sum === 1 ? { id, field } : undefined;
}

/** Runs the pipeline; $out/$merge stages are applied and produce no documents. */
export async function runPipeline(
  ctx: CommandContext,
  collName: string | undefined,
  pipeline: Document[],
  options: { explain?: boolean } = {},
): Promise<AggregateRun> {
  const ns = namespaceOf(ctx, collName ?? '$cmd.aggregate');
  const variables = optionalDocument(ctx, 'let');
  const pushed = splitPipeline(pipeline);
  const last = pushed.rest.at(-1);
  const writeStage = last && ('$out' in last || '$merge' in last) ? last : undefined;
  const stages = writeStage ? pushed.rest.slice(0, -1) : pushed.rest;
  for (const stage of stages) {
    const name = stageName(stage);
    if (name === '$out' || name === '$merge')
      throw new CommandError(ErrorCode.Location40324 as number, `${name} can only be the final stage in the pipeline`);
  }
  if (writeStage && ctx.txn) {
    throw new CommandError(ErrorCode.OperationNotSupportedInTransaction, `${stageName(writeStage)} cannot be used in a transaction`);
  }
  const coll = collName === undefined ? undefined : ctx.instance.collection(ctx.db, collName);
  // A count (countDocuments: [$match, $skip?, $limit?, $group {_id: 1, n: {$sum: 1}}]) needs the number of
  // matches only: no documents are kept, and an index that answers the filter is counted by its keys.
  const countGroup = collName !== undefined && !writeStage ? countGroupOf(stages) : undefined;
  const req = queryRequest(ctx, ns, coll, {
    filter: pushed.filter,
    // The order of the counted documents cannot change their number.
    sort: countGroup ? undefined : pushed.sort,
    skip: pushed.skip,
    limit: pushed.limit,
    hint: ctx.body.hint,
    collation: ctx.body.collation,
    variables,
    countOnly: countGroup !== undefined,
    explain: options.explain,
  });
  if (collName === undefined) req.matcher = compileFilter(pushed.filter);
  const outcome = runQuery(req);
  let docs = outcome.docs;
  if (countGroup) {
    docs = outcome.count > 0 ? [{ _id: countGroup.id, [countGroup.field]: outcome.count }] : [];
  } else if (stages.length) {
    try {
      docs = new Aggregator(stages, mingoOptions({ collectionResolver: collectionResolver(ctx), variables })).run(docs) as Document[];
    } catch (err) {
      throw translateMingoError(err);
    }
  }
  if (writeStage) {
    if ('$out' in writeStage) runOut(ctx, writeStage.$out, docs);
    else await runMerge(ctx, writeStage.$merge, docs);
    docs = [];
  }
  return { ns, docs, outcome, pushed };
}

export function explainAggregate(run: AggregateRun, verbosity: Verbosity): Document {
  const { sort } = splitNaturalSort(run.pushed.sort);
  const sections = explainSections(
    run.ns,
    run.outcome,
    { filter: run.pushed.filter, sort, skip: run.pushed.skip ?? 0, limit: run.pushed.limit ?? 0 },
    verbosity,
    run.outcome.count,
  );
  if (run.pushed.rest.length === 0) return { explainVersion: '1', ...sections };
  const cursorStage: Document = { $cursor: { ...sections } };
  if (sections.executionStats) {
    cursorStage.nReturned = run.outcome.count;
    cursorStage.executionTimeMillisEstimate = run.outcome.millis;
  }
  return { explainVersion: '1', stages: [cursorStage, ...run.pushed.rest] };
}

async function aggregate(ctx: CommandContext): Promise<Document> {
  const target = ctx.body.aggregate;
  let collName: string | undefined;
  if (typeof target === 'string') collName = target;
  else if (!(target === 1 || target === 1.0)) {
    throw new CommandError(ErrorCode.FailedToParse, 'Invalid {aggregate: ...} value: must be a collection name or 1');
  }
  const pipeline = ctx.body.pipeline;
  if (!Array.isArray(pipeline) || pipeline.some((s) => !isPlainObject(s))) {
    throw new CommandError(ErrorCode.TypeMismatch, "'pipeline' option must be specified as an array");
  }
  const explain = ctx.body.explain === true;
  const cursorOpts = optionalDocument(ctx, 'cursor');
  if (!cursorOpts && !explain) {
    throw new CommandError(ErrorCode.FailedToParse, "The 'cursor' option is required, except for aggregate with the explain argument");
  }
  const stages = pipeline as Document[];
  if (stages.length > 0 && '$planCacheStats' in stages[0]!) {
    if (explain) throw new CommandError(ErrorCode.IllegalOperation, 'explain of $planCacheStats is not supported by the embedded server');
    let docs = planCacheStats(ctx, collName, stages[0]!.$planCacheStats);
    const rest = stages.slice(1);
    if (rest.length > 0) {
      try {
        docs = new Aggregator(rest, mingoOptions({ collectionResolver: collectionResolver(ctx) })).run(docs) as Document[];
      } catch (err) {
        throw translateMingoError(err);
      }
    }
    const batchSize = cursorOpts?.batchSize === undefined ? undefined : Number(cursorOpts.batchSize);
    return {
      ...ctx.instance.cursors.open(namespaceOf(ctx, collName ?? '$cmd.aggregate'), docs, { batchSize, sessionKey: ctx.session?.key }),
      ok: 1,
    };
  }
  const run = await runPipeline(ctx, collName, stages, { explain });
  if (explain) return { ...explainAggregate(run, 'queryPlanner'), ok: 1 };
  const batchSize = cursorOpts?.batchSize === undefined ? undefined : Number(cursorOpts.batchSize);
  const batch = ctx.instance.cursors.open(run.ns, run.docs, { batchSize, sessionKey: ctx.session?.key });
  return { ...batch, ok: 1 };
}

export const aggregateCommands: Record<string, CommandDefinition> = {
  aggregate: { handler: aggregate, inTransaction: true },
};
