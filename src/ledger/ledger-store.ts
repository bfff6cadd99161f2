/**
 * The ledger's MongoDB state, beside the resource store:
 *
 * - `resource_versions.anchor` (owned by the ledger): born `{ state: 'pending', salt, commitment }` with the
 *   version, in the same write. The anchoring worker writes to it ONCE, before anything is sent: the claim
 *   `{ state: 'batched', batch: n }` (conditional on 'pending', so a version is claimed by one batch number, ever).
 *   Nothing is written to a version after its batch is published: its inclusion proof and the consensus details
 *   are computed on demand from its batch (./batch-trees.ts, ./ledger-service.ts). Versions anchored before this
 *   change say 'anchored' and carry their proof fields; they are read like 'batched' ones (the batch decides).
 * - `ledger_batches`: one document per batch, `_id` = batch number (so the number is unique by construction),
 *   inserted 'claiming' BEFORE anything is sent to Hedera, with the member version keys in leaf order, their
 *   commitments (the leaves), the root, the exact HCS message, and the transaction id it will be submitted
 *   under; 'prepared' once every member is claimed by it (only a prepared batch is ever sent); 'submitted';
 *   'anchored' with the receipt. The member list outlives any version document, which is what lets a verifier
 *   see a version deleted from history, and what a version's proof is computed from.
 * - `ledger_leases`: the one document that says which process anchors (./lease.ts).
 * - `ledger_state`: the topic in use, created once and reused after restarts (./topic.ts).
 *
 * Size: a batch document holds, per member, its key in the member list (12 bytes of BSON framing + the key, at
 * most 108 characters: the longest R4 type name, MedicinalProductUndesirableEffect, a 64-character id and a
 * 9-digit version) and its 32-byte leaf: at most 152 bytes. The largest batch LEDGER_BATCH_MAX_LEAVES allows,
 * 100,000 versions, is therefore at most 15.2 MB (14.5 MiB) with everything else in the document (message,
 * signed transaction, ids: a few KB) — under MongoDB's 16 MiB limit. memberBytes() / MAX_BATCH_MEMBER_BYTES
 * enforce that bound whatever the keys, so no batch can be refused for its size.
 *
 * Binary fields come back from the driver as bson Binary; `bytes()` turns them into Buffers.
 */
import { Binary, MongoServerError, type Collection, type Db, type Document } from 'mongodb';
import { HEADS_COLLECTION, VERSIONS_COLLECTION, type HeadDocument, type VersionDocument } from '../store/resource-store.js';

export const BATCHES_COLLECTION = 'ledger_batches';
export const LEASES_COLLECTION = 'ledger_leases';
export const LEDGER_STATE_COLLECTION = 'ledger_state';

/**
 * claiming: inserted, its members being claimed; its content may still shrink (never sent in this state).
 * prepared: every member claimed by it; content final; may be sent. submitted: sent at least once. anchored:
 * the receipt is recorded.
 */
export type BatchState = 'claiming' | 'prepared' | 'submitted' | 'anchored';
/**
 * As a reader sees a version: pending (not claimed), batched (claimed by a batch that is not anchored yet),
 * anchored (its batch is). Only 'pending' and 'batched' are ever stored by this code ('anchored' by older code).
 */
export type AnchorState = 'pending' | 'batched' | 'anchored';

/** Member keys and leaves of one batch may take this many bytes of its document (see the header). */
export const MAX_BATCH_MEMBER_BYTES = 15 * 1024 * 1024;

