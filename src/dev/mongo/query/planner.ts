/**
 * Query planning and execution: enumerate access plans (IDHACK, IXSCAN per
 * usable index, OR of index scans for an $or, rooted or contained in a
 * conjunction, COLLSCAN), pick one the way mongod's classic engine does, and
 * run it.
 *
 * - With several candidates and no usable plan cache entry, a short
 *   round-robin trial scored by productivity picks the winner (mongod's
 *   multi-planner); the winner then runs on from where the trial left it.
 * - The choice is cached per query shape (plan-cache.ts): an active entry's
 *   plan is re-instantiated with the query's values and run without a trial,
 *   and replanned if it does much worse than when it was cached.
 * - Index scans produce candidates, and the filter (mingo) decides. When the
 *   bounds of the chosen scan answer every predicate of the filter exactly
 *   (or the predicate is a clause of the index's partial filter), the filter
 *   is not evaluated at all, and a count reads index keys only (COUNT_SCAN).
 *   A transaction's own writes are not in the committed indexes: with an
 *   overlay every candidate goes through the filter.
 */
import type { Document } from 'bson';
import { decodeStringKey, encodeValue } from '../bson/keystring.js';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import type { Index, IndexField } from '../storage/index.js';
import type { DocumentSource } from '../storage/source.js';
import {
  fieldBounds,
  isPointInterval,
  passesChecks,
  predicatesOf,
  queryImpliesPartialFilter,
  scanBounds,
  usableByWildcard,
  type FieldBounds,
  type KeyCheck,
  type KeyRange,
  type PathPredicate,
  type PathPredicates,
} from './bounds.js';
import { conjunctsOf, type Conjunct } from './conjuncts.js';
import { accessStage } from './explain.js';
import {
  CACHE_EVICTION_RATIO,
  type CachedScan,
  type CachedSolution,
  type CollectionPlanCache,
  type PlanCacheEntry,
  type PlanCacheMetrics,
} from './plan-cache.js';
import { queryShape, shapeHash } from './shape.js';
import { sortDocuments, TopK, type SortField } from './sort.js';
import { expandWildcard, wildcardExpansions, type ScanIndex } from './wildcard.js';

export interface IxScanPlan {
  kind: 'IXSCAN';
  /** The index as scanned: a regular index, or a wildcard index expanded for one path (query/wildcard.ts). */
  index: ScanIndex;
  bounds: FieldBounds[];
  ranges: KeyRange[];
  /** Bounds of fields after the last one the ranges narrow, checked on each key. */
  checks: KeyCheck[];
  direction: 1 | -1;
  providesSort: boolean;
  /** Positions of the conjuncts the bounds answer exactly. */
  answered: Set<number>;
  /** Every conjunct is answered by the bounds or is a clause of the index's partial filter: no filter needed. */
  covered: boolean;
}

export interface CollScanPlan {
  kind: 'COLLSCAN';
  direction: 1 | -1;
}

export interface IdHackPlan {
  kind: 'IDHACK';
  idKey: string;
}

/**
 * An $or answered by one index scan per branch, deduplicated by document (mongod's OR stage), then fetched: a rooted
 * $or, or one contained in a conjunction, whose outside predicates then bound each branch's scan where its index can
 * take them. It provides no sort, and a count fetches.
 */
export interface OrPlan {
  kind: 'OR';
  /** Position of the $or among the filter's conjuncts. */
  conjunct: number;
  /** One scan per branch, in branch order; a scan's conjunct positions are its branch's own, then the outside ones. */
  branches: IxScanPlan[];
  /** Per branch, the positions among the branch's own conjuncts that its scan does not settle (explain: a FETCH filter over its IXSCAN). */
  branchResiduals: number[][];
  /** Positions among the filter's conjuncts outside the $or that some branch's scan does not settle (explain: the FETCH filter over the OR). */
  residual: number[];
}

export type AccessPlan = IxScanPlan | CollScanPlan | IdHackPlan | OrPlan;

export interface ExecStats {
  keysExamined: number;
  docsExamined: number;
  /** An OR plan's: per branch, the keys its scan read and the documents fetched for them. */
  branches?: ExecStats[];
}

/** serverStatus metrics.queryExecutor: index keys and documents examined by queries, server-wide. */
export interface QueryExecutorMetrics {
  scanned: number;
  scannedObjects: number;
}

export interface QueryRequest {
  source: DocumentSource;
  filter: Document;
  /** Compiled filter (mingo); undefined matches everything. */
  matcher: ((doc: Document) => boolean) | undefined;
  sort: SortField[];
  skip: number;
  /** 0 means no limit. */
  limit: number;
  hint?: unknown;
  /** From sort/hint { $natural: ±1 }. */
  natural?: 1 | -1;
  /** performance.now() past which the query stops with MaxTimeMSExpired (the command's maxTimeMS). */
  deadline?: number;
  /** The collection's plan cache; without it every query is planned by trial. */
  planCache?: CollectionPlanCache;
  /** Where cache hits, misses and replans are counted. */
  planCacheMetrics?: PlanCacheMetrics;
  /** Where the keys and documents the chosen plan examined are added up (explain adds nothing). */
  executorMetrics?: QueryExecutorMetrics;
  /**
   * Only `_id` is wanted (a find projecting { _id: 1 }): a covered scan of an index with _id among its fields
   * answers from the index entries without fetching documents (mongod's PROJECTION_COVERED).
   */
  idOnly?: boolean;
  /** Only the number of matches is wanted (count, the aggregate count shape): no documents are kept. */
  countOnly?: boolean;
  /** explain: the plan cache is read, never written. */
  explain?: boolean;
}

