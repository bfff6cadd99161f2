/**
 * vread: one version of a resource; 404 for an unknown version, 410 for a version that records a deletion, 403 when
 * the caller's scopes do not let it see that version.
 */
import type { FhirContext } from '../context.js';
import { errors } from '../outcome.js';
import { ID_PATTERN, viewOf, type VersionView } from './versions.js';
import { requireReadable } from './visibility.js';

export async function readResourceVersion(ctx: FhirContext, type: string, id: string, vid: string): Promise<VersionView> {
  ctx.access.require('r', type);
  const versionId = /^[1-9][0-9]{0,15}$/.test(vid) ? Number(vid) : NaN;
  const version =
    ID_PATTERN.test(id) && Number.isSafeInteger(versionId) ? await ctx.store.readVersion(type, id, versionId, ctx.session) : null;
  if (!version) throw errors.notFound(`${type}/${id} has no version ${vid}`);
  // Recorded before the check: a refused read names what it tried to read.
  ctx.audit?.touchedVersion(version);
  await requireReadable(ctx, version);
  if (version.deleted) throw errors.gone(`Version ${vid} of ${type}/${id} records its deletion`);
  return viewOf(version);
}
