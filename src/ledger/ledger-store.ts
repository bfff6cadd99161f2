/**
 * The ledger's MongoDB state, beside the resource store:
 *
 * - `resource_versions.anchor` (owned by the ledger, born 'pending' with the version): a version moves
 *   pending -> batched (member of a prepared batch, `batch` set) -> anchored (proof written back).
 * - `ledger_batches`: one document per batch, `_id` = batch number (so the number is unique by construction),
 *   written 'prepared' BEFORE anything is sent to Hedera, with the member version keys in leaf order, the exact
 *   HCS message, and the transaction id(s) it will be / was submitted under; then 'submitted'; then 'anchored'
 *   with the receipt fields. The member list outlives any version document, which is what lets a verifier see a
 *   version deleted from history.
 * - `ledger_leases`: the one document that says which process anchors (./lease.ts).
 * - `ledger_state`: the topic in use, created once and reused after restarts (./topic.ts).
 *
 * Binary fields come back from the driver as bson Binary; `bytes()` turns them into Buffers.
 */
import { Binary, type Collection, type Db, type Document } from 'mongodb';
import { VERSIONS_COLLECTION, type VersionDocument } from '../store/resource-store.js';

export const BATCHES_COLLECTION = 'ledger_batches';
export const LEASES_COLLECTION = 'ledger_leases';
export const LEDGER_STATE_COLLECTION = 'ledger_state';

export type BatchState = 'prepared' | 'submitted' | 'anchored';
export type AnchorState = 'pending' | 'batched' | 'anchored';

/** What Hedera reported for the transaction that put a batch on the topic. */
export interface BatchReceipt {
  transactionId: string;
  sequenceNumber: number;
  /** 48 bytes: the topic's running hash after this message. */
  runningHash: Buffer;
  runningHashVersion: number;
  /** "seconds.nanoseconds", as the mirror node writes it. */
  consensusTimestamp: string;
}

export interface BatchDocument {
  /** The batch number: 1, 2, 3, ... in the order the batches go on the ledger. */
  _id: number;
  state: BatchState;
  root: Buffer;
  /** Root of batch _id - 1 (null for batch 1): the message chains the batches. */
  previousRoot: Buffer | null;
  /** Leaves in the tree (= members.length). */
  size: number;
  /** Version keys "Type/id/versionId", in leaf order. */
  members: string[];
  /**
   * The members' commitments (the leaf data), 32 bytes each, concatenated in leaf order: the proofs can be
   * computed from the batch alone, and the tree re-checked against the published root without the versions.
   */
  leaves: Buffer;
  /** The HCS message exactly as submitted (encodeBatchMessage). */
  message: Buffer;
  topicId: string;
  /** Network label ("testnet", "local (not Hedera)", ...). */
  network: string;
  /** Every transaction id this batch was (or will be) submitted under, oldest first; the last is current. */
  transactionIds: string[];
  /** The frozen, signed transaction of the current id, so a resubmission sends the very same bytes. */
  signedTransaction: Buffer;
  /** When the current transaction id stops being valid (ms since the epoch). */
  validUntilMs: number;
  /** Lease holder that prepared the batch (for the log and post-mortems). */
  preparedBy: string;
  preparedAt: Date;
  submittedAt?: Date;
  anchoredAt?: Date;
  receipt?: BatchReceipt;
}

export interface LedgerStateDocument {
  _id: string;
  [key: string]: unknown;
}

/** The anchor of a version as the ledger reads it (Binary converted, fields typed). */
export interface AnchorView {
  state: AnchorState;
  salt: Buffer;
  commitment: Buffer;
  batch?: number;
  leafIndex?: number;
  treeSize?: number;
  auditPath?: Buffer[];
  root?: Buffer;
  topicId?: string;
  sequenceNumber?: number;
  consensusTimestamp?: string;
  runningHash?: Buffer;
  runningHashVersion?: number;
  transactionId?: string;
  network?: string;
}

