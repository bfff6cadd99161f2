/**
 * The mingo operator context used for every query, projection, update and
 * aggregation.
 *
 * mingo compares values with its own JS-centric rules: Long and Decimal128
 * order by their decimal strings, a Long never equals the number it holds,
 * `$type` knows neither 'objectId' nor the numeric widths, and `$sort` puts
 * types in a JS order. mingo's documented extension point (a Context with
 * operators) is used to swap in BSON-aware versions of exactly those
 * primitives: the comparison operators ($eq, $ne, $gt, $gte, $lt, $lte, $in,
 * $nin), $type, $mod (mingo matches null % n) and the $sort stage.
 * $project, $bucket and $bucketAuto are wrapped to emit fields in mongod's
 * order (_id first), and $push / $addToSet skip missing fields as mongod
 * does. Everything else (logical operators, $elemMatch, $regex, $exists,
 * $all, expressions, the other accumulators, update operators, projection)
 * is mingo's own.
 */
import { Context } from 'mingo/core';
import { Query } from 'mingo/query';
import { Lazy, type Iterator as LazyIterator } from 'mingo/lazy';
import * as accumulatorOperators from 'mingo/operators/accumulator';
import * as expressionOperators from 'mingo/operators/expression';
import * as pipelineOperators from 'mingo/operators/pipeline';
import * as projectionOperators from 'mingo/operators/projection';
import * as queryOperators from 'mingo/operators/query';
import * as windowOperators from 'mingo/operators/window';
import type { CollectionResolver, Options } from 'mingo/types';
import { resolve, unique } from 'mingo/util';
import type { Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { BSON_TYPE_NUMBERS, Rank, bsonTypeName, rankOf, toNumber, type BsonTypeName } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { parseSort, sortDocuments } from './sort.js';

type Predicate = (obj: unknown) => boolean;
type QueryOperatorFn = (selector: string, value: unknown, options: Options) => Predicate;
type OperatorTable = Record<`$${string}`, never>;

function table(ns: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ns)) if (k.startsWith('$')) out[k] = v;
  return out;
}

function depthOf(selector: string): number {
  let depth = 0;
  for (let i = 0; i < selector.length; i++) if (selector.charCodeAt(i) === 46) depth++;
  return depth;
}

const RESOLVE_OPTIONS = { unwrapArray: true } as const;

/**
 * The values a predicate is tried against: the resolved value and, for an
 * array, its elements (and the elements of arrays nested by traversing
 * arrays of sub-documents, one level per path component).
 */
function expand(lhs: unknown, depth: number, includeWholeArray: boolean): unknown[] {
  if (!Array.isArray(lhs)) return [lhs];
  const out: unknown[] = includeWholeArray ? [lhs] : [];
  let level: unknown[] = lhs;
  for (let d = 0; d <= depth; d++) {
    const next: unknown[] = [];
    for (const el of level) {
      out.push(el);
      if (d < depth && Array.isArray(el)) next.push(...el);
    }
    if (next.length === 0) break;
    level = next;
  }
  return out;
}

function isNullish(v: unknown): boolean {
  return v === null || v === undefined;
}

function sameValue(candidate: unknown, target: unknown, targetKey: string): boolean {
  // Fast paths for the common scalar cases avoid building key strings.
  if (typeof target === 'string') {
    if (typeof candidate === 'string') return candidate === target;
    if (rankOf(candidate) !== Rank.String) return false;
  } else if (typeof target === 'number') {
    if (typeof candidate === 'number') return candidate === target || (Number.isNaN(candidate) && Number.isNaN(target));
    if (rankOf(candidate) !== Rank.Number) return false;
  } else if (typeof target === 'boolean') {
    return candidate === target;
  }
  return encodeValue(candidate) === targetKey;
}

