/**
 * _summary and _elements: shortened representations of a resource (FHIR R4 search.html#summary and #elements).
 * A shortened resource carries the SUBSETTED tag so nobody mistakes it for the whole record (or writes it back).
 * Summary flags come from the base StructureDefinitions (ElementDefinition.isSummary), top-level elements only:
 * a summary element that is complex is kept whole.
 */
import type { Coding, Resource } from '@medplum/fhirtypes';
import { errors } from './outcome.js';
import { loadBaseDefinitions } from './validation/definitions.js';

export type SummaryMode = 'true' | 'text' | 'data' | 'count' | 'false';

const SUBSETTED: Coding = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
  code: 'SUBSETTED',
  display: 'subsetted',
};

/** Elements every shortened resource keeps (mandatory and modifier elements of Resource/DomainResource). */
const ALWAYS_KEPT = new Set(['resourceType', 'id', 'meta', 'implicitRules', 'modifierExtension']);

const summaryElements = new Map<string, Set<string>>();
const mandatoryElements = new Map<string, Set<string>>();

function elementSets(type: string): { summary: Set<string>; mandatory: Set<string> } {
  let summary = summaryElements.get(type);
  let mandatory = mandatoryElements.get(type);
  if (!summary || !mandatory) {
    summary = new Set();
    mandatory = new Set();
    const definition = loadBaseDefinitions().structureDefinitions.get(type);
    for (const element of definition?.snapshot?.element ?? []) {
      const parts = element.path?.split('.') ?? [];
      if (parts.length !== 2) continue;
      const name = parts[1].replace('[x]', '');
      if (element.isSummary) summary.add(name);
      if ((element.min ?? 0) > 0) mandatory.add(name);
    }
    summaryElements.set(type, summary);
    mandatoryElements.set(type, mandatory);
  }
  return { summary, mandatory };
}

/** True when a JSON property (valueString, _birthDate…) belongs to one of the named elements. */
function belongsTo(property: string, names: Set<string>): boolean {
  const bare = property.startsWith('_') ? property.slice(1) : property;
  if (names.has(bare)) return true;
  for (const name of names) if (bare.startsWith(name) && /^[A-Z]/.test(bare.slice(name.length))) return true;
  return false;
}

function tagSubsetted(resource: Resource): Resource {
  const meta = { ...resource.meta, tag: [...(resource.meta?.tag ?? []), SUBSETTED] };
  return { ...resource, meta } as Resource;
}

function pick(resource: Resource, keep: (property: string) => boolean): Resource {
  const result: Record<string, unknown> = {};
  for (const [property, value] of Object.entries(resource)) if (keep(property)) result[property] = value;
  return tagSubsetted(result as unknown as Resource);
}

export function parseSummary(value: string | undefined): SummaryMode | undefined {
  if (value === undefined) return undefined;
  if (['true', 'text', 'data', 'count', 'false'].includes(value)) return value as SummaryMode;
  throw errors.badRequest(`_summary=${value} is not one of true, text, data, count, false`);
}

export function parseElements(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const names = value
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!/^[a-z][A-Za-z0-9]*$/.test(name)) throw errors.badRequest(`_elements: ${name} is not an element name`);
  }
  return names;
}

/** Applies _summary and/or _elements to a resource; returns it unchanged when neither asks for less. */
export function shortenResource(resource: Resource, summary: SummaryMode | undefined, elements: string[] | undefined): Resource {
  const { summary: summaryNames, mandatory } = elementSets(resource.resourceType);
  if (summary === 'true') return pick(resource, (p) => ALWAYS_KEPT.has(p) || belongsTo(p, summaryNames));
  if (summary === 'text') return pick(resource, (p) => ALWAYS_KEPT.has(p) || p === 'text' || belongsTo(p, mandatory));
  if (summary === 'data') return pick(resource, (p) => p !== 'text');
  if (elements && elements.length > 0) {
    const names = new Set(elements);
    return pick(resource, (p) => ALWAYS_KEPT.has(p) || belongsTo(p, names) || belongsTo(p, mandatory));
  }
  return resource;
}
