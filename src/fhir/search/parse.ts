/**
 * Parsing a FHIR search (name=value pairs from the query string or a form body) into a store query.
 *
 * - Repeated parameters are ANDed, comma-separated values ORed (search.html#combining).
 * - Every parameter of the registry for the searched type(s) is understood with its type's modifiers and
 *   prefixes; chained names (subject:Patient.name), reverse chains (_has:Type:param:name) and the result
 *   parameters (_count, _sort, _include, _revinclude, _total, _summary, _elements) are handled here too.
 * - Anything unknown, unsupported or malformed becomes a `problem` rather than an error: the caller decides
 *   (Prefer: handling=strict -> 400; lenient, the default -> ignored, left out of the self link, reported).
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import type { Condition, Layout, SortKey } from '../../store/search/query.js';
import { parseDateRange } from '../dates.js';
import { FhirError, issue } from '../outcome.js';
import { parseElements, parseSummary, type SummaryMode } from '../summary.js';
import { SUFFIX, idxKey, idxPath } from './fields.js';
import { normaliseReference } from './extract.js';
import { foldString, soundexWords } from './normalise.js';
import type { SearchParamDef, SearchRegistry, TypeBinding } from './registry.js';
import { UCUM_SYSTEM, canonicalUnit, toCanonical } from './units.js';
import { subsumedVariants, valueSetVariants } from './valuesets.js';
import {
  ParamError,
  RejectedParamError,
  alternatives,
  parseNumber,
  parseQuantity,
  parseToken,
  splitPrefix,
  splitUnescaped,
  tokenVariantOf,
  unescapeValue,
} from './values.js';

export type TotalMode = 'none' | 'estimate' | 'accurate';

export interface IncludeSpec {
  /** Source type of the reference ('*' for any searched type). */
  sourceType: string;
  /** Reference parameter code, or '*' for every reference parameter. */
  param: string;
  /** Only references to this type. */
  targetType?: string;
  iterate: boolean;
  /** The parameter as written, for the self link. */
  text: string;
}

export interface ParsedSearch {
  types: string[];
  where: Condition;
  sort: SortKey[];
  count: number;
  total?: TotalMode;
  summary?: SummaryMode;
  elements?: string[];
  include: IncludeSpec[];
  revinclude: IncludeSpec[];
  cursor?: string;
  /** The parameters understood, in the order given: the self link and the cursor's fingerprint use them. */
  accepted: Array<[string, string]>;
  /** Parameters ignored (unknown, unsupported, malformed), one issue each. */
  problems: OperationOutcomeIssue[];
}

export interface ParseOptions {
  registry: SearchRegistry;
  baseUrl: string;
  /** Hosted types (chains and includes can only follow references to these). */
  hostedTypes: readonly string[];
  defaultCount: number;
  maxCount: number;
  now: Date;
  /** A search of [base] (where _type is meaningful). */
  systemLevel?: boolean;
  /** What one search may ask for (DEFAULT_SEARCH_LIMITS when not given). */
  limits?: SearchLimits;
}

/**
 * What one search may ask for, so that every search has a bounded cost: each value is a condition the database
 * evaluates (a :contains or phonetic value a scan), each chain level and _has a sub-search, each _include a
 * query per page. Exceeding one is a 400 (too-costly) naming the limit, whatever the handling preference.
 */
export interface SearchLimits {
  /** Parameters in one search (_format and _pretty not counted). */
  maxParameters: number;
  /** Values in one search, summed over its parameters (a,b,c is three). */
  maxValues: number;
  /** _include and _revinclude parameters together. */
  maxIncludes: number;
  /** Levels of a chain (subject:Patient.name is one) or of nested _has. */
  maxChainDepth: number;
}

export const DEFAULT_SEARCH_LIMITS: SearchLimits = { maxParameters: 50, maxValues: 200, maxIncludes: 10, maxChainDepth: 4 };

/** Parameters handled by the HTTP layer or meaningless to search: accepted silently, never in the self link. */
const TRANSPARENT = new Set(['_format', '_pretty']);
/** Defined by FHIR, not supported here: reported like unknown parameters, with a specific message. */
const UNSUPPORTED = new Set(['_contained', '_containedType', '_list', '_filter', '_query', '_text', '_content', '_graph']);
interface Ctx {
  options: ParseOptions;
  limits: SearchLimits;
  depth: number;
}