/** What one member adds to its batch document: its key in the member list (BSON framing included) and its leaf. */
export function memberBytes(key: string, position: number): number {
  // element type (1) + array index as a C string + string length (4) + the key + NUL (1); the 32-byte leaf.
  return 1 + String(position).length + 1 + 4 + Buffer.byteLength(key) + 1 + 32;
}

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
  /**
   * Bumped each time a claiming batch's content is cut down to the members it could claim: every change of a
   * claiming batch is conditional on it, so two workers (one of them stale) cannot both change or seal it.
   * Absent on batches written before claiming existed (they were inserted 'prepared').
   */
  revision?: number;
  root: Buffer;
  /** Root of batch _id - 1 (null for batch 1): the message chains the batches. */
  previousRoot: Buffer | null;
  /** Leaves in the tree (= members.length). */
  size: number;
  /** Version keys "Type/id/versionId", in leaf order: a member's leaf index is its position here. */
  members: string[];
  /**
   * The members' commitments (the leaf data), 32 bytes each, concatenated in leaf order: every member's
   * inclusion proof is computed from the batch alone (./batch-trees.ts), and the tree re-checked against the
   * published root without the versions.
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

/** What a version document itself says of its anchor (Binary converted): written with the version, and the claim. */
export interface VersionAnchor {
  /** pending, or claimed by batch `batch` (older code's 'anchored' reads as claimed: its batch decides). */
  state: 'pending' | 'batched';
  salt: Buffer;
  commitment: Buffer;
  batch?: number;
}

/**
 * A version's anchor as a reader sees it: its own fields, and — once its batch is anchored — its place in the
 * batch, the inclusion proof computed from the batch's leaves and the batch's consensus details.
 */
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

/** Reads a version's own anchor field; null when it has none or its salt/commitment are unreadable. */
export function readAnchor(anchor: Document | undefined): VersionAnchor | null {
  if (!anchor) return null;
  const salt = bytes(anchor.salt);
  const commitment = bytes(anchor.commitment);
  const state = anchor.state;
  if (!salt || !commitment || (state !== 'pending' && state !== 'batched' && state !== 'anchored')) return null;
  const view: VersionAnchor = { state: state === 'pending' ? 'pending' : 'batched', salt, commitment };
  const batch = num(anchor.batch);
  if (batch !== undefined) view.batch = batch;
  return view;
}

