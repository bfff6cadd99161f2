/**
 * Index bounds: which top-level predicates of a filter an index can answer,
 * and the key ranges to scan for them.
 *
 * Bounds only need to be a superset of the matching documents: every
 * candidate an index scan yields is re-checked against the whole filter by
 * mingo. Where mongod's bounds are exact this module tries to be exact too,
 * and it renders them the way mongod's explain does.
 */
import type { Document } from 'bson';
import { Query } from 'mingo/query';
import { encodeValue, invert } from '../bson/keystring.js';
import { formatValue } from '../bson/format.js';
import { Rank, isPlainObject, rankOf } from '../bson/values.js';
import { prefixSuccessor } from '../storage/record-keys.js';
import type { Index } from '../storage/index.js';
import { mingoOptions } from './mingo-context.js';
import { setPath } from './paths.js';

/** One side of an interval: a key-space position and how explain prints it. */
interface Bound {
  /** Ascending key-space string; null is unbounded. */
  key: string | null;
  inclusive: boolean;
  text: string;
  /** Inclusiveness explain shows when it differs from the key-space semantics ("{}" after strings). */
  shownInclusive?: boolean;
}

export interface Interval {
  low: Bound;
  high: Bound;
}

/** A predicate on one path that index bounds can be built from. */
export interface PathPredicate {
  op: '$eq' | '$in' | '$gt' | '$gte' | '$lt' | '$lte' | '$regex';
  value: unknown;
  intervals: Interval[];
  /** The bounds select exactly the values the predicate matches (no residual filter needed). */
  exact: boolean;
  /** The predicate matches documents where the path is missing. */
  matchesMissing: boolean;
}

export type PathPredicates = Map<string, PathPredicate[]>;

const MIN_TEXT: Partial<Record<Rank, string>> = {
  [Rank.Number]: '-inf.0',
  [Rank.String]: '""',
  [Rank.Object]: '{}',
  [Rank.Array]: '[]',
  [Rank.BinData]: 'BinData(0, )',
  [Rank.ObjectId]: "ObjectId('000000000000000000000000')",
  [Rank.Bool]: 'false',
  [Rank.Date]: 'new Date(-9223372036854775808)',
  [Rank.Timestamp]: 'Timestamp(0, 0)',
  [Rank.Null]: 'null',
};

const MAX_TEXT: Partial<Record<Rank, { text: string; inclusive: boolean }>> = {
  [Rank.Number]: { text: 'inf.0', inclusive: true },
  [Rank.String]: { text: '{}', inclusive: false },
  [Rank.Object]: { text: '[]', inclusive: false },
  [Rank.Array]: { text: 'BinData(0, )', inclusive: false },
  [Rank.BinData]: { text: "ObjectId('000000000000000000000000')", inclusive: false },
  [Rank.ObjectId]: { text: "ObjectId('ffffffffffffffffffffffff')", inclusive: true },
  [Rank.Bool]: { text: 'true', inclusive: true },
  [Rank.Date]: { text: 'new Date(9223372036854775807)', inclusive: true },
  [Rank.Timestamp]: { text: 'Timestamp(4294967295, 4294967295)', inclusive: true },
  [Rank.Null]: { text: 'null', inclusive: true },
};

const rankChar = (r: Rank): string => String.fromCharCode(r);

function point(value: unknown): Interval {
  const key = encodeValue(value);
  const text = formatValue(value);
  return { low: { key, inclusive: true, text }, high: { key, inclusive: true, text } };
}

export const FULL_INTERVAL: Interval = {
  low: { key: null, inclusive: true, text: 'MinKey' },
  high: { key: null, inclusive: true, text: 'MaxKey' },
};

function bracketLow(rank: Rank): Bound {
  return { key: rankChar(rank), inclusive: true, text: MIN_TEXT[rank] ?? 'MinKey' };
}

function bracketHigh(rank: Rank): Bound {
  const t = MAX_TEXT[rank] ?? { text: 'MaxKey', inclusive: true };
  return { key: rankChar(rank), inclusive: true, text: t.text, shownInclusive: t.inclusive };
}

const REGEX_META = /[\\^$.|?*+()[\]{}]/;

