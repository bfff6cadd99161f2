/**
 * Where AuditEvents go. Each is stored as an ordinary resource version (type AuditEvent, version 1, never changed)
 * with its own salted commitment, so that the anchoring worker puts it into the Merkle batches on Hedera like every
 * clinical version: $verify, $proof and the verifier CLIs work on them, and an AuditEvent edited or deleted in
 * MongoDB is detected.
 *
 * Events that record a write are committed with the write (the trail asks `versionOf` and the store writes both in
 * one transaction). Events of accesses that store nothing — reads, searches, operations, refused and failed
 * requests — are buffered and written in batches: every `flushIntervalMs` at the latest, sooner when a batch
 * fills. What a crash can lose is therefore bounded: the events recorded during the last flush interval plus the
 * batch being written at that moment; an event older than that is in MongoDB. A graceful shutdown writes all.
 *
 * With `worker` (the server), those buffered events are built and written by a worker thread (audit-worker.ts):
 * the request thread only hands over a small record, and the BALP resource, its index values, its commitment and
 * the insert run beside the request path. Records stay here until the worker says they are stored; if the worker
 * dies, a new one is started and gets them again (an event may then be stored twice, never lost). Without `worker`
 * (tests, tools) the same work happens in this thread.
 *
 * When MongoDB does not take the events (down, or slower than the traffic), the backlog grows to `bufferMax`; then
 * requests wait for room instead of answering without their AuditEvent, and after `maxWaitMs` they fail with 503:
 * the server stops serving rather than serve unaudited.
 */
import { Worker } from 'node:worker_threads';
import type { NewVersion, ResourceStore } from '../../store/resource-store.js';
import { FhirError, issue } from '../outcome.js';
import type { AccessRecord } from './audit-event.js';
import type { AuditSink } from './audit-trail.js';
import { auditEventVersion } from './audit-version.js';
import type { AuditWorkerData, FromAuditWorker, ToAuditWorker } from './audit-worker.js';
import { AuditWriter } from './audit-writer.js';

export { AUDIT_EVENT_TYPE } from './audit-version.js';

/** Records handed to the worker at once: a message per record would cost more than the record. */
const POST_BATCH = 200;
/** The longest a record waits in this thread before it is handed over (a small part of the flush interval). */
const POST_DELAY_MS = 10;

export interface AuditRecorderLogger {
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface AuditRecorderOptions {
  store: ResourceStore;
  baseUrl: string;
  flushIntervalMs: number;
  bufferMax: number;
  newId: () => string;
  log: AuditRecorderLogger;
  /** How long a request waits for room in a full backlog before it fails with 503 (default 10 s). */
  maxWaitMs?: number;
  /** Build and write buffered AuditEvents in a worker thread with its own connection to this database. */
  worker?: { mongoUri: string; dbName: string };
}

/** The audit trail cannot be written: the request must not be answered as if it had been recorded. */
export function auditUnavailable(): FhirError {
  return new FhirError(
    503,
    issue('error', 'transient', 'The audit trail cannot be written at the moment, so the request was not completed; try again shortly'),
    { 'retry-after': '5' },
  );
}

/** The worker-thread side: records handed over, kept until stored. */
class WorkerChannel {
  private worker: Worker | undefined;
  /** Handed over (or about to be), oldest first, until the worker says they are stored. */
  private unacknowledged: AccessRecord[] = [];
  /** Of those, the ones not yet handed over. */
  private outbox: AccessRecord[] = [];
  private postTimer: NodeJS.Timeout | undefined;
  private flushes = new Map<number, () => void>();
  private nextFlush = 1;
  private closing: Promise<void> | undefined;
  private closed: (() => void) | undefined;
  private ready: Promise<void> | undefined;
  private readyWaiter: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(
    private readonly data: AuditWorkerData,
    private readonly log: AuditRecorderLogger,
    private readonly onProgress: () => void,
  ) {}

  get pending(): number {
    return this.unacknowledged.length;
  }