/** Documents examined between two looks at the clock: often enough to overrun a deadline by little, rarely enough to cost nothing. */
const INTERRUPT_INTERVAL = 256;

/** A check per examined document that throws MaxTimeMSExpired, as mongod does, once the query's maxTimeMS is used up. */
function interruptCheck(req: QueryRequest): () => void {
  const deadline = req.deadline;
  if (deadline === undefined) return () => undefined;
  let examined = 0;
  return () => {
    if (++examined % INTERRUPT_INTERVAL === 0 && performance.now() > deadline) {
      throw new CommandError(ErrorCode.MaxTimeMSExpired, 'operation exceeded time limit');
    }
  };
}

export interface QueryOutcome {
  /** The documents (none for a countOnly request). */
  docs: Document[];
  /** Matches after skip and limit: docs.length, or the count of a countOnly request. */
  count: number;
  plan: AccessPlan;
  rejected: AccessPlan[];
  stats: ExecStats;
  /** Matches produced by the access plan before skip/limit. */
  matched: number;
  /** Whether a blocking in-memory sort was needed. */
  blockingSort: boolean;
  /** A count answered from index keys alone, without fetching documents. */
  keysOnly: boolean;
  /** Only _id was wanted and the index entries gave it: no document was fetched (PROJECTION_COVERED). */
  projectionCovered: boolean;
  /** The plan came from an active plan cache entry (no trial). */
  isCached: boolean;
  /** The shape's hashes, when the query had a shape worth caching (several candidate plans). */
  queryHash?: string;
  planCacheKey?: string;
  millis: number;
}

function isMultikeyPath(index: ScanIndex, path: string): boolean {
  return (index.multikeyPaths.get(path)?.size ?? 0) > 0;
}

function sortProvision(index: ScanIndex, bounds: FieldBounds[], sort: SortField[]): { provides: boolean; direction: 1 | -1 } {
  if (sort.length === 0) return { provides: false, direction: 1 };
  let pointFields = 0;
  while (
    pointFields < bounds.length &&
    !bounds[pointFields]!.unconstrained &&
    bounds[pointFields]!.intervals.length === 1 &&
    isPointInterval(bounds[pointFields]!.intervals[0]!)
  ) {
    pointFields++;
  }
  const constant = new Set(index.fields.slice(0, pointFields).map((f) => f.path));
  const remaining = sort.filter((s) => !constant.has(s.path));
  let direction: 1 | -1 | undefined;
  for (let i = 0; i < remaining.length; i++) {
    const s = remaining[i]!;
    const f = index.fields[pointFields + i];
    if (!f || f.path !== s.path) return { provides: false, direction: 1 };
    const d = (s.direction * f.direction) as 1 | -1;
    direction ??= d;
    if (d !== direction) return { provides: false, direction: 1 };
  }
  if (sort.some((s) => isMultikeyPath(index, s.path))) return { provides: false, direction: 1 };
  return { provides: true, direction: direction ?? 1 };
}

/**
 * Conjuncts the bounds answer exactly. A multikey field's predicate counts
 * only when no other field of the index is multikey: two array fields'
 * keys need not come from one array element.
 */
function answeredBy(index: ScanIndex, bounds: FieldBounds[]): Set<number> {
  const out = new Set<number>();
  let multikeyFields = 0;
  for (const f of index.fields) if (isMultikeyPath(index, f.path)) multikeyFields++;
  bounds.forEach((b, f) => {
    if (multikeyFields > 1 && isMultikeyPath(index, index.fields[f]!.path)) return;
    for (const p of b.answered) out.add(p.conjunct);
  });
  return out;
}

/** A partial filter's clauses as conjunct keys: a query conjunct equal to one holds for every indexed document. */
const partialConjunctKeys = new WeakMap<Document, Set<string>>();

function conjunctKey(c: Conjunct): string | undefined {
  if (c.path === undefined || c.op === undefined) return undefined;
  return `${c.path}\u0000${c.op}\u0000${encodeValue(c.value)}`;
}

function partialKeys(partial: Document): Set<string> {
  let keys = partialConjunctKeys.get(partial);
  if (!keys) {
    keys = new Set();
    for (const c of conjunctsOf(partial)) {
      const k = conjunctKey(c);
      if (k !== undefined) keys.add(k);
    }
    partialConjunctKeys.set(partial, keys);
  }
  return keys;
}

function isCovered(index: ScanIndex, answered: Set<number>, conjuncts: readonly Conjunct[]): boolean {
  if (answered.size === conjuncts.length) return true;
  if (!index.partialFilter) return false;
  const implied = partialKeys(index.partialFilter);
  for (let i = 0; i < conjuncts.length; i++) {
    if (answered.has(i)) continue;
    const k = conjunctKey(conjuncts[i]!);
    if (k === undefined || !implied.has(k)) return false;
  }
  return true;
}

function indexPlan(
  index: ScanIndex,
  predicates: PathPredicates,
  conjuncts: readonly Conjunct[],
  sort: SortField[],
  hinted: boolean,
): IxScanPlan | undefined {
  if (!hinted && index.spec.hidden === true) return undefined;
  if (index.partialFilter && !queryImpliesPartialFilter(predicates, index.partialFilter)) return undefined;
  // An expanded wildcard path is bounded by the predicates a wildcard index can answer; the others are filtered.
  const predicatesAt = (f: IndexField, i: number): PathPredicate[] | undefined => {
    const list = predicates.get(f.path);
    return list && i === index.wildcardPosition ? list.filter(usableByWildcard) : list;
  };
  const bounds = index.fields.map((f, i) => index.fixedBounds?.[i] ?? fieldBounds(predicatesAt(f, i), isMultikeyPath(index, f.path)));
  const missingMatters = index.fields.some((f, i) => (predicatesAt(f, i) ?? []).some((p) => p.matchesMissing));
  if ((index.sparse || index.partialFilter) && missingMatters && !hinted) return undefined;
  const leading = !bounds[0]!.unconstrained;
  const { provides, direction } = sortProvision(index, bounds, sort);
  // A sparse index misses documents without the field, so it cannot serve a sort over all of them.
  if (!hinted && !leading && (!provides || index.sparse)) return undefined;
  const { ranges, checks } = scanBounds(index, bounds);
  const answered = answeredBy(index, bounds);
  return {
    kind: 'IXSCAN',
    index,
    bounds,
    ranges,
    checks,
    direction,
    providesSort: provides,
    answered,
    covered: isCovered(index, answered, conjuncts),
  };
}

