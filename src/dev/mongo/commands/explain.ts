/**
 * explain for find, aggregate, count, distinct, update, delete and
 * findAndModify. Write commands are planned but never executed.
 */
import type { Document } from 'bson';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { explainSections, parseVerbosity, type ShapeOptions, type Verbosity } from '../query/explain.js';
import { runQuery } from '../query/planner.js';
import { SERVER_VERSION } from '../instance.js';
import type { CommandContext, CommandDefinition } from './context.js';
import { explainAggregate, runPipeline } from './aggregate.js';
import { queryRequest, splitNaturalSort } from './query-support.js';

interface Planned {
  filter: Document;
  sort?: unknown;
  skip?: number;
  limit?: number;
  hint?: unknown;
  projection?: Document;
  rootStage?: Document;
  variables?: Document;
  countOnly?: boolean;
}

function plannedFor(name: string, inner: Document): Planned {
  const doc = (v: unknown): Document | undefined => (isPlainObject(v) ? v : undefined);
  const num = (v: unknown): number | undefined => (v === undefined || v === null ? undefined : Number(v));
  switch (name) {
    case 'find':
      return {
        filter: doc(inner.filter) ?? {},
        sort: inner.sort,
        skip: num(inner.skip),
        limit: num(inner.limit),
        hint: inner.hint,
        projection: doc(inner.projection),
        variables: doc(inner.let),
      };
    case 'count':
      return {
        filter: doc(inner.query) ?? {},
        skip: num(inner.skip),
        limit: num(inner.limit),
        hint: inner.hint,
        rootStage: { stage: 'COUNT' },
        countOnly: true,
      };
    case 'distinct':
      return {
        filter: doc(inner.query) ?? {},
        hint: inner.hint,
        rootStage: { stage: 'PROJECTION_DEFAULT', transformBy: { [String(inner.key)]: 1 } },
      };
    case 'delete': {
      const st = (inner.deletes as Document[] | undefined)?.[0] ?? {};
      return { filter: doc(st.q) ?? {}, limit: num(st.limit), hint: st.hint, rootStage: { stage: 'DELETE' } };
    }
    case 'update': {
      const st = (inner.updates as Document[] | undefined)?.[0] ?? {};
      return { filter: doc(st.q) ?? {}, limit: st.multi === true ? 0 : 1, hint: st.hint, rootStage: { stage: 'UPDATE' } };
    }
    case 'findAndModify':
    case 'findandmodify':
      return {
        filter: doc(inner.query) ?? {},
        sort: inner.sort,
        limit: 1,
        hint: inner.hint,
        rootStage: { stage: inner.remove === true ? 'DELETE' : 'UPDATE' },
      };
    default:
      throw new CommandError(ErrorCode.CommandNotFound, `Explain failed due to unknown command: ${name}`);
  }
}

function serverInfo(ctx: CommandContext): Document {
  const [host, port] = ctx.instance.identity.me.split(':');
  return { host, port: Number(port), version: SERVER_VERSION, gitVersion: 'embedded' };
}

async function explain(ctx: CommandContext): Promise<Document> {
  const inner = ctx.body.explain;
  if (!isPlainObject(inner)) throw new CommandError(ErrorCode.TypeMismatch, 'explain command requires a nested object');
  const verbosity: Verbosity = parseVerbosity(ctx.body.verbosity);
  const name = Object.keys(inner)[0] ?? '';
  const innerCtx: CommandContext = { ...ctx, name, body: inner };
  const common = {
    command: { ...inner, $db: ctx.db },
    serverInfo: serverInfo(ctx),
    serverParameters: {
      internalQueryFacetBufferSizeBytes: 104857600,
      internalQueryMaxBlockingSortMemoryUsageBytes: 104857600,
      internalQueryProhibitBlockingMergeOnMongoS: 0,
      internalQueryMaxAddToSetBytes: 104857600,
      internalDocumentSourceGroupMaxMemoryBytes: 104857600,
    },
    ok: 1,
  };
  if (name === 'aggregate') {
    const target = inner.aggregate;
    const pipeline = Array.isArray(inner.pipeline) ? (inner.pipeline as Document[]) : [];
    if (pipeline.some((s) => isPlainObject(s) && ('$out' in s || '$merge' in s))) {
      throw new CommandError(ErrorCode.IllegalOperation, 'explain of $out/$merge is not supported by the embedded server');
    }
    const run = await runPipeline(innerCtx, typeof target === 'string' ? target : undefined, pipeline, { explain: true });
    return { ...explainAggregate(run, verbosity), ...common };
  }
  const collName = inner[name];
  if (typeof collName !== 'string') throw new CommandError(ErrorCode.InvalidNamespace, 'explain: collection name must be a string');
  const planned = plannedFor(name, inner);
  const ns = `${ctx.db}.${collName}`;
  const coll = ctx.instance.collection(ctx.db, collName);
  const outcome = runQuery(
    queryRequest(innerCtx, ns, coll, {
      filter: planned.filter,
      sort: planned.sort,
      skip: planned.skip,
      limit: planned.limit,
      hint: planned.hint,
      variables: planned.variables,
      countOnly: planned.countOnly,
      projection: planned.projection,
      explain: true,
    }),
  );
  const shape: ShapeOptions = {
    filter: planned.filter,
    sort: splitNaturalSort(planned.sort).sort,
    skip: planned.skip ?? 0,
    limit: Math.abs(planned.limit ?? 0),
    projection: planned.projection,
    rootStage: planned.rootStage,
  };
  return { explainVersion: '1', ...explainSections(ns, outcome, shape, verbosity), ...common };
}

export const explainCommands: Record<string, CommandDefinition> = {
  explain: { handler: explain },
};
