/**
 * explain output in mongod's classic-engine shape:
 *   queryPlanner.winningPlan = { stage: 'FETCH', inputStage: { stage: 'IXSCAN', indexName, ... } }
 *   or { stage: 'COLLSCAN', filter, direction }, wrapped by SORT / SKIP / LIMIT /
 *   PROJECTION_* stages as mongod does, plus executionStats when asked for.
 *   A count answered from index keys is COUNT_SCAN (one contiguous key range)
 *   or an IXSCAN without FETCH, as in mongod.
 */
import { MaxKey, MinKey, type Document } from 'bson';
import { isPlainObject } from '../bson/values.js';
import { displayIntervals, isPointInterval } from './bounds.js';
import { combineConjuncts, conjunctsOf } from './conjuncts.js';
import type { AccessPlan, ExecStats, IxScanPlan, OrPlan, QueryOutcome } from './planner.js';
import type { SortField } from './sort.js';

/** The filter in mongod's parsed form ({ a: { $eq: 1 } }, multiple predicates under $and). */
export function parsedQuery(filter: Document): Document {
  return combineConjuncts(conjunctsOf(filter)) ?? {};
}

/** What the FETCH above a scan still filters: nothing when the scan answers the whole filter. */
function residualFor(plan: IxScanPlan, filter: Document): Document | undefined {
  if (plan.covered) return undefined;
  return combineConjuncts(conjunctsOf(filter).filter((_, i) => !plan.answered.has(i)));
}

/**
 * The index bounds of a scan as explain prints them. (A scan of a compound wildcard index's regular prefix has
 * two fields named $_path, as in mongod; the first, the path's, is shown.)
 */
export function explainIndexBounds(plan: IxScanPlan): Document {
  const out: Document = {};
  plan.index.fields.forEach((f, i) => {
    if (!(f.path in out)) out[f.path] = displayIntervals(plan.bounds[i]!, f.direction, plan.direction);
  });
  return out;
}

function indexDetails(plan: IxScanPlan): Document {
  const index = plan.index;
  return {
    keyPattern: index.keyPattern,
    indexName: index.name,
    isMultiKey: index.multikey,
    multiKeyPaths: index.explainMultiKeyPaths(),
    isUnique: index.unique,
    // The index's own option (an expanded wildcard index is planned as sparse, but reported as created).
    isSparse: index.physical.sparse,
    isPartial: index.partialFilter !== undefined,
    indexVersion: 2,
  };
}

function ixscanStage(plan: IxScanPlan): Document {
  return {
    stage: 'IXSCAN',
    ...indexDetails(plan),
    direction: plan.direction === 1 ? 'forward' : 'backward',
    indexBounds: explainIndexBounds(plan),
  };
}

/** Whether the scan reads one contiguous key range, which mongod's COUNT_SCAN requires. */
function isSingleInterval(plan: IxScanPlan): boolean {
  return plan.ranges.length === 1 && plan.checks.length === 0;
}

/** COUNT_SCAN's bounds: the first and last key of its one range, as documents. */
function countScanBounds(plan: IxScanPlan): Document {
  const startKey: Document = {};
  const endKey: Document = {};
  let startInclusive = true;
  let endInclusive = true;
  let open = false;
  plan.index.fields.forEach((f, i) => {
    const b = plan.bounds[i]!;
    let low: unknown;
    let high: unknown;
    if (b.unconstrained || open) {
      // After the range field: the extremes that keep its inclusiveness (an exclusive start skips every key of that value).
      low = startInclusive ? new MinKey() : new MaxKey();
      high = endInclusive ? new MaxKey() : new MinKey();
      if (b.unconstrained) {
        open = true;
      }
    } else {
      const interval = b.intervals[0]!;
      low = interval.low.value;
      high = interval.high.value;
      startInclusive = interval.low.inclusive;
      endInclusive = interval.high.shownInclusive ?? interval.high.inclusive;
      if (!isPointInterval(interval)) open = true;
    }
    const [first, last] = f.direction === 1 ? [low, high] : [high, low];
    if (!(f.path in startKey)) {
      startKey[f.path] = first;
      endKey[f.path] = last;
    }
  });
  if (plan.direction === -1) {
    return { startKey: endKey, startKeyInclusive: endInclusive, endKey: startKey, endKeyInclusive: startInclusive };
  }
  return { startKey, startKeyInclusive: startInclusive, endKey, endKeyInclusive: endInclusive };
}

/**
 * An OR plan as mongod's classic planner shows an indexed $or: FETCH (filtered by the conjuncts outside the $or that
 * not every branch's scan settles) over OR over one IXSCAN per branch, a branch whose scan does not settle all of its
 * own conjuncts under a FETCH filtered by them.
 */
