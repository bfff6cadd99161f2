/**
 * A search confined to what the caller may see. Applied to the parsed search before it reaches the store, so that
 * every query it runs — the page, the count behind `total`, the chained and reverse-chained sub-searches, the
 * _include and _revinclude lookups — carries the restriction: a patient/ token's search can neither return,
 * include, count nor page into another patient's data, and a chain cannot probe a type the token may not search.
 */
import { forbidden, visibilityCondition, type AccessPolicy } from '../access/access-policy.js';
import type { Condition } from '../../store/search/query.js';
import type { ParsedSearch } from './parse.js';

/** The condition a search of `types` must add: per type, the type's own restriction (undefined: none). */
function typesCondition(types: string[], restrictions: Map<string, Condition | undefined>): Condition | undefined {
  if ([...restrictions.values()].every((c) => c === undefined)) return undefined;
  if (types.length === 1) return restrictions.get(types[0]);
  return {
    op: 'or',
    of: types.map((type) => {
      const restriction = restrictions.get(type);
      const isType: Condition = { op: 'in', field: 'type', values: [type] };
      return restriction === undefined ? isType : { op: 'and', of: [isType, restriction] };
    }),
  };
}

/**
 * Restricts a parsed search to what `policy` lets the caller search. Types the caller may not search are a 403 when
 * the request named them, and are left out when they were implied (a system-level search without _type).
 */
export function confineSearch(policy: AccessPolicy, parsed: ParsedSearch, impliedTypes: boolean): void {
  if (policy.unrestricted) return;
  const restrictions = new Map<string, Condition | undefined>();
  let firstRefusal: string | undefined;
  for (const type of parsed.types) {
    const visibility = policy.visibility('s', type);
    if (visibility.kind === 'none') {
      if (!impliedTypes) throw forbidden(visibility.reason);
      firstRefusal ??= visibility.reason;
      continue;
    }
    restrictions.set(type, visibilityCondition(type, visibility));
  }
  if (restrictions.size === 0) throw forbidden(firstRefusal ?? 'No resource type of this search is granted by the token');
  parsed.types = [...restrictions.keys()];
  const restriction = typesCondition(parsed.types, restrictions);
  const where = confineSubSearches(policy, parsed.where);
  parsed.where = restriction === undefined ? where : { op: 'and', of: [restriction, where] };
}

/** Chains and _has search other types: each must be searchable, and is searched only where the caller may see. */
export function confineSubSearches(policy: AccessPolicy, condition: Condition): Condition {
  if (policy.unrestricted) return condition;
  switch (condition.op) {
    case 'and':
    case 'or':
      return { op: condition.op, of: condition.of.map((c) => confineSubSearches(policy, c)) };
    case 'chain':
    case 'has': {
      const restrictions = new Map<string, Condition | undefined>();
      for (const type of condition.search.types) {
        const visibility = policy.visibility('s', type);
        if (visibility.kind === 'none') throw forbidden(`A chained search through ${type}: ${visibility.reason}`);
        restrictions.set(type, visibilityCondition(type, visibility));
      }
      const inner = confineSubSearches(policy, condition.search.where);
      const restriction = typesCondition(condition.search.types, restrictions);
      const where: Condition = restriction === undefined ? inner : { op: 'and', of: [restriction, inner] };
      return { ...condition, search: { types: condition.search.types, where } };
    }
    default:
      return condition;
  }
}

/**
 * What _include/_revinclude may add of a type: undefined when unrestricted, a condition to add to its lookup, or
 * null when the caller may not read that type at all.
 */
export function includeRestriction(policy: AccessPolicy, type: string): Condition | undefined | null {
  if (policy.unrestricted) return undefined;
  const visibility = policy.visibility('r', type);
  if (visibility.kind === 'none') return null;
  return visibilityCondition(type, visibility);
}
