/**
 * Narrowing a transaction or batch Bundle to the resource types the target hosts, without breaking the references
 * of the entries it keeps. Synthea's Bundles, for instance, carry Observation, Condition, Claim, Organization,
 * Practitioner, … next to Patient/Encounter/MedicationRequest, and point at them by urn:uuid fullUrl or by
 * conditional reference. A urn:uuid that no longer names an entry would fail the transaction, so:
 *
 * - a reference to a dropped entry whose resource has an id X becomes the logical reference `Type/X`
 *   (Synthea uses fullUrl urn:uuid:X with resource.id X, so the link stays recognisable);
 * - a reference to a dropped entry without an id keeps only `type` (and its display, identifier, …);
 * - a conditional reference to an unhosted type (`Practitioner?identifier=system|value`) — which the server could
 *   not resolve — becomes a logical reference by identifier `{type, identifier: {system, value}}`, keeping display;
 *   without an identifier criterion it keeps only `type` (+ display).
 *
 * Entries of hosted types are kept as they are otherwise, with their request.method and request.url.
 */
import { copyDecimalText } from '../../fhir/decimal-text.js';
import type { Bundle, BundleEntry, Identifier, Resource } from '@medplum/fhirtypes';
import type { ReferenceRewrites } from './report.js';

export interface FilteredBundle {
  bundle: Bundle;
  /** For each kept entry, its index in the original Bundle.entry (to report rejections where the user looks). */
  originalIndex: number[];
  /** Dropped entries per resource type. */
  dropped: Map<string, number>;
  rewrites: ReferenceRewrites;
}

interface DroppedTarget {
  type: string;
  id?: string;
}

/** The type an entry is about: its resource's, or for entries without one (DELETE, GET) the request URL's first segment. */
export function entryType(entry: BundleEntry): string | undefined {
  if (entry.resource?.resourceType) return entry.resource.resourceType;
  const url = entry.request?.url;
  return url ? /^(?:https?:\/\/[^?]*?\/)?([A-Z][A-Za-z]+)(?:[/?]|$)/.exec(url)?.[1] : undefined;
}

const CONDITIONAL = /^([A-Z][A-Za-z]+)\?(.*)$/;

/** `identifier=system|value` (or a bare value) of a conditional reference's query, as an Identifier. */
function identifierCriterion(query: string): Identifier | undefined {
  const value = new URLSearchParams(query).get('identifier');
  if (!value) return undefined;
  const bar = value.indexOf('|');
  if (bar === -1) return { value };
  const identifier: Identifier = { value: value.slice(bar + 1) };
  if (bar > 0) identifier.system = value.slice(0, bar);
  return identifier;
}

export function filterBundle(bundle: Bundle, hostedTypes: ReadonlySet<string>): FilteredBundle {
  const dropped = new Map<string, number>();
  const droppedByFullUrl = new Map<string, DroppedTarget>();
  const kept: BundleEntry[] = [];
  const originalIndex: number[] = [];
  (bundle.entry ?? []).forEach((entry, index) => {
    const type = entryType(entry);
    if (type !== undefined && hostedTypes.has(type)) {
      kept.push(entry);
      originalIndex.push(index);
      return;
    }
    const key = type ?? '(unknown)';
    dropped.set(key, (dropped.get(key) ?? 0) + 1);
    if (entry.fullUrl && type) droppedByFullUrl.set(entry.fullUrl, { type, id: entry.resource?.id });
  });

  const rewrites: ReferenceRewrites = { logical: 0, typeOnly: 0, conditional: 0 };
  const entries = kept.map((entry) => {
    if (!entry.resource) return entry;
    const resource = structuredClone(entry.resource) as Resource;
    copyDecimalText(entry.resource, resource);
    rewriteReferences(resource, droppedByFullUrl, hostedTypes, rewrites);
    return { ...entry, resource };
  });
  const filtered: Bundle = { ...bundle, entry: entries };
  if (entries.length === 0) delete filtered.entry;
  return { bundle: filtered, originalIndex, dropped, rewrites };
}

/** Rewrites, in place, every Reference in `resource` that points at a dropped entry or conditionally at an unhosted type. */
export function rewriteReferences(
  resource: Resource,
  droppedByFullUrl: ReadonlyMap<string, DroppedTarget>,
  hostedTypes: ReadonlySet<string>,
  rewrites: ReferenceRewrites,
): void {
  // Iterative: a deeply nested resource cannot overflow the stack.
  const stack: unknown[] = [resource];
  while (stack.length > 0) {
    const value = stack.pop();
    if (Array.isArray(value)) {
      stack.push(...value);
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    const node = value as Record<string, unknown>;
    if (typeof node.reference === 'string') rewriteOne(node, droppedByFullUrl, hostedTypes, rewrites);
    for (const child of Object.values(node)) if (child !== null && typeof child === 'object') stack.push(child);
  }
}

function rewriteOne(
  node: Record<string, unknown>,
  droppedByFullUrl: ReadonlyMap<string, DroppedTarget>,
  hostedTypes: ReadonlySet<string>,
  rewrites: ReferenceRewrites,
): void {
  const reference = node.reference as string;
  const target = droppedByFullUrl.get(reference);
  if (target) {
    if (target.id) {
      node.reference = `${target.type}/${target.id}`;
      rewrites.logical++;
    } else {
      delete node.reference;
      node.type ??= target.type;
      rewrites.typeOnly++;
    }
    return;
  }
  const conditional = CONDITIONAL.exec(reference);
  if (!conditional || hostedTypes.has(conditional[1])) return;
  delete node.reference;
  node.type ??= conditional[1];
  const identifier = identifierCriterion(conditional[2]);
  if (identifier) {
    node.identifier ??= identifier;
    rewrites.conditional++;
  } else {
    rewrites.typeOnly++;
  }
}