function regexIntervals(re: RegExp): { intervals: Interval[]; exact: boolean } {
  const source = re.source;
  // An alternation anywhere can match without the prefix; i and m change what ^ and letters match.
  if (source.startsWith('^') && !source.includes('|') && !re.flags.includes('i') && !re.flags.includes('m')) {
    let prefix = '';
    for (const ch of source.slice(1)) {
      if (REGEX_META.test(ch)) {
        // A quantifier allowing zero repetitions makes the preceding character optional.
        if (ch === '?' || ch === '*' || ch === '{') prefix = prefix.slice(0, -1);
        break;
      }
      prefix += ch;
    }
    if (prefix.length > 0) {
      const key = encodeValue(prefix).slice(0, -2); // drop the string terminator: a prefix, not a value
      const next = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
      return {
        intervals: [
          {
            low: { key, inclusive: true, text: JSON.stringify(prefix) },
            high: { key, inclusive: true, text: JSON.stringify(next), shownInclusive: false },
          },
        ],
        exact: false,
      };
    }
  }
  return { intervals: [{ low: bracketLow(Rank.String), high: bracketHigh(Rank.String) }], exact: false };
}

function comparisonIntervals(op: '$gt' | '$gte' | '$lt' | '$lte', value: unknown): Interval[] | undefined {
  const rank = rankOf(value);
  if (rank === Rank.MinKey || rank === Rank.MaxKey) return [FULL_INTERVAL];
  if (rank === Rank.Null) return op === '$gte' || op === '$lte' ? [point(null)] : undefined;
  if (rank === Rank.Undefined) return undefined;
  const key = encodeValue(value);
  const text = formatValue(value);
  switch (op) {
    case '$gt':
      return [{ low: { key, inclusive: false, text }, high: bracketHigh(rank) }];
    case '$gte':
      return [{ low: { key, inclusive: true, text }, high: bracketHigh(rank) }];
    case '$lt':
      return [{ low: bracketLow(rank), high: { key, inclusive: false, text } }];
    case '$lte':
      return [{ low: bracketLow(rank), high: { key, inclusive: true, text } }];
  }
}

function isOperatorObject(v: unknown): v is Document {
  return isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith('$'));
}

function equalityPredicate(value: unknown): PathPredicate | undefined {
  if (value instanceof RegExp) {
    const { intervals, exact } = regexIntervals(value);
    return { op: '$regex', value, intervals, exact, matchesMissing: false };
  }
  // Equality to an array also matches arrays containing it; not indexed here.
  if (Array.isArray(value) || value === undefined) return undefined;
  return {
    op: '$eq',
    value,
    intervals: [point(value)],
    exact: value !== null && rankOf(value) !== Rank.Object,
    matchesMissing: value === null,
  };
}

function predicatesForOperators(expr: Document): PathPredicate[] {
  const out: PathPredicate[] = [];
  for (const [op, value] of Object.entries(expr)) {
    switch (op) {
      case '$eq': {
        const p = equalityPredicate(value);
        if (p && p.op === '$eq') out.push(p);
        break;
      }
      case '$in': {
        if (!Array.isArray(value) || value.some((v) => Array.isArray(v))) break;
        const intervals: Interval[] = [];
        let exact = true;
        for (const v of value) {
          if (v instanceof RegExp) {
            intervals.push(...regexIntervals(v).intervals);
            exact = false;
          } else {
            intervals.push(point(v));
            if (v === null || rankOf(v) === Rank.Object) exact = false;
          }
        }
        out.push({ op: '$in', value, intervals, exact, matchesMissing: value.some((v) => v === null) });
        break;
      }
      case '$gt':
      case '$gte':
      case '$lt':
      case '$lte': {
        const intervals = comparisonIntervals(op, value);
        if (intervals) {
          const rank = rankOf(value);
          out.push({
            op,
            value,
            intervals,
            exact: rank !== Rank.Null && rank !== Rank.Object && rank !== Rank.Array && rank !== Rank.MinKey && rank !== Rank.MaxKey,
            matchesMissing: rank === Rank.Null || rank === Rank.MinKey || rank === Rank.MaxKey,
          });
        }
        break;
      }
      case '$regex': {
        const re = value instanceof RegExp ? value : typeof value === 'string' ? safeRegExp(value, String(expr.$options ?? '')) : undefined;
        if (re) out.push({ op: '$regex', value: re, ...regexIntervals(re), matchesMissing: false });
        break;
      }
      default:
        break;
    }
  }
  return out;
}

function safeRegExp(source: string, flags: string): RegExp | undefined {
  try {
    return new RegExp(source, flags.replace(/[^imsu]/g, ''));
  } catch {
    return undefined;
  }
}

