/**
 * Stores AuditEvents as ordinary resource versions (type AuditEvent, version 1, never changed), each with its own
 * salted commitment, so that the anchoring worker puts them into the Merkle batches on Hedera like every clinical
 * version: $verify, $proof and the verifier CLIs work on them, and an AuditEvent edited or deleted in MongoDB is
 * detected.
 *
 * Events that record a write are committed with the write (the trail asks `versionOf` and the store writes both in
 * one transaction). Events of accesses that store nothing — reads, searches, operations, refused and failed
 * requests — are buffered here and written in batches: every `flushIntervalMs` at the latest, sooner when a batch
 * fills. What a crash can lose is therefore bounded: the events recorded during the last flush interval plus the
 * batch being written at that moment; an event older than that is in MongoDB. A graceful shutdown writes all.
 *
 * When MongoDB does not take the events (down, or slower than the traffic), the buffer fills to `bufferMax`; then
 * requests wait for room instead of answering without their AuditEvent, and after `maxWaitMs` they fail with 503:
 * the server stops serving rather than serve unaudited.
 */
import type { AuditEvent, Resource } from '@medplum/fhirtypes';
import { pendingAnchorFor } from '../../ledger/pending-anchor.js';
import type { NewVersion, ResourceStore } from '../../store/resource-store.js';
import { FhirError, issue } from '../outcome.js';
import { extractIndex } from '../search/extract.js';
import { searchRegistry } from '../search/registry.js';
import { buildAuditEvent, type AccessRecord } from './audit-event.js';
import type { AuditSink } from './audit-trail.js';

export const AUDIT_EVENT_TYPE = 'AuditEvent';
/** Events written per insert: large enough to amortise a round trip, small enough to keep each write short. */
const FLUSH_BATCH = 1000;

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
  /** How long a request waits for room in a full buffer before it fails with 503 (default 10 s). */
  maxWaitMs?: number;
}

/** The audit trail cannot be written: the request must not be answered as if it had been recorded. */
export function auditUnavailable(): FhirError {
  return new FhirError(
    503,
    issue('error', 'transient', 'The audit trail cannot be written at the moment, so the request was not completed; try again shortly'),
    { 'retry-after': '5' },
  );
}

export class AuditRecorder implements AuditSink {
  private buffer: NewVersion[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private waiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly options: AuditRecorderOptions) {}

  /** Events waiting to be written (for tests and metrics). */
  get pending(): number {
    return this.buffer.length;
  }

  versionOf(record: AccessRecord): NewVersion {
    const id = this.options.newId();
    const event: AuditEvent = buildAuditEvent(record, id);
    event.meta = { ...event.meta, versionId: '1', lastUpdated: record.recorded.toISOString() };
    const resource = event as Resource;
    const index = extractIndex(searchRegistry(), resource, this.options.baseUrl);
    return {
      type: AUDIT_EVENT_TYPE,
      id,
      versionId: 1,
      lastUpdated: record.recorded,
      deleted: false,
      method: 'POST',
      resource,
      idx: index.idx,
      idxVersion: index.idxVersion,
      anchor: pendingAnchorFor(resource),
    };
  }

  async record(record: AccessRecord): Promise<void> {
    if (this.buffer.length >= this.options.bufferMax) await this.waitForRoom();
    this.buffer.push(this.versionOf(record));
    if (this.closed) {
      await this.flush();
      return;
    }
    if (this.buffer.length >= FLUSH_BATCH) void this.flush();
  }

  /** Starts the periodic flush. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** Writes everything buffered so far (one flush at a time; a second caller waits for the running one, then flushes). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.buffer.length === 0) return;
    this.flushing = this.writeBuffered().finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
  }

  private async writeBuffered(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.slice(0, FLUSH_BATCH);
      try {
        await this.options.store.insertNewResources(batch);
      } catch (error) {
        // Kept for the next attempt; requests start waiting once the buffer is full.
        this.options.log.error({ err: error, events: this.buffer.length }, 'audit trail: AuditEvents could not be written; retrying');
        return;
      }
      this.buffer = this.buffer.slice(batch.length);
      this.releaseWaiters();
    }
  }

  private releaseWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private async waitForRoom(): Promise<void> {
    const deadline = Date.now() + (this.options.maxWaitMs ?? 10_000);
    this.options.log.warn({ events: this.buffer.length }, 'audit trail: buffer full, requests wait for AuditEvents to be written');
    while (this.buffer.length >= this.options.bufferMax) {
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

  /** Stops the timer and writes what is buffered (graceful shutdown); later records are written at once. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (let attempt = 0; attempt < 3 && this.buffer.length > 0; attempt++) await this.flush();
    if (this.buffer.length > 0) {
      this.options.log.error({ events: this.buffer.length }, 'audit trail: AuditEvents could not be written before shutdown');
    }
  }
}
