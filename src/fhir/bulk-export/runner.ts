/**
 * The export job runner, inside the server process: one job at a time (the rest wait in the queue, oldest first).
 *
 * - It takes a job with a lease it renews after every batch (see store/export-jobs.ts). A job whose runner died is
 *   taken again once its lease has passed; one handed back at a clean shutdown is taken at once. Either way the
 *   job starts again from scratch (its directory emptied): its transaction time does not change, so the result is
 *   the same export.
 * - A job that keeps being interrupted (more than `maxAttempts` starts) fails with an explanation rather than being
 *   retried for ever; a job that meets an error (a full disk, say) fails at once. Failed jobs answer 500 with an
 *   OperationOutcome until they expire.
 * - Cleanup, when the runner starts and then every `cleanupIntervalMs`: completed and failed jobs past their
 *   retention, cancelled jobs, and directories that belong to no job, are removed.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExportJobDocument, ExportJobStore } from '../../store/export-jobs.js';
import type { ResourceStore } from '../../store/resource-store.js';
import { issue, operationOutcome } from '../outcome.js';
import { exportSnapshot, writeOutcomeFile } from './export-files.js';

export interface RunnerLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface RunnerTuning {
  /** How often the queue is looked at when idle (a kick-off also wakes the runner). */
  pollIntervalMs: number;
  /** How long a job stays taken without renewal (after a crash, the job restarts once this has passed). */
  leaseMs: number;
  /** Starts of one job before it is failed as "keeps being interrupted". */
  maxAttempts: number;
  /** Heads read per query. */
  batchSize: number;
  cleanupIntervalMs: number;
}

export const DEFAULT_RUNNER_TUNING: RunnerTuning = {
  pollIntervalMs: 2000,
  leaseMs: 60_000,
  maxAttempts: 3,
  batchSize: 1000,
  cleanupIntervalMs: 10 * 60_000,
};

export interface BulkExportRunnerOptions {
  store: ResourceStore;
  jobs: ExportJobStore;
  /** Export files go to <dir>/<jobId>/. */
  dir: string;
  maxResourcesPerFile: number;
  /** How long completed and failed jobs (and their files) are kept. */
  retentionMs: number;
  tuning?: Partial<RunnerTuning>;
  log: RunnerLogger;
  now?: () => Date;
}

const JOB_DIRECTORY = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The job is no longer this runner's: cancelled, removed, or taken over. */
class JobLostError extends Error {}
/** The runner is stopping; the job goes back to the queue. */
class StoppingError extends Error {}

/** What a failure says to the client: system error codes are safe to show, paths and messages may not be. */
function describeFailure(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string'
    ? `The export failed while reading or writing its files (${code}); the incident was logged`
    : 'The export failed; the incident was logged';
}

export class BulkExportRunner {
  private readonly id = randomUUID();
  private readonly tuning: RunnerTuning;
  private readonly now: () => Date;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private current: { jobId: string; abort: AbortController; done: Promise<void> } | undefined;

  constructor(private readonly options: BulkExportRunnerOptions) {
    this.tuning = { ...DEFAULT_RUNNER_TUNING, ...options.tuning };
    this.now = options.now ?? (() => new Date());
  }

  jobDir(jobId: string): string {
    return join(this.options.dir, jobId);
  }

  start(): void {
    if (this.loop || this.stopping) return;
    this.loop = this.run();
  }

