/**
 * The HCS message published once per batch.
 *
 * Wire format, version 1: the UTF-8 bytes of the RFC 8785 (JCS) canonical JSON of an object with
 * exactly these five members, and nothing else — never patient data, never resource ids:
 *
 *   {"batch":12,"prev":"<64 hex>","root":"<64 hex>","size":10000,"v":1}
 *
 *   v      format version, the number 1
 *   batch  batch number: integer >= 1, consecutive; batch 1 is the first batch of the ledger
 *   prev   Merkle root of batch (batch - 1) as 64 lowercase hex digits; null for batch 1 only.
 *          Chaining the roots makes a dropped or reordered batch evident to anyone replaying
 *          the topic.
 *   root   RFC 9162 Merkle tree hash (SHA-256) of this batch, 64 lowercase hex digits
 *   size   number of leaves (resource versions) in the tree: integer >= 1
 *
 * Why JSON rather than a fixed binary layout: a compliance officer or auditor reads HCS messages
 * from a mirror node as base64; decoding that gives self-describing text they can check by hand
 * (or with any JSON tool), with no schema document needed to find which bytes are the root. The
 * message is ~170 bytes, far under HCS's 1024-byte limit for an unchunked message, so the
 * compactness of a binary layout buys nothing. Numbers stay well inside 2^53, so every JSON parser
 * reads them exactly.
 *
 * Why canonical (JCS, keys sorted, no whitespace): every message has exactly one valid encoding.
 * decodeBatchMessage re-encodes what it parsed and rejects the input unless the bytes are identical,
 * which also rejects whitespace, duplicate keys, escapes, "1.0"/"1e0" spellings, uppercase hex and
 * a byte-order mark.
 */
import { canonicalJson } from './canonical-json.js';

export const BATCH_MESSAGE_VERSION = 1;
/** HCS's maximum size of a single (unchunked) consensus message. */
export const BATCH_MESSAGE_MAX_BYTES = 1024;
/** Number of the ledger's first batch; its `previousRoot` is null. */
export const FIRST_BATCH_NUMBER = 1;

export interface BatchMessage {
  /** Format version (wire key "v"). */
  readonly version: typeof BATCH_MESSAGE_VERSION;
  /** Batch number, >= 1 (wire key "batch"). */
  readonly batchNumber: number;
  /** Leaves in the batch's Merkle tree, >= 1 (wire key "size"). */
  readonly treeSize: number;
  /** 32-byte Merkle root of this batch (wire key "root", hex). */
  readonly root: Buffer;
  /** 32-byte Merkle root of the previous batch; null iff batchNumber is 1 (wire key "prev", hex). */
  readonly previousRoot: Buffer | null;
}

export class BatchMessageError extends Error {
  constructor(message: string) {
    super(`batch message: ${message}`);
    this.name = 'BatchMessageError';
  }
}

const HEX_256 = /^[0-9a-f]{64}$/;
const WIRE_KEYS = ['batch', 'prev', 'root', 'size', 'v'] as const;

interface WireV1 {
  batch: number;
  prev: string | null;
  root: string;
  size: number;
  v: 1;
}

function checkCount(value: unknown, min: number, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new BatchMessageError(`${what} must be an integer >= ${min}`);
  }
  return value;
}

function checkRoot(value: unknown, what: string): Buffer {
  if (!(value instanceof Uint8Array) || value.length !== 32) {
    throw new BatchMessageError(`${what} must be 32 bytes`);
  }
  return Buffer.from(value);
}

function checkPrevious(batchNumber: number, previous: Buffer | null): void {
  if ((batchNumber === FIRST_BATCH_NUMBER) !== (previous === null)) {
    throw new BatchMessageError(`previous root must be null for batch ${FIRST_BATCH_NUMBER} and only for it`);
  }
}

