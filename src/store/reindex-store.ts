/**
 * The storage side of reindexing (src/fhir/search/reindex.ts computes the values): finding the documents whose
 * index values are stale, in _id order and in batches, writing their new values, and the checkpoint that lets an
 * interrupted run resume.
 */
import type { AnyBulkWriteOperation, Document } from 'mongodb';
import { ANY_TYPE_MARKER, inAnyTypeIndex } from './search/indexes.js';
import {
  SINGLE_VERSION_TYPES,
  versionKey,
  type HeadDocument,
  type IndexValues,
  type ResourceStore,
  type VersionDocument,
} from './resource-store.js';

export const REINDEX_CHECKPOINTS = 'reindex_checkpoints';
const CHECKPOINT_ID = 'resources';

/** Where the reindex of heads stands. */
export interface ReindexCheckpoint {
  /** The idxVersion the run works towards: a checkpoint for another one is of no use. */
  idxVersion: number;
  /** Last head _id processed; undefined when a run completed. */
  lastId?: string;
}

interface CheckpointDocument extends ReindexCheckpoint {
  _id: string;
  updatedAt: Date;
}

const checkpoints = (store: ResourceStore) => store.db.collection<CheckpointDocument>(REINDEX_CHECKPOINTS);

/** The saved checkpoint, or null when no run has saved one. */
export async function readReindexCheckpoint(store: ResourceStore): Promise<ReindexCheckpoint | null> {
  const saved = await checkpoints(store).findOne({ _id: CHECKPOINT_ID });
  if (!saved) return null;
  return saved.lastId !== undefined ? { idxVersion: saved.idxVersion, lastId: saved.lastId } : { idxVersion: saved.idxVersion };
}

/** Saves how far a run got: `lastId` after a batch, undefined once the run has visited every head. */
export async function saveReindexCheckpoint(store: ResourceStore, idxVersion: number, lastId: string | undefined): Promise<void> {
  const update: Document =
    lastId !== undefined
      ? { $set: { idxVersion, lastId, updatedAt: new Date() } }
      : { $set: { idxVersion, updatedAt: new Date() }, $unset: { lastId: '' } };
  await checkpoints(store).updateOne({ _id: CHECKPOINT_ID }, update, { upsert: true });
}

/** Heads not indexed by `idxVersion`, after the head _id `after` when given. */
function staleHeadFilter(idxVersion: number, after: string | undefined): Document {
  return { idxVersion: { $ne: idxVersion }, ...(after !== undefined ? { _id: { $gt: after } } : {}) };
}

/** How many heads (after `after`, when given) are not indexed by `idxVersion`. */
export async function countStaleHeads(store: ResourceStore, idxVersion: number, after?: string): Promise<number> {
  return store.heads.countDocuments(staleHeadFilter(idxVersion, after));
}

/**
 * The heads not indexed by `idxVersion`, after `after`, in _id order, `batchSize` at a time. Each batch is read
 * when the caller asks for it, after the _id that ended the previous one, so the caller writes a batch (and its
 * checkpoint) before the next is read, and can stop between batches.
 */
export async function* staleHeadBatches(
  store: ResourceStore,
  idxVersion: number,
  after: string | undefined,
  batchSize: number,
): AsyncGenerator<HeadDocument[]> {
  for (;;) {
    const batch = await store.heads.find(staleHeadFilter(idxVersion, after)).sort({ _id: 1 }).limit(batchSize).toArray();
    if (batch.length === 0) return;
    yield batch;
    after = batch[batch.length - 1]._id;
  }
}

/** New index values for a head read by staleHeadBatches; `idx` undefined for a tombstone, which has none. */
export interface HeadIndexUpdate {
  head: Pick<HeadDocument, '_id' | 'type' | 'id' | 'versionId'>;
  idx: IndexValues | undefined;
}

/**
 * Writes new index values, stamped `idxVersion`, on heads and on the version documents they point at. Each head
 * is written only if its versionId is still the one read (compare-and-set): a write that landed meanwhile has
 * indexed its own new version already, and wins. Returns how many heads were written; the rest were changed
 * meanwhile. The version documents are written regardless: the version read is the one the values belong to.
 */
export async function writeHeadIndexes(store: ResourceStore, idxVersion: number, updates: readonly HeadIndexUpdate[]): Promise<number> {
  if (updates.length === 0) return 0;
  const headOps: AnyBulkWriteOperation<HeadDocument>[] = [];
  const versionOps: AnyBulkWriteOperation<VersionDocument>[] = [];
  for (const { head, idx } of updates) {
    const update: Document = idx === undefined ? { $set: { idxVersion }, $unset: { idx: '' } } : { $set: { idx, idxVersion } };
    // A head written before its type was in the wildcard index gets its marker (the version documents need none).
    const headUpdate: Document = inAnyTypeIndex(head.type) ? { ...update, $set: { ...update.$set, [ANY_TYPE_MARKER]: true } } : update;
    headOps.push({ updateOne: { filter: { _id: head._id, versionId: head.versionId }, update: headUpdate } });
    versionOps.push({ updateOne: { filter: { _id: versionKey(head.type, head.id, head.versionId) }, update } });
  }
  const written = await store.heads.bulkWrite(headOps, { ordered: false });
  await store.versions.bulkWrite(versionOps, { ordered: false });
  return written.matchedCount;
}

/**
 * The version documents of single-version types (which have no heads, see SINGLE_VERSION_TYPES) not indexed by
 * `idxVersion`, in _id order, `batchSize` at a time; each batch is read when the caller asks for it.
 */
export async function* staleSingleVersionBatches(
  store: ResourceStore,
  idxVersion: number,
  batchSize: number,
): AsyncGenerator<VersionDocument[]> {
  const types = [...SINGLE_VERSION_TYPES];
  let after: string | undefined;
  for (;;) {
    const filter: Document = {
      type: { $in: types },
      idxVersion: { $ne: idxVersion },
      ...(after !== undefined ? { _id: { $gt: after } } : {}),
    };
    const batch = await store.versions.find(filter).sort({ _id: 1 }).limit(batchSize).toArray();
    if (batch.length === 0) return;
    yield batch;
    after = batch[batch.length - 1]._id;
  }
}

/** Writes new index values, stamped `idxVersion`, on version documents (by _id) read by staleSingleVersionBatches. */
export async function writeVersionIndexes(
  store: ResourceStore,
  idxVersion: number,
  updates: ReadonlyArray<{ _id: string; idx: IndexValues }>,
): Promise<void> {
  if (updates.length === 0) return;
  await store.versions.bulkWrite(
    updates.map(({ _id, idx }) => ({ updateOne: { filter: { _id }, update: { $set: { idx, idxVersion } } } })),
    { ordered: false },
  );
}