/** Rough preference among the scans of one $or branch (bounded leading fields, points over ranges), best first. */
function branchScore(plan: IxScanPlan): number {
  let score = 0;
  for (const b of plan.bounds) {
    if (b.unconstrained) break;
    score += b.intervals.every(isPointInterval) ? 2 : 1;
  }
  return score + (plan.index.unique ? 0.5 : 0);
}

/** The indexes as scans for a query with these predicates: a regular index as it is, a wildcard index per expansion. */
function scanIndexes(index: Index, predicates: PathPredicates): ScanIndex[] {
  return index.wildcard ? wildcardExpansions(index, predicates) : [index];
}

/**
 * One branch of an $or among the filter's conjuncts, as its scans are planned: the branch's own conjuncts, then
 * every conjunct outside the $or (mongod's contained-$or pushdown: an outside predicate bounds a branch's scan where
 * that scan's index can take it, `{ type: 'X', $or: [{ a: 1 }, { b: 2 }] }` scanning { type: 1, a: 1 } with
 * type ["X", "X"]). The branch's own come first: on a multikey field, where one predicate bounds, it is the branch's.
 */
interface OrBranch {
  conjuncts: Conjunct[];
  predicates: PathPredicates;
  /** How many of `conjuncts` are the branch's own (the first ones). */
  ownCount: number;
  /** Positions in the filter's conjuncts of the outside conjuncts, which follow the branch's own in `conjuncts`. */
  outside: number[];
}

/** The branches of the $or at this position of the filter's conjuncts; undefined when it is not an $or of filters. */
function orBranches(analysis: Analysis, position: number): OrBranch[] | undefined {
  const or = analysis.conjuncts[position];
  if (!or || or.path !== undefined || or.op !== '$or' || !Array.isArray(or.value) || or.value.length === 0) return undefined;
  const outside: number[] = [];
  for (let i = 0; i < analysis.conjuncts.length; i++) if (i !== position) outside.push(i);
  const outsideConjuncts = outside.map((i) => analysis.conjuncts[i]!);
  const branches: OrBranch[] = [];
  for (const branch of or.value as unknown[]) {
    if (!isPlainObject(branch)) return undefined;
    const own = conjunctsOf(branch);
    const conjuncts = [...own, ...outsideConjuncts];
    branches.push({ conjuncts, predicates: predicatesOf(conjuncts), ownCount: own.length, outside });
  }
  return branches;
}

/**
 * A scan of an $or branch through this index, or undefined: as mongod, the branch's own predicates must bound one
 * of the index's fields (outside predicates only add to a scan the branch already has; an index that only they can
 * use is no scan of the branch), the leading field must be bounded, and a partial index must have its filter implied
 * by the outside predicates and the branch together.
 */
function orBranchScan(index: ScanIndex, branch: OrBranch): IxScanPlan | undefined {
  const ownBounds = index.fields.some((f, i) => {
    if (index.fixedBounds?.[i]) return false;
    return (branch.predicates.get(f.path) ?? []).some(
      (p) => p.conjunct < branch.ownCount && (i !== index.wildcardPosition || usableByWildcard(p)),
    );
  });
  if (!ownBounds) return undefined;
  const plan = indexPlan(index, branch.predicates, branch.conjuncts, [], false);
  return plan && !plan.bounds[0]!.unconstrained ? plan : undefined;
}

/** Every scan an $or branch can use, best first (branchScore; ties in index order). */
function orBranchScans(indexes: Index[], branch: OrBranch): IxScanPlan[] {
  const scans: IxScanPlan[] = [];
  for (const index of indexes) {
    for (const target of scanIndexes(index, branch.predicates)) {
      const plan = orBranchScan(target, branch);
      if (plan) scans.push(plan);
    }
  }
  return scans.sort((a, b) => branchScore(b) - branchScore(a));
}

/** Conjunct positions a scan settles: answered by its bounds, or a clause of its index's partial filter. */
function settledBy(scan: IxScanPlan, conjuncts: readonly Conjunct[]): Set<number> {
  if (scan.covered) return new Set(conjuncts.keys());
  const settled = new Set(scan.answered);
  const implied = scan.index.partialFilter ? partialKeys(scan.index.partialFilter) : undefined;
  if (implied) {
    conjuncts.forEach((c, i) => {
      const k = conjunctKey(c);
      if (k !== undefined && implied.has(k)) settled.add(i);
    });
  }
  return settled;
}

/** The OR plan of the $or at `position` with one scan per branch. */
function orPlanOf(position: number, branches: readonly OrBranch[], scans: IxScanPlan[]): OrPlan {
  const branchResiduals: number[][] = [];
  const residual = new Set<number>();
  scans.forEach((scan, b) => {
    const branch = branches[b]!;
    const settled = settledBy(scan, branch.conjuncts);
    const own: number[] = [];
    for (let i = 0; i < branch.conjuncts.length; i++) {
      if (settled.has(i)) continue;
      if (i < branch.ownCount) own.push(i);
      else residual.add(branch.outside[i - branch.ownCount]!);
    }
    branchResiduals.push(own);
  });
  return { kind: 'OR', conjunct: position, branches: scans, branchResiduals, residual: [...residual].sort((a, b) => a - b) };
}

