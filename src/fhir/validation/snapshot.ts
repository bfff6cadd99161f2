/**
 * Snapshot generation for StructureDefinitions shipped without one (a differential only).
 *
 * Published packages carry snapshots and we use them as they are. For a differential-only profile
 * (e.g. an IG's source file) we build the snapshot the way the FHIR rules describe for the simple,
 * common case: start from the base definition's snapshot, unfold the children of a complex-typed element
 * when the differential constrains inside it, insert new slices after their sliced element, and merge each
 * differential element into its snapshot element (constraints are added, everything else replaces).
 *
 * Not supported (the loader refuses the profile, logs why, and a resource claiming it gets the
 * "unknown profile" warning): re-slicing, slices of slices, contentReference targets, differentials on
 * choice-type renames (value[x] -> valueQuantity) and type changes that need a different base type's
 * children.
 */
import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';

export type StructureDefinitionResolver = (urlOrType: string) => StructureDefinition | undefined;

const APPENDED_KEYS = new Set(['constraint', 'condition']);
const IGNORED_KEYS = new Set(['id', 'path']);

export function generateSnapshot(sd: StructureDefinition, resolve: StructureDefinitionResolver): StructureDefinition {
  if (!sd.baseDefinition) {
    throw new Error(`${sd.url}: no baseDefinition`);
  }
  const base = resolve(sd.baseDefinition);
  if (!base?.snapshot?.element?.length) {
    throw new Error(`${sd.url}: base ${sd.baseDefinition} is not available with a snapshot`);
  }
  const elements: ElementDefinition[] = structuredClone(base.snapshot.element);
  const diff = sd.differential?.element ?? [];

  for (const d of diff) {
    if (!d.id || !d.path) {
      throw new Error(`${sd.url}: differential element without id/path`);
    }
    let index = elements.findIndex((e) => e.id === d.id);
    if (index < 0 && d.sliceName) {
      index = insertSlice(elements, d, sd.url as string);
    }
    if (index < 0) {
      unfoldParent(elements, d.id, resolve, sd.url as string);
      index = elements.findIndex((e) => e.id === d.id);
    }
    if (index < 0) {
      throw new Error(`${sd.url}: cannot place differential element ${d.id}`);
    }
    elements[index] = merge(elements[index] as ElementDefinition, d);
  }

  const out: StructureDefinition = { ...structuredClone(sd), snapshot: { element: elements } };
  return out;
}

function merge(target: ElementDefinition, d: ElementDefinition): ElementDefinition {
  const out: Record<string, unknown> = { ...target };
  for (const [key, value] of Object.entries(d)) {
    if (IGNORED_KEYS.has(key)) {
      continue;
    }
    if (APPENDED_KEYS.has(key) && Array.isArray(value)) {
      const existing = (out[key] as unknown[] | undefined) ?? [];
      const keyOf = (c: unknown): unknown => (c as { key?: string }).key ?? JSON.stringify(c);
      const seen = new Set(existing.map(keyOf));
      out[key] = [...existing, ...value.filter((c) => !seen.has(keyOf(c)))];
      continue;
    }
    if (key.startsWith('fixed') || key.startsWith('pattern')) {
      // Only one fixed[x]/pattern[x] may be present.
      for (const k of Object.keys(out)) {
        if (k.startsWith('fixed') || k.startsWith('pattern')) {
          delete out[k];
        }
      }
    }
    out[key] = structuredClone(value);
  }
  return out as unknown as ElementDefinition;
}

/** Inserts a new slice element after the sliced element and its existing children/slices. */
function insertSlice(elements: ElementDefinition[], d: ElementDefinition, url: string): number {
  const slicedId = (d.id as string).slice(0, (d.id as string).lastIndexOf(':'));
  if (slicedId.includes(':')) {
    throw new Error(`${url}: slices of slices are not supported (${d.id})`);
  }
  const slicedIndex = elements.findIndex((e) => e.id === slicedId);
  if (slicedIndex < 0) {
    return -1;
  }
  const sliced = elements[slicedIndex] as ElementDefinition;
  let end = slicedIndex + 1;
  while (end < elements.length && isWithin(elements[end]?.id as string, slicedId)) {
    end++;
  }
  const slice: ElementDefinition = { ...structuredClone(sliced), id: d.id, sliceName: d.sliceName };
  delete slice.slicing;
  elements.splice(end, 0, slice);
  return end;
}

/** Unfolds the children of the nearest existing ancestor of `id` from its (single) type's definition. */
function unfoldParent(elements: ElementDefinition[], id: string, resolve: StructureDefinitionResolver, url: string): void {
  const segments = splitId(id);
  for (let n = segments.length - 1; n >= 1; n--) {
    const parentId = segments.slice(0, n).join('.');
    const parentIndex = elements.findIndex((e) => e.id === parentId);
    if (parentIndex < 0) {
      continue;
    }
    const parent = elements[parentIndex] as ElementDefinition;
    if (elements[parentIndex + 1]?.id?.startsWith(`${parentId}.`)) {
      return; // already has children, the element simply does not exist
    }
    const types = parent.type ?? [];
    if (types.length !== 1) {
      throw new Error(`${url}: cannot unfold ${parentId} (it has ${types.length} types)`);
    }
    const typeSd = resolve(types[0]?.profile?.[0] ?? (types[0]?.code as string));
    const typeElements = typeSd?.snapshot?.element;
    if (!typeElements?.length) {
      throw new Error(`${url}: cannot unfold ${parentId}: no snapshot for type ${types[0]?.code}`);
    }
    const rootPath = typeElements[0]?.path as string;
    const children = typeElements.slice(1).map((e) => {
      const child = structuredClone(e);
      child.id = parentId + (e.id as string).slice(rootPath.length);
      child.path = (parent.path as string) + (e.path as string).slice(rootPath.length);
      return child;
    });
    elements.splice(parentIndex + 1, 0, ...children);
    if (n < segments.length - 1) {
      unfoldParent(elements, id, resolve, url);
    }
    return;
  }
}

function splitId(id: string): string[] {
  return id.split('.');
}

function isWithin(id: string, ancestorId: string): boolean {
  return id.startsWith(`${ancestorId}.`) || id.startsWith(`${ancestorId}:`);
}
