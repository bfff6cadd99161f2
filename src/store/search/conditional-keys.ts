/**
 * The guard that makes concurrent conditional creates (and conditional updates that create) produce ONE
 * resource. A search followed by a create is not atomic: two requests can both find nothing and both create
 * (HAPI #3141, Microsoft FHIR #1382, Medplum #4878). Here a writer first inserts a document keyed by
 * type + normalised criteria into `conditional_keys`; the unique _id admits one writer at a time per criteria.
 * The holder searches again (a resource created by the previous holder is now visible), creates if still
 * nothing matches, and removes the key. Others wait and retry: their search then finds the new resource.
 *
 * A holder that dies leaves its key behind; keys carry an expiry and an expired key is taken over, so a crash
 * delays other writers of the same criteria by at most the lease time, and never blocks them for good.
 *
 * Inside a transaction (a transaction Bundle) the key is inserted and removed in the transaction itself, so it
 * is held until the transaction commits or aborts: released earlier, a writer outside could search, not see the
 * uncommitted resource, and create a second one. A key held by someone else then fails the insert, and mongod
 * aborts a transaction on any failed statement, so the caller retries the whole transaction
 * (ConditionalKeyHeldError) instead of waiting inside it.
 */
import { randomUUID } from 'node:crypto';
import { MongoServerError, type ClientSession, type Collection, type Db } from 'mongodb';

export const CONDITIONAL_KEYS_COLLECTION = 'conditional_keys';

interface KeyDocument {
  _id: string;
  owner: string;
  expiresAt: Date;
}

export interface HeldKey {
  key: string;
  owner: string;
  /** The transaction the key was taken in, if any; it is given back in the same transaction. */
  session?: ClientSession;
}

/** In a transaction, another writer holds the criteria's key: the transaction (already aborted) must be retried. */
export class ConditionalKeyHeldError extends Error {
  constructor(readonly key: string) {
    super(`Another request with the same conditional criteria (${key}) is writing; the transaction must be retried`);
    this.name = 'ConditionalKeyHeldError';
  }
}

export class ConditionalKeys {
  private readonly keys: Collection<KeyDocument>;

  constructor(
    db: Db,
    /** How long a key is held before others may take it over (a create takes milliseconds). */
    private readonly leaseMs = 30_000,
  ) {
    this.keys = db.collection<KeyDocument>(CONDITIONAL_KEYS_COLLECTION);
  }

  /**
   * Takes the key, or returns undefined when another writer holds it. With a session: takes it inside that
   * transaction, or throws ConditionalKeyHeldError.
   */
  async tryAcquire(key: string, now = new Date(), session?: ClientSession): Promise<HeldKey | undefined> {
    const owner = randomUUID();
    const document: KeyDocument = { _id: key, owner, expiresAt: new Date(now.getTime() + this.leaseMs) };
    if (session) {
      // Look before inserting: a failed insert would abort the transaction. A key committed after the
      // transaction's snapshot is not seen here, but then the insert meets a write conflict, which is retried.
      const current = await this.keys.findOne({ _id: key }, { session });
      if (current && current.expiresAt >= now) throw new ConditionalKeyHeldError(key);
      if (current) await this.keys.deleteOne({ _id: key, owner: current.owner }, { session });
      try {
        await this.keys.insertOne(document, { session });
        return { key, owner, session };
      } catch (error) {
        if (error instanceof MongoServerError && error.code === 11000) throw new ConditionalKeyHeldError(key);
        throw error;
      }
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.keys.insertOne(document);
        return { key, owner };
      } catch (error) {
        if (!(error instanceof MongoServerError && error.code === 11000)) throw error;
      }
      // Held: take it over only if its holder's lease ran out (the holder is presumed dead).
      const removed = await this.keys.deleteOne({ _id: key, expiresAt: { $lt: now } });
      if (removed.deletedCount === 0) return undefined;
    }
    return undefined;
  }

  /** Gives the key back (only if still ours: after an expiry another writer may hold it). */
  async release(held: HeldKey): Promise<void> {
    if (held.session) {
      // A failed release means the transaction is already aborted (its key with it); the error that aborted it
      // is the one worth reporting, so this one is not allowed to replace it.
      await this.keys.deleteOne({ _id: held.key, owner: held.owner }, { session: held.session }).catch(() => undefined);
      return;
    }
    await this.keys.deleteOne({ _id: held.key, owner: held.owner });
  }
}
