/**
 * The anchoring worker: off the request path, it takes pending versions, builds an RFC 9162 Merkle tree over
 * their commitments and puts ONE message per batch on the HCS topic (encodeBatchMessage: version, batch number,
 * root, size, previous root). After the batch is published it writes ONE document — the batch's — and nothing
 * per version: a version's inclusion proof is computed on demand from the leaves the batch document keeps
 * (./batch-trees.ts, ./ledger-service.ts).
 *
 * A batch closes when it holds LEDGER_BATCH_MAX_LEAVES versions (or MAX_BATCH_MEMBER_BYTES of member keys and
 * leaves) or when its oldest version has waited LEDGER_BATCH_INTERVAL_MS. Batches go out strictly one after
 * another (batch n+1 is prepared only once n is anchored), so the topic's order is the batch order and each
 * message's `prev` is the root before it.
 *
 * Durability, in the order things happen:
 *   1. insert: the batch document is inserted 'claiming' — members in leaf order, leaves, root, the exact
 *      message, and the transaction id it will go out under with its frozen, signed bytes. Nothing is sent.
 *   2. claim: each member still pending is marked { state: 'batched', batch: n } (conditional on 'pending').
 *      This is the one write per version the worker makes, and it comes BEFORE publication (see "Why a claim").
 *   3. seal: if every member is claimed by n, the batch becomes 'prepared' (conditional on it still being
 *      'claiming' at the revision read): its content is final. If some member was claimed by another batch or
 *      is gone, the batch is first cut down to the members it did claim (new root, message and transaction,
 *      revision + 1), or dropped if it claimed none. Only a prepared batch is ever sent.
 *   4. submit: the signed bytes are sent; the batch becomes 'submitted'.
 *   5. receipt and record: sequence number, running hash, consensus timestamp go into the batch document,
 *      which becomes 'anchored'. That is all.
 * A crash anywhere leaves a 'claiming', 'prepared' or 'submitted' batch, which the next holder of the lease
 * finishes before anything else. Claiming: claim and seal again (both idempotent). Prepared or submitted: look
 * its transaction ids up (receipt, then the mirror node). Found: record it. Still valid and not found: send the
 * same bytes again (Hedera deduplicates by transaction id). Expired and provably never recorded: a new
 * transaction id carrying the SAME message — a sealed batch number never gets a different root, because its
 * message is fixed when it is sealed, and nothing unsealed is ever sent.
 *
 * Why a claim per version, when the rest is per batch. The worker must find versions not yet anchored (the
 * pending index), and no two batches may take the same version, even with a stale worker (one whose lease ran
 * out while it was paused) still running, and without a version ever being skipped. A batch defined as a range
 * of a commit sequence ("versions with seq in [a, b)") would need no claim, but MongoDB gives no sequence in
 * commit order: a writer that drew seq 10 can commit after one that drew seq 11, after the worker has closed
 * the range at 12, and version 10 would never be anchored — a late commit cannot be told from a gap without
 * a write that orders it, i.e. a claim. So the claim stays, one conditional updateMany per 1000 members, written
 * before publication. What it buys:
 *   - once anchored or listed by a sealed batch, a version is claimed by that batch number, forever: claims are
 *     never released (no undo path that a stale worker could race), so a version is in at most one published
 *     batch;
 *   - every version claimed by n is in n's final member list: claims follow a member list of n, and whatever
 *     the final list leaves out was, at sealing time, claimed elsewhere or gone, and stays so;
 *   - a version never left behind: it is pending (and taken by a later batch) until claimed, and a claiming
 *     batch is finished (sealed or dropped) before any new batch is prepared.
 * Batch n's `prev` is read only from a sealed batch n - 1 (whose root is final).
 *
 * Failures (Hedera or the mirror unreachable, BUSY, PLATFORM_TRANSACTION_NOT_CREATED, ...) never reach a FHIR
 * request: the worker logs them and retries with exponential backoff; pending versions simply wait, and the
 * backlog drains in batches of up to LEDGER_BATCH_MAX_LEAVES once the network is back.
 */
import { buildTree, leafHash } from './merkle.js';
import { BATCH_MESSAGE_VERSION, encodeBatchMessage } from './batch-message.js';
import { Backoff } from './backoff.js';
import { isTransientHederaError, type HederaLedger } from './hedera-client.js';
import { transactionValidStartMs } from './hedera-ids.js';
import type { Lease } from './lease.js';
import {
  MAX_BATCH_MEMBER_BYTES,
  memberBytes,
  type BatchContent,
  type BatchDocument,
  type BatchReceipt,
  type LedgerStore,
} from './ledger-store.js';
import { MirrorUnavailableError, type MirrorClient } from './mirror-client.js';
import { RUNNING_HASH_VERSION } from './running-hash.js';
import { ensureTopic } from './topic.js';

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
  /** Called right after a batch was accepted by the network, before its receipt is recorded (test hook). */
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

