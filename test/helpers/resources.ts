/** Comparing stored resources with their sources. */
import type { Resource } from '@medplum/fhirtypes';

/** A resource without the meta the server stamps (versionId, lastUpdated); an emptied meta goes too. */
export function withoutServerMeta<T extends Resource>(resource: T): T {
  const copy = structuredClone(resource);
  if (copy.meta) {
    delete copy.meta.versionId;
    delete copy.meta.lastUpdated;
    if (Object.keys(copy.meta).length === 0) delete copy.meta;
  }
  return copy;
}
