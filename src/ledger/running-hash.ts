/**
 * Hedera Consensus Service topic running hash, version 3 (SHA-384).
 *
 * Pure (imports node:crypto only). One copy serves both sides: the local network
 * (src/dev/hedera, which re-exports it from its old path) uses it to produce running hashes,
 * and the proof verifiers (the $verify operation and the fhir-ledger-verify CLIs) use it to
 * recompute a topic's hash chain from mirror-node messages.
 *
 * Why the odd byte layout: the consensus node (hiero-consensus-node,
 * ConsensusSubmitMessageHandler.updateRunningHashAndSequenceNumber) feeds a
 * java.io.ObjectOutputStream into SHA-384, so the hashed bytes are Java serialization
 * stream bytes, not a plain concatenation. Prose descriptions ("previous hash, topic id,
 * timestamp, sequence number, message hash") leave that out. The stream it writes is:
 *
 *   writeObject(previousRunningHash)          -> byte[] object (stream header, class desc)
 *   writeLong(3)                              -> running hash version
 *   writeLong(payer shard/realm/num)          -> 3 longs
 *   writeLong(topic shard/realm/num)          -> 3 longs
 *   writeLong(consensus seconds)              -> long
 *   writeInt(consensus nanos)                 -> int (4 bytes, not a long)
 *   writeLong(sequence number)                -> the NEW sequence number of this message
 *   writeObject(SHA-384(message))             -> byte[] object, class desc by back-reference
 *
 * Primitive writes are buffered into one TC_BLOCKDATA record (76 bytes) that is flushed
 * when the second writeObject starts. All integers are big-endian, as Java writes them.
 * The function reproduces running_hash n from running_hash n-1 for real testnet messages
 * (see test/fixtures/hedera/testnet-topic-0.0.4603900.json).
 */
import { createHash } from 'node:crypto';

/** The running-hash layout this module implements; receipts and the mirror report it. */
export const RUNNING_HASH_VERSION = 3;

/** SHA-384 output size; a new topic starts from this many zero bytes. */
export const RUNNING_HASH_BYTES = 48;

/** The running hash of a topic before its first message (48 zero bytes). */
export function initialRunningHash(): Buffer {
  return Buffer.alloc(RUNNING_HASH_BYTES);
}

/** shard.realm.num of an account or topic. */
export interface EntityNumbers {
  shard: bigint | number;
  realm: bigint | number;
  num: bigint | number;
}

export interface RunningHashV3Input {
  /** Running hash after the previous message (48 zero bytes for sequence number 1). */
  previousRunningHash: Uint8Array;
  /** Payer account of the submit transaction (from its transaction id). */
  payer: EntityNumbers;
  topic: EntityNumbers;
  consensusSeconds: bigint | number;
  /** 0..999 999 999 */
  consensusNanos: number;
  /** Sequence number assigned to THIS message (previous + 1). */
  sequenceNumber: bigint | number;
  /** The message bytes exactly as submitted (one chunk). */
  message: Uint8Array;
}

// java.io.ObjectStreamConstants
const STREAM_HEADER = Buffer.from([0xac, 0xed, 0x00, 0x05]); // STREAM_MAGIC, STREAM_VERSION
const TC_NULL = 0x70;
const TC_REFERENCE = 0x71;
const TC_CLASSDESC = 0x72;
const TC_ARRAY = 0x75;
const TC_BLOCKDATA = 0x77;
const TC_ENDBLOCKDATA = 0x78;
const SC_SERIALIZABLE = 0x02;
/** Handles start here; the byte[] class descriptor is the first object written (handle 0). */
const BASE_WIRE_HANDLE = 0x7e0000;
/** serialVersionUID Java computes for byte[] ("[B"). */
const BYTE_ARRAY_SUID = 0xacf317f8060854e0n;

/** First byte[] in the stream: full class descriptor for "[B", no fields, no superclass. */
function byteArrayClassDescriptor(): Buffer {
  const name = Buffer.from('[B', 'utf8');
  const out = Buffer.alloc(1 + 2 + name.length + 8 + 1 + 2 + 1 + 1);
  let o = 0;
  out[o++] = TC_CLASSDESC;
  out.writeUInt16BE(name.length, o);
  o += 2;
  name.copy(out, o);
  o += name.length;
  out.writeBigUInt64BE(BYTE_ARRAY_SUID, o);
  o += 8;
  out[o++] = SC_SERIALIZABLE;
  out.writeUInt16BE(0, o); // field count
  o += 2;
  out[o++] = TC_ENDBLOCKDATA; // no class annotations
  out[o++] = TC_NULL; // no superclass descriptor
  return out;
}

function arrayLength(length: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeInt32BE(length, 0);
  return out;
}

function toBigInt(value: bigint | number, what: string): bigint {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new RangeError(`${what} must be an integer, got ${value}`);
  }
  const v = BigInt(value);
  if (v < -(2n ** 63n) || v >= 2n ** 63n) throw new RangeError(`${what} does not fit a Java long`);
  return v;
}

/**
 * Running hash of a topic after appending one message, exactly as Hedera computes it for
 * running hash version 3: SHA-384 of runningHashV3Stream(input). Returns 48 bytes.
 */
export function computeRunningHashV3(input: RunningHashV3Input): Buffer {
  return createHash('sha384').update(runningHashV3Stream(input)).digest();
}

/**
 * The 211 bytes SHA-384 runs over for version 3 (laid out byte by byte in docs/trust-model.md, "The running hash,
 * byte by byte"); exported so that the documented test vectors can show them.
 */
export function runningHashV3Stream(input: RunningHashV3Input): Buffer {
  const nanos = input.consensusNanos;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) {
    throw new RangeError(`consensusNanos must be 0..999999999, got ${nanos}`);
  }
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
  // 8 longs + 1 int + 1 long = 76 bytes, small enough for a short TC_BLOCKDATA record.
  const block = Buffer.alloc(longs.length * 8 + 4 + 8);
  let o = 0;
  for (const [value, what] of longs) {
    block.writeBigInt64BE(toBigInt(value, what), o);
    o += 8;
  }
  block.writeInt32BE(nanos, o);
  o += 4;
  block.writeBigInt64BE(toBigInt(input.sequenceNumber, 'sequence number'), o);

  const messageHash = createHash('sha384').update(input.message).digest();
  const backReference = Buffer.alloc(5);
  backReference[0] = TC_REFERENCE;
  backReference.writeUInt32BE(BASE_WIRE_HANDLE, 1);

  const stream = Buffer.concat([
    STREAM_HEADER,
    Buffer.from([TC_ARRAY]),
    byteArrayClassDescriptor(),
    arrayLength(input.previousRunningHash.length),
    input.previousRunningHash,
    Buffer.from([TC_BLOCKDATA, block.length]),
    block,
    Buffer.from([TC_ARRAY]),
    backReference,
    arrayLength(messageHash.length),
    messageHash,
  ]);
  return stream;
}
