/**
 * References inside the resources of a Bundle that the server must rewrite before storing them
 * (http.html#trules):
 * - placeholders: a reference equal to another entry's fullUrl (urn:uuid:…, urn:oid:…, or any fullUrl of an
 *   entry whose resource gets a server-assigned id) becomes "Type/id" of that entry's resource;
 * - conditional references "Type?criteria" become "Type/id" of the one resource the search finds (none or
 *   several is an error: guessing would link a record to the wrong patient).
 * Only Reference.reference values are touched (any object's `reference` string, wherever it sits: extensions,
 * contained resources, backbone elements).
 */
import { copyDecimalText } from '../decimal-text.js';
import type { FhirContext } from '../context.js';
import { FhirError, issue } from '../outcome.js';
import { findByCriteria } from '../search/search.js';
import { parseCriteria } from '../search/conditional.js';
import { entryPath, type EntryAction } from './bundle-request.js';

const PLACEHOLDER = /^urn:(uuid|oid):/;
const CONDITIONAL = /^([A-Z][A-Za-z]+)\?(.+)$/;

export function isPlaceholder(reference: string): boolean {
  return PLACEHOLDER.test(reference);
}

interface FoundReference {
  holder: Record<string, unknown>;
  reference: string;
  /** FHIRPath-like location below the entry, e.g. ".resource.subject". */
  path: string;
}

/** Every object with a string `reference`, with its location. Iterative: no depth can overflow the stack. */
function findReferences(value: unknown, root: string): FoundReference[] {
  const found: FoundReference[] = [];
  const stack: Array<{ value: unknown; path: string }> = [{ value, path: root }];
  while (stack.length > 0) {
    const { value: current, path } = stack.pop()!;
    if (Array.isArray(current)) {
      current.forEach((item, index) => stack.push({ value: item, path: `${path}[${index}]` }));
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    const record = current as Record<string, unknown>;
    if (typeof record.reference === 'string') found.push({ holder: record, reference: record.reference, path });
    for (const [key, child] of Object.entries(record)) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, path: `${path}.${key}` });
    }
  }
  return found;
}

export interface ReferenceRewriteOptions {
  /** fullUrl -> "Type/id" for the entries whose resources the Bundle creates or names (transactions only). */
  placeholders: ReadonlyMap<string, string>;
  /** Batch: placeholders cannot be resolved (entries must not depend on each other) and are an error. */
  allowPlaceholders: boolean;
  /** Conditional references already resolved in this Bundle, so each search runs once. */
  conditionalCache: Map<string, string>;
}

/**
 * Returns a copy of `body` (a resource, or a patch document) with placeholders and conditional references
 * rewritten; throws a FhirError naming the entry and the element for one that cannot be resolved.
 */
export async function rewriteReferences<T>(ctx: FhirContext, index: number, body: T, options: ReferenceRewriteOptions): Promise<T> {
  if (body === null || typeof body !== 'object') return body;
  const copy = structuredClone(body);
  copyDecimalText(body, copy);
  for (const found of findReferences(copy, `${entryPath(index)}.resource`)) {
    const { reference } = found;
    const mapped = options.placeholders.get(reference);
    if (mapped !== undefined) {
      found.holder.reference = mapped;
      continue;
    }
    if (isPlaceholder(reference)) {
      const why = options.allowPlaceholders
        ? 'it is the fullUrl of no entry in this Bundle'
        : 'entries of a batch are independent, so they cannot refer to each other by fullUrl (send a transaction)';
      throw new FhirError(
        400,
        issue('error', 'invalid', `${entryPath(index)}: reference ${reference} cannot be resolved: ${why}`, `${found.path}.reference`),
      );
    }
    const conditional = CONDITIONAL.exec(reference);
    if (conditional)
      found.holder.reference = await resolveConditional(ctx, index, conditional[1], reference, found.path, options.conditionalCache);
  }
  return copy;
}

async function resolveConditional(
  ctx: FhirContext,
  index: number,
  type: string,
  reference: string,
  path: string,
  cache: Map<string, string>,
): Promise<string> {
  const cached = cache.get(reference);
  if (cached !== undefined) return cached;
  const where = `${path}.reference`;
  if (!ctx.resourceTypes.includes(type)) {
    throw new FhirError(
      400,
      issue(
        'error',
        'not-supported',
        `${entryPath(index)}: conditional reference ${reference}: ${type} is not hosted here, so it cannot be searched`,
        where,
      ),
    );
  }
  let matches;
  try {
    matches = await findByCriteria(ctx, type, parseCriteria(reference), 2);
  } catch (error) {
    if (!(error instanceof FhirError)) throw error;
    const detail = error.outcome.issue?.map((i) => i.diagnostics).join('; ');
    throw new FhirError(
      400,
      issue('error', 'invalid', `${entryPath(index)}: conditional reference ${reference} is not a valid search: ${detail}`, where),
    );
  }
  if (matches.length !== 1) {
    const found = matches.length === 0 ? 'matches no resource' : 'matches more than one resource';
    throw new FhirError(
      412,
      issue('error', 'not-found', `${entryPath(index)}: conditional reference ${reference} ${found}; it must match exactly one`, where),
    );
  }
  const resolved = `${type}/${matches[0].id}`;
  cache.set(reference, resolved);
  return resolved;
}

/** An entry's action with its resource (or patch document) passed through rewriteReferences. */
export async function rewriteActionReferences(
  ctx: FhirContext,
  index: number,
  action: EntryAction,
  options: ReferenceRewriteOptions,
): Promise<EntryAction> {
  switch (action.kind) {
    case 'create':
    case 'update':
    case 'conditional-update':
      return { ...action, resource: await rewriteReferences(ctx, index, action.resource, options) };
    case 'patch':
      return action.patch.kind === 'fhirpath-patch'
        ? { ...action, patch: { ...action.patch, parameters: await rewriteReferences(ctx, index, action.patch.parameters, options) } }
        : { ...action, patch: { ...action.patch, operations: await rewriteReferences(ctx, index, action.patch.operations, options) } };
    default:
      return action;
  }
}
