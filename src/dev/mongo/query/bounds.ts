/**
 * Index bounds: which top-level predicates of a filter an index can answer,
 * and the key ranges to scan for them.
 *
 * Bounds only need to be a superset of the matching documents: every
 * candidate an index scan yields is re-checked against the whole filter by
 * mingo. Where mongod's bounds are exact this module tries to be exact too,
 * and it renders them the way mongod's explain does.
 */
import { MaxKey, MinKey, type Document } from 'bson';
import { Query } from 'mingo/query';
import { encodedLength, encodeValue, invert } from '../bson/keystring.js';
import { formatValue } from '../bson/format.js';
import { Rank, isPlainObject, rankOf, toNumber } from '../bson/values.js';
import { prefixSuccessor } from '../storage/record-keys.js';
import { conjunctsOf, type Conjunct } from './conjuncts.js';
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
  /** A value at this position, for COUNT_SCAN's startKey/endKey in explain. */
  value: unknown;
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
  /** Position of the conjunct it came from (conjunctsOf order). */
  conjunct: number;
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
  return { low: { key, inclusive: true, text, value }, high: { key, inclusive: true, text, value } };
}

export const FULL_INTERVAL: Interval = {
  low: { key: null, inclusive: true, text: 'MinKey', value: new MinKey() },
  high: { key: null, inclusive: true, text: 'MaxKey', value: new MaxKey() },
};

/** Values at the ends of a type bracket, for COUNT_SCAN's startKey/endKey (explain only). */
const BRACKET_VALUES: Partial<Record<Rank, [unknown, unknown]>> = {
  [Rank.Number]: [-Infinity, Infinity],
  [Rank.String]: ['', {}],
  [Rank.Object]: [{}, []],
  [Rank.Bool]: [false, true],
  [Rank.Date]: [new Date(-8.64e15), new Date(8.64e15)],
  [Rank.Null]: [null, null],
};

/**
 * The low end of a type bracket. Numbers start at -Infinity, not at the
 * bracket's first key: NaN sorts below -Infinity and no range matches it,
 * which keeps number ranges exact (mongod's bounds are [-inf.0, ...) too).
 */
function bracketLow(rank: Rank): Bound {
  const value = BRACKET_VALUES[rank]?.[0] ?? new MinKey();
  if (rank === Rank.Number) return { key: encodeValue(-Infinity), inclusive: true, text: MIN_TEXT[rank]!, value };
  return { key: rankChar(rank), inclusive: true, text: MIN_TEXT[rank] ?? 'MinKey', value };
}

function bracketHigh(rank: Rank): Bound {
  const t = MAX_TEXT[rank] ?? { text: 'MaxKey', inclusive: true };
  const value = BRACKET_VALUES[rank]?.[1] ?? new MaxKey();
  return { key: rankChar(rank), inclusive: true, text: t.text, shownInclusive: t.inclusive, value };
}

const REGEX_META = /[\\^$.|?*+()[\]{}]/;
/** Characters a backslash makes literal (escapeRegexSource in the store escapes these). */
const ESCAPABLE = /[\\^$.|?*+()[\]{}/-]/;

/**
 * Bounds of a regular expression: tight for an anchored, case-sensitive
 * prefix (/^abc/ scans ["abc", "abd")), else the whole string bracket. Exact
 * when the expression is nothing but that prefix: then every string in the
 * range matches and no other does.
 */
