/**
 * explain output in mongod's classic-engine shape:
 *   queryPlanner.winningPlan = { stage: 'FETCH', inputStage: { stage: 'IXSCAN', indexName, ... } }
 *   or { stage: 'COLLSCAN', filter, direction }, wrapped by SORT / SKIP / LIMIT /
 *   PROJECTION_* stages as mongod does, plus executionStats when asked for.
 */
import type { Document } from 'bson';
import { isPlainObject } from '../bson/values.js';
import { explainIndexBounds, type AccessPlan, type IxScanPlan, type QueryOutcome } from './planner.js';
import type { SortField } from './sort.js';

const EXACT_OPS = new Set(['$eq', '$in', '$gt', '$gte', '$lt', '$lte']);

interface Conjunct {
  path?: string;
  op?: string;
  node: Document;
}

function isOperatorObject(v: unknown): v is Document {
  return isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith('$'));
}

function conjuncts(filter: Document): Conjunct[] {
  const out: Conjunct[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and' && Array.isArray(value)) {
      for (const sub of value) if (isPlainObject(sub)) out.push(...conjuncts(sub));
    } else if (key.startsWith('$')) {
      out.push({ node: { [key]: value } });
    } else if (isOperatorObject(value)) {
      for (const [op, arg] of Object.entries(value)) {
        if (op === '$options') continue;
        const shown = op === '$regex' && typeof arg === 'string' ? new RegExp(arg, String(value.$options ?? '')) : arg;
        out.push({ path: key, op, node: { [key]: { [op]: shown } } });
      }
    } else if (value instanceof RegExp) {
      out.push({ path: key, op: '$regex', node: { [key]: { $regex: value } } });
    } else {
      out.push({ path: key, op: '$eq', node: { [key]: { $eq: value } } });
    }
  }
  return out;
}

function combine(list: Conjunct[]): Document | undefined {
  if (list.length === 0) return undefined;
  if (list.length === 1) return list[0]!.node;
  return { $and: list.map((c) => c.node) };
}

/** The filter in mongod's parsed form ({ a: { $eq: 1 } }, multiple predicates under $and). */
export function parsedQuery(filter: Document): Document {
  return combine(conjuncts(filter)) ?? {};
}

function residualFor(plan: IxScanPlan, filter: Document): Document | undefined {
  return combine(conjuncts(filter).filter((c) => !(c.path && c.op && EXACT_OPS.has(c.op) && plan.exactPaths.has(c.path))));
}

function ixscanStage(plan: IxScanPlan): Document {
  const index = plan.index;
  return {
    stage: 'IXSCAN',
    keyPattern: index.keyPattern,
    indexName: index.name,
    isMultiKey: index.multikey,
    multiKeyPaths: index.explainMultiKeyPaths(),
    isUnique: index.unique,
    isSparse: index.sparse,
    isPartial: index.partialFilter !== undefined,
    indexVersion: 2,
    direction: plan.direction === 1 ? 'forward' : 'backward',
    indexBounds: explainIndexBounds(plan),
  };
}

export function accessStage(plan: AccessPlan, filter: Document): Document {
  switch (plan.kind) {
    case 'IDHACK':
      return { stage: 'IDHACK' };
    case 'COLLSCAN': {
      const stage: Document = { stage: 'COLLSCAN' };
      const f = combine(conjuncts(filter));
      if (f) stage.filter = f;
      stage.direction = plan.direction === 1 ? 'forward' : 'backward';
      return stage;
    }
    case 'IXSCAN': {
      const stage: Document = { stage: 'FETCH' };
      const residual = residualFor(plan, filter);
      if (residual) stage.filter = residual;
      stage.inputStage = ixscanStage(plan);
      return stage;
    }
    case 'OR': {
      const stage: Document = { stage: 'FETCH' };
      const f = combine(conjuncts(filter));
      if (f) stage.filter = f;
      stage.inputStage = { stage: 'OR', inputStages: plan.branches.map(ixscanStage) };
      return stage;
    }
  }
}

export interface ShapeOptions {
  filter: Document;
  sort: SortField[];
  skip: number;
  limit: number;
  projection?: Document;
  /** Wrapper for write commands (UPDATE / DELETE) or COUNT. */
  rootStage?: Document;
}

