/**
 * SMART 2 finer-grained scopes (patient/Observation.rs?category=laboratory) as search conditions: the scope's
 * parameters are parsed as a strict search of the type, once per scope text, and the access policy ANDs the result
 * into what the scope lets a read or a search see.
 */
import type { ScopeQueryParser } from '../access/access-policy.js';
import type { Condition } from '../../store/search/query.js';
import { parseSearch } from './parse.js';
import type { SearchRegistry } from './registry.js';

/** Search parameters that shape results rather than select resources: meaningless in a scope. */
const RESULT_PARAMETERS = new Set([
  '_count',
  '_sort',
  '_include',
  '_revinclude',
  '_summary',
  '_elements',
  '_total',
  '_cursor',
  '_contained',
  '_containedType',
  '_format',
  '_pretty',
]);

/** Parses a scope's search parameters as a strict search of `type` (unknown parameters make the scope invalid). */
export function scopeQueryParser(registry: SearchRegistry, baseUrl: string, hostedTypes: readonly string[]): ScopeQueryParser {
  const cache = new Map<string, Condition>();
  return (type, query) => {
    const key = `${type}?${new URLSearchParams(query).toString()}`;
    const cached = cache.get(key);
    if (cached) return cached;
    const control = query.filter(([name]) => RESULT_PARAMETERS.has(name.split(':')[0]));
    if (control.length > 0) throw new Error(`${control.map(([name]) => name).join(', ')} does not filter resources`);
    const parsed = parseSearch([type], query, { registry, baseUrl, hostedTypes, defaultCount: 1, maxCount: 1, now: new Date() });
    if (parsed.problems.length > 0) throw new Error(parsed.problems.map((p) => p.diagnostics ?? p.code).join('; '));
    if (cache.size > 1000) cache.clear();
    cache.set(key, parsed.where);
    return parsed.where;
  };
}