/** Canonical UTF-8 JSON bytes of `m`. Throws BatchMessageError on an invalid message. */
export function encodeBatchMessage(m: BatchMessage): Buffer {
  if (typeof m !== 'object' || m === null) throw new BatchMessageError('message must be an object');
  if (m.version !== BATCH_MESSAGE_VERSION) {
    throw new BatchMessageError(`unsupported version ${String(m.version)}`);
  }
  const batch = checkCount(m.batchNumber, FIRST_BATCH_NUMBER, 'batch number');
  const size = checkCount(m.treeSize, 1, 'tree size');
  const root = checkRoot(m.root, 'root');
  const prev = m.previousRoot === null ? null : checkRoot(m.previousRoot, 'previous root');
  checkPrevious(batch, prev);

  const wire: WireV1 = {
    batch,
    prev: prev === null ? null : prev.toString('hex'),
    root: root.toString('hex'),
    size,
    v: BATCH_MESSAGE_VERSION,
  };
  const bytes = Buffer.from(canonicalJson(wire), 'utf8');
  if (bytes.length > BATCH_MESSAGE_MAX_BYTES) {
    // Cannot happen with v1's fixed fields; guards future versions.
    throw new BatchMessageError(`encoded message exceeds ${BATCH_MESSAGE_MAX_BYTES} bytes`);
  }
  return bytes;
}

/**
 * Parse and validate a batch message. Strict: rejects anything over 1024 bytes, invalid UTF-8 or
 * JSON, a non-object, an unknown version, missing or extra members, wrong types or lengths,
 * a `prev` inconsistent with the batch number, and any encoding other than the canonical one.
 */
export function decodeBatchMessage(b: Buffer): BatchMessage {
  if (!(b instanceof Uint8Array)) throw new BatchMessageError('input must be a Buffer');
  if (b.length > BATCH_MESSAGE_MAX_BYTES) {
    throw new BatchMessageError(`${b.length} bytes exceeds the ${BATCH_MESSAGE_MAX_BYTES}-byte limit`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(b);
  } catch {
    throw new BatchMessageError('not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BatchMessageError('not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new BatchMessageError('not a JSON object');
  }
  const obj = parsed as Record<string, unknown>;

  // The version decides the schema, so it is checked first.
  if (!Object.prototype.hasOwnProperty.call(obj, 'v')) throw new BatchMessageError('missing version "v"');
  if (obj['v'] !== BATCH_MESSAGE_VERSION) {
    throw new BatchMessageError(`unsupported version ${JSON.stringify(obj['v'])}`);
  }
  const keys = Object.keys(obj).sort();
  const extra = keys.filter((k) => !(WIRE_KEYS as readonly string[]).includes(k));
  if (extra.length > 0) throw new BatchMessageError(`unexpected member(s) ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
  const missing = WIRE_KEYS.filter((k) => !keys.includes(k));
  if (missing.length > 0) throw new BatchMessageError(`missing member(s) ${missing.map((k) => JSON.stringify(k)).join(', ')}`);

  const batchNumber = checkCount(obj['batch'], FIRST_BATCH_NUMBER, '"batch"');
  const treeSize = checkCount(obj['size'], 1, '"size"');
  const rootHex = obj['root'];
  if (typeof rootHex !== 'string' || !HEX_256.test(rootHex)) {
    throw new BatchMessageError('"root" must be 64 lowercase hex digits');
  }
  const prevHex = obj['prev'];
  if (prevHex !== null && (typeof prevHex !== 'string' || !HEX_256.test(prevHex))) {
    throw new BatchMessageError('"prev" must be null or 64 lowercase hex digits');
  }
  const message: BatchMessage = {
    version: BATCH_MESSAGE_VERSION,
    batchNumber,
    treeSize,
    root: Buffer.from(rootHex, 'hex'),
    previousRoot: prevHex === null ? null : Buffer.from(prevHex, 'hex'),
  };
  checkPrevious(batchNumber, message.previousRoot);

  if (!encodeBatchMessage(message).equals(b)) {
    throw new BatchMessageError('not in canonical form (RFC 8785: sorted keys, no whitespace, no escapes)');
  }
  return message;
}
