/** read: the current version of a resource; 404 when it never existed, 410 when its current version is a deletion. */
import type { FhirContext } from '../context.js';
import { errors } from '../outcome.js';
import { ID_PATTERN, viewOf, type VersionView } from './versions.js';

export async function readResource(ctx: FhirContext, type: string, id: string): Promise<VersionView> {
  const head = ID_PATTERN.test(id) ? await ctx.store.readCurrent(type, id, ctx.session) : null;
  if (!head) throw errors.notFound(`${type}/${id} is not known`);
  if (head.deleted) throw errors.gone(`${type}/${id} was deleted (version ${head.versionId})`);
  return viewOf(head);
}