/**
 * OR plans per $or, at most (mongod's internalQueryEnumerationMaxOrSolutions). With each branch's scans ranked
 * best first, the combinations are taken by increasing sum of ranks: every branch's best, then one branch's second
 * best, and so on. The trial picks among them and the other candidates.
 */
const MAX_OR_PLANS = 10;

/** Rank tuples (one rank per branch, below its count) by increasing sum of ranks, at most `max` of them. */
function rankTuples(counts: readonly number[], max: number): number[][] {
  const out: number[][] = [];
  // What the branches from b on can still take: a sum they cannot reach is not tried.
  const room: number[] = new Array<number>(counts.length + 1).fill(0);
  for (let b = counts.length - 1; b >= 0; b--) room[b] = room[b + 1]! + counts[b]! - 1;
  const tuple: number[] = new Array<number>(counts.length).fill(0);
  const fill = (b: number, left: number): void => {
    if (out.length >= max) return;
    if (b === counts.length) {
      if (left === 0) out.push([...tuple]);
      return;
    }
    for (let r = Math.max(0, left - room[b + 1]!); r <= Math.min(counts[b]! - 1, left) && out.length < max; r++) {
      tuple[b] = r;
      fill(b + 1, left - r);
    }
  };
  for (let sum = 0; sum <= room[0]! && out.length < max; sum++) fill(0, sum);
  return out;
}

/** The OR plans of the $or at this position: none unless every branch has a scan. */
function orPlansAt(indexes: Index[], analysis: Analysis, position: number): OrPlan[] {
  const branches = orBranches(analysis, position);
  if (!branches) return [];
  const choices: IxScanPlan[][] = [];
  for (const branch of branches) {
    const scans = orBranchScans(indexes, branch);
    if (scans.length === 0) return [];
    choices.push(scans);
  }
  return rankTuples(
    choices.map((c) => c.length),
    MAX_OR_PLANS,
  ).map((ranks) =>
    orPlanOf(
      position,
      branches,
      ranks.map((rank, b) => choices[b]![rank]!),
    ),
  );
}

/** The OR plans of every $or among the filter's conjuncts (a rooted $or, or one contained in a conjunction). */
function orPlans(indexes: Index[], analysis: Analysis): OrPlan[] {
  const plans: OrPlan[] = [];
  analysis.conjuncts.forEach((c, i) => {
    if (c.path === undefined && c.op === '$or') plans.push(...orPlansAt(indexes, analysis, i));
  });
  return plans;
}

function idHackKey(filter: Document): string | undefined {
  const keys = Object.keys(filter);
  if (keys.length !== 1 || keys[0] !== '_id') return undefined;
  let v: unknown = filter._id;
  if (isPlainObject(v)) {
    const ops = Object.keys(v);
    if (ops.length === 1 && ops[0] === '$eq') v = v.$eq;
    else if (ops.some((k) => k.startsWith('$'))) return undefined;
  }
  if (v instanceof RegExp || Array.isArray(v) || v === null || v === undefined) return undefined;
  return encodeValue(v);
}

function findHintedIndex(indexes: Index[], hint: unknown): Index | undefined {
  if (typeof hint === 'string') return indexes.find((i) => i.name === hint);
  if (isPlainObject(hint)) {
    const key = encodeValue(hint);
    return indexes.find((i) => encodeValue(i.keyPattern) === key);
  }
  return undefined;
}

/** What a query is planned from: its conjuncts and their indexable predicates. */
interface Analysis {
  conjuncts: Conjunct[];
  predicates: PathPredicates;
}

function analyze(filter: Document): Analysis {
  const conjuncts = conjunctsOf(filter);
  return { conjuncts, predicates: predicatesOf(conjuncts) };
}

/**
 * Plans that need no choosing by the plan cache (hint, $natural, _id lookup, no collection), or undefined. A hinted
 * wildcard index may give several (one per expanded path): the trial picks among them.
 */
function singlePlan(req: QueryRequest, analysis: Analysis): AccessPlan | AccessPlan[] | undefined {
  const coll = req.source.collection;
  if (req.natural !== undefined || !coll) return { kind: 'COLLSCAN', direction: req.natural ?? 1 };
  if (req.hint !== undefined && req.hint !== null) {
    if (isPlainObject(req.hint) && '$natural' in req.hint) {
      return { kind: 'COLLSCAN', direction: Number(req.hint.$natural) < 0 ? -1 : 1 };
    }
    const index = findHintedIndex(coll.indexes, req.hint);
    if (index?.wildcard) {
      const plans: IxScanPlan[] = [];
      for (const target of wildcardExpansions(index, analysis.predicates)) {
        const p = indexPlan(target, analysis.predicates, analysis.conjuncts, req.sort, true);
        if (p) plans.push(p);
      }
      // As mongod: a wildcard index without a path the query bounds cannot be scanned at all.
      if (plans.length === 0) {
        throw new CommandError(
          ErrorCode.NoQueryExecutionPlans,
          'error processing query: planner returned error :: caused by :: No query solutions',
        );
      }
      return plans.length === 1 ? plans[0]! : plans;
    }
    // A partial index whose filter the query does not imply cannot answer it, hinted or not.
    const plan = index && indexPlan(index, analysis.predicates, analysis.conjuncts, req.sort, true);
    if (!plan)
      throw new CommandError(
        ErrorCode.BadValue,
        'error processing query: planner returned error :: caused by :: hint provided does not correspond to an existing index',
      );
    return plan;
  }
  if (req.sort.length === 0) {
    const idKey = idHackKey(req.filter);
    if (idKey !== undefined) return { kind: 'IDHACK', idKey };
  }
  return undefined;
}

