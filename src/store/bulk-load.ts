/**
 * Bulk loading of NEW resources (version 1) for benchmarks and first loads: the same two documents per resource
 * that ResourceStore.writeVersion stores (the version in `resource_versions`, the head in `resources`), but
 * written with unordered insertMany in chunks instead of one transaction per resource, which is what makes
 * loading hundreds of thousands of resources a matter of minutes rather than hours.
 *
 * What it gives up, on purpose: atomicity per resource (a crash mid-load leaves versions whose head is missing;
 * versions go first, so a head never points at a version that does not exist) and every FHIR check (the caller
 * has validated, stamped meta, extracted the index and computed the pending anchor, as the write path does).
 * A resource that already exists fails the load (duplicate key), or with skipExisting (resuming an interrupted
 * load of the same resources) is left as it is; it is never overwritten.
 */
import type { Document } from 'mongodb';
import { headFromVersion, versionKey, type NewVersion, type ResourceStore, type VersionDocument } from './resource-store.js';

export class BulkLoadError extends Error {
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'BulkLoadError';
  }
}

const DUPLICATE_KEY = 11000; // mongod's unique-index violation

/** Write errors of an unordered insertMany (the driver gives an array, or a single error). */
function writeErrorsOf(error: unknown): Document[] {
  const errors = (error as { writeErrors?: Document[] | Document }).writeErrors;
  return errors === undefined ? [] : Array.isArray(errors) ? errors : [errors];
}

/** Unordered insertMany; with skipExisting, duplicate keys (documents already there) are not failures. */
async function insertAll(
  collection: ResourceStore['versions'] | ResourceStore['heads'],
  documents: Document[],
  skipExisting: boolean,
): Promise<void> {
  try {
    await collection.insertMany(documents as never[], { ordered: false });
  } catch (error) {
    const failures = writeErrorsOf(error);
    if (skipExisting && failures.length > 0 && failures.every((e) => e.code === DUPLICATE_KEY)) return;
    const first = failures[0];
    throw new BulkLoadError(`bulk insert failed: ${(first?.errmsg as string | undefined) ?? (error as Error).message}`, error);
  }
}

/**
 * Inserts first versions of new resources: all versions of the chunk, then all heads. Resolves when both
 * inserts are acknowledged; rejects with BulkLoadError naming the first failure otherwise.
 */
export async function insertNewVersions(
  store: ResourceStore,
  versions: NewVersion[],
  options: { skipExisting?: boolean } = {},
): Promise<void> {
  if (versions.length === 0) return;
  for (const version of versions) {
    if (version.versionId !== 1 || version.deleted) {
      throw new BulkLoadError(`${version.type}/${version.id}: only first versions of live resources can be bulk loaded`, undefined);
    }
  }
  const documents: VersionDocument[] = versions.map((version) => ({
    _id: versionKey(version.type, version.id, version.versionId),
    ...version,
  }));
  const skipExisting = options.skipExisting ?? false;
  await insertAll(store.versions, documents, skipExisting);
  await insertAll(store.heads, versions.map(headFromVersion), skipExisting);
}
