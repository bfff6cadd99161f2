/**
 * Exponential backoff with full jitter for the worker's retries: while Hedera or the mirror node is down
 * (BUSY, PLATFORM_TRANSACTION_NOT_CREATED, refused connections, timeouts) each failed attempt doubles the wait,
 * up to a ceiling, and a success resets it. The jitter keeps several servers that lost the network together
 * from retrying in lock-step when it comes back.
 */
export class Backoff {
  private failures = 0;

  constructor(
    readonly minMs: number,
    readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The wait before the next attempt, after one more failure. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.max(this.minMs, Math.floor(ceiling * (0.5 + this.random() / 2)));
  }

  reset(): void {
    this.failures = 0;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }
}
