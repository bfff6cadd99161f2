/**
 * A fixed fee schedule in tinybars. Hedera prices in USD and converts at the current
 * exchange rate with per-byte and per-signature components; this local network charges
 * flat amounts of the same order (at 5 US cents per hbar) so that fee and balance logic,
 * INSUFFICIENT_TX_FEE and paid queries behave, without claiming Hedera's exact prices.
 */

/** Exchange rate reported in receipts: 30 000 hbar = 150 000 cents (5 cents per hbar). */
export const EXCHANGE_RATE = { hbarEquiv: 30_000, centEquiv: 150_000 } as const;

export const TRANSACTION_FEES = {
  /** about $0.01 */
  consensusCreateTopic: 20_000_000n,
  /** about $0.0001 */
  consensusSubmitMessage: 200_000n,
  /** about $0.0001 */
  cryptoTransfer: 200_000n,
} as const;

export const QUERY_COSTS = {
  /** about $0.0001 */
  transactionGetRecord: 200_000n,
  /** about $0.0001 */
  consensusGetTopicInfo: 200_000n,
} as const;

/**
 * Part of every fee that goes to the submitting node; the rest goes to the fee collection
 * account 0.0.98, as on Hedera (where the node share is also the small part).
 */
export function splitFee(fee: bigint): { node: bigint; network: bigint } {
  const node = fee / 20n;
  return { node, network: fee - node };
}