const $eq: QueryOperatorFn = (selector, value) => {
  const depth = depthOf(selector);
  const matchNull = isNullish(value);
  const key = encodeValue(value);
  return (obj) => {
    const lhs = resolve(obj as Document, selector, RESOLVE_OPTIONS);
    if (lhs === undefined) return matchNull;
    for (const c of expand(lhs, depth, true)) {
      if (isNullish(c)) {
        if (matchNull) return true;
        continue;
      }
      if (sameValue(c, value, key)) return true;
    }
    return false;
  };
};

const $ne: QueryOperatorFn = (selector, value, options) => {
  const eq = $eq(selector, value, options);
  return (obj) => !eq(obj);
};

function inPredicate(selector: string, value: unknown, op: string): Predicate {
  if (!Array.isArray(value)) throw new CommandError(ErrorCode.BadValue, `${op} needs an array`);
  const depth = depthOf(selector);
  const keys = new Set<string>();
  const patterns: RegExp[] = [];
  let matchNull = false;
  for (const v of value) {
    if (v instanceof RegExp) patterns.push(v);
    else if (isNullish(v)) matchNull = true;
    else keys.add(encodeValue(v));
  }
  return (obj) => {
    const lhs = resolve(obj as Document, selector, RESOLVE_OPTIONS);
    if (lhs === undefined) return matchNull;
    for (const c of expand(lhs, depth, true)) {
      if (isNullish(c)) {
        if (matchNull) return true;
        continue;
      }
      if (typeof c === 'string' && patterns.length) {
        for (const re of patterns) {
          re.lastIndex = 0;
          if (re.test(c)) return true;
        }
      }
      if (keys.size && keys.has(encodeValue(c))) return true;
    }
    return false;
  };
}

const $in: QueryOperatorFn = (selector, value) => inPredicate(selector, value, '$in');
const $nin: QueryOperatorFn = (selector, value) => {
  const pred = inPredicate(selector, value, '$nin');
  return (obj) => !pred(obj);
};

type Comparison = (order: number) => boolean;

