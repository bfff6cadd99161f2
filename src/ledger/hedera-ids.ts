/**
 * Hedera's textual forms, as the SDK and the mirror node write them, and the conversions a verifier needs:
 * entity ids ("0.0.1234"), transaction ids (SDK "0.0.2@1700000000.000000001", mirror "0.0.2-1700000000-000000001")
 * and consensus timestamps ("1700000000.123456789": seconds, a dot, nine digits of nanoseconds).
 * Pure; no SDK import, so the CLIs can use it without loading @hashgraph/sdk.
 */
import type { EntityNumbers } from './running-hash.js';

const ENTITY_ID = /^(\d{1,10})\.(\d{1,10})\.(\d{1,10})$/;
const SDK_TRANSACTION_ID = /^(\d{1,10}\.\d{1,10}\.\d{1,10})@(\d{1,19})\.(\d{1,9})$/;
const MIRROR_TRANSACTION_ID = /^(\d{1,10}\.\d{1,10}\.\d{1,10})-(\d{1,19})-(\d{1,9})$/;
const TIMESTAMP = /^(\d{1,19})\.(\d{9})$/;

export function isEntityId(text: string): boolean {
  return ENTITY_ID.test(text);
}

/** shard.realm.num of "0.0.1234"; null when the text is not an entity id. */
export function entityNumbers(text: string): EntityNumbers | null {
  const m = ENTITY_ID.exec(text);
  if (!m) return null;
  return { shard: BigInt(m[1]!), realm: BigInt(m[2]!), num: BigInt(m[3]!) };
}

/** "0.0.2@1700000000.000000001" (either form accepted) -> the mirror node's "0.0.2-1700000000-000000001". */
export function mirrorTransactionId(transactionId: string): string | null {
  const m = SDK_TRANSACTION_ID.exec(transactionId) ?? MIRROR_TRANSACTION_ID.exec(transactionId);
  if (!m) return null;
  return `${m[1]}-${m[2]}-${m[3]!.padStart(9, '0')}`;
}

/** The payer account of a transaction id (either form). */
export function transactionPayer(transactionId: string): string | null {
  const m = SDK_TRANSACTION_ID.exec(transactionId) ?? MIRROR_TRANSACTION_ID.exec(transactionId);
  return m ? m[1]! : null;
}

/** Valid start of a transaction id in milliseconds since the epoch (for its expiry). */
export function transactionValidStartMs(transactionId: string): number | null {
  const m = SDK_TRANSACTION_ID.exec(transactionId) ?? MIRROR_TRANSACTION_ID.exec(transactionId);
  if (!m) return null;
  return Number(m[2]) * 1000 + Math.floor(Number(m[3]) / 1_000_000);
}

export interface ConsensusTime {
  seconds: bigint;
  nanos: number;
}

/** "1700000000.123456789" -> its parts; null unless exactly the mirror node's form. */
export function parseConsensusTimestamp(text: string): ConsensusTime | null {
  const m = TIMESTAMP.exec(text);
  if (!m) return null;
  return { seconds: BigInt(m[1]!), nanos: Number(m[2]) };
}

export function formatConsensusTimestamp(seconds: bigint | number, nanos: number): string {
  return `${seconds}.${String(nanos).padStart(9, '0')}`;
}

/** The same instant as an ISO 8601 / FHIR instant with all nine fraction digits: 2023-11-14T22:13:20.123456789Z. */
export function consensusTimestampToInstant(text: string): string | null {
  const t = parseConsensusTimestamp(text);
  if (!t) return null;
  const iso = new Date(Number(t.seconds) * 1000).toISOString(); // whole seconds: ends in ".000Z"
  return `${iso.slice(0, 19)}.${String(t.nanos).padStart(9, '0')}Z`;
}
