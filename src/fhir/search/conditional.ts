/**
 * Conditional create, update and delete (FHIR R4 http.html#ccreate, #cond-update, #3.1.0.7.1): the target is
 * found by search criteria rather than by id. Criteria are parsed strictly (an unknown parameter is a 400 here:
 * ignoring part of the criteria could update or delete the wrong resource) and may not use result parameters.
 *
 * | interaction        | no match                                   | one match                            | several |
 * |--------------------|--------------------------------------------|--------------------------------------|---------|
 * | create (If-None-Exist) | create, 201                            | nothing written, 200 with the match  | 412     |
 * | update (PUT ?...)  | create (with the body's id if it has one)  | update it (400 if the body's id differs) | 412 |
 * | delete (DELETE ?...) | nothing to do, 204                       | delete it, 204                       | 412     |
 *
 * Paths that may create hold the criteria's conditional key (store/search/conditional-keys.ts) from the second
 * search to the create, so concurrent requests with the same criteria create one resource between them.
 */
import type { HeldKey } from '../../store/search/conditional-keys.js';
import type { HeadDocument } from '../../store/resource-store.js';
import type { FhirContext } from '../context.js';
import { createResource } from '../interactions/create.js';
import { deleteResource, type DeleteResult } from '../interactions/delete.js';
import { updateResource } from '../interactions/update.js';
import { requireResourceBody, viewOf, type WriteResult } from '../interactions/versions.js';
import { errors } from '../outcome.js';
import { findByCriteria } from './search.js';

/** How long a conditional write waits for another writer of the same criteria before answering 409. */
const GUARD_WAIT_MS = 15_000;

/** Parses criteria text: "identifier=a|b&name=x", with or without a leading "Type?" or base URL. */
export function parseCriteria(text: string): Array<[string, string]> {
  const query = text.includes('?') ? text.slice(text.indexOf('?') + 1) : text;
  return [...new URLSearchParams(query).entries()];
}

/** The key concurrent writers of the same criteria share: type plus the criteria in a canonical order. */
export function criteriaKey(type: string, criteria: Array<[string, string]>): string {
  const sorted = [...criteria]
    .filter(([name]) => name !== '_format' && name !== '_pretty')
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  return `${type}?${new URLSearchParams(sorted).toString()}`;
}

function tooMany(type: string): Error {
  return errors.preconditionFailed(`The criteria match more than one ${type}; make them more selective`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `write` holding the criteria's key, after checking again that nothing matches; `existing` answers
 * when a match appears meanwhile (typically created by the writer that held the key before us).
 */
async function guarded<T>(
  ctx: FhirContext,
  type: string,
  criteria: Array<[string, string]>,
  existing: (match: HeadDocument) => Promise<T>,
  write: () => Promise<T>,
): Promise<T> {
  const keys = ctx.store.conditionalKeys;
  const key = criteriaKey(type, criteria);
  const deadline = Date.now() + GUARD_WAIT_MS;
  for (let attempt = 1; ; attempt++) {
    const held: HeldKey | undefined = await keys.tryAcquire(key, new Date(), ctx.session);
    if (held) {
      try {
        const matches = await findByCriteria(ctx, type, criteria, 2);
        if (matches.length > 1) throw tooMany(type);
        if (matches.length === 1) return await existing(matches[0]);
        return await write();
      } finally {
        await keys.release(held);
      }
    }
    if (Date.now() > deadline) throw errors.conflict(`Another request with the same criteria is still writing ${type}; try again`);
    await sleep(Math.min(50, 2 + attempt * 2) * (0.5 + Math.random()));
  }
}

/** POST [type] with If-None-Exist. */
export async function conditionalCreate(
  ctx: FhirContext,
  type: string,
  body: unknown,
  criteria: Array<[string, string]>,
): Promise<WriteResult> {
  requireResourceBody(body, type);
  const found = async (match: HeadDocument): Promise<WriteResult> => {
    ctx.audit?.touchedVersion(match);
    return { version: viewOf(match), created: false, changed: false, warnings: [] };
  };
  const matches = await findByCriteria(ctx, type, criteria, 2);
  if (matches.length > 1) throw tooMany(type);
  if (matches.length === 1) return found(matches[0]);
  return guarded(ctx, type, criteria, found, () => createResource(ctx, type, body));
}

/** PUT [type]?criteria. */
export async function conditionalUpdate(
  ctx: FhirContext,
  type: string,
  body: unknown,
  criteria: Array<[string, string]>,
  options: { ifMatch?: number } = {},
): Promise<WriteResult> {
  const input = requireResourceBody(body, type);
  const update = (match: HeadDocument): Promise<WriteResult> => {
    if (input.id !== undefined && input.id !== match.id) {
      throw errors.badRequest(`The body's id "${input.id}" is not the id of the resource the criteria match (${match.id})`, `${type}.id`);
    }
    return updateResource(ctx, type, match.id, { ...input, id: match.id }, options);
  };
  const matches = await findByCriteria(ctx, type, criteria, 2);
  if (matches.length > 1) throw tooMany(type);
  if (matches.length === 1) return update(matches[0]);
  return guarded(ctx, type, criteria, update, () =>
    input.id !== undefined ? updateResource(ctx, type, input.id, input, options) : createResource(ctx, type, input),
  );
}

/** DELETE [type]?criteria. `changed` false when nothing matched. */
export async function conditionalDelete(
  ctx: FhirContext,
  type: string,
  criteria: Array<[string, string]>,
  options: { ifMatch?: number } = {},
): Promise<DeleteResult | undefined> {
  const matches = await findByCriteria(ctx, type, criteria, 2);
  if (matches.length > 1) throw tooMany(type);
  if (matches.length === 0) return undefined;
  return deleteResource(ctx, type, matches[0].id, options);
}
