/**
 * Bulk Data export jobs in MongoDB (`bulk_export_jobs`), one document per job, so that a job outlives the process
 * that accepted it and any server sharing the database can report on it.
 *
 * A job is taken by a runner with a lease (owner + leaseUntil) that the runner renews while it works. A runner that
 * stops cleanly hands its job back (state accepted); one that dies simply stops renewing, and once the lease has
 * passed another runner (or the same server after a restart) takes the job and starts it again. Every write a
 * runner makes about a job is conditional on still holding it, so a job cancelled (or taken over) meanwhile tells
 * the runner to stop at its next write.
 */
import type { Collection, Db } from 'mongodb';

export const EXPORT_JOBS_COLLECTION = 'bulk_export_jobs';

export type ExportJobState = 'accepted' | 'in-progress' | 'completed' | 'failed' | 'cancelled';

export type ExportLevel = 'system' | 'patient';

export interface ExportJobParams {
  level: ExportLevel;
  /** Resource types to export, in output order. */
  types: string[];
  /** Only resources changed after this instant. */
  since?: Date;
  outputFormat: string;
}

/** One NDJSON file of a job: the resource type it holds, its file name in the job's directory, its line count. */
export interface ExportFile {
  type: string;
  file: string;
  count: number;
}

export interface ExportProgress {
  /** The type being exported, when one is. */
  type?: string;
  /** Resources of that type written so far. */
  exported: number;
  /** How many there are, roughly (counted when the type starts). */
  estimate?: number;
  message: string;
}

export interface ExportJobDocument {
  _id: string;
  state: ExportJobState;
  /** The kick-off URL (without the parameters of a POST body). */
  request: string;
  params: ExportJobParams;
  createdAt: Date;
  /** The instant the export reflects: resources are exported as they were then. */
  transactionTime: Date;
  progress: ExportProgress;
  output: ExportFile[];
  /** OperationOutcome files (warnings about ignored parameters, or problems met while exporting). */
  error: ExportFile[];
  /** Warnings decided at kick-off, written to an OperationOutcome file by the runner. */
  warnings: string[];
  /** Why the job failed, for the status response. */
  failure?: string;
  /** How many times a runner has started the job. */
  attempts: number;
  /** Who asked for the export (client id or token subject): only they may see its status and files. */
  requestedBy?: string;
  owner?: string;
  leaseUntil?: Date;
  startedAt?: Date;
  completedAt?: Date;
  /** Completed and failed jobs (and their files) are removed after this instant. */
  expiresAt?: Date;
}

export type NewExportJob = Pick<
  ExportJobDocument,
  '_id' | 'request' | 'params' | 'createdAt' | 'transactionTime' | 'warnings' | 'requestedBy'
>;

export class ExportJobStore {
  readonly jobs: Collection<ExportJobDocument>;

  constructor(db: Db) {
    this.jobs = db.collection<ExportJobDocument>(EXPORT_JOBS_COLLECTION);
  }

  async ensureIndexes(): Promise<void> {
    await this.jobs.createIndexes([
      // The runner's queue: the oldest job that is waiting, or whose runner stopped renewing its lease.
      { key: { state: 1, createdAt: 1 }, name: 'state_createdAt' },
      { key: { expiresAt: 1 }, name: 'expiresAt', sparse: true },
    ]);
  }

  async create(job: NewExportJob): Promise<ExportJobDocument> {
    const document: ExportJobDocument = {
      ...job,
      state: 'accepted',
      progress: { exported: 0, message: 'waiting to start' },
      output: [],
      error: [],
      attempts: 0,
    };
    await this.jobs.insertOne(document);
    return document;
  }

  async get(id: string): Promise<ExportJobDocument | null> {
    return this.jobs.findOne({ _id: id });
  }

  /** Jobs accepted before this one and not yet finished (its place in the queue). */
  async countAhead(job: ExportJobDocument): Promise<number> {
    return this.jobs.countDocuments({ state: { $in: ['accepted', 'in-progress'] }, createdAt: { $lt: job.createdAt } });
  }