function candidatePlans(req: QueryRequest, analysis: Analysis): AccessPlan[] {
  const indexes = req.source.collection!.indexes;
  const plans: AccessPlan[] = [];
  for (const index of indexes) {
    for (const target of scanIndexes(index, analysis.predicates)) {
      const p = indexPlan(target, analysis.predicates, analysis.conjuncts, req.sort, false);
      if (p) plans.push(p);
    }
  }
  plans.push(...orPlans(indexes, analysis));
  if (plans.length === 0) plans.push({ kind: 'COLLSCAN', direction: 1 });
  return plans;
}

/** A match found from index keys alone (a count, or a match whose document is fetched later). */
const KEY_MATCH = true;

/** The page's documents, fetched after their matches were counted (as KEY_MATCH): kept, not counted again. */
class FetchedLater {
  constructor(readonly docs: Document[]) {}
}

type Step = Document | typeof KEY_MATCH | FetchedLater | null;

/**
 * Whether this plan's matches can be put in order before their documents are fetched: the query sorts by _id
 * alone (a FHIR search's default order), has a limit, and the scan's bounds answer the whole filter, so an index
 * entry's record id (the _id's key string, whose string order is _id order) is all the sort needs. Then only the
 * first skip + limit documents are fetched, instead of every match (mongod plans FETCH above SORT when the sort is
 * covered by the index for the same reason). A transaction's overlay needs its documents: not then.
 */
function sortsByRecordId(plan: AccessPlan, req: QueryRequest): boolean {
  return (
    answersFromKeys(plan, req) &&
    !plan.providesSort &&
    !req.countOnly &&
    req.limit > 0 &&
    req.sort.length === 1 &&
    req.sort[0]!.path === '_id'
  );
}

/**
 * Whether the committed index entries of this plan's scan answer the whole filter: its bounds (and the index's
 * partial filter) say everything, and no transaction overlay has versions the committed index does not hold.
 */
function answersFromKeys(plan: AccessPlan, req: QueryRequest): plan is IxScanPlan {
  return plan.kind === 'IXSCAN' && plan.covered && req.source.overlay.size === 0;
}

/** Whether a count can be answered from this plan's index keys without fetching documents. */
function countsFromKeys(plan: AccessPlan, req: QueryRequest): plan is IxScanPlan {
  return req.countOnly === true && answersFromKeys(plan, req);
}

/**
 * Whether this plan answers an _id-only find from its index entries: the scan answers the whole filter and _id is
 * one of the index's fields (as mongod requires for PROJECTION_COVERED; here the entry's record id is the _id's key
 * string, so any index could, but an index without _id would not be covered by mongod and explain would differ).
 */
function projectsFromKeys(plan: AccessPlan, req: QueryRequest): plan is IxScanPlan {
  return req.idOnly === true && !req.countOnly && answersFromKeys(plan, req) && plan.index.fields.some((f) => f.path === '_id');
}

/** The { _id } document of an index entry's record id, when the key string is a string's (else undefined: fetch). */
function idDocument(idKey: string): Document | undefined {
  const id = decodeStringKey(idKey);
  return id === undefined ? undefined : { _id: id };
}

/**
 * One step per examined candidate: yields the document when it matches (or
 * KEY_MATCH for a count from keys), null when it does not.
 */
function* steps(plan: AccessPlan, req: QueryRequest, stats: ExecStats): Generator<Step> {
  const { source } = req;
  const checkDeadline = interruptCheck(req);
  if (plan.kind === 'COLLSCAN') {
    const matcher = req.matcher;
    const docs = plan.direction === 1 ? source.scan() : [...source.scan()].reverse();
    for (const doc of docs) {
      stats.docsExamined++;
      checkDeadline();
      yield !matcher || matcher(doc) ? doc : null;
    }
    return;
  }
  if (plan.kind === 'IDHACK') {
    // The view's version of that _id, a transaction's own included; no other document can have it.
    stats.keysExamined++;
    const doc = source.get(plan.idKey);
    if (doc) {
      stats.docsExamined++;
      yield !req.matcher || req.matcher(doc) ? doc : null;
    }
    return;
  }
  if (plan.kind === 'IXSCAN' && sortsByRecordId(plan, req)) {
    yield* stepsSortedByRecordId(plan, req, stats, checkDeadline);
    return;
  }
  const overlay = source.overlay;
  const keysOnly = countsFromKeys(plan, req);
  const idsOnly = projectsFromKeys(plan, req);
  // The filter can be skipped only for what the committed index holds: a transaction's versions may differ.
  const skipIndexFilter = answersFromKeys(plan, req);
  const scans = plan.kind === 'OR' ? plan.branches : [plan];
  // Disjoint ranges of an index with one key per document never repeat a document; an OR's branches may (its
  // documents are deduplicated, as mongod's OR stage does, whichever branch meets them first).
  const seen = plan.kind === 'OR' || overlay.size > 0 || plan.index.needsDedup ? new Set<string>() : undefined;
  if (plan.kind === 'OR') stats.branches = scans.map(() => ({ keysExamined: 0, docsExamined: 0 }));
  for (let s = 0; s < scans.length; s++) {
    const scan = scans[s]!;
    // An OR branch whose scan settles the whole filter (its own conjuncts and those outside the $or) needs no
    // filter on its documents; every other branch's are filtered by the whole filter.
    const skipFilter = plan.kind === 'OR' ? scan.covered && overlay.size === 0 : skipIndexFilter;
    const branchStats = stats.branches?.[s];
    const ranges = scan.direction === 1 ? scan.ranges : [...scan.ranges].reverse();
    const checks = scan.checks;
    for (const range of ranges) {
      for (const entry of scan.index.tree.range(range.start, range.end, scan.direction === -1)) {
        stats.keysExamined++;
        if (branchStats) branchStats.keysExamined++;
        let verified = true;
        if (checks.length > 0) {
          const inside = passesChecks(entry.key, scan.index, checks);
          if (inside === false) {
            yield null;
            continue;
          }
          verified = inside === true;
        }
        if (seen) {
          // A key of a document already met is a step all the same (mongod's IXSCAN spends a work on it): a scan
          // that reads many keys per document, such as a wildcard index's regular-prefix scan, is scored by them.
          if (seen.has(entry.id)) {
            yield null;
            continue;
          }
          seen.add(entry.id);
        }
        if (keysOnly && verified) {
          checkDeadline();
          yield KEY_MATCH;
          continue;
        }
        const fromKey = idsOnly && verified ? idDocument(entry.id) : undefined;
        if (fromKey) {
          checkDeadline();
          yield fromKey;
          continue;
        }
        const doc = source.get(entry.id);
        if (!doc) continue;
        stats.docsExamined++;
        if (branchStats) branchStats.docsExamined++;
        checkDeadline();
        yield (skipFilter && verified) || !req.matcher || req.matcher(doc) ? doc : null;
      }
    }
  }
  // A transaction's own and snapshot-only versions are not in the committed indexes.
  for (const idKey of overlay) {
    if (seen!.has(idKey)) continue;
    seen!.add(idKey);
    const doc = source.get(idKey);
    if (!doc) continue;
    stats.docsExamined++;
    checkDeadline();
    yield !req.matcher || req.matcher(doc) ? doc : null;
  }
}

