/**
 * FHIRPath invariants (ElementDefinition.constraint) evaluated with @medplum/core's engine.
 *
 * Each expression is parsed once and cached. Some expressions cannot be evaluated faithfully by
 * @medplum/core 4.5.2 — it implements children(), descendants(), repeat(), trim(), split(), encode(),
 * decode(), escape(), unescape() as stubs that return an empty collection, htmlChecks() as "true", and has no
 * memberOf(), conformsTo() beyond core types, resolve() without a repository... An invariant using one of
 * them would silently give a wrong answer (usually a false failure), so it is skipped and logged once. The
 * invariants that matter among those (ele-1, dom-3, txt-1, txt-2) are implemented natively instead
 * (see walker.ts and xhtml.ts).
 */
import type { FhirPathAtom, TypedValue } from '@medplum/core';
import { evalFhirPathTyped, parseFhirPath } from '@medplum/core';
import type { ValidationLogger } from './logging.js';

export interface ConstraintLike {
  key: string;
  severity: 'error' | 'warning';
  expression: string;
  description: string;
}

export interface CompiledConstraint extends ConstraintLike {
  /** parsed expression, absent when the constraint is skipped or native */
  readonly atom?: FhirPathAtom;
  /** why the constraint is not evaluated with FHIRPath */
  readonly skipReason?: string;
  /** evaluated natively elsewhere */
  readonly native?: boolean;
}

/** Invariants implemented in this module's callers instead of through FHIRPath. */
export const NATIVE_CONSTRAINTS: ReadonlySet<string> = new Set(['ele-1', 'dom-3', 'txt-1', 'txt-2']);

/** Functions @medplum/core 4.5.2 does not implement (or implements as a stub returning {} / true). */
const UNSUPPORTED_FUNCTIONS: ReadonlyMap<string, string> = new Map([
  ['children', 'is a stub returning an empty collection'],
  ['descendants', 'is a stub returning an empty collection'],
  ['repeat', 'is a stub returning an empty collection'],
  ['trim', 'is a stub returning an empty collection'],
  ['split', 'is a stub returning an empty collection'],
  ['encode', 'is a stub returning an empty collection'],
  ['decode', 'is a stub returning an empty collection'],
  ['escape', 'is a stub returning an empty collection'],
  ['unescape', 'is a stub returning an empty collection'],
  ['htmlChecks', 'always returns true'],
  ['memberOf', 'is not implemented (needs a terminology service)'],
  ['subsumes', 'is not implemented'],
  ['subsumedBy', 'is not implemented'],
  ['conformsTo', 'only recognises core resource types'],
  ['resolve', 'cannot resolve references without a repository'],
  ['elementDefinition', 'is not implemented'],
  ['slice', 'is not implemented'],
  ['checkModifiers', 'is not implemented'],
  ['comparable', 'is not implemented'],
  ['lowBoundary', 'is not implemented'],
  ['highBoundary', 'is not implemented'],
  ['precision', 'is not implemented'],
]);

const FUNCTION_CALL = /([A-Za-z_][A-Za-z0-9_]*)\s*\(/g;

export class InvariantEngine {
  private readonly compiled = new Map<string, CompiledConstraint>();
  private readonly logger: ValidationLogger;
  private readonly skipped = new Map<string, string>();

  constructor(logger: ValidationLogger) {
    this.logger = logger;
  }

  /** Invariants that are never evaluated, with the reason (for reports). */
  get skippedConstraints(): ReadonlyMap<string, string> {
    return this.skipped;
  }

  compile(c: ConstraintLike): CompiledConstraint {
    const cacheKey = `${c.key}\u0000${c.expression}`;
    const hit = this.compiled.get(cacheKey);
    if (hit) {
      return hit;
    }
    let result: CompiledConstraint;
    if (NATIVE_CONSTRAINTS.has(c.key)) {
      result = { ...c, native: true };
    } else if (!c.expression) {
      result = { ...c, skipReason: 'no FHIRPath expression' };
    } else {
      const reason = unsupportedReason(c.expression);
      if (reason) {
        result = { ...c, skipReason: reason };
      } else {
        try {
          result = { ...c, atom: parseFhirPath(c.expression) };
        } catch (err) {
          result = { ...c, skipReason: `FHIRPath parse error: ${(err as Error).message}` };
        }
      }
    }
    if (result.skipReason) {
      this.skipped.set(`${c.key}: ${c.expression}`, result.skipReason);
      this.logger.once(`skip-invariant:${cacheKey}`, `invariant ${c.key} is not evaluated (${result.skipReason}): ${c.expression}`);
    }
    this.compiled.set(cacheKey, result);
    return result;
  }

  /**
   * Evaluates a compiled invariant. Returns true/false, or undefined when it could not be evaluated
   * (skipped, or the engine threw): a validator limit must never fail a resource.
   */
  evaluate(c: CompiledConstraint, value: TypedValue, variables: Record<string, TypedValue>): boolean | undefined {
    if (!c.atom) {
      return undefined;
    }
    try {
      const result = evalFhirPathTyped(c.atom, [value], { '%context': value, ...variables });
      // FHIR: an invariant passes when it evaluates to true; an empty result counts as "no violation".
      if (result.length === 0) {
        return true;
      }
      return result.length === 1 && result[0]?.value === true;
    } catch (err) {
      this.skipped.set(`${c.key}: ${c.expression}`, `evaluation error: ${(err as Error).message}`);
      this.logger.once(
        `eval-invariant:${c.key}:${c.expression}`,
        `invariant ${c.key} could not be evaluated and is skipped (${(err as Error).message}): ${c.expression}`,
      );
      return undefined;
    }
  }
}

function unsupportedReason(expression: string): string | undefined {
  FUNCTION_CALL.lastIndex = 0;
  for (let m = FUNCTION_CALL.exec(expression); m; m = FUNCTION_CALL.exec(expression)) {
    const name = m[1] as string;
    const why = UNSUPPORTED_FUNCTIONS.get(name);
    if (why) {
      return `${name}() in @medplum/core 4.5.2 ${why}`;
    }
  }
  return undefined;
}