  /** Takes the oldest waiting job, or one whose lease has passed, for `owner` until `leaseUntil`. */
  async claimNext(owner: string, now: Date, leaseUntil: Date): Promise<ExportJobDocument | null> {
    return this.jobs.findOneAndUpdate(
      { $or: [{ state: 'accepted' }, { state: 'in-progress', leaseUntil: { $lt: now } }] },
      {
        $set: { state: 'in-progress', owner, leaseUntil, startedAt: now, progress: { exported: 0, message: 'starting' } },
        $inc: { attempts: 1 },
      },
      { sort: { createdAt: 1 }, returnDocument: 'after' },
    );
  }

  /** Records progress and renews the lease; false when the job is no longer this runner's (cancelled, taken over). */
  async progress(id: string, owner: string, progress: ExportProgress, leaseUntil: Date): Promise<boolean> {
    const result = await this.jobs.updateOne({ _id: id, owner, state: 'in-progress' }, { $set: { progress, leaseUntil } });
    return result.matchedCount === 1;
  }

  async complete(
    id: string,
    owner: string,
    files: { output: ExportFile[]; error: ExportFile[] },
    now: Date,
    expiresAt: Date,
  ): Promise<boolean> {
    const result = await this.jobs.updateOne(
      { _id: id, owner, state: 'in-progress' },
      {
        $set: {
          state: 'completed',
          output: files.output,
          error: files.error,
          completedAt: now,
          expiresAt,
          progress: { exported: 0, message: 'completed' },
        },
        $unset: { owner: '', leaseUntil: '' },
      },
    );
    return result.matchedCount === 1;
  }

  /** Marks a job failed; with `owner`, only while that runner still holds it. */
  async fail(id: string, owner: string | undefined, failure: string, now: Date, expiresAt: Date): Promise<boolean> {
    const filter =
      owner === undefined
        ? { _id: id, state: { $in: ['accepted', 'in-progress'] as ExportJobState[] } }
        : { _id: id, owner, state: 'in-progress' as const };
    const result = await this.jobs.updateOne(filter, {
      $set: { state: 'failed', failure, completedAt: now, expiresAt, progress: { exported: 0, message: 'failed' } },
      $unset: { owner: '', leaseUntil: '' },
    });
    return result.matchedCount === 1;
  }

  /** Hands a job back to the queue (clean shutdown): the next runner starts it again at once. */
  async release(id: string, owner: string): Promise<void> {
    await this.jobs.updateOne(
      { _id: id, owner, state: 'in-progress' },
      {
        $set: { state: 'accepted', progress: { exported: 0, message: 'waiting to restart (the server stopped)' } },
        $unset: { owner: '', leaseUntil: '' },
      },
    );
  }

  /**
   * Marks a job cancelled, so that a runner working on it stops; false when there is no such job. It expires at
   * once: if removing it is interrupted, the next cleanup finishes the job.
   */
  async cancel(id: string, now: Date): Promise<boolean> {
    const result = await this.jobs.updateOne(
      { _id: id, state: { $ne: 'cancelled' } },
      { $set: { state: 'cancelled', expiresAt: now }, $unset: { owner: '', leaseUntil: '' } },
    );
    return result.matchedCount === 1;
  }

  async remove(id: string): Promise<void> {
    await this.jobs.deleteOne({ _id: id });
  }

  /** Finished jobs whose retention has passed. */
  async expired(now: Date, limit = 100): Promise<ExportJobDocument[]> {
    return this.jobs
      .find({ expiresAt: { $lte: now } })
      .limit(limit)
      .toArray();
  }

  /** Which of these job ids exist (to find directories no job owns any more). */
  async existing(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const found = await this.jobs.find({ _id: { $in: ids } }, { projection: { _id: 1 } }).toArray();
    return new Set(found.map((d) => d._id));
  }
}