/**
 * The scan of sortsByRecordId: every key is examined (one step each, a match counted as KEY_MATCH without its
 * document, unless the key alone cannot tell), then the first skip + limit record ids in _id order are fetched.
 */
function* stepsSortedByRecordId(plan: IxScanPlan, req: QueryRequest, stats: ExecStats, checkDeadline: () => void): Generator<Step> {
  const ids: string[] = [];
  const fetched = new Map<string, Document>();
  const seen = plan.index.needsDedup ? new Set<string>() : undefined;
  const ranges = plan.direction === 1 ? plan.ranges : [...plan.ranges].reverse();
  for (const range of ranges) {
    for (const entry of plan.index.tree.range(range.start, range.end, plan.direction === -1)) {
      stats.keysExamined++;
      checkDeadline();
      const inside = plan.checks.length > 0 ? passesChecks(entry.key, plan.index, plan.checks) : true;
      if (inside === false) {
        yield null;
        continue;
      }
      if (seen) {
        if (seen.has(entry.id)) {
          yield null;
          continue;
        }
        seen.add(entry.id);
      }
      if (inside !== true) {
        // The key alone cannot tell: the document decides, and is kept for later.
        const doc = req.source.get(entry.id);
        if (!doc) continue;
        stats.docsExamined++;
        if (req.matcher && !req.matcher(doc)) {
          yield null;
          continue;
        }
        fetched.set(entry.id, doc);
      }
      ids.push(entry.id);
      yield KEY_MATCH;
    }
  }
  const descending = req.sort[0]!.direction === -1;
  ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0) * (descending ? -1 : 1));
  const page: Document[] = [];
  const idsOnly = projectsFromKeys(plan, req);
  for (const id of ids.slice(0, req.skip + req.limit)) {
    let doc = fetched.get(id) ?? (idsOnly ? idDocument(id) : undefined);
    if (!doc) {
      doc = req.source.get(id);
      if (!doc) continue;
      stats.docsExamined++;
    }
    page.push(doc);
  }
  yield new FetchedLater(page);
}

function providesOrder(plan: AccessPlan, req: QueryRequest): boolean {
  if (req.sort.length === 0) return true;
  return plan.kind === 'IXSCAN' && plan.providesSort && req.source.overlay.size === 0;
}

/**
 * A plan being executed, one work unit (examined candidate) at a time: by
 * the trial, by a cached plan's trial period, and then to completion.
 */
class PlanRun {
  readonly stats: ExecStats = { keysExamined: 0, docsExamined: 0 };
  /** Produces results in the requested order (else they are sorted when it is done). */
  readonly ordered: boolean;
  works = 0;
  matched = 0;
  eof = false;
  /** Kept matches when ordered (after skip, up to the limit) or sorted without a limit (all); none when counting. */
  private readonly docs: Document[] = [];
  /** A blocking sort with a limit: the first skip + limit matches in order, kept as they come. */
  private readonly top: TopK<Document> | undefined;
  private readonly iter: Generator<Step>;
  /** Matches after which an ordered run is done. */
  private readonly want: number;

  constructor(
    readonly plan: AccessPlan,
    private readonly req: QueryRequest,
  ) {
    this.ordered = providesOrder(plan, req);
    this.want = req.limit > 0 ? req.skip + req.limit : Infinity;
    this.top = !this.ordered && !req.countOnly && req.limit > 0 ? new TopK(req.sort, req.skip + req.limit) : undefined;
    this.iter = steps(plan, req, this.stats);
  }

  private keep(doc: Document): void {
    if (this.top) this.top.push(doc);
    else this.docs.push(doc);
  }

  /** The results once the run is done: after skip and up to the limit, in the requested order. */
  results(): Document[] {
    if (this.ordered) return this.docs;
    const sorted = this.top ? this.top.sorted() : sortDocuments(this.docs, this.req.sort);
    return sorted.slice(this.req.skip, this.req.limit > 0 ? this.req.skip + this.req.limit : undefined);
  }