  /** Starts the worker; resolves when it is connected and ready to write (so the crash bound holds from the start). */
  start(): Promise<void> {
    if (this.worker || this.closing) return this.ready ?? Promise.resolve();
    // Under tsx (tests, development) the worker must register the TypeScript loader itself before importing.
    const typescript = import.meta.url.endsWith('.ts');
    const entry = new URL(typescript ? './audit-worker.ts' : './audit-worker.js', import.meta.url).href;
    const code = typescript
      ? `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`
      : `import(${JSON.stringify(entry)})`;
    const worker = new Worker(code, { eval: true, workerData: this.data });
    worker.unref();
    this.ready = new Promise<void>((resolve, reject) => {
      this.readyWaiter = { resolve, reject };
    });
    // Nobody may be waiting (a restart after a failure): an unstarted worker is reported through 'exit'.
    this.ready.catch(() => undefined);
    worker.on('message', (message: FromAuditWorker) => this.receive(message));
    worker.on('error', (error) => this.log.error({ err: error }, 'audit worker failed'));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.readyWaiter) {
        // It never started (cannot connect, cannot load): the server must not start without its audit trail.
        this.readyWaiter.reject(new Error(`the audit worker stopped (exit code ${code}) before it was ready`));
        this.readyWaiter = undefined;
        return;
      }
      if (this.closing) {
        this.closed?.();
        return;
      }
      // Everything not acknowledged goes to a new worker (stored twice at worst, never lost), a second later.
      this.log.error({ code, events: this.unacknowledged.length }, 'audit worker stopped; starting another');
      for (const wake of this.flushes.values()) wake();
      this.flushes.clear();
      const restart = setTimeout(() => {
        this.outbox = [...this.unacknowledged];
        void this.start();
        this.post();
      }, 1000);
      restart.unref();
    });
    this.worker = worker;
    return this.ready;
  }

  private receive(message: FromAuditWorker): void {
    switch (message.type) {
      case 'written':
        this.unacknowledged.splice(0, message.count);
        this.onProgress();
        return;
      case 'flushed':
        this.flushes.get(message.id)?.();
        this.flushes.delete(message.id);
        return;
      case 'closed':
        if (message.unwritten > 0)
          this.log.error({ events: message.unwritten }, 'audit trail: AuditEvents could not be written before shutdown');
        return;
      case 'log':
        this.log[message.level](message.fields, message.message);
        return;
      case 'ready':
        this.readyWaiter?.resolve();
        this.readyWaiter = undefined;
        return;
    }
  }

  private send(message: ToAuditWorker): void {
    this.worker?.postMessage(message);
  }

  private post(): void {
    if (this.postTimer) clearTimeout(this.postTimer);
    this.postTimer = undefined;
    if (this.outbox.length === 0 || !this.worker) return;
    this.send({ type: 'records', records: this.outbox });
    this.outbox = [];
  }

  add(record: AccessRecord): void {
    this.unacknowledged.push(record);
    this.outbox.push(record);
    if (this.outbox.length >= POST_BATCH) this.post();
    else if (!this.postTimer) {
      this.postTimer = setTimeout(() => this.post(), POST_DELAY_MS);
      this.postTimer.unref();
    }
  }

  async flush(): Promise<void> {
    this.post();
    if (!this.worker || this.unacknowledged.length === 0) return;
    const id = this.nextFlush++;
    await new Promise<void>((resolve) => {
      this.flushes.set(id, resolve);
      this.send({ type: 'flush', id });
    });
  }

  async close(): Promise<void> {
    if (this.closing) return this.closing;
    this.post();
    const worker = this.worker;
    if (!worker) return;
    this.closing = new Promise<void>((resolve) => {
      this.closed = resolve;
      const deadline = setTimeout(() => {
        this.log.error({ events: this.unacknowledged.length }, 'audit worker did not finish writing in time');
        void worker.terminate();
      }, 15_000);
      deadline.unref();
      this.send({ type: 'close' });
    });
    await this.closing;
  }
}

export class AuditRecorder implements AuditSink {
  private readonly writer: AuditWriter | undefined;
  private readonly channel: WorkerChannel | undefined;
  private waiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly options: AuditRecorderOptions) {
    if (options.worker) {
      this.channel = new WorkerChannel(
        { ...options.worker, baseUrl: options.baseUrl, flushIntervalMs: options.flushIntervalMs },
        options.log,
        () => this.releaseWaiters(),
      );
    } else {
      this.writer = new AuditWriter(options.store, options.flushIntervalMs, options.log, () => this.releaseWaiters());
    }
  }

  /** Events recorded and not yet stored (for tests and metrics). */
  get pending(): number {
    return this.channel ? this.channel.pending : this.writer!.pending;
  }

  versionOf(record: AccessRecord): NewVersion {
    return auditEventVersion(record, this.options.newId(), this.options.baseUrl);
  }

  async record(record: AccessRecord): Promise<void> {
    if (this.closed) {
      // A request finishing after shutdown began: written at once, in this thread (the worker is gone).
      await this.options.store.insertNewResources([this.versionOf(record)]);
      return;
    }
    if (this.pending >= this.options.bufferMax) await this.waitForRoom();
    if (this.channel) this.channel.add(record);
    else this.writer!.add([this.versionOf(record)]);
  }

  /** Starts the periodic writes, and the worker thread (resolving once it can write). */
  async start(): Promise<void> {
    this.writer?.start();
    await this.channel?.start();
  }

  /** Writes everything recorded so far. */
  async flush(): Promise<void> {
    if (this.channel) await this.channel.flush();
    else await this.writer!.flush();
  }

  private releaseWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private async waitForRoom(): Promise<void> {
    const deadline = Date.now() + (this.options.maxWaitMs ?? 10_000);
    this.options.log.warn({ events: this.pending }, 'audit trail: backlog full, requests wait for AuditEvents to be written');
    while (this.pending >= this.options.bufferMax) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw auditUnavailable();
      void this.flush();
      await new Promise<void>((resolve) => {
        const timeout = setTimeout(resolve, Math.min(remaining, this.options.flushIntervalMs));
        this.waiters.push(() => {
          clearTimeout(timeout);
          resolve();
        });
      });
    }
  }

  /** Writes what is buffered and stops (graceful shutdown); later records are written at once. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.channel) {
      await this.channel.close();
      return;
    }
    const unwritten = await this.writer!.close();
    if (unwritten > 0) this.options.log.error({ events: unwritten }, 'audit trail: AuditEvents could not be written before shutdown');
  }
}
