/**
 * How documents and index entries are laid out as LMDB keys and values.
 *
 * Key strings (bson/keystring.ts) are sequences of UTF-16 code units whose
 * plain string order is mongod's BSON order. LMDB orders keys by their bytes,
 * so a key string is stored as UTF-16 big-endian: byte order then equals
 * code-unit order exactly (UTF-8 would not: it orders by code point, and
 * inverted descending keys contain lone surrogates it cannot even encode).
 *
 * Every record starts with a 4-byte number naming its collection (documents)
 * or its index (index entries), so one LMDB database holds them all and a
 * collection's or an index's records are one contiguous range.
 *
 *   document     [collection no][_id key]                -> [0][BSON]
 *   index entry  [index no][index key][_id key]           -> [index key length, u32]
 *
 * Index keys are prefix-free (keystring.ts), so "index key then _id key"
 * concatenated orders exactly as the pair (key, id) does.
 *
 * LMDB keys are limited to 4026 bytes (8 KiB pages). A record whose key would
 * be longer is stored under its first TRUNCATED_UNITS code units plus a 16-byte
 * hash of the whole key, and carries the whole key in its value:
 *
 *   long document     [no][first units][hash]  -> [1][_id key length, u32][_id key][BSON]
 *   long index entry  [no][first units][hash]  -> [0xFFFFFFFF][index key length, u32][index key][_id key]
 *
 * Such records sort by their first 2003 code units only (ties by hash); range
 * scans filter on the whole key, so results are exact, but an index scan does
 * not order two keys that share their first 2003 code units.
 */
import { createHash } from 'node:crypto';

export const MAX_KEY_BYTES = 4026;
/** LMDB's page size for which MAX_KEY_BYTES holds. */
export const PAGE_SIZE = 8192;
const NUMBER_BYTES = 4;
const HASH_BYTES = 16;
/** Code units kept of a long key: 4 + 2 * 2003 + 16 = 4026 bytes. Normal keys are at most 4024 bytes, so the two never have the same length. */
const TRUNCATED_UNITS = (MAX_KEY_BYTES - NUMBER_BYTES - HASH_BYTES) / 2;
const LONG_ENTRY = 0xffffffff;

/** UTF-16 big-endian bytes of a key string. */
export function stringBytes(s: string): Buffer {
  const buf = Buffer.from(s, 'utf16le');
  buf.swap16();
  return buf;
}

/** The key string of UTF-16 big-endian bytes (copied: the source may be LMDB's reused buffer). */
export function bytesString(buf: Uint8Array, start = 0, end = buf.length): string {
  const copy = Buffer.from(buf.subarray(start, end));
  copy.swap16();
  return copy.toString('utf16le');
}

export function numberBytes(no: number): Buffer {
  const buf = Buffer.allocUnsafe(NUMBER_BYTES);
  buf.writeUInt32BE(no, 0);
  return buf;
}

/** The first key after every record of `no`. */
export function afterNumber(no: number): Buffer {
  return numberBytes(no + 1);
}

function isLong(units: number): boolean {
  return NUMBER_BYTES + 2 * units > MAX_KEY_BYTES - 2;
}

function longKey(no: number, whole: string): Buffer {
  const hash = createHash('sha256').update(stringBytes(whole)).digest().subarray(0, HASH_BYTES);
  return Buffer.concat([numberBytes(no), stringBytes(whole.slice(0, TRUNCATED_UNITS)), hash]);
}

// ---- documents ----

export function documentKey(collectionNo: number, idKey: string): Buffer {
  if (isLong(idKey.length)) return longKey(collectionNo, idKey);
  const buf = Buffer.allocUnsafe(NUMBER_BYTES + 2 * idKey.length);
  buf.writeUInt32BE(collectionNo, 0);
  buf.write(idKey, NUMBER_BYTES, 'utf16le');
  buf.subarray(NUMBER_BYTES).swap16();
  return buf;
}