/** mongod orders NaN below every other number and equal to itself. */
function compareNumbers(a: number, b: number): number {
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : -1;
  if (Number.isNaN(b)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function comparisonOperator(test: Comparison, includesEqual: boolean): QueryOperatorFn {
  return (selector, value) => {
    const depth = depthOf(selector);
    const rank = rankOf(value);
    const key = encodeValue(value);
    // MinKey/MaxKey bounds compare across every type; other bounds only within their type bracket.
    const crossType = rank === Rank.MinKey || rank === Rank.MaxKey;
    const wholeArray = Array.isArray(value);
    return (obj) => {
      const lhs = resolve(obj as Document, selector, RESOLVE_OPTIONS);
      if (lhs === undefined) return includesEqual && rank === Rank.Null;
      for (const c of expand(lhs, depth, wholeArray)) {
        if (typeof c === 'number' && typeof value === 'number') {
          if (test(compareNumbers(c, value))) return true;
          continue;
        }
        if (typeof c === 'string' && typeof value === 'string') {
          if (test(c < value ? -1 : c > value ? 1 : 0)) return true;
          continue;
        }
        if (!crossType && rankOf(c) !== rank) continue;
        const k = encodeValue(c);
        if (test(k < key ? -1 : k > key ? 1 : 0)) return true;
      }
      return false;
    };
  };
}

const $gt = comparisonOperator((o) => o > 0, false);
const $gte = comparisonOperator((o) => o >= 0, true);
const $lt = comparisonOperator((o) => o < 0, false);
const $lte = comparisonOperator((o) => o <= 0, true);

const TYPE_ALIASES: Record<string, BsonTypeName[]> = {
  number: ['double', 'int', 'long', 'decimal'],
};

function typeNamesFor(spec: unknown): Set<BsonTypeName> {
  const names = new Set<BsonTypeName>();
  for (const item of Array.isArray(spec) ? spec : [spec]) {
    if (typeof item === 'number') {
      const found = (Object.entries(BSON_TYPE_NUMBERS) as Array<[BsonTypeName, number]>).find(([, n]) => n === item);
      if (!found) throw new CommandError(ErrorCode.BadValue, `Invalid numerical type code: ${item}`);
      names.add(found[0]);
    } else if (typeof item === 'string') {
      const alias = TYPE_ALIASES[item];
      if (alias) alias.forEach((n) => names.add(n));
      else if (item in BSON_TYPE_NUMBERS) names.add(item as BsonTypeName);
      else throw new CommandError(ErrorCode.BadValue, `Unknown type name alias: ${item}`);
    } else {
      throw new CommandError(ErrorCode.TypeMismatch, 'type must be represented as a number or a string');
    }
  }
  return names;
}

const $type: QueryOperatorFn = (selector, value) => {
  const names = typeNamesFor(value);
  return (obj) => {
    const lhs = resolve(obj as Document, selector, RESOLVE_OPTIONS);
    if (lhs === undefined) return false;
    if (Array.isArray(lhs)) {
      if (names.has('array')) return true;
      return lhs.some((el) => names.has(bsonTypeName(el)));
    }
    return names.has(bsonTypeName(lhs));
  };
};

/** mongod's $mod: numbers only (mingo lets null % n pass), truncated toward zero. */
const $mod: QueryOperatorFn = (selector, value) => {
  if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => rankOf(v) === Rank.Number)) {
    throw new CommandError(ErrorCode.BadValue, 'malformed mod, needs to be an array of two numbers');
  }
  const divisor = Math.trunc(toNumber(value[0]));
  const remainder = Math.trunc(toNumber(value[1]));
  if (divisor === 0) throw new CommandError(ErrorCode.BadValue, 'divisor cannot be 0');
  const depth = depthOf(selector);
  return (obj) => {
    const lhs = resolve(obj as Document, selector, RESOLVE_OPTIONS);
    return expand(lhs, depth, false).some((c) => rankOf(c) === Rank.Number && Math.trunc(toNumber(c)) % divisor === remainder);
  };
};

function $sort(collection: LazyIterator, expr: unknown): LazyIterator {
  const fields = parseSort(expr);
  if (fields.length === 0) throw new CommandError(ErrorCode.Location16755 as number, '$sort stage must have at least one sort key');
  return collection.transform((items: Document[]) => Lazy(sortDocuments(items, fields)));
}

type PipelineFn = (collection: LazyIterator, expr: unknown, options: Options) => LazyIterator;

function idFirst(doc: Document): Document {
  if (!('_id' in doc) || Object.keys(doc)[0] === '_id') return doc;
  const { _id, ...rest } = doc;
  return { _id, ...rest };
}

/**
 * $project with mongod's field order: included fields keep the input
 * document's order (mingo lists them in projection order, _id last), and
 * computed fields follow.
 */
function projectInDocumentOrder(original: PipelineFn): PipelineFn {
  return (collection, expr, options) => {
    const inputs: Array<Document | undefined> = [];
    const tapped = collection.map((doc: Document) => {
      inputs.push(doc);
      return doc;
    });
    return original(tapped, expr, options).map((out: Document, i: number) => {
      const source = inputs[i];
      inputs[i] = undefined;
      if (!source) return idFirst(out);
      const ordered: Document = {};
      for (const k of Object.keys(source)) if (k in out) ordered[k] = out[k];
      for (const k of Object.keys(out)) if (!(k in ordered)) ordered[k] = out[k];
      return ordered;
    });
  };
}

/** Stages whose output mongod starts with _id. */
function withIdFirst(original: PipelineFn): PipelineFn {
  return (collection, expr, options) => original(collection, expr, options).map((doc: Document) => idFirst(doc));
}

const mingoPipeline = table(pipelineOperators) as Record<string, PipelineFn>;

