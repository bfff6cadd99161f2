/**
 * Exactly one anchoring worker at a time across processes: a lease document in MongoDB.
 *
 *   { _id: 'anchor-worker', holder, expiresAt, renewedAt }
 *
 * acquire() first inserts the lease if there is none (a duplicate key means it exists), then takes it with one
 * findOneAndUpdate that matches only if the lease is ours or has expired: MongoDB applies it atomically, so of
 * two processes racing for an expired lease exactly one matches. (Two steps rather than one upsert with an $or
 * filter: such an upsert answers a duplicate-key error, not "no match", whenever the lease is held by another
 * process, so the error would have to be told apart from real ones.) The holder renews the
 * lease while it works (well before expiry); a process that dies stops renewing and another takes over once
 * expiresAt passes. release() expires it at once on a clean shutdown.
 *
 * Times come from each process's clock: the TTL (15 s by default) must be large against the clock skew between
 * the machines. Batch numbers are MongoDB _ids, so even a holder that was paused past its expiry and resumed
 * cannot write a second batch under a number already taken; see AnchorWorker for the other guards.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { MongoServerError, type Collection, type Db } from 'mongodb';
import { LEASES_COLLECTION } from './ledger-store.js';

export interface LeaseDocument {
  _id: string;
  holder: string;
  expiresAt: Date;
  renewedAt: Date;
}

export const ANCHOR_LEASE = 'anchor-worker';

/** A name for this process in lease documents and logs: host, pid and a random suffix. */
export function newHolderId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export class Lease {
  private readonly leases: Collection<LeaseDocument>;
  /** Until when this process may act, by its own clock; 0 when it does not hold the lease. */
  private heldUntil = 0;

  constructor(
    db: Db,
    readonly holder: string,
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    readonly name: string = ANCHOR_LEASE,
  ) {
    this.leases = db.collection<LeaseDocument>(LEASES_COLLECTION);
  }

  /** True while this process holds an unexpired lease (by its own last successful renewal). */
  get held(): boolean {
    return this.heldUntil > this.now();
  }

  /** Takes the lease if free or expired, renews it if ours. Returns whether we hold it now. */
  async acquire(): Promise<boolean> {
    const now = this.now();
    const expiresAt = new Date(now + this.ttlMs);
    if (this.heldUntil === 0) {
      try {
        // An expired lease: whoever takes it first in the findOneAndUpdate below wins.
        await this.leases.insertOne({ _id: this.name, holder: '', expiresAt: new Date(0), renewedAt: new Date(now) });
      } catch (error) {
        if (!(error instanceof MongoServerError && error.code === 11000)) throw error;
      }
    }
    const result = await this.leases.findOneAndUpdate(
      { _id: this.name, $or: [{ holder: this.holder }, { expiresAt: { $lt: new Date(now) } }] },
      { $set: { holder: this.holder, expiresAt, renewedAt: new Date(now) } },
      { returnDocument: 'after' },
    );
    const ours = result?.holder === this.holder;
    this.heldUntil = ours ? expiresAt.getTime() : 0;
    return ours;
  }

  /** Who holds the lease now (for logs and tests). */
  async current(): Promise<LeaseDocument | null> {
    return this.leases.findOne({ _id: this.name });
  }

  /** Gives the lease up at once (clean shutdown), so another process need not wait for expiry. */
  async release(): Promise<void> {
    this.heldUntil = 0;
    await this.leases.updateOne({ _id: this.name, holder: this.holder }, { $set: { expiresAt: new Date(0) } });
  }
}
