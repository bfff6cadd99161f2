/**
 * Writes buffered AuditEvent versions to the store in batches: every `flushIntervalMs` at the latest, sooner when a
 * batch fills. A failed write keeps its events for the next attempt. Used in the request thread (tests, tools) or
 * in the audit worker thread (the server), through the same code.
 */
import type { NewVersion, ResourceStore } from '../../store/resource-store.js';

/** Events written per insert: large enough to amortise a round trip, small enough to keep each write short. */
export const FLUSH_BATCH = 1000;

export interface AuditWriterLogger {
  error(fields: object, message: string): void;
}

export class AuditWriter {
  private buffer: NewVersion[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly store: ResourceStore,
    private readonly flushIntervalMs: number,
    private readonly log: AuditWriterLogger,
    /** Called after each successful write with the number of events written (in the order they were added). */
    private readonly onWritten: (count: number) => void = () => undefined,
  ) {}

  get pending(): number {
    return this.buffer.length;
  }

  add(versions: NewVersion[]): void {
    this.buffer.push(...versions);
    if (this.buffer.length >= FLUSH_BATCH) void this.flush();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
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
        await this.store.insertNewResources(batch);
      } catch (error) {
        // Kept for the next attempt; requests start waiting once the buffer is full.
        this.log.error({ err: error, events: this.buffer.length }, 'audit trail: AuditEvents could not be written; retrying');
        return;
      }
      this.buffer = this.buffer.slice(batch.length);
      this.onWritten(batch.length);
    }
  }

  /** Stops the timer and writes what is buffered (three attempts); returns how many could not be written. */
  async close(): Promise<number> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (let attempt = 0; attempt < 3 && this.buffer.length > 0; attempt++) await this.flush();
    return this.buffer.length;
  }
}