function regexIntervals(re: RegExp): { intervals: Interval[]; exact: boolean } {
  const source = re.source;
  // An alternation anywhere can match without the prefix; i and m change what ^ and letters match.
  if (source.startsWith('^') && !source.includes('|') && !re.flags.includes('i') && !re.flags.includes('m')) {
    let prefix = '';
    let consumed = true;
    for (let i = 1; i < source.length; i++) {
      let ch = source[i]!;
      if (ch === '\\' && i + 1 < source.length && ESCAPABLE.test(source[i + 1]!)) {
        ch = source[++i]!;
      } else if (REGEX_META.test(ch)) {
        consumed = false;
        break;
      }
      // A quantifier allowing zero repetitions makes this character optional: the prefix ends before it.
      const next = source[i + 1];
      if (next === '?' || next === '*' || next === '{') {
        consumed = false;
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
            low: { key, inclusive: true, text: JSON.stringify(prefix), value: prefix },
            high: { key, inclusive: true, text: JSON.stringify(next), shownInclusive: false, value: next },
          },
        ],
        exact: consumed && /^[su]*$/.test(re.flags),
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
      return [{ low: { key, inclusive: false, text, value }, high: bracketHigh(rank) }];
    case '$gte':
      return [{ low: { key, inclusive: true, text, value }, high: bracketHigh(rank) }];
    case '$lt':
      return [{ low: bracketLow(rank), high: { key, inclusive: false, text, value } }];
    case '$lte':
      return [{ low: bracketLow(rank), high: { key, inclusive: true, text, value } }];
  }
}

type Indexable = Omit<PathPredicate, 'conjunct'>;

/** Whether bounds on a point of this value select exactly the documents equal to it. */
function exactPoint(v: unknown): boolean {
  return v !== null && v !== undefined && rankOf(v) !== Rank.Object;
}

function equalityPredicate(value: unknown): Indexable | undefined {
  // Equality to an array also matches arrays containing it; not indexed here.
  if (Array.isArray(value) || value === undefined || value instanceof RegExp) return undefined;
  return { op: '$eq', value, intervals: [point(value)], exact: exactPoint(value), matchesMissing: value === null };
}

/** The indexable predicate of one conjunct, if it has one. */
function predicateOf(op: string, value: unknown): Indexable | undefined {
  switch (op) {
    case '$eq':
      return equalityPredicate(value);
    case '$in': {
      if (!Array.isArray(value) || value.some((v) => Array.isArray(v))) return undefined;
      const intervals: Interval[] = [];
      let exact = true;
      for (const v of value) {
        if (v instanceof RegExp) {
          const r = regexIntervals(v);
          intervals.push(...r.intervals);
          exact &&= r.exact;
        } else {
          intervals.push(point(v));
          exact &&= exactPoint(v);
        }
      }
      return { op: '$in', value, intervals, exact, matchesMissing: value.some((v) => v === null) };
    }
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte': {
      const intervals = comparisonIntervals(op, value);
      if (!intervals) return undefined;
      const rank = rankOf(value);
      return {
        op,
        value,
        intervals,
        // NaN compares false with everything, but its bounds hold every number.
        exact: !(
          rank === Rank.Null ||
          rank === Rank.Object ||
          rank === Rank.Array ||
          rank === Rank.MinKey ||
          rank === Rank.MaxKey ||
          (rank === Rank.Number && Number.isNaN(toNumber(value)))
        ),
        matchesMissing: rank === Rank.Null || rank === Rank.MinKey || rank === Rank.MaxKey,
      };
    }
    case '$regex':
      // A $regex whose pattern and options make no valid expression fails in the filter, not here.
      return value instanceof RegExp ? { op: '$regex', value, ...regexIntervals(value), matchesMissing: false } : undefined;
    default:
      return undefined;
  }
}

/** A path with a numeric component ('a.0.b'): an array position or a field named "0", which keys and filters may resolve differently. */
const NUMERIC_COMPONENT = /(^|\.)\d+(\.|$)/;

/** Indexable predicates of the conjuncts, by path, each tagged with its conjunct's position. */
export function predicatesOf(conjuncts: readonly Conjunct[]): PathPredicates {
  const out: PathPredicates = new Map();
  conjuncts.forEach((c, i) => {
    if (c.path === undefined || c.op === undefined) return;
    const p = predicateOf(c.op, c.value);
    if (!p) return;
    // Bounds stay a superset there; only exactness (skipping the filter) is not claimed.
    if (p.exact && NUMERIC_COMPONENT.test(c.path)) p.exact = false;
    const list = out.get(c.path);
    if (list) list.push({ ...p, conjunct: i });
    else out.set(c.path, [{ ...p, conjunct: i }]);
  });
  return out;
}

