/**
 * Hedera's protobuf classes (the @hashgraph/proto package, the same generated code the SDK
 * encodes with) and small conversions between protobuf values and this server's types.
 */
import { proto } from '@hashgraph/proto';
import { Long } from '@hashgraph/sdk';

export { proto };

export type ResponseCode = proto.ResponseCodeEnum;
export const Status = proto.ResponseCodeEnum;

/** "INVALID_TOPIC_ID" for a response code, as the mirror node and logs print it. */
export function statusName(code: ResponseCode): string {
  return proto.ResponseCodeEnum[code] ?? `UNKNOWN_CODE_${code}`;
}

/** Protobuf int64 fields decode as Long (or number when small); this normalises to bigint. */
export function toBigInt(value: Long | number | null | undefined): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value === 'number') return BigInt(value);
  return BigInt(value.toString());
}

export function toLong(value: bigint | number): Long {
  return Long.fromString(value.toString());
}

export function toUint8(value: Uint8Array | null | undefined): Buffer {
  return value ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : Buffer.alloc(0);
}