/** A search over a limit: refused whole, never downgraded to an ignored parameter. */
class SearchTooCostlyError extends FhirError {}

function tooCostly(message: string): FhirError {
  return new SearchTooCostlyError(400, issue('error', 'too-costly', message));
}

/** The alternatives of a value: comma-separated, a comma escaped with a backslash not separating. */
function alternativesIn(value: string): number {
  let count = 1;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x2c /* , */) count++;
  }
  return count;
}

/** Throws 400 (too-costly) when the parameters as a whole exceed a limit that does not depend on their meaning. */
function checkLimits(params: Array<[string, string]>, limits: SearchLimits): void {
  const counted = params.filter(([name]) => !TRANSPARENT.has(name) && name !== '_cursor');
  if (counted.length > limits.maxParameters) {
    throw tooCostly(
      `The search has ${counted.length} parameters; this server takes at most ${limits.maxParameters} in one search (SEARCH_MAX_PARAMETERS)`,
    );
  }
  let values = 0;
  for (const [, value] of counted) values += alternativesIn(value);
  if (values > limits.maxValues) {
    throw tooCostly(
      `The search has ${values} values (counting each comma-separated alternative); this server takes at most ${limits.maxValues} in one search (SEARCH_MAX_VALUES)`,
    );
  }
  const includes = counted.filter(([name]) => name.startsWith('_include') || name.startsWith('_revinclude')).length;
  if (includes > limits.maxIncludes) {
    throw tooCostly(
      `The search has ${includes} _include and _revinclude parameters; this server takes at most ${limits.maxIncludes} (SEARCH_MAX_INCLUDES)`,
    );
  }
}

function fail(message: string): never {
  throw new ParamError(message);
}

function reject(message: string): never {
  throw new RejectedParamError(message);
}

const field = (def: SearchParamDef, suffix: '' | (typeof SUFFIX)[keyof typeof SUFFIX] = ''): string =>
  def.headField === 'id'
    ? 'id'
    : def.headField === 'lastUpdated'
      ? 'lastUpdated'
      : def.inTuple
        ? idxKey(def.code, suffix)
        : idxPath(def.code, suffix);

const layoutOf = (binding: TypeBinding): Layout => (binding.single ? 'scalar' : 'array');

function or(of: Condition[]): Condition {
  return of.length === 1 ? of[0] : { op: 'or', of };
}

function and(of: Condition[]): Condition {
  const flat = of.flatMap((c) => (c.op === 'and' ? c.of : [c]));
  return flat.length === 1 ? flat[0] : { op: 'and', of: flat };
}

function nonEmpty(values: string[], code: string): string[] {
  if (values.length === 0 || values.some((v) => v === '')) fail(`${code} has an empty value`);
  return values;
}

/** Folded values for matching; a value that folds to nothing (only spaces or marks) is an error. */
function folded(values: string[], code: string): string[] {
  return nonEmpty(values.map(foldString), code);
}

// ------------------------------------------------------------------------------------------- by type

function missingCondition(def: SearchParamDef, value: string): Condition {
  if (value !== 'true' && value !== 'false') fail(`:missing takes true or false, not "${value}"`);
  const missing = value === 'true';
  // _id and _lastUpdated are never missing.
  if (def.headField) return missing ? { op: 'none' } : { op: 'and', of: [] };
  return { op: 'exists', field: field(def), value: !missing };
}

function stringCondition(def: SearchParamDef, binding: TypeBinding, modifier: string | undefined, raw: string): Condition {
  const values = nonEmpty(alternatives(raw).map(unescapeValue), def.code);
  if (def.phonetic) {
    if (modifier) fail(`${def.code} (phonetic) takes no modifier`);
    return or(
      values.map((v) => {
        const codes = soundexWords(v);
        if (codes.length === 0) fail(`${def.code}=${v} has no letters to match by sound`);
        return and(codes.map((c) => ({ op: 'in', field: field(def), values: [c] })));
      }),
    );
  }
  switch (modifier) {
    case undefined:
      return { op: 'prefix', field: field(def), layout: layoutOf(binding), prefixes: folded(values, def.code) };
    case 'exact':
      return { op: 'in', field: field(def, SUFFIX.exact), values };
    case 'contains':
      return { op: 'contains', field: field(def), fragments: folded(values, def.code) };
    default:
      return fail(`modifier :${modifier} is not supported on string parameter ${def.code} (supported: exact, contains, missing)`);
  }
}

