/**
 * Reindexing: recompute `idx` for the heads whose idxVersion is not the current one (search definitions,
 * extractor or BASE_URL changed). Safe while the server runs:
 * - heads are visited in _id order in batches; after each batch a checkpoint (the last _id and the idxVersion
 *   it works towards) is saved, so an interrupted run resumes where it stopped;
 * - each head is updated with a compare-and-set on its versionId: a write that lands meanwhile has indexed its
 *   own new version already and wins; the reindex skips that head;
 * - the current version document gets the same values, so a head rebuilt from its version stays correct.
 * Deleted heads (tombstones) have no index values; they are only stamped.
 */
import type { AnyBulkWriteOperation, Document } from 'mongodb';
import { SINGLE_VERSION_TYPES, versionKey, type HeadDocument, type ResourceStore, type VersionDocument } from '../../store/resource-store.js';
import { extractIndex } from './extract.js';
import { searchRegistry } from './registry.js';

export const REINDEX_CHECKPOINTS = 'reindex_checkpoints';
const CHECKPOINT_ID = 'resources';

interface Checkpoint {
  _id: string;
  idxVersion: number;
  /** Last head _id processed; undefined when a run completed. */
  lastId?: string;
  updatedAt: Date;
}

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

export async function reindex(store: ResourceStore, baseUrl: string, options: ReindexOptions = {}): Promise<ReindexResult> {
  const registry = searchRegistry();
  const idxVersion = registry.indexVersion(baseUrl);
  const batchSize = options.batchSize ?? 500;
  const checkpoints = store.db.collection<Checkpoint>(REINDEX_CHECKPOINTS);
  const saved = options.restart ? null : await checkpoints.findOne({ _id: CHECKPOINT_ID });
  let after = saved && saved.idxVersion === idxVersion ? saved.lastId : undefined;
  const result: ReindexResult = { idxVersion, total: 0, updated: 0, skipped: 0, completed: false };
  if (after !== undefined) result.resumedFrom = after;

  const stale = (from: string | undefined): Document => ({
    idxVersion: { $ne: idxVersion },
    ...(from !== undefined ? { _id: { $gt: from } } : {}),
  });
  result.total = await store.heads.countDocuments(stale(after));
  let done = 0;
  options.onProgress?.(0, result.total);

  for (;;) {
    if (options.signal?.aborted) return result;
    const batch = await store.heads.find(stale(after)).sort({ _id: 1 }).limit(batchSize).toArray();
    if (batch.length === 0) break;
    const headOps: AnyBulkWriteOperation<HeadDocument>[] = [];
    const versionOps: AnyBulkWriteOperation<VersionDocument>[] = [];
    for (const head of batch) {
      const update: Document = head.deleted
        ? { $set: { idxVersion }, $unset: { idx: '' } }
        : { $set: { idx: extractIndex(registry, head.resource, baseUrl).idx, idxVersion } };
      headOps.push({ updateOne: { filter: { _id: head._id, versionId: head.versionId }, update } });
      versionOps.push({ updateOne: { filter: { _id: versionKey(head.type, head.id, head.versionId) }, update } });
    }
    const written = await store.heads.bulkWrite(headOps, { ordered: false });
    await store.versions.bulkWrite(versionOps, { ordered: false });
    result.updated += written.matchedCount;
    result.skipped += batch.length - written.matchedCount;
    after = batch[batch.length - 1]._id;
    done += batch.length;
    await checkpoints.updateOne(
      { _id: CHECKPOINT_ID },
      { $set: { idxVersion, lastId: after, updatedAt: new Date() } },
      { upsert: true },
    );
    options.onProgress?.(done, Math.max(result.total, done));
  }
  await checkpoints.updateOne({ _id: CHECKPOINT_ID }, { $set: { idxVersion, updatedAt: new Date() }, $unset: { lastId: '' } }, { upsert: true });
  if (!(await reindexSingleVersionTypes(store, baseUrl, batchSize, options.signal))) return result;
  result.completed = true;
  return result;
}

/**
 * Single-version types (the audit trail) have no heads: their index values live on their version documents, which
 * are reindexed here, in key order. Returns false when aborted. No checkpoint is needed: a run that stops leaves
 * the rest stale, and the next run finds exactly those by their idxVersion.
 */
async function reindexSingleVersionTypes(store: ResourceStore, baseUrl: string, batchSize: number, signal: AbortSignal | undefined): Promise<boolean> {
  const registry = searchRegistry();
  const idxVersion = registry.indexVersion(baseUrl);
  const types = [...SINGLE_VERSION_TYPES];
  let after: string | undefined;
  for (;;) {
    if (signal?.aborted) return false;
    const filter: Document = { type: { $in: types }, idxVersion: { $ne: idxVersion }, ...(after !== undefined ? { _id: { $gt: after } } : {}) };
    const batch = await store.versions.find(filter).sort({ _id: 1 }).limit(batchSize).toArray();
    if (batch.length === 0) return true;
    await store.versions.bulkWrite(
      batch.map((version) => ({
        updateOne: { filter: { _id: version._id }, update: { $set: { idx: extractIndex(registry, version.resource, baseUrl).idx, idxVersion } } },
      })),
      { ordered: false },
    );
    after = batch[batch.length - 1]._id;
  }
}
