/**
 * Entity ids (shard.realm.num), transaction ids and consensus timestamps in the string forms
 * Hedera's mirror node uses, and their protobuf equivalents.
 */
import { type proto, toBigInt, toLong } from './proto.js';

export interface EntityId {
  shard: bigint;
  realm: bigint;
  num: bigint;
}

/** This network runs in shard 0, realm 0 like Hedera mainnet/testnet. */
export const SHARD = 0n;
export const REALM = 0n;

export function entityId(num: bigint | number): EntityId {
  return { shard: SHARD, realm: REALM, num: BigInt(num) };
}

export function formatEntityId(id: EntityId): string {
  return `${id.shard}.${id.realm}.${id.num}`;
}

const ENTITY_ID = /^(?:(\d{1,10})\.)?(?:(\d{1,10})\.)?(\d{1,10})$/;

/** Accepts "0.0.1234", "0.1234" (realm.num) and "1234", as the mirror node does. */
export function parseEntityId(text: string): EntityId | null {
  const m = ENTITY_ID.exec(text);
  if (!m) return null;
  const parts = [m[1], m[2], m[3]].filter((p): p is string => p !== undefined).map((p) => BigInt(p));
  while (parts.length < 3) parts.unshift(0n);
  return { shard: parts[0]!, realm: parts[1]!, num: parts[2]! };
}

export function sameEntity(a: EntityId, b: EntityId): boolean {
  return a.shard === b.shard && a.realm === b.realm && a.num === b.num;
}

export function accountIdFromProto(id: proto.IAccountID | null | undefined): EntityId | null {
  if (!id) return null;
  // Alias / EVM-address accounts are not supported by this local network.
  if (id.alias && id.alias.length > 0) return null;
  return { shard: toBigInt(id.shardNum), realm: toBigInt(id.realmNum), num: toBigInt(id.accountNum) };
}

export function topicIdFromProto(id: proto.ITopicID | null | undefined): EntityId | null {
  if (!id) return null;
  return { shard: toBigInt(id.shardNum), realm: toBigInt(id.realmNum), num: toBigInt(id.topicNum) };
}

export function accountIdToProto(id: EntityId): proto.IAccountID {
  return { shardNum: toLong(id.shard), realmNum: toLong(id.realm), accountNum: toLong(id.num) };
}

export function topicIdToProto(id: EntityId): proto.ITopicID {
  return { shardNum: toLong(id.shard), realmNum: toLong(id.realm), topicNum: toLong(id.num) };
}

// ---------------------------------------------------------------------------------------
// Timestamps: nanoseconds since the epoch as bigint, so consensus order is exact.

export const NANOS_PER_SECOND = 1_000_000_000n;

export function splitNanos(ns: bigint): { seconds: bigint; nanos: number } {
  return { seconds: ns / NANOS_PER_SECOND, nanos: Number(ns % NANOS_PER_SECOND) };
}

/** "1683553059.977315003": seconds, a dot, and always nine digits of nanoseconds. */
export function formatTimestamp(ns: bigint): string {
  const { seconds, nanos } = splitNanos(ns);
  return `${seconds}.${String(nanos).padStart(9, '0')}`;
}

const TIMESTAMP = /^(\d{1,19})(?:\.(\d{1,9}))?$/;

/** Parses "seconds[.fraction]"; the fraction is decimal, so ".1" is 100 000 000 ns. */
export function parseTimestamp(text: string): bigint | null {
  const m = TIMESTAMP.exec(text);
  if (!m) return null;
  const fraction = (m[2] ?? '').padEnd(9, '0');
  return BigInt(m[1]!) * NANOS_PER_SECOND + BigInt(fraction);
}

export function timestampFromProto(ts: proto.ITimestamp | null | undefined): bigint | null {
  if (!ts) return null;
  return toBigInt(ts.seconds) * NANOS_PER_SECOND + BigInt(ts.nanos ?? 0);
}

export function timestampToProto(ns: bigint): proto.ITimestamp {
  const { seconds, nanos } = splitNanos(ns);
  return { seconds: toLong(seconds), nanos };
}

// ---------------------------------------------------------------------------------------
// Transaction ids

export interface TransactionIdParts {
  payer: EntityId;
  validStartNs: bigint;
  nonce: number;
  scheduled: boolean;
}

/**
 * The key this server files transactions under: "0.0.2@1700000000.000000001", the SDK's
 * own toString() form (nonce and scheduled flag appended only when set).
 */
export function transactionIdKey(id: TransactionIdParts): string {
  const base = `${formatEntityId(id.payer)}@${formatTimestamp(id.validStartNs)}`;
  return base + (id.scheduled ? '?scheduled' : '') + (id.nonce !== 0 ? `/${id.nonce}` : '');
}

/** The mirror node's form: "0.0.2-1700000000-000000001". */
export function transactionIdMirrorString(id: TransactionIdParts): string {
  const { seconds, nanos } = splitNanos(id.validStartNs);
  return `${formatEntityId(id.payer)}-${seconds}-${String(nanos).padStart(9, '0')}`;
}

const MIRROR_TX_ID = /^(\d{1,10}\.\d{1,10}\.\d{1,10})-(\d{1,19})-(\d{1,9})$/;
const SDK_TX_ID = /^(\d{1,10}\.\d{1,10}\.\d{1,10})@(\d{1,19})\.(\d{1,9})$/;

/** Accepts both "0.0.2-1700000000-000000001" and "0.0.2@1700000000.000000001". */
export function parseTransactionId(text: string): TransactionIdParts | null {
  const m = MIRROR_TX_ID.exec(text) ?? SDK_TX_ID.exec(text);
  if (!m) return null;
  const payer = parseEntityId(m[1]!);
  if (!payer) return null;
  // In both forms the nanosecond field is an integer count, not a decimal fraction.
  const validStartNs = BigInt(m[2]!) * NANOS_PER_SECOND + BigInt(m[3]!);
  return { payer, validStartNs, nonce: 0, scheduled: false };
}

export function transactionIdFromProto(id: proto.ITransactionID | null | undefined): TransactionIdParts | null {
  if (!id) return null;
  const payer = accountIdFromProto(id.accountID);
  const validStartNs = timestampFromProto(id.transactionValidStart);
  if (!payer || validStartNs === null) return null;
  return { payer, validStartNs, nonce: id.nonce ?? 0, scheduled: id.scheduled ?? false };
}

export function transactionIdToProto(id: TransactionIdParts): proto.ITransactionID {
  return {
    accountID: accountIdToProto(id.payer),
    transactionValidStart: timestampToProto(id.validStartNs),
    scheduled: id.scheduled,
    nonce: id.nonce,
  };
}