/** Indexable predicates of the filter's top-level conjunction (including nested $and). */
export function extractPredicates(filter: Document): PathPredicates {
  const out: PathPredicates = new Map();
  const add = (path: string, p: PathPredicate): void => {
    const list = out.get(path) ?? [];
    list.push(p);
    out.set(path, list);
  };
  const visit = (doc: Document): void => {
    for (const [key, value] of Object.entries(doc)) {
      if (key === '$and' && Array.isArray(value)) {
        for (const sub of value) if (isPlainObject(sub)) visit(sub);
        continue;
      }
      if (key.startsWith('$')) continue;
      if (isOperatorObject(value)) {
        for (const p of predicatesForOperators(value)) add(key, p);
      } else {
        const p = equalityPredicate(value);
        if (p) add(key, p);
      }
    }
  };
  visit(filter);
  return out;
}

function startKey(i: Interval): string | null {
  if (i.low.key === null) return null;
  return i.low.inclusive ? i.low.key : prefixSuccessor(i.low.key);
}

function endKey(i: Interval): string | null {
  if (i.high.key === null) return null;
  return i.high.inclusive ? prefixSuccessor(i.high.key) : i.high.key;
}

function cmpStart(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}

function cmpEnd(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}

function intersectIntervals(a: Interval[], b: Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const x of a) {
    for (const y of b) {
      const low = cmpStart(startKey(x), startKey(y)) >= 0 ? x.low : y.low;
      const high = cmpEnd(endKey(x), endKey(y)) <= 0 ? x.high : y.high;
      const candidate = { low, high };
      const s = startKey(candidate);
      const e = endKey(candidate);
      if (s === null || e === null || s < e) out.push(candidate);
    }
  }
  return normalizeIntervals(out);
}

/** Sorted, with duplicates and overlaps merged. */
function normalizeIntervals(list: Interval[]): Interval[] {
  const sorted = [...list].sort((x, y) => cmpStart(startKey(x), startKey(y)) || cmpEnd(endKey(x), endKey(y)));
  const out: Interval[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last) {
      const lastEnd = endKey(last);
      const s = startKey(i);
      if (lastEnd === null || (s !== null && s < lastEnd)) {
        if (cmpEnd(endKey(i), lastEnd) > 0) out[out.length - 1] = { low: last.low, high: i.high };
        continue;
      }
    }
    out.push(i);
  }
  return out;
}

export interface FieldBounds {
  intervals: Interval[];
  /** No predicate on this field. */
  unconstrained: boolean;
  /** Predicates on this field that the bounds fully answer. */
  exactPredicates: PathPredicate[];
  /** Predicates on this field left for the filter. */
  inexact: boolean;
}

/**
 * Bounds of one index field. On a multikey path two range predicates cannot
 * be intersected (different array elements may satisfy each), so only the
 * first is used, as mongod does.
 */
export function fieldBounds(predicates: PathPredicate[] | undefined, multikey: boolean): FieldBounds {
  if (!predicates || predicates.length === 0) {
    return { intervals: [FULL_INTERVAL], unconstrained: true, exactPredicates: [], inexact: false };
  }
  if (multikey) {
    const first = predicates[0]!;
    return {
      intervals: normalizeIntervals(first.intervals),
      unconstrained: false,
      exactPredicates: [],
      inexact: true,
    };
  }
  let intervals = normalizeIntervals(predicates[0]!.intervals);
  for (const p of predicates.slice(1)) intervals = intersectIntervals(intervals, p.intervals);
  const inexact = predicates.some((p) => !p.exact);
  return { intervals, unconstrained: false, exactPredicates: inexact ? [] : predicates, inexact };
}

export function isPointInterval(i: Interval): boolean {
  return i.low.key !== null && i.low.key === i.high.key && i.low.inclusive && i.high.inclusive && i.low.text === i.high.text;
}

/** A key-space range [start, end) over composite keys. */
export interface KeyRange {
  start: string | null;
  end: string | null;
}

/** Key-space [start, end) of an interval on a field with the given direction. */
function fieldRange(i: Interval, direction: 1 | -1): KeyRange {
  const s = startKey(i);
  const e = endKey(i);
  if (direction === 1) return { start: s, end: e };
  // Complementing characters reverses order: keys >= s become keys < succ(inv(s)).
  return {
    start: e === null ? null : prefixSuccessor(invert(e)),
    end: s === null ? null : prefixSuccessor(invert(s)),
  };
}

const MAX_COMPOUND_RANGES = 512;

/**
 * Composite key ranges: a cartesian product of point intervals on leading
 * fields, extended by the intervals of the first non-point field.
 */
