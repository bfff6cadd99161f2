/**
 * update: PUT [type]/[id].
 * - The body's id must equal the URL's (400 otherwise, as the specification requires).
 * - Update-as-create: an id never seen (or a deleted resource) is created (201).
 * - If-Match W/"n": the write happens only if n is the current version (412 otherwise).
 * - No-op updates: content identical to the current version (ignoring meta.versionId and meta.lastUpdated) makes
 *   no new version and answers 200 with the current one. A version that changes nothing would tell a reader of
 *   the history that something happened, and would cost a ledger leaf for nothing (Blaze and HAPI do the same).
 * - Without If-Match, a concurrent writer is not an error: the update is re-applied on top of the newer version
 *   (last writer wins), up to MAX_WRITE_ATTEMPTS times, then 409.
 */
import type { Resource } from '@medplum/fhirtypes';
import { VersionConflictError, type HeadDocument, type WriteMethod } from '../../store/resource-store.js';
import type { FhirContext } from '../context.js';
import { errors } from '../outcome.js';
import { ID_PATTERN, contentKey, requireResourceBody, storeNextVersion, validateForWrite, viewOf, type WriteResult } from './versions.js';

/** Attempts before a write under heavy contention gives up with 409; each retry waits a little longer. */
export const MAX_WRITE_ATTEMPTS = 20;

/** Random, growing pause between retries, so contending writers stop colliding in lockstep. */
export function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 * attempt)));
}

export interface UpdateOptions {
  /** From If-Match: the version the client based its change on. */
  ifMatch?: number;
  /** Recorded in history (PATCH for a patch, PUT otherwise). */
  method?: WriteMethod;
}

export function checkIfMatch(head: HeadDocument | null, ifMatch: number | undefined, type: string, id: string): void {
  if (ifMatch === undefined) return;
  if (!head || head.deleted) {
    throw errors.preconditionFailed(`If-Match W/"${ifMatch}" cannot hold: ${type}/${id} has no current version`);
  }
  if (head.versionId !== ifMatch) {
    throw errors.preconditionFailed(`If-Match W/"${ifMatch}" does not hold: the current version of ${type}/${id} is ${head.versionId}`);
  }
}

/** Stores `resource` as the next version of type/id, given the content is already checked and validated. */
export async function writeUpdate(
  ctx: FhirContext,
  type: string,
  id: string,
  produce: (head: HeadDocument | null) => Promise<{ resource: Resource; warnings: WriteResult['warnings'] }>,
  options: UpdateOptions,
): Promise<WriteResult> {
  for (let attempt = 1; ; attempt++) {
    const head = await ctx.store.readCurrent(type, id, ctx.session);
    // Before anything about the current version is used (a patch is applied to it): may the caller change it?
    // (A refused attempt names the version it tried to change.)
    if (head && !head.deleted && !ctx.access.unrestricted) {
      try {
        ctx.access.requireWritable('u', type, id, head.idx);
      } catch (error) {
        ctx.audit?.touchedVersion(head);
        throw error;
      }
    }
    checkIfMatch(head, options.ifMatch, type, id);
    const { resource, warnings } = await produce(head);
    if (head && !head.deleted && contentKey(head.resource) === contentKey(resource)) {
      ctx.audit?.touchedVersion(head);
      return { version: viewOf(head), created: false, changed: false, warnings };
    }
    try {
      const version = await storeNextVersion(ctx, {
        type,
        id,
        previous: head,
        resource,
        deleted: false,
        method: options.method ?? 'PUT',
      });
      return { version, created: !head || head.deleted, changed: true, warnings };
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      // Inside a transaction the snapshot would show the same stale head again: the whole transaction retries.
      if (ctx.session) throw error;
      if (options.ifMatch !== undefined) {
        throw errors.preconditionFailed(
          `${type}/${id} changed while this update was applied; If-Match W/"${options.ifMatch}" no longer holds`,
        );
      }
      if (attempt >= MAX_WRITE_ATTEMPTS) throw errors.conflict(`${type}/${id} is being changed by other requests; try again`);
      await backoff(attempt);
    }
  }
}

export async function updateResource(
  ctx: FhirContext,
  type: string,
  id: string,
  body: unknown,
  options: UpdateOptions = {},
): Promise<WriteResult> {
  if (!ID_PATTERN.test(id)) throw errors.badRequest(`${id} is not a valid id (1-64 letters, digits, '-' and '.')`);
  const input = requireResourceBody(body, type);
  if (input.id === undefined) throw errors.badRequest(`The body has no id; it must be "${id}" as in the URL`, `${type}.id`);
  if (input.id !== id) {
    throw errors.badRequest(`The body's id "${input.id}" does not match the URL's "${id}"`, `${type}.id`);
  }
  const warnings = await validateForWrite(ctx, input);
  return writeUpdate(ctx, type, id, async () => ({ resource: input, warnings }), options);
}
