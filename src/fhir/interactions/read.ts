/**
 * read: the current version of a resource; 404 when it never existed, 410 when its current version is a deletion,
 * 403 when the caller's scopes do not let it see this resource (another patient's, for a patient/ token).
 */
import { resultFields } from '../access/compartment.js';
import type { FhirContext } from '../context.js';
import { errors } from '../outcome.js';
import { ID_PATTERN, viewOf, type VersionView } from './versions.js';
import { requireReadable } from './visibility.js';

export async function readResource(ctx: FhirContext, type: string, id: string): Promise<VersionView> {
  ctx.access.require('r', type);
  // The stored index values are not part of the answer; the compartment references the access check and the audit
  // trail judge from are.
  const head = ID_PATTERN.test(id) ? await ctx.store.readCurrent(type, id, ctx.session, resultFields([type])) : null;
  if (!head) throw errors.notFound(`${type}/${id} is not known`);
  // Recorded before the check: a refused read names what it tried to read.
  ctx.audit?.touchedVersion(head);
  await requireReadable(ctx, head);
  if (head.deleted) throw errors.gone(`${type}/${id} was deleted (version ${head.versionId})`);
  return viewOf(head);
}