function orStage(plan: OrPlan, filter: Document): Document {
  const conjuncts = conjunctsOf(filter);
  const or = conjuncts[plan.conjunct]?.value;
  const branches = Array.isArray(or) ? or : [];
  const inputStages = plan.branches.map((scan, b) => {
    const branch: unknown = branches[b];
    const own = isPlainObject(branch) ? conjunctsOf(branch) : [];
    const residual = combineConjuncts((plan.branchResiduals[b] ?? []).flatMap((i) => own[i] ?? []));
    return residual ? { stage: 'FETCH', filter: residual, inputStage: ixscanStage(scan) } : ixscanStage(scan);
  });
  const stage: Document = { stage: 'FETCH' };
  const residual = combineConjuncts(plan.residual.flatMap((i) => conjuncts[i] ?? []));
  if (residual) stage.filter = residual;
  stage.inputStage = { stage: 'OR', inputStages };
  return stage;
}

export function accessStage(plan: AccessPlan, filter: Document, keysOnly = false): Document {
  switch (plan.kind) {
    case 'IDHACK':
      return { stage: 'IDHACK' };
    case 'COLLSCAN': {
      const stage: Document = { stage: 'COLLSCAN' };
      const f = combineConjuncts(conjunctsOf(filter));
      if (f) stage.filter = f;
      stage.direction = plan.direction === 1 ? 'forward' : 'backward';
      return stage;
    }
    case 'IXSCAN': {
      if (keysOnly) {
        return isSingleInterval(plan)
          ? { stage: 'COUNT_SCAN', ...indexDetails(plan), indexBounds: countScanBounds(plan) }
          : ixscanStage(plan);
      }
      const stage: Document = { stage: 'FETCH' };
      const residual = residualFor(plan, filter);
      if (residual) stage.filter = residual;
      stage.inputStage = ixscanStage(plan);
      return stage;
    }
    case 'OR':
      return orStage(plan, filter);
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
export function planTree(
  plan: AccessPlan,
  blockingSort: boolean,
  opts: ShapeOptions,
  keysOnly = false,
  projectionCovered = false,
): Document {
  // An _id-only find answered from index entries has no FETCH: its projection reads the keys (PROJECTION_COVERED).
  let stage = projectionCovered && plan.kind === 'IXSCAN' ? ixscanStage(plan) : accessStage(plan, opts.filter, keysOnly);
  if (keysOnly) return opts.rootStage ? { ...opts.rootStage, inputStage: stage } : stage;
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
      stage: projectionCovered ? 'PROJECTION_COVERED' : isSimpleProjection(opts.projection) ? 'PROJECTION_SIMPLE' : 'PROJECTION_DEFAULT',
      transformBy: opts.projection,
      inputStage: stage,
    };
  }
  if (opts.rootStage) stage = { ...opts.rootStage, inputStage: stage };
  return stage;
}

/** Adds execution counters to a stage tree (a copy). */
function withStats(tree: Document, outcome: QueryOutcome, returned: number): Document {
  // Under an OR, a branch's stages report that branch's keys and documents (their matches are not told apart).
  const copy = (node: Document, top: boolean, branch?: ExecStats): Document => {
    const out: Document = { ...node };
    const name = String(node.stage);
    const stats = branch ?? outcome.stats;
    out.nReturned = top
      ? returned
      : (name === 'IXSCAN' || name === 'COUNT_SCAN') && !outcome.keysOnly
        ? stats.keysExamined
        : outcome.matched;
    out.executionTimeMillisEstimate = outcome.millis;
    if (name === 'IXSCAN' || name === 'IDHACK' || name === 'COUNT_SCAN') out.keysExamined = stats.keysExamined;
    if (name === 'FETCH' || name === 'COLLSCAN' || name === 'IDHACK') out.docsExamined = stats.docsExamined;
    // COUNT returns no documents; it reports what it counted, as mongod's does.
    if (name === 'COUNT') out.nCounted = outcome.count;
    if (isPlainObject(node.inputStage)) out.inputStage = copy(node.inputStage, false, branch);
    if (Array.isArray(node.inputStages)) {
      out.inputStages = (node.inputStages as Document[]).map((s, i) =>
        copy(s, false, name === 'OR' ? outcome.stats.branches?.[i] : branch),
      );
    }
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
  const winningPlan = planTree(outcome.plan, outcome.blockingSort, opts, outcome.keysOnly, outcome.projectionCovered);
  const queryPlanner: Document = {
    namespace: ns,
    parsedQuery: parsedQuery(opts.filter),
    ...(outcome.queryHash ? { queryHash: outcome.queryHash, planCacheKey: outcome.planCacheKey } : {}),
    indexFilterSet: false,
    maxIndexedOrSolutionsReached: false,
    maxIndexedAndSolutionsReached: false,
    maxScansToExplodeReached: false,
    prunedSimilarIndexes: false,
    winningPlan: { isCached: outcome.isCached, ...winningPlan },
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