  /** One unit of work; false once the run is done. */
  work(): boolean {
    if (this.eof) return false;
    const r = this.iter.next();
    this.works++;
    if (r.done) {
      this.eof = true;
      return false;
    }
    const value = r.value;
    if (value === null) return true;
    if (value instanceof FetchedLater) {
      // Part of the scan's last step, not a step of its own: every other plan fetches as it reads a key, one work
      // each, so counting the page again would rank the plan that fetches least below those that fetch everything.
      this.works--;
      for (const doc of value.docs) this.keep(doc);
      return this.work();
    }
    this.matched++;
    if (value !== KEY_MATCH && !this.req.countOnly && (!this.ordered || this.matched > this.req.skip)) this.keep(value);
    if (this.ordered && this.matched >= this.want) {
      this.eof = true;
      this.iter.return(undefined);
      return false;
    }
    return true;
  }

  /** Results a consumer would have had by now: a blocking sort gives none before its input ends. */
  get advanced(): number {
    return this.ordered || this.eof ? this.matched : 0;
  }

  finish(): void {
    while (this.work());
  }

  close(): void {
    this.iter.return(undefined);
  }
}

/** internalQueryPlanEvaluationMaxResults: a trial ends once a plan has produced a batch this big. */
const TRIAL_MAX_RESULTS = 101;

function trialTarget(req: QueryRequest): number {
  return req.limit > 0 ? Math.min(req.skip + req.limit, TRIAL_MAX_RESULTS) : TRIAL_MAX_RESULTS;
}

function score(run: PlanRun, req: QueryRequest): number {
  const works = Math.max(run.works, 1);
  const epsilon = Math.min(1 / (10 * works), 1e-4);
  return 1 + run.advanced / works + (run.eof ? 1 : 0) + (providesOrder(run.plan, req) ? epsilon : 0);
}

interface Decision {
  winner: PlanRun;
  rejected: PlanRun[];
  /** Scores, winner first. */
  scores: number[];
}

/** mongod-style multi-planning: round-robin until one plan fills a batch or finishes; the winner is kept running. */
function multiPlan(plans: AccessPlan[], req: QueryRequest): Decision {
  const runs = plans.map((plan) => new PlanRun(plan, req));
  // The committed size is close enough for the trial budget, and free to read.
  const size = req.source.collection?.docs.size ?? 0;
  const maxWorks = Math.max(10_000, Math.floor(0.3 * size));
  const target = trialTarget(req);
  let done = false;
  for (let round = 0; round < maxWorks && !done; round++) {
    for (const run of runs) {
      if (!run.work() && run.eof) done = true;
      if (run.advanced >= target) done = true;
    }
  }
  const scored = runs.map((run) => ({ run, score: score(run, req) }));
  let best = scored[0]!;
  for (const s of scored) if (s.score > best.score) best = s;
  const rejected = scored.filter((s) => s !== best);
  for (const s of rejected) s.run.close();
  return { winner: best.run, rejected: rejected.map((s) => s.run), scores: [best.score, ...rejected.map((s) => s.score)] };
}

/** The plan to cache: which index (or indexes, or none), not its bounds. */
function solutionOf(plan: AccessPlan): CachedSolution | undefined {
  switch (plan.kind) {
    case 'IXSCAN':
      return { kind: 'IXSCAN', ...cachedScan(plan.index) };
    case 'OR':
      return { kind: 'OR', conjunct: plan.conjunct, branches: plan.branches.map((b) => cachedScan(b.index)) };
    case 'COLLSCAN':
      return { kind: 'COLLSCAN' };
    case 'IDHACK':
      return undefined;
  }
}

/** What the cache keeps of a scan's index: the index, and for a wildcard index the path it was expanded for. */
function cachedScan(index: ScanIndex): CachedScan {
  return index.wildcardPath === undefined ? { index: index.physical } : { index: index.physical, wildcardPath: index.wildcardPath };
}

/** A cached scan's index for a query: a wildcard index expanded again for the cached path, if the query bounds it. */
function scanIndexFor(scan: CachedScan, predicates: PathPredicates): ScanIndex | undefined {
  return scan.wildcardPath === undefined ? scan.index : expandWildcard(scan.index, scan.wildcardPath, predicates);
}

/** A cached solution with this query's values, or undefined if it does not apply to them. */
function instantiate(solution: CachedSolution, req: QueryRequest, analysis: Analysis): AccessPlan | undefined {
  switch (solution.kind) {
    case 'COLLSCAN':
      return { kind: 'COLLSCAN', direction: 1 };
    case 'IXSCAN': {
      const index = scanIndexFor(solution, analysis.predicates);
      return index && indexPlan(index, analysis.predicates, analysis.conjuncts, req.sort, false);
    }
    case 'OR': {
      // The same shape has its $or at the same position, with as many branches; each branch's index is taken again
      // (a wildcard index expanded for the same path) if this query's branch and outside predicates can use it.
      const branches = orBranches(analysis, solution.conjunct);
      if (!branches || branches.length !== solution.branches.length) return undefined;
      const scans: IxScanPlan[] = [];
      for (let b = 0; b < branches.length; b++) {
        const index = scanIndexFor(solution.branches[b]!, branches[b]!.predicates);
        const scan = index && orBranchScan(index, branches[b]!);
        if (!scan) return undefined;
        scans.push(scan);
      }
      return orPlanOf(solution.conjunct, branches, scans);
    }
  }
}

/**
 * The cache key: the shape plus, per partial index, whether this query can
 * use it, and whether each branch of each $or can (with the predicates
 * outside the $or): mongod's index discriminators. The queryHash leaves them
 * out.
 */
