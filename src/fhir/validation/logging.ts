/**
 * Validation never fails a resource because of its own limits (an invariant our FHIRPath engine cannot
 * evaluate, a value set we cannot expand): it skips the check and says so once in the log.
 */
export type LogSink = (message: string) => void;

export class ValidationLogger {
  private readonly seen = new Set<string>();
  private readonly sink: LogSink;

  constructor(sink?: LogSink) {
    this.sink = sink ?? ((message) => console.warn(`[fhir-validation] ${message}`));
  }

  /** Logs a message the first time its key is seen; returns true when it was logged. */
  once(key: string, message: string): boolean {
    if (this.seen.has(key)) {
      return false;
    }
    this.seen.add(key);
    this.sink(message);
    return true;
  }

  get keys(): ReadonlySet<string> {
    return this.seen;
  }
}
