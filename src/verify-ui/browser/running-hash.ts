/**
 * Hedera Consensus Service running hash, version 3, exactly as src/ledger/running-hash.ts computes it (see there for
 * why the hashed bytes are a Java serialization stream), with DataView and WebCrypto instead of Buffer and
 * node:crypto:
 *
 *   SHA-384( stream header, byte[] previousRunningHash (with the "[B" class descriptor),
 *            one 76-byte block: version 3, payer shard/realm/num, topic shard/realm/num, consensus seconds (longs),
 *            consensus nanos (int), sequence number (long),
 *            byte[] SHA-384(message) (class descriptor by back-reference) )
 */
import { concat, sha384, utf8 } from './bytes.js';

export const RUNNING_HASH_VERSION = 3;
export const RUNNING_HASH_BYTES = 48;

/** The running hash of a topic before its first message (48 zero bytes). */
export function initialRunningHash(): Uint8Array {
  return new Uint8Array(RUNNING_HASH_BYTES);
}

export interface EntityNumbers {
  shard: bigint | number;
  realm: bigint | number;
  num: bigint | number;
}

export interface RunningHashV3Input {
  previousRunningHash: Uint8Array;
  payer: EntityNumbers;
  topic: EntityNumbers;
  consensusSeconds: bigint | number;
  consensusNanos: number;
  sequenceNumber: bigint | number;
  message: Uint8Array;
}

// java.io.ObjectStreamConstants
const STREAM_HEADER = Uint8Array.of(0xac, 0xed, 0x00, 0x05);
const TC_NULL = 0x70;
const TC_REFERENCE = 0x71;
const TC_CLASSDESC = 0x72;
const TC_ARRAY = 0x75;
const TC_BLOCKDATA = 0x77;
const TC_ENDBLOCKDATA = 0x78;
const SC_SERIALIZABLE = 0x02;
const BASE_WIRE_HANDLE = 0x7e0000;
const BYTE_ARRAY_SUID = 0xacf317f8060854e0n;

function byteArrayClassDescriptor(): Uint8Array {
  const name = utf8('[B');
  const out = new Uint8Array(1 + 2 + name.length + 8 + 1 + 2 + 1 + 1);
  const view = new DataView(out.buffer);
  let o = 0;
  out[o++] = TC_CLASSDESC;
  view.setUint16(o, name.length);
  o += 2;
  out.set(name, o);
  o += name.length;
  view.setBigUint64(o, BYTE_ARRAY_SUID);
  o += 8;
  out[o++] = SC_SERIALIZABLE;
  view.setUint16(o, 0); // field count
  o += 2;
  out[o++] = TC_ENDBLOCKDATA;
  out[o++] = TC_NULL;
  return out;
}

function int32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, value);
  return out;
}

function toBigInt(value: bigint | number, what: string): bigint {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new RangeError(`${what} must be an integer, got ${value}`);
  const v = BigInt(value);
  if (v < -(2n ** 63n) || v >= 2n ** 63n) throw new RangeError(`${what} does not fit a Java long`);
  return v;
}

/** Running hash of a topic after appending one message (48 bytes), as Hedera computes it for version 3. */
export async function computeRunningHashV3(input: RunningHashV3Input): Promise<Uint8Array> {
  const nanos = input.consensusNanos;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999)
    throw new RangeError(`consensusNanos must be 0..999999999, got ${nanos}`);
  const longs: Array<[bigint | number, string]> = [
    [RUNNING_HASH_VERSION, 'version'],
    [input.payer.shard, 'payer shard'],
    [input.payer.realm, 'payer realm'],
    [input.payer.num, 'payer num'],
    [input.topic.shard, 'topic shard'],
    [input.topic.realm, 'topic realm'],
    [input.topic.num, 'topic num'],
    [input.consensusSeconds, 'consensus seconds'],
  ];
  const block = new Uint8Array(longs.length * 8 + 4 + 8);
  const view = new DataView(block.buffer);
  let o = 0;
  for (const [value, what] of longs) {
    view.setBigInt64(o, toBigInt(value, what));
    o += 8;
  }
  view.setInt32(o, nanos);
  o += 4;
  view.setBigInt64(o, toBigInt(input.sequenceNumber, 'sequence number'));

  const messageHash = await sha384(input.message);
  const backReference = new Uint8Array(5);
  backReference[0] = TC_REFERENCE;
  new DataView(backReference.buffer).setUint32(1, BASE_WIRE_HANDLE);

  return sha384(
    concat(
      STREAM_HEADER,
      Uint8Array.of(TC_ARRAY),
      byteArrayClassDescriptor(),
      int32(input.previousRunningHash.length),
      input.previousRunningHash,
      Uint8Array.of(TC_BLOCKDATA, block.length),
      block,
      Uint8Array.of(TC_ARRAY),
      backReference,
      int32(messageHash.length),
      messageHash,
    ),
  );
}
