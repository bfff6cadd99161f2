/**
 * Strict decoding of the HCS batch message, as src/ledger/batch-message.ts decodeBatchMessage does it: at most 1024
 * bytes, valid UTF-8, a JSON object with exactly batch/prev/root/size/v (v = 1), and the bytes must be the one
 * canonical encoding (RFC 8785, the same canonicalJson the server used to write it). Same rules, same messages.
 *
 *   {"batch":7,"prev":"<64 hex>","root":"<64 hex>","size":12,"v":1}
 */
import { canonicalJson } from '../../ledger/canonical-json.js';
import { bytesToHex, equalBytes, hexToBytes, utf8 } from './bytes.js';

export const BATCH_MESSAGE_VERSION = 1;
export const BATCH_MESSAGE_MAX_BYTES = 1024;
export const FIRST_BATCH_NUMBER = 1;

export interface BatchMessage {
  readonly version: typeof BATCH_MESSAGE_VERSION;
  readonly batchNumber: number;
  readonly treeSize: number;
  readonly root: Uint8Array;
  readonly previousRoot: Uint8Array | null;
}

export class BatchMessageError extends Error {
  constructor(message: string) {
    super(`batch message: ${message}`);
    this.name = 'BatchMessageError';
  }
}

const HEX_256 = /^[0-9a-f]{64}$/;
const WIRE_KEYS = ['batch', 'prev', 'root', 'size', 'v'] as const;

function checkCount(value: unknown, min: number, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    throw new BatchMessageError(`${what} must be an integer >= ${min}`);
  return value;
}

function checkPrevious(batchNumber: number, previous: Uint8Array | null): void {
  if ((batchNumber === FIRST_BATCH_NUMBER) !== (previous === null)) {
    throw new BatchMessageError(`previous root must be null for batch ${FIRST_BATCH_NUMBER} and only for it`);
  }
}

/** The canonical bytes of a (valid) message: what the server publishes. */
export function encodeBatchMessage(m: BatchMessage): Uint8Array {
  return utf8(
    canonicalJson({
      batch: m.batchNumber,
      prev: m.previousRoot === null ? null : bytesToHex(m.previousRoot),
      root: bytesToHex(m.root),
      size: m.treeSize,
      v: BATCH_MESSAGE_VERSION,
    }),
  );
}

export function decodeBatchMessage(b: Uint8Array): BatchMessage {
  if (b.length > BATCH_MESSAGE_MAX_BYTES)
    throw new BatchMessageError(`${b.length} bytes exceeds the ${BATCH_MESSAGE_MAX_BYTES}-byte limit`);
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
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new BatchMessageError('not a JSON object');
  const obj = parsed as Record<string, unknown>;
  if (!Object.prototype.hasOwnProperty.call(obj, 'v')) throw new BatchMessageError('missing version "v"');
  if (obj['v'] !== BATCH_MESSAGE_VERSION) throw new BatchMessageError(`unsupported version ${JSON.stringify(obj['v'])}`);
  const keys = Object.keys(obj).sort();
  const extra = keys.filter((k) => !(WIRE_KEYS as readonly string[]).includes(k));
  if (extra.length > 0) throw new BatchMessageError(`unexpected member(s) ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
  const missing = WIRE_KEYS.filter((k) => !keys.includes(k));
  if (missing.length > 0) throw new BatchMessageError(`missing member(s) ${missing.map((k) => JSON.stringify(k)).join(', ')}`);

  const batchNumber = checkCount(obj['batch'], FIRST_BATCH_NUMBER, '"batch"');
  const treeSize = checkCount(obj['size'], 1, '"size"');
  const rootHex = obj['root'];
  if (typeof rootHex !== 'string' || !HEX_256.test(rootHex)) throw new BatchMessageError('"root" must be 64 lowercase hex digits');
  const prevHex = obj['prev'];
  if (prevHex !== null && (typeof prevHex !== 'string' || !HEX_256.test(prevHex))) {
    throw new BatchMessageError('"prev" must be null or 64 lowercase hex digits');
  }
  const message: BatchMessage = {
    version: BATCH_MESSAGE_VERSION,
    batchNumber,
    treeSize,
    root: hexToBytes(rootHex),
    previousRoot: prevHex === null ? null : hexToBytes(prevHex),
  };
  checkPrevious(batchNumber, message.previousRoot);
  if (!equalBytes(encodeBatchMessage(message), b)) {
    throw new BatchMessageError('not in canonical form (RFC 8785: sorted keys, no whitespace, no escapes)');
  }
  return message;
}
