/**
 * The MongoDB lookups of reference integrity: which of the heads and versions a resource refers to are stored.
 * fhir/interactions/references.ts decides which references must resolve and reports the ones that do not.
 */
import type { ResourceStore, StoreSession } from './resource-store.js';

/** Of the keys asked about, those that name a stored resource. */
export interface ExistingKeys {
  /** Head keys ("Type/id") of resources whose current version is not a deletion. */
  liveHeads: ReadonlySet<string>;
  /** Version keys ("Type/id/versionId") of stored versions, deletions included. */
  versions: ReadonlySet<string>;
}

/**
 * Which of `headKeys` name live resources (their heads in `resources`) and which of `versionKeys` name stored
 * versions. Two indexed lookups by _id, at most.
 */
export async function existingKeys(
  store: ResourceStore,
  headKeys: readonly string[],
  versionKeys: readonly string[],
  session?: StoreSession,
): Promise<ExistingKeys> {
  const findHeads = async () =>
    headKeys.length > 0 ? store.heads.find({ _id: { $in: [...headKeys] } }, { projection: { _id: 1, deleted: 1 }, session }).toArray() : [];
  const findVersions = async () =>
    versionKeys.length > 0 ? store.versions.find({ _id: { $in: [...versionKeys] } }, { projection: { _id: 1 }, session }).toArray() : [];
  // Statements of one transaction go one after the other (the driver does not order concurrent ones).
  const [heads, versions] = session ? [await findHeads(), await findVersions()] : await Promise.all([findHeads(), findVersions()]);
  return {
    liveHeads: new Set(heads.filter((h) => !h.deleted).map((h) => h._id)),
    versions: new Set(versions.map((v) => v._id)),
  };
}