function isSimpleProjection(projection: Document): boolean {
  return Object.entries(projection).every(
    ([k, v]) => !k.includes('.') && !k.includes('$') && (typeof v === 'number' || typeof v === 'boolean'),
  );
}

/** The complete stage tree for a plan, bottom-up as mongod builds it. */
export function planTree(plan: AccessPlan, blockingSort: boolean, opts: ShapeOptions): Document {
  let stage = accessStage(plan, opts.filter);
  if (blockingSort && opts.sort.length) {
    const sortStage: Document = {
      stage: 'SORT',
      sortPattern: Object.fromEntries(opts.sort.map((s) => [s.path, s.direction])),
      memLimit: 104857600,
    };
    if (opts.limit > 0) sortStage.limitAmount = opts.skip + opts.limit;
    sortStage.type = 'simple';
    sortStage.inputStage = stage;
    stage = sortStage;
    if (opts.skip > 0) stage = { stage: 'SKIP', skipAmount: opts.skip, inputStage: stage };
  } else {
    if (opts.skip > 0) stage = { stage: 'SKIP', skipAmount: opts.skip, inputStage: stage };
    if (opts.limit > 0) stage = { stage: 'LIMIT', limitAmount: opts.limit, inputStage: stage };
  }
  if (opts.projection && Object.keys(opts.projection).length) {
    stage = {
      stage: isSimpleProjection(opts.projection) ? 'PROJECTION_SIMPLE' : 'PROJECTION_DEFAULT',
      transformBy: opts.projection,
      inputStage: stage,
    };
  }
  if (opts.rootStage) stage = { ...opts.rootStage, inputStage: stage };
  return stage;
}

/** Adds execution counters to a stage tree (a copy). */
function withStats(tree: Document, outcome: QueryOutcome, returned: number): Document {
  const copy = (node: Document, top: boolean): Document => {
    const out: Document = { ...node };
    const name = String(node.stage);
    out.nReturned = top ? returned : name === 'IXSCAN' ? outcome.stats.keysExamined : outcome.matched;
    out.executionTimeMillisEstimate = outcome.millis;
    if (name === 'IXSCAN' || name === 'IDHACK') out.keysExamined = outcome.stats.keysExamined;
    if (name === 'FETCH' || name === 'COLLSCAN' || name === 'IDHACK') out.docsExamined = outcome.stats.docsExamined;
    if (isPlainObject(node.inputStage)) out.inputStage = copy(node.inputStage, false);
    if (Array.isArray(node.inputStages)) out.inputStages = (node.inputStages as Document[]).map((s) => copy(s, false));
    return out;
  };
  return copy(tree, true);
}

export type Verbosity = 'queryPlanner' | 'executionStats' | 'allPlansExecution';

export function parseVerbosity(v: unknown): Verbosity {
  if (v === 'queryPlanner' || v === 'executionStats' || v === 'allPlansExecution') return v;
  return 'allPlansExecution';
}

export interface ExplainSections {
  queryPlanner: Document;
  executionStats?: Document;
}

/** queryPlanner (+ executionStats) sections for one executed query. */
export function explainSections(
  ns: string,
  outcome: QueryOutcome,
  opts: ShapeOptions,
  verbosity: Verbosity,
  returned: number = outcome.docs.length,
): ExplainSections {
  const winningPlan = planTree(outcome.plan, outcome.blockingSort, opts);
  const queryPlanner: Document = {
    namespace: ns,
    parsedQuery: parsedQuery(opts.filter),
    indexFilterSet: false,
    maxIndexedOrSolutionsReached: false,
    maxIndexedAndSolutionsReached: false,
    maxScansToExplodeReached: false,
    prunedSimilarIndexes: false,
    winningPlan: { isCached: false, ...winningPlan },
    rejectedPlans: outcome.rejected.map((p) => planTree(p, false, { ...opts, sort: [], skip: 0, limit: 0 })),
  };
  if (verbosity === 'queryPlanner') return { queryPlanner };
  const executionStats: Document = {
    executionSuccess: true,
    nReturned: returned,
    executionTimeMillis: outcome.millis,
    totalKeysExamined: outcome.stats.keysExamined,
    totalDocsExamined: outcome.stats.docsExamined,
    executionStages: withStats(winningPlan, outcome, returned),
  };
  if (verbosity === 'allPlansExecution') executionStats.allPlansExecution = [];
  return { queryPlanner, executionStats };
}
