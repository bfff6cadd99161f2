/**
 * Consensus timestamps: wall-clock time with nanosecond resolution, strictly increasing
 * (also across restarts, by starting after the last journaled timestamp), so consensus
 * order, timestamp order and journal order are one and the same.
 */

export type WallClockNs = () => bigint;

/**
 * Date.now() only has milliseconds; hrtime has nanoseconds but an arbitrary origin. Anchor
 * hrtime to the epoch once, then read nanoseconds from it.
 */
export function systemWallClockNs(): WallClockNs {
  const origin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return () => origin + process.hrtime.bigint();
}

export class ConsensusClock {
  constructor(
    private last: bigint,
    readonly wallNs: WallClockNs = systemWallClockNs(),
  ) {}

  /** The next consensus timestamp: now, or 1 ns after the previous one if now is not later. */
  next(): bigint {
    const now = this.wallNs();
    this.last = now > this.last ? now : this.last + 1n;
    return this.last;
  }
}
