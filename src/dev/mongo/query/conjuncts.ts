/**
 * A filter as a list of conjuncts: the predicates that must all hold, with
 * nested `$and`s flattened and an operator object split into one predicate
 * per operator ({a: {$gte: 1, $lt: 5}} is {a: {$gte: 1}} and {a: {$lt: 5}},
 * which is also how mongod parses it).
 *
 * One decomposition serves the index bounds (which conjuncts an index scan
 * answers), the execution (a scan that answers every conjunct needs no
 * filter on the fetched documents, or no documents at all for a count) and
 * explain (parsedQuery, the residual filter of a FETCH).
 */
import type { Document } from 'bson';
import { isPlainObject } from '../bson/values.js';

export interface Conjunct {
  /** Field path; undefined for a top-level operator ($or, $nor, $expr, ...). */
  path?: string;
  /** The operator: '$eq' for a literal value, '$regex' for a literal regular expression. */
  op?: string;
  /** The operand ($regex: a RegExp with $options folded in, when they make a valid one). */
  value: unknown;
  /** The conjunct on its own, in mongod's parsed form ({ a: { $eq: 1 } }). */
  node: Document;
}

export function isOperatorObject(v: unknown): v is Document {
  if (!isPlainObject(v)) return false;
  let any = false;
  for (const k in v) {
    if (k.charCodeAt(0) !== 36 /* $ */) return false;
    any = true;
  }
  return any;
}

function regexOf(source: unknown, options: unknown): unknown {
  if (source instanceof RegExp) return source;
  if (typeof source !== 'string') return source;
  try {
    return new RegExp(source, String(options ?? '').replace(/[^imsu]/g, ''));
  } catch {
    return source;
  }
}

function collect(filter: Document, out: Conjunct[]): void {
  for (const key of Object.keys(filter)) {
    const value = filter[key];
    if (key === '$and' && Array.isArray(value)) {
      for (const sub of value) {
        if (isPlainObject(sub)) collect(sub, out);
        else out.push({ value: sub, node: { $and: [sub] } });
      }
    } else if (key.startsWith('$')) {
      out.push({ op: key, value, node: { [key]: value } });
    } else if (isOperatorObject(value)) {
      for (const op of Object.keys(value)) {
        if (op === '$options' && '$regex' in value) continue;
        const operand = op === '$regex' ? regexOf(value.$regex, value.$options) : value[op];
        out.push({ path: key, op, value: operand, node: { [key]: { [op]: operand } } });
      }
    } else if (value instanceof RegExp) {
      out.push({ path: key, op: '$regex', value, node: { [key]: { $regex: value } } });
    } else {
      out.push({ path: key, op: '$eq', value, node: { [key]: { $eq: value } } });
    }
  }
}

/** The conjuncts of a filter, in the order written. */
export function conjunctsOf(filter: Document): Conjunct[] {
  const out: Conjunct[] = [];
  collect(filter, out);
  return out;
}

/** The conjuncts as one filter: none is undefined, one is itself, several are an $and. */
export function combineConjuncts(list: readonly Conjunct[]): Document | undefined {
  if (list.length === 0) return undefined;
  if (list.length === 1) return list[0]!.node;
  return { $and: list.map((c) => c.node) };
}
