/**
 * The anchoring worker: off the request path, it takes pending versions, builds an RFC 9162 Merkle tree over
 * their commitments, puts ONE message per batch on the HCS topic (encodeBatchMessage: version, batch number,
 * root, size, previous root) and writes each version's inclusion proof and the consensus details back.
 *
 * A batch closes when it holds LEDGER_BATCH_MAX_LEAVES versions or when its oldest version has waited
 * LEDGER_BATCH_INTERVAL_MS. Batches go out strictly one after another (batch n+1 is prepared only once n is
 * anchored), so the topic's order is the batch order and each message's `prev` is the root before it.
 *
 * Durability, in the order things happen:
 *   1. prepare: the batch document is inserted 'prepared' — members, leaves, root, the exact message, and the
 *      transaction id it will go out under with its frozen, signed bytes — and the members are marked with the
 *      batch number. Nothing has been sent yet.
 *   2. submit: those bytes are sent; the batch becomes 'submitted'.
 *   3. receipt and record: sequence number, running hash, consensus timestamp.
 *   4. write-back: every member's proof, then the batch becomes 'anchored'.
 * A crash anywhere leaves a 'prepared' or 'submitted' batch, which the next holder of the lease finishes
 * before anything else: it looks its transaction ids up (receipt, then the mirror node). Found: write back.
 * Still valid and not found: send the same bytes again (Hedera deduplicates by transaction id). Expired and
 * provably never recorded: a new transaction id carrying the SAME message — a batch number never gets a
 * different root, because the message is fixed at step 1.
 *
 * Failures (Hedera or the mirror unreachable, BUSY, PLATFORM_TRANSACTION_NOT_CREATED, ...) never reach a FHIR
 * request: the worker logs them and retries with exponential backoff; pending versions simply wait, and the
 * backlog drains in batches of up to LEDGER_BATCH_MAX_LEAVES once the network is back.
 */
import { buildTree, leafHash, type MerkleTree } from './merkle.js';
import { BATCH_MESSAGE_VERSION, encodeBatchMessage } from './batch-message.js';
import { Backoff } from './backoff.js';
import { isTransientHederaError, type HederaLedger } from './hedera-client.js';
import { transactionValidStartMs } from './hedera-ids.js';
import type { Lease } from './lease.js';
import type { BatchDocument, BatchReceipt, LedgerStore } from './ledger-store.js';
import { MirrorUnavailableError, type MirrorClient } from './mirror-client.js';
import { RUNNING_HASH_VERSION } from './running-hash.js';
import { ensureTopic } from './topic.js';
import { MongoServerError } from 'mongodb';

/** pino-compatible: (fields, message). */
export interface LedgerLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface AnchorWorkerOptions {
  store: LedgerStore;
  ledger: HederaLedger;
  /** Used to tell "never recorded" from "receipt expired" after a crash, and for consensus timestamps as a fallback. */
  mirror: MirrorClient | null;
  lease: Lease;
  /** HEDERA_TOPIC_ID; undefined: create one and remember it. */
  topicId: string | undefined;
  batchMaxLeaves: number;
  batchIntervalMs: number;
  retryMinMs?: number;
  retryMaxMs: number;
  log: LedgerLogger;
  /** Called right after a batch was accepted by the network, before its receipt and write-back (test hook). */
  afterSubmit?: (batchNumber: number) => void;
}

export interface WorkerStats {
  topicId: string | null;
  /** HCS messages this worker got accepted (resubmissions of the same bytes included). */
  submissions: number;
  batchesAnchored: number;
  versionsAnchored: number;
  /** Batches this worker finished after finding them unfinished (a crash, or another holder's lease ending). */
  batchesRecovered: number;
  lastError: string | null;
}

/** The network may still record the current transaction: do not give it up for another id. */
class RetryLater extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetryLater';
  }
}

class LeaseLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LeaseLostError';
  }
}

/** Where a batch's transactions stand, as far as the network and the mirror node can tell. */
type Location =
  | { kind: 'found'; transactionId: string; sequenceNumber: number | null; runningHash: Buffer | null; consensusTimestamp: string | null }
  | { kind: 'sendable' }
  | { kind: 'undecided'; reason: string }
  | { kind: 'renew' };