/** Indexable predicates of the filter's top-level conjunction (including nested $and). */
export function extractPredicates(filter: Document): PathPredicates {
  return predicatesOf(conjunctsOf(filter));
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
  /**
   * Predicates on this field that the intervals answer exactly: a key inside
   * them satisfies the predicate, and every document satisfying it has such
   * a key. The others are left for the filter.
   */
  answered: PathPredicate[];
}

/**
 * Bounds of one index field. On a multikey path two range predicates cannot
 * be intersected (different array elements may satisfy each), so only the
 * first is used, as mongod does; on its own it is still exact ("some element
 * satisfies it" is what a scan of the element keys finds).
 */
export function fieldBounds(predicates: PathPredicate[] | undefined, multikey: boolean): FieldBounds {
  if (!predicates || predicates.length === 0) {
    return { intervals: [FULL_INTERVAL], unconstrained: true, answered: [] };
  }
  if (multikey) {
    const first = predicates[0]!;
    return { intervals: normalizeIntervals(first.intervals), unconstrained: false, answered: first.exact ? [first] : [] };
  }
  let intervals = normalizeIntervals(predicates[0]!.intervals);
  for (const p of predicates.slice(1)) intervals = intersectIntervals(intervals, p.intervals);
  // A key inside the intersection is inside each exact predicate's own intervals.
  return { intervals, unconstrained: false, answered: predicates.filter((p) => p.exact) };
}

export function isPointInterval(i: Interval): boolean {
  return i.low.key !== null && i.low.key === i.high.key && i.low.inclusive && i.high.inclusive && i.low.text === i.high.text;
}

/**
 * Whether a wildcard index can bound this predicate on one of its paths. It holds keys for leaves only: not for
 * missing fields (null and $exists:false match those), nor for whole arrays or non-empty documents (equality to
 * one, or a range over the document or array bracket, which mongod answers with subpath bounds, not done here).
 */
export function usableByWildcard(p: PathPredicate): boolean {
  if (p.matchesMissing) return false;
  const scalar = (v: unknown): boolean => {
    const rank = rankOf(v);
    if (rank === Rank.Null || rank === Rank.Undefined || rank === Rank.Array) return false;
    // An empty document is a leaf ({a: {}} is keyed as {}): equality to it can be bounded.
    return rank !== Rank.Object || (isPlainObject(v) && Object.keys(v).length === 0);
  };
  switch (p.op) {
    case '$eq':
      return scalar(p.value);
    case '$in':
      return Array.isArray(p.value) && p.value.every((v) => v instanceof RegExp || scalar(v));
    case '$regex':
      return true;
    default: {
      const rank = rankOf(p.value);
      return rank !== Rank.Object && rank !== Rank.Array && rank !== Rank.MinKey && rank !== Rank.MaxKey;
    }
  }
}

/** Bounds of the $_path field of a wildcard index expanded for one query path: that path alone. */
export function pathPointBounds(path: string): FieldBounds {
  return { intervals: [point(path)], unconstrained: false, answered: [] };
}

/**
 * $_path bounds of a scan of a compound wildcard index's regular prefix alone: the documents without a wildcard
 * leaf (keyed with MinKey) and every path, as mongod's [MinKey, MinKey], ["", {}).
 */
export function allPathsBounds(): FieldBounds {
  return {
    intervals: [point(new MinKey()), { low: bracketLow(Rank.String), high: bracketHigh(Rank.String) }],
    unconstrained: false,
    answered: [],
  };
}

