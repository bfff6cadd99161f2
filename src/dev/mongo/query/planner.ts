/**
 * Query planning: enumerate access plans (IDHACK, IXSCAN per usable index,
 * OR of index scans, COLLSCAN), pick one the way mongod's multi-planner does
 * (a short round-robin trial scored by productivity), and execute it.
 *
 * Index scans only produce candidates: the complete filter is always
 * evaluated by mingo on each fetched document, so a plan can never change
 * which documents match, only how many are examined.
 */
import type { Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import type { Index } from '../storage/index.js';
import type { DocumentSource } from '../storage/source.js';
import {
  compositeRanges,
  displayIntervals,
  extractPredicates,
  fieldBounds,
  isPointInterval,
  queryImpliesPartialFilter,
  type FieldBounds,
  type KeyRange,
  type PathPredicates,
} from './bounds.js';
import { sortDocuments, topK, type SortField } from './sort.js';

export interface IxScanPlan {
  kind: 'IXSCAN';
  index: Index;
  bounds: FieldBounds[];
  ranges: KeyRange[];
  direction: 1 | -1;
  providesSort: boolean;
  /** Paths whose predicates the bounds answer exactly. */
  exactPaths: Set<string>;
}

export interface CollScanPlan {
  kind: 'COLLSCAN';
  direction: 1 | -1;
}

export interface IdHackPlan {
  kind: 'IDHACK';
  idKey: string;
}

export interface OrPlan {
  kind: 'OR';
  branches: IxScanPlan[];
}

export type AccessPlan = IxScanPlan | CollScanPlan | IdHackPlan | OrPlan;

export interface ExecStats {
  keysExamined: number;
  docsExamined: number;
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
  docs: Document[];
  plan: AccessPlan;
  rejected: AccessPlan[];
  stats: ExecStats;
  /** Matches produced by the access plan before skip/limit. */
  matched: number;
  /** Whether a blocking in-memory sort was needed. */
  blockingSort: boolean;
  millis: number;
}

function isMultikeyPath(index: Index, path: string): boolean {
  return (index.multikeyPaths.get(path)?.size ?? 0) > 0;
}

function sortProvision(index: Index, bounds: FieldBounds[], sort: SortField[]): { provides: boolean; direction: 1 | -1 } {
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

function exactPathsOf(index: Index, bounds: FieldBounds[]): Set<string> {
  const out = new Set<string>();
  for (let f = 0; f < bounds.length; f++) {
    const b = bounds[f]!;
    if (b.unconstrained) break;
    if (!b.inexact && !isMultikeyPath(index, index.fields[f]!.path)) out.add(index.fields[f]!.path);
    if (!b.intervals.every(isPointInterval)) break;
  }
  return out;
}

function indexPlan(index: Index, predicates: PathPredicates, sort: SortField[], hinted: boolean): IxScanPlan | undefined {
  if (!hinted && index.spec.hidden === true) return undefined;
  if (index.partialFilter && !queryImpliesPartialFilter(predicates, index.partialFilter)) return undefined;
  const bounds = index.fields.map((f) => fieldBounds(predicates.get(f.path), isMultikeyPath(index, f.path)));
  const missingMatters = index.fields.some((f) => (predicates.get(f.path) ?? []).some((p) => p.matchesMissing));
  if ((index.sparse || index.partialFilter) && missingMatters && !hinted) return undefined;
  const leading = !bounds[0]!.unconstrained;
  const { provides, direction } = sortProvision(index, bounds, sort);
  // A sparse index misses documents without the field, so it cannot serve a sort over all of them.
  if (!hinted && !leading && (!provides || index.sparse)) return undefined;
  return {
    kind: 'IXSCAN',
    index,
    bounds,
    ranges: compositeRanges(index, bounds),
    direction,
    providesSort: provides,
    exactPaths: exactPathsOf(index, bounds),
  };
}

/** Rough preference among branch plans of an $or, where no trial runs. */
function branchScore(plan: IxScanPlan): number {
  let score = 0;
  for (const b of plan.bounds) {
    if (b.unconstrained) break;
    score += b.intervals.every(isPointInterval) ? 2 : 1;
  }
  return score + (plan.index.unique ? 0.5 : 0);
}

function orPlan(indexes: Index[], filter: Document): OrPlan | undefined {
  const branches = filter.$or;
  if (!Array.isArray(branches) || branches.length === 0) return undefined;
  const plans: IxScanPlan[] = [];
  for (const branch of branches) {
    if (!isPlainObject(branch)) return undefined;
    const preds = extractPredicates(branch);
    let best: IxScanPlan | undefined;
    for (const index of indexes) {
      const p = indexPlan(index, preds, [], false);
      if (p && !p.bounds[0]!.unconstrained && (!best || branchScore(p) > branchScore(best))) best = p;
    }
    if (!best) return undefined;
    plans.push(best);
  }
  return { kind: 'OR', branches: plans };
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

export function enumeratePlans(req: QueryRequest): AccessPlan[] {
  const coll = req.source.collection;
  if (req.natural !== undefined || !coll) return [{ kind: 'COLLSCAN', direction: req.natural ?? 1 }];
  const predicates = extractPredicates(req.filter);
  if (req.hint !== undefined && req.hint !== null) {
    if (isPlainObject(req.hint) && '$natural' in req.hint) {
      return [{ kind: 'COLLSCAN', direction: Number(req.hint.$natural) < 0 ? -1 : 1 }];
    }
    const index = findHintedIndex(coll.indexes, req.hint);
    if (!index) throw new CommandError(ErrorCode.BadValue, 'error processing query: planner returned error :: caused by :: hint provided does not correspond to an existing index');
    return [indexPlan(index, predicates, req.sort, true)!];
  }
  if (req.sort.length === 0) {
    const idKey = idHackKey(req.filter);
    if (idKey !== undefined) return [{ kind: 'IDHACK', idKey }];
  }
  const plans: AccessPlan[] = [];
  for (const index of coll.indexes) {
    const p = indexPlan(index, predicates, req.sort, false);
    if (p) plans.push(p);
  }
  const or = orPlan(coll.indexes, req.filter);
  if (or) plans.push(or);
  if (plans.length === 0) plans.push({ kind: 'COLLSCAN', direction: 1 });
  return plans;
}

function* indexCandidates(plan: IxScanPlan | OrPlan | IdHackPlan, stats: ExecStats, seen: Set<string>): Generator<string> {
  if (plan.kind === 'IDHACK') {
    stats.keysExamined++;
    seen.add(plan.idKey);
    yield plan.idKey;
    return;
  }
  const scans = plan.kind === 'OR' ? plan.branches : [plan];
  for (const scan of scans) {
    const ranges = scan.direction === 1 ? scan.ranges : [...scan.ranges].reverse();
    for (const range of ranges) {
      for (const entry of scan.index.tree.range(range.start, range.end, scan.direction === -1)) {
        stats.keysExamined++;
        if (seen.has(entry.id)) continue;
        seen.add(entry.id);
        yield entry.id;
      }
    }
  }
}

/**
 * One step per examined candidate: yields the document when it matches,
 * null when it does not.
 */
function* steps(plan: AccessPlan, req: QueryRequest, stats: ExecStats): Generator<Document | null> {
  const { source, matcher } = req;
  const checkDeadline = interruptCheck(req);
  if (plan.kind === 'COLLSCAN') {
    const docs = plan.direction === 1 ? source.scan() : [...source.scan()].reverse();
    for (const doc of docs) {
      stats.docsExamined++;
      checkDeadline();
      yield !matcher || matcher(doc) ? doc : null;
    }
    return;
  }
  const seen = new Set<string>();
  const visit = function* (idKey: string): Generator<Document | null> {
    const doc = source.get(idKey);
    if (!doc) return;
    stats.docsExamined++;
    checkDeadline();
    yield !matcher || matcher(doc) ? doc : null;
  };
  for (const idKey of indexCandidates(plan, stats, seen)) yield* visit(idKey);
  // A transaction's own and snapshot-only versions are not in the committed indexes.
  for (const idKey of source.overlay) {
    if (seen.has(idKey)) continue;
    seen.add(idKey);
    yield* visit(idKey);
  }
}

function providesOrder(plan: AccessPlan, req: QueryRequest): boolean {
  if (req.sort.length === 0) return true;
  return plan.kind === 'IXSCAN' && plan.providesSort && req.source.overlay.size === 0;
}

interface TrialState {
  plan: AccessPlan;
  iter: Generator<Document | null>;
  stats: ExecStats;
  works: number;
  advanced: number;
  matchedBlocked: number;
  eof: boolean;
}

const TRIAL_MAX_RESULTS = 101;

/** mongod-style multi-planning: round-robin until one plan fills a batch or finishes. */
function choosePlan(plans: AccessPlan[], req: QueryRequest): { winner: AccessPlan; rejected: AccessPlan[] } {
  if (plans.length === 1) return { winner: plans[0]!, rejected: [] };
  // The committed size is close enough for the trial budget, and free to read.
  const size = req.source.collection?.docs.size ?? 0;
  const maxWorks = Math.max(10_000, Math.floor(0.3 * size));
  const target = req.limit > 0 ? Math.min(req.skip + req.limit, TRIAL_MAX_RESULTS) : TRIAL_MAX_RESULTS;
  const states: TrialState[] = plans.map((plan) => {
    const stats = { keysExamined: 0, docsExamined: 0 };
    return { plan, iter: steps(plan, req, stats), stats, works: 0, advanced: 0, matchedBlocked: 0, eof: false };
  });
  let done = false;
  for (let round = 0; round < maxWorks && !done; round++) {
    for (const s of states) {
      if (s.eof) continue;
      const r = s.iter.next();
      s.works++;
      if (r.done) {
        s.eof = true;
        // A blocking sort only produces its results once its input is exhausted.
        if (!providesOrder(s.plan, req)) s.advanced = s.matchedBlocked;
        done = true;
        continue;
      }
      if (r.value) {
        if (providesOrder(s.plan, req)) s.advanced++;
        else s.matchedBlocked++;
      }
      if (s.advanced >= target) done = true;
    }
  }
  let best = states[0]!;
  let bestScore = -1;
  for (const s of states) {
    const works = Math.max(s.works, 1);
    const epsilon = Math.min(1 / (10 * works), 1e-4);
    const score = 1 + s.advanced / works + (s.eof ? 1 : 0) + (providesOrder(s.plan, req) ? epsilon : 0);
    if (score > bestScore) {
      best = s;
      bestScore = score;
    }
  }
  for (const s of states) s.iter.return(undefined);
  return { winner: best.plan, rejected: states.filter((s) => s !== best).map((s) => s.plan) };
}

export function runQuery(req: QueryRequest): QueryOutcome {
  const started = performance.now();
  const { winner, rejected } = choosePlan(enumeratePlans(req), req);
  const stats: ExecStats = { keysExamined: 0, docsExamined: 0 };
  const ordered = providesOrder(winner, req);
  const docs: Document[] = [];
  let matched = 0;
  if (ordered) {
    const want = req.limit > 0 ? req.skip + req.limit : Infinity;
    for (const doc of steps(winner, req, stats)) {
      if (!doc) continue;
      matched++;
      if (matched > req.skip) docs.push(doc);
      if (matched >= want) break;
    }
  } else {
    const all: Document[] = [];
    for (const doc of steps(winner, req, stats)) if (doc) all.push(doc);
    matched = all.length;
    const sorted = req.limit > 0 ? topK(all, req.sort, req.skip + req.limit) : sortDocuments(all, req.sort);
    docs.push(...sorted.slice(req.skip, req.limit > 0 ? req.skip + req.limit : undefined));
  }
  return {
    docs,
    plan: winner,
    rejected,
    stats,
    matched,
    blockingSort: !ordered,
    millis: Math.round(performance.now() - started),
  };
}

/** The index bounds of a scan as explain prints them. */
export function explainIndexBounds(plan: IxScanPlan): Document {
  const out: Document = {};
  plan.index.fields.forEach((f, i) => {
    out[f.path] = displayIntervals(plan.bounds[i]!, f.direction, plan.direction);
  });
  return out;
}
