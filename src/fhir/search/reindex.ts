/**
 * Reindexing: recompute `idx` for the heads whose idxVersion is not the current one (search definitions,
 * extractor or BASE_URL changed). Safe while the server runs:
 * - heads are visited in _id order in batches; after each batch a checkpoint (the last _id and the idxVersion
 *   it works towards) is saved, so an interrupted run resumes where it stopped;
 * - each head is updated with a compare-and-set on its versionId: a write that lands meanwhile has indexed its
 *   own new version already and wins; the reindex skips that head;
 * - the current version document gets the same values, so a head rebuilt from its version stays correct.
 * Deleted heads (tombstones) have no index values; they are only stamped.
 * The values are computed here; finding the stale documents and writing them is src/store/reindex-store.ts.
 */
import type { ResourceStore } from '../../store/resource-store.js';
import {
  countStaleHeads,
  readReindexCheckpoint,
  saveReindexCheckpoint,
  staleHeadBatches,
  staleSingleVersionBatches,
  writeHeadIndexes,
  writeVersionIndexes,
} from '../../store/reindex-store.js';
import { extractIndex } from './extract.js';
import { searchRegistry } from './registry.js';

export { REINDEX_CHECKPOINTS } from '../../store/reindex-store.js';

export interface ReindexOptions {
  batchSize?: number;
  /** Ignore a saved checkpoint and start from the first head. */
  restart?: boolean;
  /** Called after each batch with the heads processed so far (this run) and the stale heads counted at start. */
  onProgress?: (done: number, total: number) => void;
  /** Stops after the current batch (its checkpoint saved) when aborted. */
  signal?: AbortSignal;
}

export interface ReindexResult {
  idxVersion: number;
  /** Stale heads counted at the start (from the checkpoint on, when resuming). */
  total: number;
  updated: number;
  /** Changed by a concurrent write while being reindexed (already current). */
  skipped: number;
  resumedFrom?: string;
  completed: boolean;
}

/** Reindexes every stale head, then every stale single-version resource; see above for the guarantees. */
export async function reindex(store: ResourceStore, baseUrl: string, options: ReindexOptions = {}): Promise<ReindexResult> {
  const registry = searchRegistry();
  const idxVersion = registry.indexVersion(baseUrl);
  const batchSize = options.batchSize ?? 500;
  const saved = options.restart ? null : await readReindexCheckpoint(store);
  const after = saved && saved.idxVersion === idxVersion ? saved.lastId : undefined;
  const result: ReindexResult = { idxVersion, total: 0, updated: 0, skipped: 0, completed: false };
  if (after !== undefined) result.resumedFrom = after;

  result.total = await countStaleHeads(store, idxVersion, after);
  let done = 0;
  options.onProgress?.(0, result.total);

  if (options.signal?.aborted) return result;
  for await (const batch of staleHeadBatches(store, idxVersion, after, batchSize)) {
    const written = await writeHeadIndexes(
      store,
      idxVersion,
      batch.map((head) => ({ head, idx: head.deleted ? undefined : extractIndex(registry, head.resource, baseUrl).idx })),
    );
    result.updated += written;
    result.skipped += batch.length - written;
    done += batch.length;
    await saveReindexCheckpoint(store, idxVersion, batch[batch.length - 1]._id);
    options.onProgress?.(done, Math.max(result.total, done));
    // Leaving the loop stops the batches: the next one is not read.
    if (options.signal?.aborted) return result;
  }
  await saveReindexCheckpoint(store, idxVersion, undefined);
  if (!(await reindexSingleVersionTypes(store, baseUrl, batchSize, options.signal))) return result;
  result.completed = true;
  return result;
}

/**
 * Single-version types (the audit trail) have no heads: their index values live on their version documents, which
 * are reindexed here, in key order. Returns false when aborted. No checkpoint is needed: a run that stops leaves
 * the rest stale, and the next run finds exactly those by their idxVersion.
 */
async function reindexSingleVersionTypes(
  store: ResourceStore,
  baseUrl: string,
  batchSize: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const registry = searchRegistry();
  const idxVersion = registry.indexVersion(baseUrl);
  if (signal?.aborted) return false;
  for await (const batch of staleSingleVersionBatches(store, idxVersion, batchSize)) {
    await writeVersionIndexes(
      store,
      idxVersion,
      batch.map((version) => ({ _id: version._id, idx: extractIndex(registry, version.resource, baseUrl).idx })),
    );
    if (signal?.aborted) return false;
  }
  return true;
}
