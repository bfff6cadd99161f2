/** vread: one version of a resource; 404 for an unknown version, 410 for a version that records a deletion. */
import type { FhirContext } from '../context.js';
import { errors } from '../outcome.js';
import { ID_PATTERN, viewOf, type VersionView } from './versions.js';

export async function readResourceVersion(ctx: FhirContext, type: string, id: string, vid: string): Promise<VersionView> {
  const versionId = /^[1-9][0-9]{0,15}$/.test(vid) ? Number(vid) : NaN;
  const version = ID_PATTERN.test(id) && Number.isSafeInteger(versionId) ? await ctx.store.readVersion(type, id, versionId, ctx.session) : null;
  if (!version) throw errors.notFound(`${type}/${id} has no version ${vid}`);
  if (version.deleted) throw errors.gone(`Version ${vid} of ${type}/${id} records its deletion`);
  return viewOf(version);
}
