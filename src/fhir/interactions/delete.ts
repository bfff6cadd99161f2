/**
 * delete: records a deletion as a new version (the history keeps everything before it). Deleting a resource that
 * is already deleted changes nothing and succeeds, so a retried DELETE is harmless; an id never seen is a 404.
 */
import { VersionConflictError } from '../../store/resource-store.js';
import type { FhirContext } from '../context.js';
import { errors } from '../outcome.js';
import { MAX_WRITE_ATTEMPTS, backoff, checkIfMatch } from './update.js';
import { ID_PATTERN, storeNextVersion, tombstone, viewOf, type VersionView } from './versions.js';
import { requireReadable } from './visibility.js';

export interface DeleteResult {
  version: VersionView;
  /** False when the resource was already deleted. */
  changed: boolean;
}

export async function deleteResource(
  ctx: FhirContext,
  type: string,
  id: string,
  options: { ifMatch?: number } = {},
): Promise<DeleteResult> {
  for (let attempt = 1; ; attempt++) {
    const head = ID_PATTERN.test(id) ? await ctx.store.readCurrent(type, id, ctx.session) : null;
    if (!head) throw errors.notFound(`${type}/${id} is not known`);
    if (head.deleted) {
      await requireReadable(ctx, head);
      ctx.access.require('d', type);
      ctx.audit?.touchedVersion(head);
      return { version: viewOf(head), changed: false };
    }
    if (!ctx.access.unrestricted) {
      try {
        ctx.access.requireWritable('d', type, id, head.idx);
      } catch (error) {
        ctx.audit?.touchedVersion(head);
        throw error;
      }
    }
    checkIfMatch(head, options.ifMatch, type, id);
    try {
      const version = await storeNextVersion(ctx, {
        type,
        id,
        previous: head,
        resource: tombstone(type, id),
        deleted: true,
        method: 'DELETE',
      });
      return { version, changed: true };
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      // Inside a transaction the snapshot would show the same stale head again: the whole transaction retries.
      if (ctx.session) throw error;
      if (options.ifMatch !== undefined) throw errors.preconditionFailed(`${type}/${id} changed during the delete`);
      if (attempt >= MAX_WRITE_ATTEMPTS) throw errors.conflict(`${type}/${id} is being changed by other requests; try again`);
      await backoff(attempt);
    }
  }
}
