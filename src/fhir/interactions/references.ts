/**
 * Reference integrity. References to the types this server hosts must point at stored resources when the policy
 * is strict (a MedicationRequest for a patient we do not have is a broken record); references to other types
 * (Practitioner, Organization, Medication, …), to other servers, and to contained resources are stored as given.
 * Version-specific references (Patient/1/_history/2) must name a stored version.
 */
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { headKey, versionKey } from '../../store/resource-store.js';
import { existingKeys } from '../../store/reference-checks.js';
import type { FhirContext } from '../context.js';
import { issue } from '../outcome.js';

export interface ParsedReference {
  type: string;
  id: string;
  versionId?: number;
}

interface FoundReference extends ParsedReference {
  expression: string;
  reference: string;
}

const RELATIVE = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([0-9]+))?$/;

/** Parses "Type/id", "Type/id/_history/n" or the same under this server's absolute base; undefined otherwise. */
export function parseLocalReference(reference: string, baseUrl: string): ParsedReference | undefined {
  let relative = reference;
  if (/^https?:\/\//.test(reference)) {
    if (!reference.startsWith(`${baseUrl}/`)) return undefined;
    relative = reference.slice(baseUrl.length + 1);
  }
  const match = RELATIVE.exec(relative);
  if (!match) return undefined;
  const parsed: ParsedReference = { type: match[1], id: match[2] };
  if (match[3] !== undefined) parsed.versionId = Number(match[3]);
  return parsed;
}

/** Every Reference.reference in a resource, with its FHIRPath location. Iterative, so depth cannot overflow. */
function findReferences(resource: Resource, baseUrl: string, hosted: readonly string[]): FoundReference[] {
  const found: FoundReference[] = [];
  const stack: Array<{ value: unknown; path: string }> = [{ value: resource, path: resource.resourceType }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (Array.isArray(value)) {
      value.forEach((item, index) => stack.push({ value: item, path: `${path}[${index}]` }));
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    const record = value as Record<string, unknown>;
    if (typeof record.reference === 'string') {
      const parsed = parseLocalReference(record.reference, baseUrl);
      if (parsed && hosted.includes(parsed.type)) found.push({ ...parsed, expression: path, reference: record.reference });
    }
    for (const [key, child] of Object.entries(record)) {
      if (key === 'reference' || typeof child !== 'object' || child === null) continue;
      stack.push({ value: child, path: `${path}.${key}` });
    }
  }
  return found;
}

export async function checkReferences(ctx: FhirContext, resource: Resource): Promise<OperationOutcomeIssue[]> {
  if (ctx.referencePolicy !== 'strict') return [];
  const references = findReferences(resource, ctx.baseUrl, ctx.resourceTypes).filter(
    // A resource may refer to itself (Patient.link), before it exists.
    (r) => !(r.type === resource.resourceType && r.id === resource.id && r.versionId === undefined),
  );
  if (references.length === 0) return [];
  const headIds = [...new Set(references.filter((r) => r.versionId === undefined).map((r) => headKey(r.type, r.id)))];
  const versionIds = [...new Set(references.filter((r) => r.versionId !== undefined).map((r) => versionKey(r.type, r.id, r.versionId!)))];
  const existing = await existingKeys(ctx.store, headIds, versionIds, ctx.session);
  const issues: OperationOutcomeIssue[] = [];
  for (const ref of references) {
    const exists =
      ref.versionId === undefined
        ? existing.liveHeads.has(headKey(ref.type, ref.id))
        : existing.versions.has(versionKey(ref.type, ref.id, ref.versionId));
    if (!exists) {
      issues.push(
        issue(
          'error',
          'not-found',
          `Reference ${ref.reference} does not resolve: no ${ref.versionId === undefined ? 'live resource' : 'such version'} on this server`,
          `${ref.expression}.reference`,
        ),
      );
    }
  }
  return issues;
}
