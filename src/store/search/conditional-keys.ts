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
 */
import { randomUUID } from 'node:crypto';
import { MongoServerError, type Collection, type Db } from 'mongodb';

export const CONDITIONAL_KEYS_COLLECTION = 'conditional_keys';

interface KeyDocument {
  _id: string;
  owner: string;
  expiresAt: Date;
}

export interface HeldKey {
  key: string;
  owner: string;
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

  /** Takes the key, or returns undefined when another writer holds it. */
  async tryAcquire(key: string, now = new Date()): Promise<HeldKey | undefined> {
    const owner = randomUUID();
    const document: KeyDocument = { _id: key, owner, expiresAt: new Date(now.getTime() + this.leaseMs) };
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
    await this.keys.deleteOne({ _id: held.key, owner: held.owner });
  }
}