const PIPELINE_OVERRIDES = {
  $sort,
  $project: projectInDocumentOrder(mingoPipeline.$project!),
  $bucket: withIdFirst(mingoPipeline.$bucket!),
  $bucketAuto: withIdFirst(mingoPipeline.$bucketAuto!),
};

type AccumulatorFn = (collection: Document[], expr: unknown, options: Options) => unknown;

const mingoAccumulators = table(accumulatorOperators) as Record<string, AccumulatorFn>;

/** mongod's $push leaves out documents where a field path is missing; mingo pushes null for them. */
const $push: AccumulatorFn = (collection, expr, options) => {
  if (typeof expr === 'string' && expr.startsWith('$') && !expr.startsWith('$$')) {
    const path = expr.slice(1);
    collection = collection.filter((doc) => resolve(doc, path) !== undefined);
  }
  return mingoAccumulators.$push!(collection, expr, options);
};

const $addToSet: AccumulatorFn = (collection, expr, options) => unique($push(collection, expr, options) as unknown[]);

/** Set while sharedComputeOptions() compiles its probe: receives the options mingo hands to query operators. */
let optionsProbe: ((options: Options) => void) | undefined;

const $eqProbed: QueryOperatorFn = (selector, value, options) => {
  optionsProbe?.(options);
  return $eq(selector, value, options);
};

const QUERY_OVERRIDES = { $eq: $eqProbed, $ne, $gt, $gte, $lt, $lte, $in, $nin, $type, $mod };

export const BSON_CONTEXT: Context = Context.init({
  accumulator: { ...mingoAccumulators, $push, $addToSet } as unknown as OperatorTable,
  expression: table(expressionOperators) as OperatorTable,
  pipeline: { ...mingoPipeline, ...PIPELINE_OVERRIDES } as unknown as OperatorTable,
  projection: table(projectionOperators) as OperatorTable,
  query: { ...table(queryOperators), ...QUERY_OVERRIDES } as unknown as OperatorTable,
  window: table(windowOperators) as OperatorTable,
});

export interface MingoOptionsInput {
  collectionResolver?: CollectionResolver;
  variables?: Document;
}

/**
 * mingo's compiled form of mingoOptions(): passed to `new Query`, it is used
 * as it is, where plain options make every Query copy every operator table
 * of the context first (half the cost of compiling a small filter). mingo
 * does not export that class, so one is taken from the options its query
 * operators receive, and checked to work; undefined if it does not (plain
 * options are then used).
 */
export function sharedComputeOptions(): Partial<Options> | undefined {
  const probe = (): Options | undefined => {
    let seen: Options | undefined;
    optionsProbe = (options) => {
      seen ??= options;
    };
    try {
      return new Query({ probe: { $eq: 1 } }, mingoOptions()).test({ probe: 1 }) ? seen : undefined;
    } finally {
      optionsProbe = undefined;
    }
  };
  const captured = probe();
  if (!captured) return undefined;
  // Compiling with the captured options must still reach this context's operators ($eq above) and match.
  let reached = false;
  optionsProbe = () => {
    reached = true;
  };
  try {
    const query = new Query({ a: { $eq: 1 }, $and: [{ b: { $in: [2] } }] }, captured);
    return reached && query.test({ a: 1, b: [2] }) && !query.test({ a: 2, b: 2 }) ? captured : undefined;
  } catch {
    return undefined;
  } finally {
    optionsProbe = undefined;
  }
}

export function mingoOptions(input: MingoOptionsInput = {}): Partial<Options> {
  const out: { -readonly [K in keyof Options]?: Options[K] } = {
    context: BSON_CONTEXT,
    idKey: '_id',
    useStrictMode: true,
    // mongod's $where takes JavaScript source; mingo only takes functions, so it is off.
    scriptEnabled: false,
  };
  if (input.collectionResolver) out.collectionResolver = input.collectionResolver;
  if (input.variables) out.variables = input.variables;
  return out;
}
