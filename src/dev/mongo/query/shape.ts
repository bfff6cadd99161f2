/**
 * Query shapes: a filter's structure with its values abstracted, the key
 * the plan cache files plans under (mongod's "plan cache query shape").
 *
 * Two queries of one shape have the same candidate plans, so the plan chosen
 * for one can be re-instantiated for the other with the other's values. A
 * value is therefore reduced to what decides whether and how an index can
 * bound it: its type bracket, null (which also matches missing fields, so
 * sparse and partial indexes cannot answer it), arrays and documents (not
 * bounded, or not exactly), and for a regular expression whether it is an
 * anchored prefix that bounds a scan. That is finer than mongod (which keeps
 * only the discriminators that matter to its indexes), never coarser.
 */
import type { Document } from 'bson';
import { Rank, isPlainObject, rankOf, toNumber } from '../bson/values.js';
import { isOperatorObject } from './conjuncts.js';
import type { SortField } from './sort.js';

/** Operators whose operand is a filter of its own (or a list of them): their structure is part of the shape. */
const NESTED_LISTS = new Set(['$and', '$or', '$nor']);

function regexClass(re: RegExp): string {
  const s = re.source;
  // Anchored, no alternation, case-sensitive, single-line: the planner can bound it by its prefix.
  const anchored = s.startsWith('^') && !s.includes('|') && !re.flags.includes('i') && !re.flags.includes('m');
  return anchored ? `/^${re.flags}` : `/${re.flags}`;
}

/** One value's class: what index bounds and exactness depend on. */
function valueClass(v: unknown): string {
  if (v === null || v === undefined) return 'n';
  if (v instanceof RegExp) return regexClass(v);
  if (Array.isArray(v)) return 'a';
  if (typeof v === 'number') return Number.isNaN(v) ? 'N' : 'd';
  if (typeof v === 'string') return 's';
  if (typeof v === 'boolean') return 'b';
  if (isPlainObject(v)) return 'o';
  const rank = rankOf(v);
  return rank === Rank.Number && Number.isNaN(toNumber(v)) ? 'N' : `t${rank}`;
}

function operand(op: string, v: unknown, out: string[]): void {
  switch (op) {
    case '$in':
    case '$nin':
      if (Array.isArray(v)) {
        // The classes present, not how many values: [1, 2] and [3] scan the same index.
        out.push('[', [...new Set(v.map(valueClass))].sort().join(','), ']');
      } else {
        out.push(valueClass(v));
      }
      return;
    case '$elemMatch':
    case '$not':
      if (isPlainObject(v)) {
        out.push('{');
        if (isOperatorObject(v)) operators(v, out);
        else filterShape(v, out);
        out.push('}');
      } else {
        out.push(valueClass(v));
      }
      return;
    case '$exists':
      out.push(v ? '1' : '0');
      return;
    case '$regex':
      out.push(typeof v === 'string' ? (v.startsWith('^') && !v.includes('|') ? '/^S' : '/S') : valueClass(v));
      return;
    case '$options':
      // Part of the regular expression: 'i' or 'm' stop it bounding a scan.
      out.push(typeof v === 'string' ? v.split('').sort().join('') : valueClass(v));
      return;
    case '$expr':
    case '$where':
    case '$jsonSchema':
    case '$type':
    case '$mod':
    case '$size':
    case '$all':
    case '$bitsAllSet':
    case '$bitsAllClear':
    case '$bitsAnySet':
    case '$bitsAnyClear':
      // Never used for bounds: the operator alone is the shape.
      return;
    default:
      out.push(valueClass(v));
  }
}

function operators(expr: Document, out: string[]): void {
  for (const op of Object.keys(expr)) {
    out.push(op, ':');
    operand(op, expr[op], out);
    out.push(';');
  }
}

function filterShape(filter: Document, out: string[]): void {
  for (const key of Object.keys(filter)) {
    const value = filter[key];
    out.push(JSON.stringify(key));
    if (NESTED_LISTS.has(key) && Array.isArray(value)) {
      out.push('[');
      for (const sub of value) {
        if (isPlainObject(sub)) {
          out.push('{');
          filterShape(sub, out);
          out.push('}');
        } else {
          out.push(valueClass(sub));
        }
        out.push(',');
      }
      out.push(']');
    } else if (key.startsWith('$')) {
      operand(key, value, out);
    } else if (isOperatorObject(value)) {
      out.push('{');
      operators(value, out);
      out.push('}');
    } else {
      out.push('=', valueClass(value));
    }
    out.push(',');
  }
}

export interface ShapeInput {
  filter: Document;
  sort: readonly SortField[];
  skip: number;
  limit: number;
  /** Counts only (count, the aggregate count shape): planned and executed differently from a find. */
  countOnly: boolean;
}

/** The shape of a query: filter structure, sort, whether skip and limit are present, count or not. */
export function queryShape(q: ShapeInput): string {
  const out: string[] = [q.countOnly ? 'count|' : 'find|'];
  filterShape(q.filter, out);
  out.push('|sort:');
  for (const s of q.sort) out.push(JSON.stringify(s.path), String(s.direction), ',');
  out.push(`|skip:${q.skip > 0 ? 1 : 0}|limit:${q.limit > 0 ? 1 : 0}`);
  return out.join('');
}

/** 8 hex digits (FNV-1a), the form of mongod's queryHash and planCacheKey. */
export function shapeHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).toUpperCase().padStart(8, '0');
}