function tokenCondition(def: SearchParamDef, modifier: string | undefined, raw: string): Condition {
  const values = nonEmpty(alternatives(raw), def.code);
  if (def.headField === 'id') {
    const ids = values.map((v) => parseToken(v).code ?? '').filter(Boolean);
    if (modifier === 'not') return { op: 'nin', field: 'id', values: ids };
    if (modifier) fail(`modifier :${modifier} is not supported on _id`);
    return { op: 'in', field: 'id', values: ids };
  }
  switch (modifier) {
    case undefined:
    case 'not': {
      const variants = values.map((v) => {
        const token = parseToken(v);
        if (!token.system && !token.code) fail(`${def.code}=${v} names neither a system nor a code`);
        return tokenVariantOf(token);
      });
      return { op: modifier === 'not' ? 'nin' : 'in', field: field(def), values: variants };
    }
    case 'text':
      return { op: 'prefix', field: field(def, SUFFIX.text), layout: 'array', prefixes: folded(values.map(unescapeValue), def.code) };
    case 'of-type': {
      const keys = values.map((v) => {
        const parts = splitUnescaped(v, '|').map(unescapeValue);
        if (parts.length !== 3 || !parts[1] || !parts[2]) fail(`${def.code}:of-type=${v} must be typeSystem|typeCode|value`);
        return parts.join('|');
      });
      return { op: 'in', field: field(def, SUFFIX.ofType), values: keys };
    }
    case 'in':
    case 'not-in': {
      const variants = new Set<string>();
      for (const value of values) for (const variant of valueSetVariants(unescapeValue(value))) variants.add(variant);
      return { op: modifier === 'in' ? 'in' : 'nin', field: field(def), values: [...variants] };
    }
    case 'above':
    case 'below': {
      const variants = new Set<string>();
      for (const value of values) {
        const token = parseToken(value);
        if (!token.system || !token.code) reject(`${def.code}:${modifier}=${value} must be system|code`);
        for (const variant of subsumedVariants(token.system, token.code, modifier)) variants.add(variant);
      }
      return { op: 'in', field: field(def), values: [...variants] };
    }
    default:
      return fail(
        `modifier :${modifier} is not supported on token parameter ${def.code} (supported: not, text, of-type, in, not-in, below, above, missing)`,
      );
  }
}

function referenceValues(def: SearchParamDef, typeModifier: string | undefined, value: string, ctx: Ctx): string[] {
  const text = unescapeValue(value);
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(text)) {
    // A bare id: a reference to any target type with that id (or the one the :Type modifier names).
    const types = typeModifier ? [typeModifier] : def.targets;
    if (types.length === 0) fail(`${def.code}=${text}: give the type too (Type/id)`);
    return types.map((t) => `${t}/${text}`);
  }
  const normalised = normaliseReference(text, ctx.options.baseUrl);
  if (!normalised) fail(`${def.code}=${text} is not a reference this server can search for`);
  if (typeModifier && !normalised.startsWith(`${typeModifier}/`)) fail(`${def.code}:${typeModifier}=${text} names another type`);
  return [normalised];
}

function referenceCondition(def: SearchParamDef, modifier: string | undefined, raw: string, ctx: Ctx): Condition {
  const values = nonEmpty(alternatives(raw), def.code);
  if (modifier === 'identifier') {
    return {
      op: 'in',
      field: field(def, SUFFIX.identifier),
      values: values.map((v) => {
        const token = parseToken(v);
        if (!token.code) fail(`${def.code}:identifier=${v} has no identifier value`);
        return tokenVariantOf(token);
      }),
    };
  }
  if (modifier !== undefined && !/^[A-Z][A-Za-z]+$/.test(modifier)) {
    fail(`modifier :${modifier} is not supported on reference parameter ${def.code} (supported: [Type], identifier, missing)`);
  }
  if (modifier && def.targets.length > 0 && !def.targets.includes(modifier)) fail(`${def.code} cannot refer to a ${modifier}`);
  return { op: 'in', field: field(def), values: values.flatMap((v) => referenceValues(def, modifier, v, ctx)) };
}