/** What a scan needs to know of an index's keys: the direction of each field, in key order. */
export interface KeyLayout {
  readonly fields: ReadonlyArray<{ readonly direction: 1 | -1 }>;
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

/** A condition on one field of a compound key, checked on each key a scan reads. */
export interface KeyCheck {
  /** Position of the field in the index. */
  field: number;
  /** The field's intervals as ascending key-space ranges of its value. */
  ranges: KeyRange[];
}

export interface ScanBounds {
  /** Key ranges to read, in ascending key order. */
  ranges: KeyRange[];
  /** Bounds of the fields after the one the ranges end with, checked on every key read. */
  checks: KeyCheck[];
}

/**
 * What an index scan reads: a cartesian product of the point intervals of
 * leading fields, extended by the intervals of the first non-point field.
 * Bounds of later fields cannot narrow those ranges, so they become checks
 * on each key (as mongod's index bounds checker does): a key outside them is
 * skipped without fetching its document.
 */
export function scanBounds(index: KeyLayout, bounds: FieldBounds[]): ScanBounds {
  const checksAfter = (f: number): KeyCheck[] => {
    const out: KeyCheck[] = [];
    for (let g = f + 1; g < bounds.length; g++) {
      const b = bounds[g]!;
      if (!b.unconstrained) out.push({ field: g, ranges: b.intervals.map((i) => ({ start: startKey(i), end: endKey(i) })) });
    }
    return out;
  };
  let prefixes: string[] = [''];
  for (let f = 0; f < bounds.length; f++) {
    const b = bounds[f]!;
    const direction = index.fields[f]!.direction;
    if (b.unconstrained) {
      const ranges = prefixes.map((p) => (p === '' ? { start: null, end: null } : { start: p, end: prefixSuccessor(p) }));
      return { ranges: sortRanges(ranges), checks: checksAfter(f) };
    }
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
    return { ranges: sortRanges(out), checks: checksAfter(f) };
  }
  return { ranges: [{ start: null, end: null }], checks: [] };
}

/** The key ranges of scanBounds alone. */
export function compositeRanges(index: KeyLayout, bounds: FieldBounds[]): KeyRange[] {
  return scanBounds(index, bounds).ranges;
}

/**
 * Whether a compound key satisfies the checks; undefined when a field's
 * encoding cannot be read (never expected: the caller then falls back to
 * the filter).
 */
export function passesChecks(key: string, index: KeyLayout, checks: readonly KeyCheck[]): boolean | undefined {
  let pos = 0;
  let f = 0;
  for (const check of checks) {
    for (; f <= check.field; f++) {
      const descending = index.fields[f]!.direction === -1;
      const n = encodedLength(key, pos, descending);
      if (n < 0) return undefined;
      if (f === check.field) {
        const raw = key.slice(pos, pos + n);
        const value = descending ? invert(raw) : raw;
        let inside = false;
        for (const r of check.ranges) {
          if ((r.start === null || value >= r.start) && (r.end === null || value < r.end)) {
            inside = true;
            break;
          }
        }
        if (!inside) return false;
      }
      pos += n;
    }
  }
  return true;
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

/** A partial filter's clauses ([path, condition]), or null when it has a top-level operator this check does not follow. */
const partialClauses = new WeakMap<Document, Array<[string, unknown]> | null>();

function clausesOf(partial: Document): Array<[string, unknown]> | null {
  const known = partialClauses.get(partial);
  if (known !== undefined) return known;
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
  const out = collect(partial) ? clauses : null;
  partialClauses.set(partial, out);
  return out;
}

/**
 * Whether every document matching the query also matches the index's
 * partialFilterExpression, judged conservatively clause by clause.
 */
export function queryImpliesPartialFilter(predicates: PathPredicates, partial: Document): boolean {
  const clauses = clausesOf(partial);
  if (!clauses) return false;
  return clauses.every(([path, cond]) => clauseImplied(predicates.get(path) ?? [], path, cond));
}

/** A condition that is equality to a plain scalar ({ type: 'Patient' }, { deleted: false }). */
function isScalarCondition(cond: unknown): cond is string | number | boolean | Date {
  return typeof cond === 'string' || typeof cond === 'number' || typeof cond === 'boolean' || cond instanceof Date;
}

function clauseImplied(preds: PathPredicate[], path: string, cond: unknown): boolean {
  if (preds.length === 0) return false;
  if (isScalarCondition(cond)) {
    // Equality to a scalar is implied by equality to the same value (or an $in of only it): key strings decide,
    // without compiling a mingo query per index and query (the planner asks this of every partial index).
    const key = encodeValue(cond);
    return preds.some(
      (p) =>
        (p.op === '$eq' && p.intervals[0]!.low.key === key) ||
        (p.op === '$in' &&
          Array.isArray(p.value) &&
          p.value.length > 0 &&
          p.value.every((v) => !(v instanceof RegExp) && encodeValue(v) === key)),
    );
  }
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