/** A transaction must have this much validity left to be worth sending (nodes refuse it with less than 10 s). */
const MIN_VALIDITY_LEFT_MS = 15_000;
/** How long after a transaction's expiry the mirror node may still be catching up with it. */
const MIRROR_LAG_GRACE_MS = 60_000;
/** Transaction ids we did not make ourselves are judged by Hedera's longest validity. */
const MAX_VALID_DURATION_MS = 180_000;
const WRITE_BACK_CHUNK = 1000;

export class AnchorWorker {
  readonly stats: WorkerStats = {
    topicId: null,
    submissions: 0,
    batchesAnchored: 0,
    versionsAnchored: 0,
    batchesRecovered: 0,
    lastError: null,
  };
  private readonly backoff: Backoff;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wakeUp: (() => void) | null = null;
  private renewTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: AnchorWorkerOptions) {
    this.backoff = new Backoff(options.retryMinMs ?? 250, options.retryMaxMs);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.renewTimer = setInterval(() => {
      // Keeps the lease while a long step (a submission waiting for its receipt) is in progress.
      if (this.options.lease.held) this.options.lease.acquire().catch(() => undefined);
    }, Math.max(250, Math.floor(this.options.lease.ttlMs / 3)));
    this.renewTimer.unref();
    this.loopDone = this.loop();
  }

  /** Stops after the current step and gives the lease up, so another process can continue at once. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    this.wakeUp?.();
    await this.loopDone;
    await this.options.lease.release().catch(() => undefined);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let waitMs: number;
      try {
        waitMs = await this.step();
        this.backoff.reset();
        this.stats.lastError = null;
      } catch (error) {
        waitMs = this.backoff.next();
        this.report(error, waitMs);
      }
      if (this.running && waitMs > 0) await this.sleep(waitMs);
    }
  }

  private report(error: unknown, waitMs: number): void {
    const message = error instanceof Error ? error.message : String(error);
    this.stats.lastError = message;
    const fields = { retryInMs: waitMs, attempt: this.backoff.consecutiveFailures };
    if (error instanceof RetryLater || error instanceof LeaseLostError) {
      this.options.log.info(fields, `ledger: ${message}`);
    } else if (error instanceof MirrorUnavailableError || isTransientHederaError(error)) {
      this.options.log.warn(fields, `ledger unreachable, versions stay pending and will be anchored later: ${message}`);
    } else {
      this.options.log.error({ ...fields, err: error }, `ledger: anchoring failed: ${message}`);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      // stop() calls this to end the wait at once.
      this.wakeUp = done;
    });
  }

  /** One unit of work; returns how long to wait before the next. */
  private async step(): Promise<number> {
    const { lease, store, batchIntervalMs, batchMaxLeaves } = this.options;
    if (!(await lease.acquire())) return Math.max(250, Math.floor(lease.ttlMs / 3)); // standby
    if (this.stats.topicId === null) {
      this.stats.topicId = await ensureTopic(store, this.options.ledger, this.options.topicId, (level, message) =>
        this.options.log[level]({}, `ledger: ${message}`),
      );
    }
    const unfinished = await store.unfinishedBatch();
    if (unfinished) {
      this.options.log.info({ batch: unfinished._id, state: unfinished.state }, `ledger: finishing batch ${unfinished._id} (${unfinished.state})`);
      await this.finish(unfinished, null, false);
      this.stats.batchesRecovered++;
      return 0;
    }
    const oldest = await store.oldestPending();
    if (!oldest) return batchIntervalMs;
    const age = Date.now() - oldest.lastUpdated.getTime();
    if (age < batchIntervalMs && (await store.countPending(batchMaxLeaves)) < batchMaxLeaves) return batchIntervalMs - age;
    await this.prepareAndAnchor(this.stats.topicId);
    return 0;
  }

  private assertLease(): void {
    if (!this.options.lease.held) throw new LeaseLostError('the anchoring lease was lost; another process continues');
  }

  private async prepareAndAnchor(topicId: string): Promise<void> {
    const { store, ledger, batchMaxLeaves } = this.options;
    const leaves = await store.takePending(batchMaxLeaves);
    if (leaves.length === 0) return;
    const last = await store.lastBatch();
    const number = (last?._id ?? 0) + 1;
    const tree = buildTree(leaves.map((l) => leafHash(l.commitment)));
    const message = encodeBatchMessage({
      version: BATCH_MESSAGE_VERSION,
      batchNumber: number,
      treeSize: leaves.length,
      root: tree.root,
      previousRoot: last?.root ?? null,
    });
    this.assertLease();
    const prepared = await ledger.prepareMessage(topicId, message);
    const batch: BatchDocument = {
      _id: number,
      state: 'prepared',
      root: tree.root,
      previousRoot: last?.root ?? null,
      size: leaves.length,
      members: leaves.map((l) => l.key),
      leaves: Buffer.concat(leaves.map((l) => l.commitment)),
      message,
      topicId,
      network: ledger.networkLabel,
      transactionIds: [prepared.transactionId],
      signedTransaction: prepared.signedBytes,
      validUntilMs: prepared.validUntilMs,
      preparedBy: this.options.lease.holder,
      preparedAt: new Date(),
    };
    try {
      await store.batches.insertOne(batch);
    } catch (error) {
      // Only a second worker (one whose lease ran out while it was paused) can have taken this number.
      if (error instanceof MongoServerError && error.code === 11000) throw new LeaseLostError(`batch ${number} was prepared by another worker`);
      throw error;
    }
    const marked = await this.markMembers(batch);
    if (marked !== batch.size) {
      // Some versions were claimed meanwhile (a stale worker) or vanished: nothing was sent, so undo and redo.
      await store.versions.updateMany(
        { 'anchor.state': 'batched', 'anchor.batch': number },
        { $set: { 'anchor.state': 'pending' }, $unset: { 'anchor.batch': '' } },
      );
      await store.batches.deleteOne({ _id: number, state: 'prepared' });
      throw new LeaseLostError(`batch ${number}: only ${marked} of ${batch.size} versions could be claimed; preparing again`);
    }
    this.options.log.debug({ batch: number, size: batch.size, transactionId: prepared.transactionId }, 'ledger: batch prepared');
    await this.finish(batch, tree, true);
  }

  /** Marks the members as belonging to the batch; idempotent (recovery runs it again). Returns how many it marked now. */
  private async markMembers(batch: BatchDocument): Promise<number> {
    let marked = 0;
    // In slices: one $in over 10 000 keys is fine for mongod, but the embedded server's cost grows with its square.
    for (let start = 0; start < batch.members.length; start += WRITE_BACK_CHUNK) {
      const result = await this.options.store.versions.updateMany(
        { _id: { $in: batch.members.slice(start, start + WRITE_BACK_CHUNK) }, 'anchor.state': 'pending' },
        { $set: { 'anchor.state': 'batched', 'anchor.batch': batch._id } },
      );
      marked += result.modifiedCount;
    }
    return marked;
  }

  /** Takes a prepared or submitted batch to 'anchored'. `unsent`: prepared just now, certainly not sent yet. */
  private async finish(batch: BatchDocument, tree: MerkleTree | null, unsent: boolean): Promise<void> {
    const { ledger, store } = this.options;
    if (!unsent) await this.markMembers(batch);
    // Bounded: each round either finishes, throws, or moves to a new transaction id (at most once per round).
    for (let round = 0; round < 4; round++) {
      this.assertLease();
      const where: Location = unsent ? { kind: 'sendable' } : await this.locate(batch);
      unsent = false;
      if (where.kind === 'found') return this.writeBack(batch, tree, where);
      if (where.kind === 'undecided') throw new RetryLater(`batch ${batch._id}: ${where.reason}`);
      if (where.kind === 'renew') {
        // Every id this batch had is dead (failed at consensus, or expired and absent from the mirror):
        // the SAME message goes out under a new id.
        const prepared = await ledger.prepareMessage(batch.topicId, batch.message);
        await store.batches.updateOne(
          { _id: batch._id },
          {
            $push: { transactionIds: prepared.transactionId },
            $set: { signedTransaction: prepared.signedBytes, validUntilMs: prepared.validUntilMs, state: 'prepared' },
          },
        );
        this.options.log.warn(
          { batch: batch._id, transactionId: prepared.transactionId },
          `ledger: batch ${batch._id} was never recorded; sending the same message under a new transaction id`,
        );
        batch = {
          ...batch,
          transactionIds: [...batch.transactionIds, prepared.transactionId],
          signedTransaction: prepared.signedBytes,
          validUntilMs: prepared.validUntilMs,
          state: 'prepared',
        };
        unsent = true;
        continue;
      }
      // sendable
      const transactionId = batch.transactionIds[batch.transactionIds.length - 1]!;
      const outcome = await ledger.submit(batch.signedTransaction);
      if (outcome === 'expired') continue; // locate() decides between "wait for the mirror" and "renew"
      this.stats.submissions++;
      if (batch.state === 'prepared') {
        await store.batches.updateOne({ _id: batch._id }, { $set: { state: 'submitted', submittedAt: new Date() } });
        batch = { ...batch, state: 'submitted' };
      }
      this.options.afterSubmit?.(batch._id);
      const receipt = await ledger.receipt(transactionId, true);
      if (receipt.kind === 'success') {
        return this.writeBack(batch, tree, {
          kind: 'found',
          transactionId,
          sequenceNumber: receipt.sequenceNumber,
          runningHash: receipt.runningHash,
          consensusTimestamp: null,
        });
      }
      if (receipt.kind === 'unknown') throw new RetryLater(`batch ${batch._id}: no receipt yet for ${transactionId}`);
      // Failed at consensus (e.g. INVALID_SIGNATURE: the operator key is not the topic's submit key, or
      // INSUFFICIENT_PAYER_BALANCE): nothing was recorded. The next round's locate() sees the id as dead and the
      // same message goes out under a new one; if the cause persists, the backoff spaces the attempts out.
      this.options.log.error(
        { batch: batch._id, transactionId, status: receipt.status },
        `ledger: batch ${batch._id} failed at consensus (${receipt.status}); check the operator account and the topic's submit key`,
      );
    }
    throw new RetryLater(`batch ${batch._id}: not anchored yet, trying again`);
  }

  /** Where the batch's transaction ids stand: the newest first, by receipt, then by the mirror node. */
  private async locate(batch: BatchDocument): Promise<Location> {
    const { ledger, mirror } = this.options;
    const now = Date.now();
    const ids = [...batch.transactionIds].reverse();
    let undecided: string | null = null;
    for (const [i, transactionId] of ids.entries()) {
      const current = i === 0;
      const receipt = await ledger.receipt(transactionId, false);
      if (receipt.kind === 'success') {
        return { kind: 'found', transactionId, sequenceNumber: receipt.sequenceNumber, runningHash: receipt.runningHash, consensusTimestamp: null };
      }
      if (receipt.kind === 'failed') continue;
      const validUntil = current ? batch.validUntilMs : (transactionValidStartMs(transactionId) ?? 0) + MAX_VALID_DURATION_MS;
      // Still valid: sending the same bytes again is safe whether or not the network saw them.
      if (current && validUntil - now > MIN_VALIDITY_LEFT_MS) return { kind: 'sendable' };
      // Expired without a receipt: the receipt may have expired (Hedera keeps them ~3 minutes). Ask the mirror.
      if (!mirror) {
        undecided ??= `cannot tell whether ${transactionId} was recorded (no mirror node configured)`;
        continue;
      }
      let records;
      try {
        records = await mirror.transactions(transactionId);
      } catch (error) {
        if (!(error instanceof MirrorUnavailableError)) throw error;
        undecided ??= `cannot tell whether ${transactionId} was recorded: ${error.message}`;
        continue;
      }
      const success = records?.find((r) => r.result === 'SUCCESS');
      if (success) {
        const message = await mirror.topicMessageAt(success.consensus_timestamp);
        return {
          kind: 'found',
          transactionId,
          sequenceNumber: message?.sequence_number ?? null,
          runningHash: message ? Buffer.from(message.running_hash, 'base64') : null,
          consensusTimestamp: success.consensus_timestamp,
        };
      }
      if (records && records.length > 0) continue; // recorded, but failed: dead
      if (now < validUntil + MIRROR_LAG_GRACE_MS) {
        undecided ??= `${transactionId} expired recently; waiting for the mirror node to show whether it was recorded`;
      }
    }
    return undecided ? { kind: 'undecided', reason: undecided } : { kind: 'renew' };
  }

  private async consensusTimestamp(transactionId: string): Promise<string> {
    try {
      return await this.options.ledger.consensusTimestamp(transactionId);
    } catch (error) {
      // The record is a paid query that Hedera answers for ~3 minutes; the mirror node has it for good.
      const records = await this.options.mirror?.transactions(transactionId);
      const success = records?.find((r) => r.result === 'SUCCESS');
      if (success) return success.consensus_timestamp;
      throw error;
    }
  }

  private async writeBack(batch: BatchDocument, tree: MerkleTree | null, found: Extract<Location, { kind: 'found' }>): Promise<void> {
    const { store } = this.options;
    if (found.sequenceNumber === null || found.runningHash === null) {
      throw new RetryLater(`batch ${batch._id}: ${found.transactionId} is recorded but its sequence number is not known yet`);
    }
    const receipt: BatchReceipt = {
      transactionId: found.transactionId,
      sequenceNumber: found.sequenceNumber,
      runningHash: found.runningHash,
      // The SDK's receipt does not expose topicRunningHashVersion; every HCS message since 2020 uses version 3,
      // and verifiers read the real value from the mirror node and compare it with this one.
      runningHashVersion: RUNNING_HASH_VERSION,
      consensusTimestamp: found.consensusTimestamp ?? (await this.consensusTimestamp(found.transactionId)),
    };
    await store.batches.updateOne(
      { _id: batch._id },
      { $set: { state: 'submitted', receipt, submittedAt: batch.submittedAt ?? new Date() } },
    );

    tree ??= this.treeOf(batch);
    if (!tree.root.equals(batch.root)) throw new Error(`batch ${batch._id}: its stored leaves no longer give its root`);
    const common = {
      'anchor.state': 'anchored',
      'anchor.treeSize': batch.size,
      'anchor.root': batch.root,
      'anchor.topicId': batch.topicId,
      'anchor.sequenceNumber': receipt.sequenceNumber,
      'anchor.consensusTimestamp': receipt.consensusTimestamp,
      'anchor.runningHash': receipt.runningHash,
      'anchor.runningHashVersion': receipt.runningHashVersion,
      'anchor.transactionId': receipt.transactionId,
      'anchor.network': batch.network,
    };
    for (let start = 0; start < batch.members.length; start += WRITE_BACK_CHUNK) {
      const operations = batch.members.slice(start, start + WRITE_BACK_CHUNK).map((key, offset) => ({
        updateOne: {
          filter: { _id: key, 'anchor.batch': batch._id },
          update: { $set: { ...common, 'anchor.leafIndex': start + offset, 'anchor.auditPath': tree!.inclusionProof(start + offset) } },
        },
      }));
      await store.versions.bulkWrite(operations, { ordered: false });
    }
    await store.batches.updateOne({ _id: batch._id }, { $set: { state: 'anchored', anchoredAt: new Date() } });
    this.stats.batchesAnchored++;
    this.stats.versionsAnchored += batch.size;
    this.options.log.info(
      { batch: batch._id, size: batch.size, topicId: batch.topicId, sequenceNumber: receipt.sequenceNumber, consensusTimestamp: receipt.consensusTimestamp },
      `ledger: batch ${batch._id} anchored (${batch.size} versions, ${batch.network} topic ${batch.topicId} #${receipt.sequenceNumber})`,
    );
  }

  private treeOf(batch: BatchDocument): MerkleTree {
    const hashes: Buffer[] = [];
    for (let i = 0; i < batch.size; i++) hashes.push(leafHash(batch.leaves.subarray(i * 32, (i + 1) * 32)));
    return buildTree(hashes);
  }
}