function dateCondition(def: SearchParamDef, binding: TypeBinding, modifier: string | undefined, raw: string, ctx: Ctx): Condition {
  if (modifier) fail(`modifier :${modifier} is not supported on date parameter ${def.code} (supported: missing)`);
  const layout: Layout | 'point' = def.headField === 'lastUpdated' ? 'point' : layoutOf(binding);
  return or(
    nonEmpty(alternatives(raw), def.code).map((value) => {
      const { cmp, rest: written } = splitPrefix(value);
      // An unencoded '+' of a timezone arrives as a space (form encoding): read it back as '+'.
      const rest = written.replace(/ (\d{2}:\d{2})$/, '+$1');
      const range = parseDateRange(rest);
      if (!range) fail(`${def.code}=${value}: "${rest}" is not a FHIR date, dateTime or instant`);
      let { low, high } = range;
      if (cmp === 'ap') {
        // search.html: "approximately" is 10% of the gap between now and the value, on both sides.
        const now = ctx.options.now.getTime();
        const gap = Math.max(Math.abs(now - low.getTime()), Math.abs(high.getTime() - now));
        const margin = Math.round(gap * 0.1);
        low = new Date(low.getTime() - margin);
        high = new Date(high.getTime() + margin);
      }
      const span = layout === 'scalar' && binding.maxSpanMs !== undefined ? { maxSpanMs: binding.maxSpanMs } : {};
      return { op: 'date', field: field(def), layout, cmp, lo: low, hi: high, ...span };
    }),
  );
}

function numberCondition(def: SearchParamDef, binding: TypeBinding, modifier: string | undefined, raw: string): Condition {
  if (modifier) fail(`modifier :${modifier} is not supported on ${def.type} parameter ${def.code} (supported: missing)`);
  return or(
    nonEmpty(alternatives(raw), def.code).map((value) => {
      const { cmp, rest } = splitPrefix(value);
      let parsed;
      try {
        parsed = def.type === 'quantity' ? parseQuantity(rest) : parseNumber(rest);
      } catch (error) {
        fail(`${def.code}=${value}: ${(error as Error).message}`);
      }
      let { lo, hi } = parsed;
      if (cmp === 'ap') {
        const margin = Math.abs(parsed.value) * 0.1;
        lo = parsed.value - margin;
        hi = parsed.value + margin;
      }
      const condition: Condition = { op: 'number', field: field(def), layout: layoutOf(binding), cmp, value: parsed.value, lo, hi };
      if (def.type === 'quantity') {
        const { system, code } = parsed as { system?: string; code?: string };
        condition.quantity = {};
        if (system) condition.quantity.system = system;
        if (code) condition.quantity.code = code;
        // A UCUM unit (given with its system: a bare code may be anything) compares in base units.
        const unit = system === UCUM_SYSTEM && code ? canonicalUnit(code) : undefined;
        if (unit) {
          condition.quantity.canonical = {
            unit: unit.unit,
            value: toCanonical(parsed.value, unit),
            lo: toCanonical(lo, unit),
            hi: toCanonical(hi, unit),
          };
        }
      }
      return condition;
    }),
  );
}

function uriCondition(def: SearchParamDef, binding: TypeBinding, modifier: string | undefined, raw: string): Condition {
  const values = nonEmpty(alternatives(raw).map(unescapeValue), def.code);
  switch (modifier) {
    case undefined:
      return { op: 'in', field: field(def), values };
    case 'below':
      return { op: 'prefix', field: field(def), layout: layoutOf(binding), prefixes: values };
    case 'above': {
      // Stored URIs that are the value or a path-prefix of it.
      const prefixes = new Set<string>();
      for (const value of values) {
        prefixes.add(value);
        for (let i = value.indexOf('/', value.indexOf('//') + 2); i > 0; i = value.indexOf('/', i + 1)) prefixes.add(value.slice(0, i));
      }
      return { op: 'in', field: field(def), values: [...prefixes] };
    }
    default:
      return fail(`modifier :${modifier} is not supported on uri parameter ${def.code} (supported: below, above, missing)`);
  }
}

/**
 * A composite parameter (search.html#composite): each comma-separated alternative gives one value per component,
 * separated by `$` (`code-value-quantity=http://loinc.org|8480-6$gt140`), each read as its component parameter's
 * value. They must all hold for one element (one stored tuple), not for different ones.
 */