export function documentValue(idKey: string, bson: Uint8Array): Buffer {
  if (!isLong(idKey.length)) {
    const buf = Buffer.allocUnsafe(1 + bson.length);
    buf[0] = 0;
    buf.set(bson, 1);
    return buf;
  }
  const id = stringBytes(idKey);
  const head = Buffer.allocUnsafe(5);
  head[0] = 1;
  head.writeUInt32BE(idKey.length, 1);
  return Buffer.concat([head, id, bson]);
}

/** The _id key and the BSON bytes of a stored document record. */
export function decodeDocumentRecord(key: Uint8Array, value: Uint8Array): { idKey: string; bson: Uint8Array } {
  if (value[0] === 0) return { idKey: bytesString(key, NUMBER_BYTES), bson: value.subarray(1) };
  const view = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const units = view.readUInt32BE(1);
  const idEnd = 5 + 2 * units;
  return { idKey: bytesString(value, 5, idEnd), bson: value.subarray(idEnd) };
}

/** The BSON bytes of a document record found by its key. */
export function documentBson(value: Uint8Array): Uint8Array {
  if (value[0] === 0) return value.subarray(1);
  const view = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return value.subarray(5 + 2 * view.readUInt32BE(1));
}

// ---- index entries ----

export function indexEntryKey(indexNo: number, key: string, id: string): Buffer {
  const units = key.length + id.length;
  if (isLong(units)) return longKey(indexNo, key + id);
  const buf = Buffer.allocUnsafe(NUMBER_BYTES + 2 * units);
  buf.writeUInt32BE(indexNo, 0);
  buf.write(key, NUMBER_BYTES, 'utf16le');
  buf.write(id, NUMBER_BYTES + 2 * key.length, 'utf16le');
  buf.subarray(NUMBER_BYTES).swap16();
  return buf;
}

export function indexEntryValue(key: string, id: string): Buffer {
  if (!isLong(key.length + id.length)) {
    const buf = Buffer.allocUnsafe(4);
    buf.writeUInt32BE(key.length, 0);
    return buf;
  }
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(LONG_ENTRY, 0);
  head.writeUInt32BE(key.length, 4);
  return Buffer.concat([head, stringBytes(key), stringBytes(id)]);
}

export function decodeIndexEntry(record: Uint8Array, value: Uint8Array): { key: string; id: string } {
  const view = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const first = view.readUInt32BE(0);
  if (first !== LONG_ENTRY) {
    const keyEnd = NUMBER_BYTES + 2 * first;
    return { key: bytesString(record, NUMBER_BYTES, keyEnd), id: bytesString(record, keyEnd) };
  }
  const keyEnd = 8 + 2 * view.readUInt32BE(4);
  return { key: bytesString(value, 8, keyEnd), id: bytesString(value, keyEnd) };
}

/** Where a scan of index keys from `start` (inclusive; null: the first) begins. */
export function indexLowerBound(indexNo: number, start: string | null): Buffer {
  if (start === null) return numberBytes(indexNo);
  return Buffer.concat([numberBytes(indexNo), stringBytes(start.length > TRUNCATED_UNITS ? start.slice(0, TRUNCATED_UNITS) : start)]);
}

/**
 * Where a scan of index keys below `end` (exclusive; null: no bound) stops. For
 * a bound longer than what records keep, the bound is widened; the scan then
 * filters on whole keys.
 */
export function indexUpperBound(indexNo: number, end: string | null): Buffer {
  if (end === null) return afterNumber(indexNo);
  if (end.length <= TRUNCATED_UNITS) return Buffer.concat([numberBytes(indexNo), stringBytes(end)]);
  const successor = prefixSuccessor(end.slice(0, TRUNCATED_UNITS));
  return successor === null ? afterNumber(indexNo) : Buffer.concat([numberBytes(indexNo), stringBytes(successor)]);
}

/**
 * Smallest string greater than every string that starts with `prefix`
 * (null when there is none, i.e. the prefix is all 0xFFFF).
 */
export function prefixSuccessor(prefix: string): string | null {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xffff) end--;
  if (end === 0) return null;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}