  /** Looks at the queue now (after a kick-off). */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stops at the next batch boundary, handing the current job back to the queue. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.current?.abort.abort(new StoppingError('the server is stopping'));
    this.wake();
    await this.loop;
  }

  /** Stops the job if this runner is working on it, and waits until its files are closed. */
  async cancel(jobId: string): Promise<void> {
    if (this.current?.jobId !== jobId) return;
    this.current.abort.abort(new JobLostError('cancelled'));
    await this.current.done;
  }

  private async run(): Promise<void> {
    let lastCleanup = -Infinity;
    while (!this.stopping) {
      try {
        if (Date.now() - lastCleanup >= this.tuning.cleanupIntervalMs) {
          lastCleanup = Date.now();
          await this.cleanup();
        }
        const now = this.now();
        const job = await this.options.jobs.claimNext(this.id, now, new Date(now.getTime() + this.tuning.leaseMs));
        if (job) {
          await this.runJob(job);
          continue;
        }
      } catch (error) {
        if (this.stopping) break;
        this.options.log.error({ err: error }, 'bulk export runner: could not look at the job queue');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.tuning.pollIntervalMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  private expiry(now: Date): Date {
    return new Date(now.getTime() + this.options.retentionMs);
  }

  private async runJob(job: ExportJobDocument): Promise<void> {
    const abort = new AbortController();
    let markDone: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (markDone = resolve));
    this.current = { jobId: job._id, abort, done };
    const { jobs, log } = this.options;
    const dir = this.jobDir(job._id);
    const leaseUntil = () => new Date(this.now().getTime() + this.tuning.leaseMs);
    try {
      await rm(dir, { recursive: true, force: true });
      if (job.attempts > this.tuning.maxAttempts) {
        const message =
          `The export was interrupted ${job.attempts - 1} times (the server stopped or crashed while it ran) and is not ` +
          'retried again; start a new export';
        await jobs.fail(job._id, this.id, message, this.now(), this.expiry(this.now()));
        log.warn({ job: job._id, attempts: job.attempts }, 'bulk export failed: interrupted too often');
        return;
      }
      log.info({ job: job._id, attempt: job.attempts, types: job.params.types }, 'bulk export started');
      await mkdir(dir, { recursive: true });
      const started = Date.now();
      const error =
        job.warnings.length > 0
          ? [
              await writeOutcomeFile(
                dir,
                'OperationOutcome-1.ndjson',
                operationOutcome(job.warnings.map((w) => issue('warning', 'not-supported', w))),
              ),
            ]
          : [];
      const output = await exportSnapshot({
        store: this.options.store,
        dir,
        level: job.params.level,
        types: job.params.types,
        since: job.params.since,
        transactionTime: job.transactionTime,
        maxResourcesPerFile: this.options.maxResourcesPerFile,
        batchSize: this.tuning.batchSize,
        signal: abort.signal,
        onProgress: async (progress) => {
          if (!(await jobs.progress(job._id, this.id, progress, leaseUntil())))
            throw new JobLostError("the job is no longer this runner's");
        },
      });
      const now = this.now();
      if (!(await jobs.complete(job._id, this.id, { output, error }, now, this.expiry(now))))
        throw new JobLostError("the job is no longer this runner's");
      const count = output.reduce((sum, f) => sum + f.count, 0);
      log.info({ job: job._id, resources: count, files: output.length, ms: Date.now() - started }, 'bulk export completed');
    } catch (error) {
      const reason = abort.signal.aborted ? abort.signal.reason : error;
      if (reason instanceof StoppingError) {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        await jobs.release(job._id, this.id).catch(() => undefined);
        log.info({ job: job._id }, 'bulk export handed back to the queue: the server is stopping');
      } else if (reason instanceof JobLostError) {
        // Cancelled or removed: its files go. Taken over by another runner: that runner owns the directory now.
        const latest = await jobs.get(job._id).catch(() => null);
        if (!latest || latest.state === 'cancelled') await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        log.info({ job: job._id }, 'bulk export stopped: the job was cancelled or taken over');
      } else {
        log.error({ err: error, job: job._id }, 'bulk export failed');
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        await jobs.fail(job._id, this.id, describeFailure(error), this.now(), this.expiry(this.now())).catch(() => undefined);
      }
    } finally {
      this.current = undefined;
      markDone();
    }
  }

  async removeFiles(jobId: string): Promise<void> {
    await rm(this.jobDir(jobId), { recursive: true, force: true });
  }

  /** Removes expired and cancelled jobs with their files, and directories no job owns. */
  async cleanup(): Promise<void> {
    const { jobs, log } = this.options;
    for (;;) {
      const expired = (await jobs.expired(this.now())).filter((job) => this.current?.jobId !== job._id);
      for (const job of expired) {
        await rm(this.jobDir(job._id), { recursive: true, force: true });
        await jobs.remove(job._id);
      }
      if (expired.length === 0) break;
    }
    let names: string[];
    try {
      names = (await readdir(this.options.dir)).filter((name) => JOB_DIRECTORY.test(name));
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return;
      throw error;
    }
    const existing = await jobs.existing(names);
    for (const name of names) {
      if (existing.has(name) || this.current?.jobId === name) continue;
      await rm(join(this.options.dir, name), { recursive: true, force: true });
      log.info({ job: name }, 'bulk export: removed the files of a job that no longer exists');
    }
  }
}