function compositeCondition(def: SearchParamDef, modifier: string | undefined, raw: string, ctx: Ctx): Condition {
  if (modifier) fail(`modifier :${modifier} is not supported on composite parameter ${def.code} (supported: missing)`);
  const components = def.components ?? [];
  const form = components.map((c) => c.def.code).join('$');
  return or(
    nonEmpty(alternatives(raw), def.code).map((value) => {
      const parts = splitUnescaped(value, '$');
      if (parts.length !== components.length) fail(`${def.code}=${value} must give ${components.length} values separated by $ (${form})`);
      const of = components.map((component, i) => {
        try {
          return simpleCondition(component.def, component.binding, undefined, parts[i], ctx);
        } catch (error) {
          if (error instanceof ParamError) fail(`${def.code}=${value}, component ${component.def.code}: ${error.message}`);
          throw error;
        }
      });
      return { op: 'composite', field: field(def), of };
    }),
  );
}

// --------------------------------------------------------------------------------------- names, chains

interface NameLink {
  code: string;
  modifier?: string;
}

function parseLinks(name: string): NameLink[] {
  return name.split('.').map((part) => {
    const colon = part.indexOf(':');
    return colon < 0 ? { code: part } : { code: part.slice(0, colon), modifier: part.slice(colon + 1) };
  });
}

/** The condition one parameter (name possibly chained or _has, one value string) puts on resources of `type`. */
function parameterCondition(type: string, name: string, value: string, ctx: Ctx): Condition {
  if (name.startsWith('_has:')) return hasCondition(type, name, value, ctx);
  const links = parseLinks(name);
  const first = links[0];
  const def = ctx.options.registry.get(type, first.code);
  if (!def) fail(`${type} has no search parameter "${first.code}"`);
  const binding = def.bindings.get(type)!;
  if (links.length > 1) return chainCondition(type, def, links, value, ctx);
  if (first.modifier === 'missing') return missingCondition(def, value);
  if (def.type === 'composite') return compositeCondition(def, first.modifier, value, ctx);
  return simpleCondition(def, binding, first.modifier, value, ctx);
}

/** The condition of a parameter of one of the simple types (every type but composite). */
function simpleCondition(def: SearchParamDef, binding: TypeBinding, modifier: string | undefined, value: string, ctx: Ctx): Condition {
  switch (def.type) {
    case 'string':
      return stringCondition(def, binding, modifier, value);
    case 'token':
      return tokenCondition(def, modifier, value);
    case 'reference':
      return referenceCondition(def, modifier, value, ctx);
    case 'date':
      return dateCondition(def, binding, modifier, value, ctx);
    case 'number':
    case 'quantity':
      return numberCondition(def, binding, modifier, value);
    case 'uri':
      return uriCondition(def, binding, modifier, value);
    case 'composite':
      return fail(`${def.code} is a composite parameter and cannot be a component`);
  }
}

function chainCondition(type: string, def: SearchParamDef, links: NameLink[], value: string, ctx: Ctx): Condition {
  if (def.type !== 'reference') fail(`${def.code} is not a reference parameter and cannot be chained`);
  if (ctx.depth >= ctx.limits.maxChainDepth)
    throw tooCostly(`chains are limited to ${ctx.limits.maxChainDepth} levels (SEARCH_MAX_CHAIN_DEPTH)`);
  const first = links[0];
  const hosted = ctx.options.hostedTypes;
  const candidates = first.modifier ? [first.modifier] : def.targets.filter((t) => hosted.includes(t));
  const rest = links
    .slice(1)
    .map((l) => (l.modifier ? `${l.code}:${l.modifier}` : l.code))
    .join('.');
  const branches: Condition[] = [];
  const reasons: string[] = [];
  for (const target of candidates) {
    if (!hosted.includes(target)) {
      reasons.push(`${target} is not hosted here`);
      continue;
    }
    if (def.targets.length > 0 && !def.targets.includes(target)) {
      reasons.push(`${def.code} cannot refer to a ${target}`);
      continue;
    }
    try {
      const where = parameterCondition(target, rest, value, { ...ctx, depth: ctx.depth + 1 });
      branches.push({ op: 'chain', field: field(def), search: { types: [target], where } });
    } catch (error) {
      if (!(error instanceof ParamError)) throw error;
      reasons.push(error.message);
    }
  }
  if (branches.length === 0) fail(`cannot chain ${type}.${def.code} to ${rest}: ${reasons.join('; ') || 'no hosted target type'}`);
  return or(branches);
}