export function compositeRanges(index: Index, bounds: FieldBounds[]): KeyRange[] {
  let prefixes: string[] = [''];
  for (let f = 0; f < bounds.length; f++) {
    const b = bounds[f]!;
    const direction = index.fields[f]!.direction;
    if (b.unconstrained) break;
    const allPoints = b.intervals.every(isPointInterval);
    if (allPoints && prefixes.length * b.intervals.length <= MAX_COMPOUND_RANGES && f < bounds.length - 1) {
      const next: string[] = [];
      for (const p of prefixes) {
        for (const i of b.intervals) {
          const enc = i.low.key!;
          next.push(p + (direction === 1 ? enc : invert(enc)));
        }
      }
      prefixes = next;
      continue;
    }
    const out: KeyRange[] = [];
    for (const p of prefixes) {
      for (const i of b.intervals) {
        const r = fieldRange(i, direction);
        out.push({
          start: r.start === null ? (p === '' ? null : p) : p + r.start,
          end: r.end === null ? (p === '' ? null : prefixSuccessor(p)) : p + r.end,
        });
      }
    }
    return sortRanges(out);
  }
  return sortRanges(
    prefixes.map((p) => (p === '' ? { start: null, end: null } : { start: p, end: prefixSuccessor(p) })),
  );
}

function sortRanges(ranges: KeyRange[]): KeyRange[] {
  return ranges.sort((a, b) => cmpStart(a.start, b.start));
}

/** Interval list of one field as explain prints it, in scan order. */
export function displayIntervals(b: FieldBounds, direction: 1 | -1, scanDirection: 1 | -1): string[] {
  const reversed = direction * scanDirection === -1;
  const list = b.intervals.map((i) => {
    const lowInclusive = i.low.key === null || (i.low.shownInclusive ?? i.low.inclusive);
    const highInclusive = i.high.key === null || (i.high.shownInclusive ?? i.high.inclusive);
    if (!reversed) return `${lowInclusive ? '[' : '('}${i.low.text}, ${i.high.text}${highInclusive ? ']' : ')'}`;
    return `${highInclusive ? '[' : '('}${i.high.text}, ${i.low.text}${lowInclusive ? ']' : ')'}`;
  });
  return reversed ? list.reverse() : list;
}

/**
 * Whether every document matching the query also matches the index's
 * partialFilterExpression, judged conservatively clause by clause.
 */
export function queryImpliesPartialFilter(predicates: PathPredicates, partial: Document): boolean {
  const clauses: Array<[string, unknown]> = [];
  const collect = (doc: Document): boolean => {
    for (const [k, v] of Object.entries(doc)) {
      if (k === '$and' && Array.isArray(v)) {
        for (const sub of v) if (!isPlainObject(sub) || !collect(sub)) return false;
      } else if (k.startsWith('$')) {
        return false;
      } else {
        clauses.push([k, v]);
      }
    }
    return true;
  };
  if (!collect(partial)) return false;
  return clauses.every(([path, cond]) => clauseImplied(predicates.get(path) ?? [], path, cond));
}

function clauseImplied(preds: PathPredicate[], path: string, cond: unknown): boolean {
  if (preds.length === 0) return false;
  const condQuery = new Query({ [path]: cond }, mingoOptions());
  const satisfies = (value: unknown): boolean => {
    const doc: Document = {};
    setPath(doc, path, value);
    return condQuery.test(doc);
  };
  if (isPlainObject(cond) && Object.keys(cond).length === 1 && cond.$exists === true) {
    return preds.some((p) => !p.matchesMissing && p.op !== '$regex');
  }
  for (const p of preds) {
    if (p.op === '$eq' && satisfies(p.value)) return true;
    if (p.op === '$in' && Array.isArray(p.value) && p.value.every((v) => !(v instanceof RegExp) && satisfies(v))) return true;
    if (isPlainObject(cond) && Object.keys(cond).length === 1 && p.op in cond) {
      // Same range operator: implied when the query's bound is at least as tight.
      const bound = cond[p.op];
      if (rankOf(bound) === rankOf(p.value)) {
        const c = encodeValue(p.value) < encodeValue(bound) ? -1 : encodeValue(p.value) > encodeValue(bound) ? 1 : 0;
        if ((p.op === '$gt' || p.op === '$gte') && (c > 0 || (c === 0 && (p.op === '$gt' || cond.$gte !== undefined)))) return true;
        if ((p.op === '$lt' || p.op === '$lte') && (c < 0 || (c === 0 && (p.op === '$lt' || cond.$lte !== undefined)))) return true;
      }
    }
  }
  return false;
}