interface Leaf {
  key: string;
  commitment: Buffer;
}

/** The first pending versions that fit one batch document (MAX_BATCH_MEMBER_BYTES; see ledger-store.ts). */
function fitBatch(leaves: Leaf[]): Leaf[] {
  let bytes = 0;
  for (let i = 0; i < leaves.length; i++) {
    bytes += memberBytes(leaves[i]!.key, i);
    if (bytes > MAX_BATCH_MEMBER_BYTES) return leaves.slice(0, i);
  }
  return leaves;
}

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
    this.renewTimer = setInterval(
      () => {
        // Keeps the lease while a long step (a submission waiting for its receipt) is in progress.
        if (this.options.lease.held) this.options.lease.acquire().catch(() => undefined);
      },
      Math.max(250, Math.floor(this.options.lease.ttlMs / 3)),
    );
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
      this.options.log.info(
        { batch: unfinished._id, state: unfinished.state },
        `ledger: finishing batch ${unfinished._id} (${unfinished.state})`,
      );
      if (unfinished.state === 'claiming') {
        // Never sent (only sealed batches are): claim and seal again, then send.
        const sealed = await this.claimAndSeal(unfinished);
        if (sealed) await this.finish(sealed, true);
      } else {
        await this.finish(unfinished, false);
      }
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
    const leaves = fitBatch(await store.takePending(batchMaxLeaves));
    if (leaves.length === 0) return;
    const last = await store.lastBatch();
    // Its root becomes this batch's `prev`: it must be final. (This worker finishes every batch before preparing
    // the next, so an unsealed last batch is another worker's, one whose lease ran out or is about to.)
    if (last?.state === 'claiming') throw new LeaseLostError(`batch ${last._id} is being prepared by another worker`);
    const number = (last?._id ?? 0) + 1;
    const previousRoot = last?.root ?? null;
    this.assertLease();
    const batch: BatchDocument = {
      _id: number,
      state: 'claiming',
      revision: 0,
      previousRoot,
      ...(await this.content(number, previousRoot, topicId, leaves)),
      topicId,
      network: ledger.networkLabel,
      preparedBy: this.options.lease.holder,
      preparedAt: new Date(),
    };
    // Only a second worker (one whose lease ran out while it was paused) can have taken this number.
    if (!(await store.insertBatch(batch))) throw new LeaseLostError(`batch ${number} was prepared by another worker`);
    const sealed = await this.claimAndSeal(batch);
    if (!sealed) return;
    this.options.log.debug({ batch: number, size: sealed.size, transactionId: sealed.transactionIds.at(-1) }, 'ledger: batch prepared');
    await this.finish(sealed, true);
  }

  /** A batch's content over `leaves`: tree root, member list, leaves, message, and its signed transaction. */
  private async content(number: number, previousRoot: Buffer | null, topicId: string, leaves: Leaf[]): Promise<BatchContent> {
    const tree = buildTree(leaves.map((l) => leafHash(l.commitment)));
    const message = encodeBatchMessage({
      version: BATCH_MESSAGE_VERSION,
      batchNumber: number,
      treeSize: leaves.length,
      root: tree.root,
      previousRoot,
    });
    const prepared = await this.options.ledger.prepareMessage(topicId, message);
    return {
      root: tree.root,
      size: leaves.length,
      members: leaves.map((l) => l.key),
      leaves: Buffer.concat(leaves.map((l) => l.commitment)),
      message,
      transactionIds: [prepared.transactionId],
      signedTransaction: prepared.signedBytes,
      validUntilMs: prepared.validUntilMs,
    };
  }

  /**
   * Steps 2 and 3 (see the header): claims the members of a claiming batch and seals it, first cutting it down to
   * the members it did claim. Idempotent, so recovery runs it again. Returns the sealed batch; null when it
   * claimed nothing and was dropped. Every change is conditional on the revision read: a stale worker meeting
   * this one loses (LeaseLostError) and leaves the batch to the lease holder.
   */
  private async claimAndSeal(batch: BatchDocument): Promise<BatchDocument | null> {
    const { store } = this.options;
    // Bounded: a round seals, drops, or cuts the batch down to members that are all claimed by it (and stay so).
    for (let round = 0; round < 3; round++) {
      this.assertLease();
      const revision = batch.revision ?? 0;
      const claimedNow = await store.claim(batch._id, batch.members);
      // All claimed by this call: nobody else has any of them (the usual case, no read needed).
      const claimed = claimedNow === batch.size ? null : await store.claimedBy(batch._id, batch.members);
      if (claimed === null || claimed.size === batch.size) {
        if (!(await store.sealBatch(batch._id, revision)))
          throw new LeaseLostError(`batch ${batch._id} was changed by another worker before it could be sealed`);
        return { ...batch, state: 'prepared' };
      }
      if (claimed.size === 0) {
        if (!(await store.dropBatch(batch._id, revision)))
          throw new LeaseLostError(`batch ${batch._id} was changed by another worker before it could be dropped`);
        this.options.log.warn(
          { batch: batch._id },
          `ledger: batch ${batch._id} could claim none of its ${batch.size} versions (taken by another batch, or gone); dropped, nothing was sent`,
        );
        return null;
      }
      const kept = batch.members
        .map((key, i) => ({ key, commitment: batch.leaves.subarray(i * 32, (i + 1) * 32) }))
        .filter((leaf) => claimed.has(leaf.key));
      const content = await this.content(batch._id, batch.previousRoot, batch.topicId, kept);
      if (!(await store.reviseBatch(batch._id, revision, content)))
        throw new LeaseLostError(`batch ${batch._id} was changed by another worker before it could be cut down`);
      this.options.log.warn(
        { batch: batch._id, claimed: kept.length, listed: batch.size },
        `ledger: batch ${batch._id} could claim ${kept.length} of its ${batch.size} versions (the others are in another batch, or gone); it goes out with those ${kept.length}`,
      );
      batch = { ...batch, ...content, revision: revision + 1 };
    }
    throw new RetryLater(`batch ${batch._id}: its members kept changing while it was being sealed`);
  }

  /** Takes a sealed (prepared or submitted) batch to 'anchored'. `unsent`: sealed just now, certainly not sent yet. */
  private async finish(batch: BatchDocument, unsent: boolean): Promise<void> {
    const { ledger, store } = this.options;
    // A batch prepared by code older than claiming was inserted 'prepared' and claimed afterwards: finish its claims.
    if (!unsent && batch.revision === undefined) await store.claim(batch._id, batch.members);
    // Bounded: each round either finishes, throws, or moves to a new transaction id (at most once per round).
    for (let round = 0; round < 4; round++) {
      this.assertLease();
      const where: Location = unsent ? { kind: 'sendable' } : await this.locate(batch);
      unsent = false;
      if (where.kind === 'found') return this.record(batch, where);
      if (where.kind === 'undecided') throw new RetryLater(`batch ${batch._id}: ${where.reason}`);
      if (where.kind === 'renew') {
        // Every id this batch had is dead (failed at consensus, or expired and absent from the mirror):
        // the SAME message goes out under a new id.
        const prepared = await ledger.prepareMessage(batch.topicId, batch.message);
        await store.renewTransaction(batch._id, prepared);
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
        await store.markSubmitted(batch._id);
        batch = { ...batch, state: 'submitted', submittedAt: new Date() };
      }
      this.options.afterSubmit?.(batch._id);
      const receipt = await ledger.receipt(transactionId, true);
      if (receipt.kind === 'success') {
        return this.record(batch, {
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
        return {
          kind: 'found',
          transactionId,
          sequenceNumber: receipt.sequenceNumber,
          runningHash: receipt.runningHash,
          consensusTimestamp: null,
        };
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

  /** Step 5: the batch's receipt goes into its document, which becomes 'anchored'. Nothing is written per version. */
  private async record(batch: BatchDocument, found: Extract<Location, { kind: 'found' }>): Promise<void> {
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
    await this.options.store.recordAnchored(batch._id, receipt, batch.submittedAt ?? new Date());
    this.stats.batchesAnchored++;
    this.stats.versionsAnchored += batch.size;
    this.options.log.info(
      {
        batch: batch._id,
        size: batch.size,
        topicId: batch.topicId,
        sequenceNumber: receipt.sequenceNumber,
        consensusTimestamp: receipt.consensusTimestamp,
      },
      `ledger: batch ${batch._id} anchored (${batch.size} versions, ${batch.network} topic ${batch.topicId} #${receipt.sequenceNumber})`,
    );
  }
}