/** _has:Type:refParam:rest=value — resources of `type` referenced from Type resources matching rest=value. */
function hasCondition(type: string, name: string, value: string, ctx: Ctx): Condition {
  const parts = name.split(':');
  if (parts.length < 4) fail(`${name} must read _has:Type:reference-parameter:parameter`);
  const [, sourceType, refCode] = parts;
  const rest = parts.slice(3).join(':');
  if (!ctx.options.hostedTypes.includes(sourceType)) fail(`_has: ${sourceType} is not hosted here`);
  if (ctx.depth >= ctx.limits.maxChainDepth)
    throw tooCostly(`_has is limited to ${ctx.limits.maxChainDepth} levels (SEARCH_MAX_CHAIN_DEPTH)`);
  const refDef = ctx.options.registry.get(sourceType, refCode);
  if (!refDef || refDef.type !== 'reference') fail(`_has: ${sourceType} has no reference parameter "${refCode}"`);
  if (refDef.targets.length > 0 && !refDef.targets.includes(type)) fail(`_has: ${sourceType}.${refCode} cannot refer to a ${type}`);
  const where = parameterCondition(sourceType, rest, value, { ...ctx, depth: ctx.depth + 1 });
  return { op: 'has', referenceField: field(refDef), targetType: type, search: { types: [sourceType], where } };
}

// ------------------------------------------------------------------------------- result parameters

/** The head field a sort on `def` uses, for one type. */
/** The head fields a sort on `def` uses, for one type (most parameters: one). */
function sortFields(def: SearchParamDef, binding: TypeBinding, direction: 1 | -1): string[] {
  if (def.headField === 'id') return ['_id'];
  if (def.headField === 'lastUpdated') return ['lastUpdated'];
  if (def.type === 'composite') fail(`_sort: ${def.code} is a composite parameter; sort on one of its components' parameters`);
  if (!binding.single || def.type === 'token' || def.phonetic) return [idxPath(def.code, direction === 1 ? SUFFIX.asc : SUFFIX.desc)];
  if (def.type === 'date') return [`${idxPath(def.code)}.${direction === 1 ? 'lo' : 'hi'}`];
  // UCUM quantities in order of their value in base units (2 h after 90 min), then by the value as written
  // (which alone orders the quantities that have no base-unit value).
  if (def.type === 'quantity') return [`${idxPath(def.code)}.cv`, `${idxPath(def.code)}.v`];
  return [idxPath(def.code)];
}

function parseSort(types: string[], value: string, registry: SearchRegistry): SortKey[] {
  const keys: SortKey[] = [];
  for (const item of value.split(',').map((s) => s.trim())) {
    if (!item) fail('_sort has an empty key');
    const direction: 1 | -1 = item.startsWith('-') ? -1 : 1;
    const code = item.replace(/^-/, '');
    const perType = types.map((type) => {
      const def = registry.get(type, code);
      if (!def) fail(`_sort: ${type} has no search parameter "${code}"`);
      return sortFields(def, def.bindings.get(type)!, direction);
    });
    if (new Set(perType.map((f) => f.join('\n'))).size > 1) {
      fail(`_sort=${code} is stored differently by ${types.join(', ')}; sort on one type at a time`);
    }
    for (const field of perType[0]) keys.push({ field, direction });
  }
  return keys;
}

function parseCount(value: string, options: ParseOptions): number {
  if (!/^\d+$/.test(value)) fail(`_count=${value} is not a non-negative integer`);
  return Math.min(Number(value), options.maxCount);
}