/** A Buffer from what the driver returns for binary data (Binary, Buffer or Uint8Array); null otherwise. */
export function bytes(value: unknown): Buffer | null {
  if (value instanceof Binary) return Buffer.from(value.value());
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  return null;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Reads a version's anchor field; null when it has none or its salt/commitment are unreadable. */
export function readAnchor(anchor: Document | undefined): AnchorView | null {
  if (!anchor) return null;
  const salt = bytes(anchor.salt);
  const commitment = bytes(anchor.commitment);
  const state = anchor.state;
  if (!salt || !commitment || (state !== 'pending' && state !== 'batched' && state !== 'anchored')) return null;
  const view: AnchorView = { state, salt, commitment };
  view.batch = num(anchor.batch);
  view.leafIndex = num(anchor.leafIndex);
  view.treeSize = num(anchor.treeSize);
  if (Array.isArray(anchor.auditPath)) {
    const path = anchor.auditPath.map(bytes);
    if (path.every((p): p is Buffer => p !== null)) view.auditPath = path;
  }
  view.root = bytes(anchor.root) ?? undefined;
  view.topicId = str(anchor.topicId);
  view.sequenceNumber = num(anchor.sequenceNumber);
  view.consensusTimestamp = str(anchor.consensusTimestamp);
  view.runningHash = bytes(anchor.runningHash) ?? undefined;
  view.runningHashVersion = num(anchor.runningHashVersion);
  view.transactionId = str(anchor.transactionId);
  view.network = str(anchor.network);
  return view;
}

/** Reads a batch document, turning its Binary fields into Buffers. */
export function readBatch(doc: Document | null): BatchDocument | null {
  if (!doc) return null;
  const batch = { ...doc } as BatchDocument;
  batch.root = bytes(doc.root)!;
  batch.previousRoot = doc.previousRoot === null ? null : bytes(doc.previousRoot);
  batch.message = bytes(doc.message)!;
  // Projections may leave these out (history checks do not need them).
  batch.leaves = bytes(doc.leaves) ?? Buffer.alloc(0);
  batch.signedTransaction = bytes(doc.signedTransaction) ?? Buffer.alloc(0);
  if (doc.receipt) batch.receipt = { ...(doc.receipt as BatchReceipt), runningHash: bytes(doc.receipt.runningHash)! };
  return batch;
}

/** "Patient/123/4" -> its parts (ids contain no "/": FHIR ids are [A-Za-z0-9-.]{1,64}). */
export function parseVersionKey(key: string): { type: string; id: string; versionId: number } | null {
  const m = /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})\/(\d+)$/.exec(key);
  return m ? { type: m[1]!, id: m[2]!, versionId: Number(m[3]) } : null;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class LedgerStore {
  readonly versions: Collection<VersionDocument>;
  readonly batches: Collection<BatchDocument>;
  readonly state: Collection<LedgerStateDocument>;

  constructor(readonly db: Db) {
    this.versions = db.collection<VersionDocument>(VERSIONS_COLLECTION);
    this.batches = db.collection<BatchDocument>(BATCHES_COLLECTION);
    this.state = db.collection<LedgerStateDocument>(LEDGER_STATE_COLLECTION);
  }

  /** Idempotent, like the resource store's: identical specs are a no-op. */
  async ensureIndexes(): Promise<void> {
    // The worker's queue: pending versions, oldest first.
    await this.versions.createIndexes([{ key: { 'anchor.state': 1, lastUpdated: 1 }, name: 'anchor_state_lastUpdated' }]);
    await this.batches.createIndexes([
      { key: { state: 1, _id: 1 }, name: 'state_number' },
      // History checks: which batches hold versions of one resource (prefix match on "Type/id/").
      { key: { members: 1 }, name: 'members' },
    ]);
  }

  // ---- the worker's queue

  async oldestPending(): Promise<{ _id: string; lastUpdated: Date } | null> {
    return this.versions.findOne(
      { 'anchor.state': 'pending' },
      { sort: { 'anchor.state': 1, lastUpdated: 1 }, projection: { _id: 1, lastUpdated: 1 } },
    );
  }

  /** Number of pending versions, counting no further than `limit`. */
  async countPending(limit: number): Promise<number> {
    return this.versions.countDocuments({ 'anchor.state': 'pending' }, { limit });
  }

  /** Up to `limit` pending versions, oldest first: their keys and commitments (the leaf data). */
  async takePending(limit: number): Promise<Array<{ key: string; commitment: Buffer }>> {
    const docs = await this.versions
      .find({ 'anchor.state': 'pending' }, { sort: { 'anchor.state': 1, lastUpdated: 1 }, limit, projection: { _id: 1, 'anchor.commitment': 1 } })
      .toArray();
    const out: Array<{ key: string; commitment: Buffer }> = [];
    for (const doc of docs) {
      const commitment = bytes((doc.anchor as Document | undefined)?.commitment);
      // A pending version without a readable commitment cannot be a leaf; it stays pending and $verify says why.
      if (commitment && commitment.length === 32) out.push({ key: doc._id, commitment });
    }
    return out;
  }

  // ---- batches

  async lastBatch(): Promise<BatchDocument | null> {
    return readBatch(await this.batches.findOne({}, { sort: { _id: -1 } }));
  }

  async unfinishedBatch(): Promise<BatchDocument | null> {
    return readBatch(await this.batches.findOne({ state: { $in: ['prepared', 'submitted'] } }, { sort: { _id: 1 } }));
  }

  async batch(number: number): Promise<BatchDocument | null> {
    return readBatch(await this.batches.findOne({ _id: number }));
  }

  /** Batches holding any version of Type/id (the history check's second witness, besides the version documents). */
  async batchesOfResource(type: string, id: string): Promise<BatchDocument[]> {
    const docs = await this.batches
      .find(
        { members: { $regex: `^${escapeRegex(`${type}/${id}/`)}` } },
        { sort: { _id: 1 }, projection: { leaves: 0, signedTransaction: 0 } },
      )
      .toArray();
    return docs.map((d) => readBatch(d)!);
  }

  /** All versions of a resource, oldest first. */
  async versionsOf(type: string, id: string): Promise<VersionDocument[]> {
    return this.versions.find({ type, id }, { sort: { type: 1, id: 1, versionId: 1 } }).toArray();
  }
}