function cacheKeys(req: QueryRequest, analysis: Analysis): { key: string; queryHash: string; planCacheKey: string } {
  const shape = queryShape({ filter: req.filter, sort: req.sort, skip: req.skip, limit: req.limit, countOnly: req.countOnly === true });
  let discriminators = '';
  let branches: OrBranch[] | undefined;
  for (const index of req.source.collection!.indexes) {
    if (!index.partialFilter) continue;
    discriminators += queryImpliesPartialFilter(analysis.predicates, index.partialFilter) ? '1' : '0';
    branches ??= analysis.conjuncts.flatMap((c, i) => (c.path === undefined && c.op === '$or' ? (orBranches(analysis, i) ?? []) : []));
    for (const branch of branches) discriminators += queryImpliesPartialFilter(branch.predicates, index.partialFilter) ? '1' : '0';
  }
  const key = `${shape}|partial:${discriminators}`;
  return { key, queryHash: shapeHash(shape), planCacheKey: shapeHash(key) };
}

function sortDocument(sort: SortField[]): Document {
  const out: Document = {};
  for (const s of sort) out[s.path] = s.direction;
  return out;
}

interface Chosen {
  run: PlanRun;
  rejected: AccessPlan[];
  isCached: boolean;
  queryHash?: string;
  planCacheKey?: string;
}

/** Multi-plans and, unless this is an explain or nothing was learnt, records the winner in the cache. */
function planAndRecord(req: QueryRequest, plans: AccessPlan[], keys: ReturnType<typeof cacheKeys>): Chosen {
  const decision = multiPlan(plans, req);
  const winner = decision.winner;
  const solution = solutionOf(winner.plan);
  // As mongod: a winner that produced nothing and did not finish says nothing about the shape.
  const learnt = winner.advanced > 0 || winner.eof;
  if (req.planCache && !req.explain && solution && learnt) {
    req.planCache.record({
      ...keys,
      solution,
      works: Math.max(1, winner.works),
      candidatePlanScores: decision.scores,
      createdFromQuery: { query: req.filter, sort: sortDocument(req.sort), projection: {} },
      cachedPlan: accessStage(winner.plan, req.filter),
    });
  }
  return { run: winner, rejected: decision.rejected.map((r) => r.plan), isCached: false, ...keys };
}

/**
 * Runs an active entry's plan for its trial period: done once it has a
 * batch or has finished, abandoned once it used more than
 * CACHE_EVICTION_RATIO times the works it was cached with.
 */
function runCached(entry: PlanCacheEntry, plan: AccessPlan, req: QueryRequest): PlanRun | undefined {
  const run = new PlanRun(plan, req);
  const budget = Math.ceil(CACHE_EVICTION_RATIO * entry.works);
  const target = trialTarget(req);
  while (run.works < budget) {
    if (!run.work() || run.advanced >= target) return run;
  }
  if (run.eof || run.advanced >= target) return run;
  run.close();
  return undefined;
}

function choose(req: QueryRequest, analysis: Analysis): Chosen {
  const single = singlePlan(req, analysis);
  const metrics = req.planCacheMetrics;
  if (single) {
    if (metrics && !req.explain) metrics.skipped++;
    if (!Array.isArray(single)) return { run: new PlanRun(single, req), rejected: [], isCached: false };
    const decision = multiPlan(single, req);
    return { run: decision.winner, rejected: decision.rejected.map((r) => r.plan), isCached: false };
  }
  const keys = req.planCache ? cacheKeys(req, analysis) : undefined;
  const entry = keys ? req.planCache!.get(keys.key) : undefined;
  let replanned = false;
  if (keys && entry?.isActive) {
    const plan = instantiate(entry.solution, req, analysis);
    if (plan) {
      if (metrics && !req.explain) metrics.hits++;
      const run = runCached(entry, plan, req);
      if (run) return { run, rejected: [], isCached: true, ...keys };
      replanned = true;
      if (metrics && !req.explain) metrics.replanned++;
      if (!req.explain) req.planCache!.deactivate(keys.key);
    }
  }
  const plans = candidatePlans(req, analysis);
  if (plans.length === 1) {
    if (metrics && !req.explain && !replanned) metrics.skipped++;
    return { run: new PlanRun(plans[0]!, req), rejected: [], isCached: false };
  }
  if (metrics && !req.explain && !replanned) metrics.misses++;
  if (!keys) {
    const decision = multiPlan(plans, req);
    return { run: decision.winner, rejected: decision.rejected.map((r) => r.plan), isCached: false };
  }
  return planAndRecord(req, plans, keys);
}

export function runQuery(req: QueryRequest): QueryOutcome {
  const started = performance.now();
  const analysis = analyze(req.filter);
  const chosen = choose(req, analysis);
  const run = chosen.run;
  run.finish();
  let docs: Document[];
  let count: number;
  if (req.countOnly) {
    docs = [];
    count = Math.max(0, Math.min(run.matched, req.limit > 0 ? req.skip + req.limit : Infinity) - req.skip);
  } else {
    docs = run.results();
    count = docs.length;
  }
  if (req.executorMetrics && !req.explain) {
    req.executorMetrics.scanned += run.stats.keysExamined;
    req.executorMetrics.scannedObjects += run.stats.docsExamined;
  }
  return {
    docs,
    count,
    plan: run.plan,
    rejected: chosen.rejected,
    stats: run.stats,
    matched: run.matched,
    blockingSort: !run.ordered,
    keysOnly: countsFromKeys(run.plan, req),
    projectionCovered: projectsFromKeys(run.plan, req) && run.stats.docsExamined === 0,
    isCached: chosen.isCached,
    queryHash: chosen.queryHash,
    planCacheKey: chosen.planCacheKey,
    millis: Math.round(performance.now() - started),
  };
}