function parseInclude(name: string, value: string, types: string[], options: ParseOptions): IncludeSpec {
  const modifier = name.includes(':') ? name.slice(name.indexOf(':') + 1) : undefined;
  if (modifier !== undefined && modifier !== 'iterate' && modifier !== 'recurse') fail(`${name}: unknown modifier :${modifier}`);
  const iterate = modifier !== undefined;
  const base = name.split(':')[0];
  if (value === '*') return { sourceType: '*', param: '*', iterate, text: value };
  const [sourceType, param, targetType, ...extra] = value.split(':');
  if (!sourceType || !param || extra.length > 0) fail(`${base}=${value} must read Type:parameter or Type:parameter:TargetType`);
  if (!options.hostedTypes.includes(sourceType)) fail(`${base}=${value}: ${sourceType} is not hosted here`);
  if (base === '_include' && !iterate && !types.includes(sourceType)) fail(`_include=${value}: the search is not on ${sourceType}`);
  if (param !== '*') {
    const def = options.registry.get(sourceType, param);
    if (!def || def.type !== 'reference') fail(`${base}=${value}: ${sourceType} has no reference parameter "${param}"`);
    if (targetType && def.targets.length > 0 && !def.targets.includes(targetType))
      fail(`${base}=${value}: ${param} cannot refer to a ${targetType}`);
  }
  const spec: IncludeSpec = { sourceType, param, iterate, text: value };
  if (targetType) spec.targetType = targetType;
  return spec;
}

function problem(name: string, message: string): OperationOutcomeIssue {
  return issue('warning', 'not-supported', `Parameter ${name} ignored: ${message}`, name);
}

/**
 * Parses a search over `types` (one type, or several for a system search). Each parameter is interpreted for
 * every type; when the types store it the same way one condition serves all, otherwise each type gets its own.
 */
export function parseSearch(types: string[], params: Array<[string, string]>, options: ParseOptions): ParsedSearch {
  const parsed: ParsedSearch = {
    types,
    where: { op: 'and', of: [] },
    sort: [],
    count: options.defaultCount,
    include: [],
    revinclude: [],
    accepted: [],
    problems: [],
  };
  const perType = new Map<string, Condition[]>(types.map((t) => [t, []]));
  const limits = options.limits ?? DEFAULT_SEARCH_LIMITS;
  checkLimits(params, limits);
  const ctx: Ctx = { options, limits, depth: 0 };

  for (const [name, value] of params) {
    if (TRANSPARENT.has(name)) continue;
    try {
      const base = name.split(':')[0];
      switch (base) {
        case '_count':
          parsed.count = parseCount(value, options);
          break;
        case '_sort':
          parsed.sort = parseSort(types, value, options.registry);
          break;
        case '_total':
          if (value !== 'none' && value !== 'estimate' && value !== 'accurate') fail('_total takes none, estimate or accurate');
          parsed.total = value;
          break;
        case '_summary':
          parsed.summary = parseSummary(value);
          break;
        case '_elements':
          parsed.elements = parseElements(value);
          break;
        case '_include':
          parsed.include.push(parseInclude(name, value, types, options));
          break;
        case '_revinclude':
          parsed.revinclude.push(parseInclude(name, value, types, options));
          break;
        case '_cursor':
          parsed.cursor = value;
          continue; // never part of the self link's identity
        case '_type':
          // The system search route reads it; it stays in the links. Elsewhere it means nothing.
          if (!options.systemLevel) fail('_type applies to system-level search ([base]?_type=...) only');
          break;
        default: {
          if (UNSUPPORTED.has(base)) fail(`${base} is not supported by this server`);
          if (value === '' && !name.endsWith(':missing')) fail('empty value');
          const conditions = types.map((type) => parameterCondition(type, name, value, ctx));
          types.forEach((type, i) => perType.get(type)!.push(conditions[i]));
        }
      }
      parsed.accepted.push([name, value]);
    } catch (error) {
      if (error instanceof SearchTooCostlyError) throw error;
      if (error instanceof RejectedParamError) {
        throw new FhirError(400, issue('error', 'not-supported', `Parameter ${name}: ${error.message}`, name));
      }
      if (error instanceof ParamError) parsed.problems.push(problem(name, error.message));
      else if (error instanceof FhirError) parsed.problems.push(problem(name, error.message));
      else throw error;
    }
  }

  const conditions = types.map((t) => and(perType.get(t)!));
  const same = conditions.every((c) => JSON.stringify(c) === JSON.stringify(conditions[0]));
  parsed.where = same ? conditions[0] : or(types.map((t, i) => and([{ op: 'in', field: 'type', values: [t] }, conditions[i]])));
  return parsed;
}
