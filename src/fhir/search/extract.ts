/**
 * Index extraction at write time: every search parameter's FHIRPath expression is evaluated once per version
 * (Medplum's evalFhirPathTyped) and its results normalised into the compact `idx` document stored on the head
 * (see fields.ts for the layout). Searches then compare normalised values through MongoDB indexes and never
 * read resources to decide whether they match.
 *
 * Normal forms by parameter type:
 * - string: folded (NFD, combining marks removed, lower case, whitespace collapsed) for the default prefix match
 *   and :contains; as written for :exact. HumanName and Address contribute each of their parts.
 * - token: the variants "code", "system|code" and "system|" ("code" and "|code" without a system); Identifier
 *   system|value, ContactPoint value, boolean true/false, `code` elements with the implicit system of their
 *   required binding; texts for :text; type-qualified identifiers for :of-type.
 * - reference: "Type/id" for relative references, absolute ones under our base and version-specific ones;
 *   other absolute URLs as given (without a /_history part); contained (#id) references are not indexed;
 *   identifier tokens for :identifier.
 * - date: {lo, hi}, the first and last millisecond a value denotes at its precision (dates.ts); Period
 *   start..end (open ends unbounded); Timing the outer limits of its events and bounds.
 * - number: the number; quantity {v, s, c, u} (value, system, code, unit), plus {cv, cc} (value in UCUM base
 *   units and their dimension, see units.ts) when the system is UCUM and the code converts; uri: as given.
 * - composite: tuples, one per element and combination of its components' values (compositeTuples).
 */
import { evalFhirPathTyped, toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { parseDateRange } from '../dates.js';
import { parseLocalReference } from '../interactions/references.js';
import { MAX_DATE, MIN_DATE, SUFFIX, idxKey } from './fields.js';
import { foldString, soundexWords, tokenVariants } from './normalise.js';
import type { SearchParamDef, SearchRegistry, SimplePath, TypeBinding } from './registry.js';
import { UCUM_SYSTEM, canonicalUnit, toCanonical } from './units.js';

export interface DateValue {
  lo: Date;
  hi: Date;
}

export interface QuantityValue {
  v: number;
  s?: string;
  c?: string;
  u?: string;
  /** The value in UCUM base units (UCUM quantities whose unit converts by a factor). */
  cv?: number;
  /** The dimension of cv ("s", "g", "g.m-3", "1"): quantities compare by cv only within one dimension. */
  cc?: string;
}

export interface ExtractedIndex {
  idx: Record<string, unknown>;
  idxVersion: number;
}

type Json = Record<string, unknown>;

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v.length > 0) : [];
}

/** Follows a plain path property by property: what FHIRPath yields for it, without the engine's overhead. */
function followPath(path: SimplePath, input: TypedValue[]): TypedValue[] {
  let current: unknown[] = input.map((typed) => typed.value);
  for (const step of path.steps) {
    const next: unknown[] = [];
    for (const value of current) {
      if (value === null || typeof value !== 'object') continue;
      const child = (value as Json)[step];
      if (Array.isArray(child)) {
        for (const item of child) if (item !== null && item !== undefined) next.push(item);
      } else if (child !== null && child !== undefined) next.push(child);
    }
    current = next;
  }
  return current.map((value) => ({ type: path.type, value }));
}

/** FHIRPath variables of an evaluation: `%resource` for the components of a composite, which may look outside their element. */
type Variables = Record<string, TypedValue>;