/** Reads a batch document, turning its Binary fields into Buffers. */
export function readBatch(doc: Document | null): BatchDocument | null {
  if (!doc) return null;
  const batch = { ...doc } as BatchDocument;
  batch.root = bytes(doc.root)!;
  batch.previousRoot = doc.previousRoot === null ? null : bytes(doc.previousRoot);
  batch.message = bytes(doc.message)!;
  // Projections may leave these out (history checks need no leaves, the next batch number no member list).
  batch.members = Array.isArray(doc.members) ? (doc.members as string[]) : [];
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

/** The error code mongod answers for a unique-index violation. */
const DUPLICATE_KEY = 11000;

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A claim or its check touches this many versions per command (see claim()). Small, because a single-threaded
 * database (the embedded one) runs one command's updates in one turn: with 1,000 per command every request waiting
 * behind a claim took ~150 ms longer (p99 of reads 159 ms; 75 ms with 100, reads 471 -> 519/s, `npm run bench --
 * --quick --steps 10000`, same machine, back to back).
 */
const CLAIM_CHUNK = 100;

/**
 * The completeness audit reads member versions this many keys per query: a slice of one batch, never more than
 * one batch's versions in memory.
 */
export const AUDIT_CHUNK = 1000;
/** Versions per page of the audit's pass over every version (five small fields each: about 1 MB a page). */
export const AUDIT_PAGE = 10_000;

/** A version as the completeness audit checks it: what was committed, and its own anchor. */
export interface AuditedVersion {
  /** The version as served and committed (a deletion's tombstone included). */
  resource: object;
  /** null when the anchor is gone or unreadable. */
  anchor: VersionAnchor | null;
}

/** One row of the audit's pass over every version: no resource, no salt. */
export interface VersionAnchorRow {
  key: string;
  lastUpdated: Date | null;
  state: AnchorState | null;
  batch: number | null;
}

/** Fields a claiming batch gets when it is cut down to the members it could claim. */
export type BatchContent = Pick<
  BatchDocument,
  'root' | 'size' | 'members' | 'leaves' | 'message' | 'transactionIds' | 'signedTransaction' | 'validUntilMs'
>;

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
      // Which batch holds a version (its proof, $verify, Provenance), and the history check: which batches hold
      // versions of one resource (prefix match on "Type/id/").
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
      .find(
        { 'anchor.state': 'pending' },
        { sort: { 'anchor.state': 1, lastUpdated: 1 }, limit, projection: { _id: 1, 'anchor.commitment': 1 } },
      )
      .toArray();
    const out: Array<{ key: string; commitment: Buffer }> = [];
    for (const doc of docs) {
      const commitment = bytes((doc.anchor as Document | undefined)?.commitment);
      // A pending version without a readable commitment cannot be a leaf; it stays pending and $verify says why.
      if (commitment && commitment.length === 32) out.push({ key: doc._id, commitment });
    }
    return out;
  }

  /**
   * Claims the members for batch `number`: each pending one becomes { state: 'batched', batch: number }. A version
   * already claimed (by this batch or another) is left alone, so a version is claimed by one batch number, ever,
   * and running this again is harmless. Returns how many it claimed now.
   */
  async claim(number: number, members: readonly string[]): Promise<number> {
    let claimed = 0;
    // In slices: one $in over 10 000 keys is fine for mongod, but the embedded server's cost grows with its square.
    for (let start = 0; start < members.length; start += CLAIM_CHUNK) {
      const result = await this.versions.updateMany(
        { _id: { $in: members.slice(start, start + CLAIM_CHUNK) }, 'anchor.state': 'pending' },
        { $set: { 'anchor.state': 'batched', 'anchor.batch': number } },
      );
      claimed += result.modifiedCount;
    }
    return claimed;
  }

  /** Which of `members` are claimed by batch `number`. */
  async claimedBy(number: number, members: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let start = 0; start < members.length; start += CLAIM_CHUNK) {
      const docs = await this.versions
        .find({ _id: { $in: members.slice(start, start + CLAIM_CHUNK) }, 'anchor.batch': number }, { projection: { _id: 1 } })
        .toArray();
      for (const doc of docs) out.add(doc._id);
    }
    return out;
  }

  // ---- batches: the worker's writes (each conditional where two workers could meet)

  /** Inserts a new batch; false when its number is taken (only a worker whose lease ran out can meet that). */
  async insertBatch(batch: BatchDocument): Promise<boolean> {
    try {
      await this.batches.insertOne(batch);
      return true;
    } catch (error) {
      if (error instanceof MongoServerError && error.code === DUPLICATE_KEY) return false;
      throw error;
    }
  }

  /** claiming -> prepared, if the batch is still at `revision`: its content is final from here on. */
  async sealBatch(number: number, revision: number): Promise<boolean> {
    const result = await this.batches.updateOne({ _id: number, state: 'claiming', revision }, { $set: { state: 'prepared' } });
    return result.matchedCount === 1;
  }

  /** Replaces a claiming batch's content (cut down to its claimed members), if it is still at `revision`. */
  async reviseBatch(number: number, revision: number, content: BatchContent): Promise<boolean> {
    const result = await this.batches.updateOne(
      { _id: number, state: 'claiming', revision },
      { $set: { ...content, revision: revision + 1 } },
    );
    return result.matchedCount === 1;
  }

  /**
   * Deletes a claiming batch that could claim none of its members, if it is still at `revision`. Nothing is
   * claimed by it, and none of its members can be claimed by it later (they are all claimed elsewhere or gone),
   * so its number is free again.
   */
  async dropBatch(number: number, revision: number): Promise<boolean> {
    const result = await this.batches.deleteOne({ _id: number, state: 'claiming', revision });
    return result.deletedCount === 1;
  }

  /** The batch goes out under a new transaction id (every earlier one is dead); same message. */
  async renewTransaction(number: number, prepared: { transactionId: string; signedBytes: Buffer; validUntilMs: number }): Promise<void> {
    await this.batches.updateOne(
      { _id: number },
      {
        $push: { transactionIds: prepared.transactionId },
        $set: { signedTransaction: prepared.signedBytes, validUntilMs: prepared.validUntilMs, state: 'prepared' },
      },
    );
  }

  async markSubmitted(number: number): Promise<void> {
    await this.batches.updateOne({ _id: number, state: 'prepared' }, { $set: { state: 'submitted', submittedAt: new Date() } });
  }

  /**
   * The batch is on the ledger: its receipt, in one write to the batch document. This is the last write
   * anchoring makes; the members' proofs are computed from the batch when they are asked for.
   */
  async recordAnchored(number: number, receipt: BatchReceipt, submittedAt: Date): Promise<void> {
    await this.batches.updateOne({ _id: number }, { $set: { state: 'anchored', receipt, submittedAt, anchoredAt: new Date() } });
  }

  // ---- batches: reads

  /** The newest batch, without its member list and leaves (its number and root are what is needed). */
  async lastBatch(): Promise<BatchDocument | null> {
    return readBatch(await this.batches.findOne({}, { sort: { _id: -1 }, projection: { members: 0, leaves: 0, signedTransaction: 0 } }));
  }

  async unfinishedBatch(): Promise<BatchDocument | null> {
    return readBatch(await this.batches.findOne({ state: { $in: ['claiming', 'prepared', 'submitted'] } }, { sort: { _id: 1 } }));
  }

  async batch(number: number): Promise<BatchDocument | null> {
    return readBatch(await this.batches.findOne({ _id: number }));
  }

  /** The state of batch `number`; null when there is no such batch. */
  async batchState(number: number): Promise<BatchState | null> {
    const doc = await this.batches.findOne({ _id: number }, { projection: { state: 1 } });
    return doc?.state ?? null;
  }

  /** What a batch's inclusion proofs are computed from: its leaves, and the root they must give. */
  async batchLeaves(number: number): Promise<{ root: Buffer; size: number; leaves: Buffer } | null> {
    const doc = await this.batches.findOne({ _id: number }, { projection: { root: 1, size: 1, leaves: 1 } });
    const root = bytes(doc?.root);
    const leaves = bytes(doc?.leaves);
    return doc && root && leaves && typeof doc.size === 'number' ? { root, size: doc.size, leaves } : null;
  }

  /** Batches holding any version of Type/id: where its versions' proofs come from, and the history check's witness. */
  async batchesOfResource(type: string, id: string): Promise<BatchDocument[]> {
    const docs = await this.batches
      .find(
        { members: { $regex: `^${escapeRegex(`${type}/${id}/`)}` } },
        { sort: { _id: 1 }, projection: { leaves: 0, signedTransaction: 0 } },
      )
      .toArray();
    return docs.map((d) => readBatch(d)!);
  }

  /** The running hash after message `sequenceNumber` of a topic, if one of our batches went out as that message. */
  async runningHashAfter(topicId: string, sequenceNumber: number): Promise<Buffer | null> {
    const doc = await this.batches.findOne(
      { topicId, 'receipt.sequenceNumber': sequenceNumber },
      { projection: { 'receipt.runningHash': 1 } },
    );
    return bytes(doc?.receipt?.runningHash);
  }

  // ---- the completeness audit (./completeness-audit.ts): streaming reads, bounded by one batch

  /** The highest batch number with a document (0 when there is none). */
  async lastBatchNumber(): Promise<number> {
    const doc = await this.batches.findOne({}, { sort: { _id: -1 }, projection: { _id: 1 } });
    return doc?._id ?? 0;
  }

  /** Batch `number` with its members and leaves, without its signed transaction (the audit reads no more). */
  async auditedBatch(number: number): Promise<BatchDocument | null> {
    return readBatch(await this.batches.findOne({ _id: number }, { projection: { signedTransaction: 0 } }));
  }

  /**
   * The topics this database anchored on, per network, as the worker recorded them (./topic.ts): `ledger_state`
   * documents `topic:<network label>` that are ready.
   */
  async topics(): Promise<Array<{ network: string; topicId: string }>> {
    const docs = await this.state.find({ _id: { $regex: '^topic:' }, state: 'ready' }).toArray();
    const out: Array<{ network: string; topicId: string }> = [];
    for (const doc of docs) {
      if (typeof doc.topicId === 'string' && typeof doc.network === 'string') out.push({ network: doc.network, topicId: doc.topicId });
    }
    return out;
  }

  /**
   * The versions with these keys, as committed (the resource and the anchor; not the search index values, which
   * are most of a version document and not committed). In slices of AUDIT_CHUNK keys per query.
   */
  async auditedVersions(keys: readonly string[]): Promise<Map<string, AuditedVersion>> {
    const out = new Map<string, AuditedVersion>();
    for (let start = 0; start < keys.length; start += AUDIT_CHUNK) {
      const docs = await this.versions
        .find({ _id: { $in: keys.slice(start, start + AUDIT_CHUNK) } }, { projection: { idx: 0, idxVersion: 0 } })
        .toArray();
      for (const doc of docs) out.set(doc._id, { resource: doc.resource as unknown as object, anchor: readAnchor(doc.anchor) });
    }
    return out;
  }

  /**
   * Every version's key, anchor state, claimed batch and time, one at a time: the audit's one pass over the whole
   * collection, a projection of five small fields read in pages of AUDIT_PAGE keys in `_id` order. Pages rather than
   * one cursor so that each query is short on any server: the embedded MongoDB computes a cursor's whole result before
   * its first batch (src/dev/mongo/README.md), which for half a million versions stalled it past the driver's 30 s
   * heartbeat; mongod streams either way.
   */
  async *versionAnchors(pageSize: number = AUDIT_PAGE): AsyncGenerator<VersionAnchorRow> {
    let after: string | undefined;
    for (;;) {
      const page = await this.versions
        .find(after === undefined ? {} : { _id: { $gt: after } }, {
          projection: { _id: 1, lastUpdated: 1, 'anchor.state': 1, 'anchor.batch': 1 },
          sort: { _id: 1 },
          limit: pageSize,
        })
        .toArray();
      for (const doc of page) {
        const anchor = doc.anchor as Document | undefined;
        const state = anchor?.state;
        yield {
          key: doc._id,
          lastUpdated: doc.lastUpdated instanceof Date ? doc.lastUpdated : null,
          state: state === 'pending' || state === 'batched' || state === 'anchored' ? state : null,
          batch: num(anchor?.batch) ?? null,
        };
      }
      if (page.length < pageSize) return;
      after = page[page.length - 1]._id;
    }
  }

  /** Keys of the versions whose claim names batch `number` (no index: a full scan, run only for a batch in doubt). */
  async *claimsOf(number: number): AsyncGenerator<string> {
    const cursor = this.versions.find({ 'anchor.batch': number }, { projection: { _id: 1 }, batchSize: AUDIT_CHUNK });
    try {
      for await (const doc of cursor) yield doc._id;
    } finally {
      await cursor.close();
    }
  }

  /** Whether anything of Type/id is left: any version document, and its current-version record. */
  async remainsOf(type: string, id: string): Promise<{ versions: number; head: boolean }> {
    const [versions, head] = await Promise.all([
      this.versions.countDocuments({ type, id }),
      this.db.collection<HeadDocument>(HEADS_COLLECTION).countDocuments({ _id: `${type}/${id}` }, { limit: 1 }),
    ]);
    return { versions, head: head > 0 };
  }

  /**
   * The versions of Type/id that batch member lists name, with the batch naming each (through the `members`
   * index; one batch document at a time, so memory stays that of one member list).
   */
  async listedVersionsOf(type: string, id: string): Promise<Array<{ versionId: number; batch: number }>> {
    const prefix = `${type}/${id}/`;
    const cursor = this.batches.find(
      { members: { $regex: `^${escapeRegex(prefix)}` } },
      { sort: { _id: 1 }, projection: { members: 1 }, batchSize: 1 },
    );
    const out: Array<{ versionId: number; batch: number }> = [];
    try {
      for await (const doc of cursor) {
        for (const key of doc.members as string[]) {
          if (!key.startsWith(prefix)) continue;
          const parsed = parseVersionKey(key);
          if (parsed) out.push({ versionId: parsed.versionId, batch: doc._id });
        }
      }
    } finally {
      await cursor.close();
    }
    return out.sort((a, b) => a.versionId - b.versionId);
  }

  // ---- versions, for the read side

  /** All versions of a resource, oldest first. */
  async versionsOf(type: string, id: string): Promise<VersionDocument[]> {
    return this.versions.find({ type, id }, { sort: { type: 1, id: 1, versionId: 1 } }).toArray();
  }

  /** One version, by its key "Type/id/versionId". */
  async version(key: string): Promise<VersionDocument | null> {
    return this.versions.findOne({ _id: key });
  }

  /** The head of a resource as stored (a deleted one's tombstone included), for checking it against the history. */
  async headOf(type: string, id: string): Promise<HeadDocument | null> {
    return this.db.collection<HeadDocument>(HEADS_COLLECTION).findOne({ _id: `${type}/${id}` });
  }
}