function evaluate(binding: TypeBinding, input: TypedValue[], variables?: Variables): Array<{ value: TypedValue; resolveType?: string }> {
  const out: Array<{ value: TypedValue; resolveType?: string }> = [];
  for (const part of binding.parts) {
    let values: TypedValue[];
    try {
      values = part.simple ? followPath(part.simple, input) : evalFhirPathTyped(part.atom, input, variables);
    } catch {
      // An expression that cannot be evaluated on this resource yields no values (as if the element were absent).
      continue;
    }
    const asType = part.asType;
    for (const value of values) {
      if (value.value === undefined || value.value === null) continue;
      if (asType && value.type.toLowerCase() !== asType) continue;
      out.push({ value, resolveType: part.resolveType });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- strings

function stringParts(typed: TypedValue): string[] {
  const v = typed.value as Json;
  switch (typed.type) {
    case 'HumanName':
      return [str(v.family), ...strings(v.given), ...strings(v.prefix), ...strings(v.suffix), str(v.text)].filter((s): s is string => !!s);
    case 'Address':
      return [...strings(v.line), str(v.city), str(v.district), str(v.state), str(v.postalCode), str(v.country), str(v.text)].filter(
        (s): s is string => !!s,
      );
    default:
      return typeof typed.value === 'string' && typed.value.length > 0 ? [typed.value] : [];
  }
}

// ----------------------------------------------------------------------------------------------- tokens

interface TokenValues {
  variants: Set<string>;
  codes: Set<string>;
  texts: Set<string>;
  ofType: Set<string>;
}

function addText(tokens: TokenValues, text: unknown): void {
  const value = str(text);
  if (!value) return;
  const folded = foldString(value);
  if (folded) tokens.texts.add(folded);
}

function addCode(tokens: TokenValues, system: string | undefined, code: string | undefined): void {
  if (!code) return;
  for (const variant of tokenVariants(system, code)) tokens.variants.add(variant);
  tokens.codes.add(code);
}

function addToken(tokens: TokenValues, typed: TypedValue, implicitSystem: string | undefined): void {
  const value = typed.value;
  switch (typed.type) {
    case 'Coding': {
      const coding = value as Json;
      addCode(tokens, str(coding.system), str(coding.code));
      addText(tokens, coding.display);
      return;
    }
    case 'CodeableConcept': {
      const concept = value as Json;
      for (const coding of Array.isArray(concept.coding) ? (concept.coding as Json[]) : []) {
        addCode(tokens, str(coding.system), str(coding.code));
        addText(tokens, coding.display);
      }
      addText(tokens, concept.text);
      return;
    }
    case 'Identifier': {
      const identifier = value as Json;
      const idValue = str(identifier.value);
      addCode(tokens, str(identifier.system), idValue);
      const type = identifier.type as Json | undefined;
      addText(tokens, type?.text);
      for (const coding of Array.isArray(type?.coding) ? (type.coding as Json[]) : []) {
        if (idValue && str(coding.code)) tokens.ofType.add(`${str(coding.system) ?? ''}|${coding.code as string}|${idValue}`);
        addText(tokens, coding.display);
      }
      return;
    }
    case 'ContactPoint': {
      // The token is the ContactPoint's value; its system (phone, email, ...) is not a code system.
      addCode(tokens, undefined, str((value as Json).value));
      return;
    }
    case 'boolean':
      addCode(tokens, undefined, String(value));
      return;
    default:
      if (typeof value === 'string') addCode(tokens, implicitSystem, value);
      else if (typeof value === 'number') addCode(tokens, undefined, String(value));
  }
}

// ------------------------------------------------------------------------------------------- references

interface ReferenceValues {
  refs: Set<string>;
  identifiers: Set<string>;
}

/** "Type/id" for references to this server (relative, absolute under the base, version-specific). */
export function normaliseReference(reference: string, baseUrl: string): string | undefined {
  if (reference.startsWith('#')) return undefined;
  const local = parseLocalReference(reference, baseUrl);
  if (local) return `${local.type}/${local.id}`;
  // Another server's URL, or a URN: kept as given, without a version.
  return reference.replace(/\/_history\/[^/]+$/, '');
}

function referenceType(normalised: string, explicitType: string | undefined): string | undefined {
  if (explicitType) return explicitType;
  const match = /(?:^|\/)([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}$/.exec(normalised);
  return match?.[1];
}

function addReference(out: ReferenceValues, typed: TypedValue, resolveType: string | undefined, baseUrl: string): void {
  if (typeof typed.value === 'string') {
    // canonical / uri references
    if (!resolveType) out.refs.add(typed.value);
    return;
  }
  const reference = typed.value as Json;
  const explicitType = str(reference.type);
  const text = str(reference.reference);
  const normalised = text ? normaliseReference(text, baseUrl) : undefined;
  const type = normalised ? referenceType(normalised, explicitType) : explicitType;
  if (resolveType && type !== resolveType) return;
  if (normalised) out.refs.add(normalised);
  const identifier = reference.identifier as Json | undefined;
  const value = str(identifier?.value);
  if (value) for (const variant of tokenVariants(str(identifier?.system), value)) out.identifiers.add(variant);
}

// ------------------------------------------------------------------------------------------------ dates

function rangeOf(text: unknown, side: 'lo' | 'hi'): Date | undefined {
  if (typeof text !== 'string') return undefined;
  const range = parseDateRange(text);
  if (!range) return undefined;
  return side === 'lo' ? range.low : range.high;
}

function dateValues(typed: TypedValue): DateValue[] {
  const value = typed.value;
  if (typeof value === 'string') {
    const range = parseDateRange(value);
    return range ? [{ lo: range.low, hi: range.high }] : [];
  }
  const element = value as Json;
  switch (typed.type) {
    case 'Period': {
      const lo = rangeOf(element.start, 'lo');
      const hi = rangeOf(element.end, 'hi');
      if (!lo && !hi) return [];
      return [{ lo: lo ?? MIN_DATE, hi: hi ?? MAX_DATE }];
    }
    case 'Timing': {
      // The outer limits of the schedule: its events and its bounds, whatever the repeat rules say in between.
      const los: Date[] = [];
      const his: Date[] = [];
      for (const event of strings(element.event)) {
        const range = parseDateRange(event);
        if (range) {
          los.push(range.low);
          his.push(range.high);
        }
      }
      const bounds = (element.repeat as Json | undefined)?.boundsPeriod as Json | undefined;
      if (bounds) {
        const lo = rangeOf(bounds.start, 'lo');
        const hi = rangeOf(bounds.end, 'hi');
        los.push(lo ?? MIN_DATE);
        his.push(hi ?? MAX_DATE);
      }
      if (los.length === 0) return [];
      return [{ lo: new Date(Math.min(...los.map(Number))), hi: new Date(Math.max(...his.map(Number))) }];
    }
    default:
      return [];
  }
}

// --------------------------------------------------------------------------------------------- numbers

function quantityValue(typed: TypedValue): QuantityValue | undefined {
  const element = typed.value as Json;
  if (typeof element !== 'object' || typeof element.value !== 'number') return undefined;
  const quantity: QuantityValue = { v: element.value };
  if (str(element.system)) quantity.s = element.system as string;
  if (str(element.code)) quantity.c = element.code as string;
  if (str(element.unit)) quantity.u = element.unit as string;
  const canonical = quantity.s === UCUM_SYSTEM && quantity.c ? canonicalUnit(quantity.c) : undefined;
  if (canonical && Number.isFinite(element.value)) {
    quantity.cv = toCanonical(element.value, canonical);
    quantity.cc = canonical.unit;
  }
  return quantity;
}

// ------------------------------------------------------------------------------------------------ store

function minMax<T>(values: T[], key: (v: T) => string | number | Date): { min: string | number | Date; max: string | number | Date } {
  let min = key(values[0]);
  let max = min;
  for (const value of values.slice(1)) {
    const k = key(value);
    if (k < min) min = k;
    if (k > max) max = k;
  }
  return { min, max };
}

/** Writes `values` under the parameter's key: a scalar when the parameter is single-valued, else an array. */
function put<T>(idx: Json, code: string, single: boolean, values: T[], sortKey: (v: T) => string | number | Date): void {
  if (values.length === 0) return;
  if (single) {
    idx[idxKey(code)] = values[0];
    return;
  }
  idx[idxKey(code)] = values;
  const { min, max } = minMax(values, sortKey);
  idx[idxKey(code, SUFFIX.asc)] = min;
  idx[idxKey(code, SUFFIX.desc)] = max;
}

/** A composite's tuples never multiply past this per element (values of several components combine pairwise). */
const MAX_TUPLES_PER_ELEMENT = 64;

/**
 * The tuples of a composite parameter: for each element its base expression selects, one tuple per combination of
 * its components' values, each value under its component's code: `{code: [token variants], 'value-quantity': {v, ...}}`.
 * A search then asks for one tuple that satisfies every component, so `code-value-quantity=X$gt5` never pairs the
 * code of one element with the value of another. Token components keep all their variants in one array (they are one
 * value, a concept with several codings); every other component holds one value per tuple.
 */
function compositeTuples(def: SearchParamDef, elements: TypedValue[], resource: TypedValue, baseUrl: string): Json[] {
  const tuples: Json[] = [];
  const variables: Variables = { '%resource': resource };
  for (const element of elements) {
    let combinations: Json[] = [{}];
    for (const component of def.components ?? []) {
      const values: Json = {};
      extractParam(values, component.def, { ...component.binding, single: false }, [element], baseUrl, variables);
      const stored = values[idxKey(component.def.code)];
      if (stored === undefined) {
        combinations = [];
        break;
      }
      const options = component.def.type === 'token' || !Array.isArray(stored) ? [stored] : stored;
      combinations = combinations.flatMap((tuple) => options.map((value) => ({ ...tuple, [component.def.code]: value })));
      combinations = combinations.slice(0, MAX_TUPLES_PER_ELEMENT);
    }
    tuples.push(...combinations);
  }
  return tuples;
}

function extractParam(
  idx: Json,
  def: SearchParamDef,
  binding: TypeBinding,
  input: TypedValue[],
  baseUrl: string,
  variables?: Variables,
): void {
  const results = evaluate(binding, input, variables);
  if (results.length === 0) return;
  const code = def.code;
  switch (def.type) {
    case 'composite': {
      const tuples = compositeTuples(
        def,
        results.map((r) => r.value),
        input[0],
        baseUrl,
      );
      if (tuples.length > 0) idx[idxKey(code)] = tuples;
      return;
    }
    case 'string': {
      const written = [...new Set(results.flatMap((r) => stringParts(r.value)))];
      if (def.phonetic) {
        put(idx, code, false, [...new Set(written.flatMap(soundexWords))], (v) => v);
        return;
      }
      const folded = [...new Set(written.map(foldString).filter(Boolean))];
      put(idx, code, binding.single, folded, (v) => v);
      if (written.length > 0) idx[idxKey(code, SUFFIX.exact)] = binding.single ? written[0] : written;
      return;
    }
    case 'token': {
      const tokens: TokenValues = { variants: new Set(), codes: new Set(), texts: new Set(), ofType: new Set() };
      for (const r of results) addToken(tokens, r.value, binding.implicitSystem);
      if (tokens.variants.size > 0) {
        idx[idxKey(code)] = [...tokens.variants];
        const { min, max } = minMax([...tokens.codes], (v) => v);
        idx[idxKey(code, SUFFIX.asc)] = min;
        idx[idxKey(code, SUFFIX.desc)] = max;
      }
      if (tokens.texts.size > 0) {
        // Whole texts and their words, so that :text matches a text by the start of any of its words.
        const words = new Set(tokens.texts);
        for (const text of tokens.texts) for (const word of text.split(' ')) if (word) words.add(word);
        idx[idxKey(code, SUFFIX.text)] = [...words];
      }
      if (tokens.ofType.size > 0) idx[idxKey(code, SUFFIX.ofType)] = [...tokens.ofType];
      return;
    }
    case 'reference': {
      const refs: ReferenceValues = { refs: new Set(), identifiers: new Set() };
      for (const r of results) addReference(refs, r.value, r.resolveType, baseUrl);
      put(idx, code, binding.single, [...refs.refs], (v) => v);
      if (refs.identifiers.size > 0) idx[idxKey(code, SUFFIX.identifier)] = [...refs.identifiers];
      return;
    }
    case 'date': {
      const ranges = results.flatMap((r) => dateValues(r.value));
      if (ranges.length === 0) return;
      if (binding.single) {
        idx[idxKey(code)] = ranges[0];
        return;
      }
      idx[idxKey(code)] = ranges;
      idx[idxKey(code, SUFFIX.asc)] = new Date(Math.min(...ranges.map((r) => r.lo.getTime())));
      idx[idxKey(code, SUFFIX.desc)] = new Date(Math.max(...ranges.map((r) => r.hi.getTime())));
      return;
    }
    case 'number': {
      const numbers = results.map((r) => r.value.value).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      put(idx, code, binding.single, [...new Set(numbers)], (v) => v);
      return;
    }
    case 'quantity': {
      const quantities = results.map((r) => quantityValue(r.value)).filter((q): q is QuantityValue => q !== undefined);
      put(idx, code, binding.single, quantities, (q) => q.v);
      return;
    }
    case 'uri': {
      const uris = [...new Set(results.map((r) => r.value.value).filter((v): v is string => typeof v === 'string' && v.length > 0))];
      put(idx, code, binding.single, uris, (v) => v);
      return;
    }
  }
}

/** The index document of one version of a resource, and the idxVersion that produced it. */
export function extractIndex(registry: SearchRegistry, resource: Resource, baseUrl: string): ExtractedIndex {
  const idx: Json = {};
  const input = [toTypedValue(resource)];
  for (const def of registry.paramsOf(resource.resourceType)) {
    if (def.headField) continue;
    const binding = def.bindings.get(resource.resourceType);
    if (binding) extractParam(idx, def, binding, input, baseUrl);
  }
  return { idx, idxVersion: registry.indexVersion(baseUrl) };
}
