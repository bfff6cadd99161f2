/**
 * BSON (de)serialization settings shared by the wire protocol and the
 * journal, so a document stored and replayed is identical to one received.
 */
import { calculateObjectSize, deserialize, serialize, serializeWithBufferAndIndex, type Document } from 'bson';

/** The driver's defaults: int32/double/safe Long become JS numbers, binaries stay Binary. */
export const DESERIALIZE_OPTIONS = {
  promoteLongs: true,
  promoteValues: true,
  promoteBuffers: false,
  bsonRegExp: false,
  useBigInt64: false,
} as const;

export function decodeDocument(bytes: Uint8Array): Document {
  return deserialize(bytes, DESERIALIZE_OPTIONS);
}

const SERIALIZE_OPTIONS = { serializeFunctions: false, ignoreUndefined: false, checkKeys: false } as const;

/**
 * Serializes documents of any size. bson's `serialize` writes into its internal buffer (17 MB, above the 16 MiB
 * document limit) and copies: half the cost of sizing the document first. A document too large for that buffer
 * is sized and written directly.
 */
export function encodeDocument(doc: Document): Buffer {
  let bytes: Uint8Array;
  try {
    bytes = serialize(doc, SERIALIZE_OPTIONS);
  } catch {
    const buf = Buffer.allocUnsafe(calculateObjectSize(doc, SERIALIZE_OPTIONS));
    serializeWithBufferAndIndex(doc, buf, SERIALIZE_OPTIONS);
    return buf;
  }
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * What documents of a document sequence (an insert's documents) arrived as on the wire: their bytes until the
 * storage engine has taken them (then only their size), so that a new document is stored as received rather than
 * encoded again (encoding was a sixth of the engine's CPU time under a stream of AuditEvent inserts). Decoding the
 * stored bytes gives the same document as decoding them from the wire did. The bytes are a view of the message's
 * buffer: they are dropped when taken so that a cached document does not keep a whole message alive.
 */
const received = new WeakMap<Document, Uint8Array | number>();

export function decodeDocumentWithSize(bytes: Uint8Array): Document {
  const doc = decodeDocument(bytes);
  received.set(doc, bytes);
  return doc;
}

/**
 * Encodes a document the server built (an update's result) once, for both its size check and its storage: the
 * bytes are kept as if the document had arrived as them, and the storage engine takes them.
 */
export function encodeOnce(doc: Document): number {
  const bytes = encodeDocument(doc);
  received.set(doc, bytes);
  return bytes.length;
}

/** BSON size of a document (its wire size when it arrived in a document sequence). */
export function documentSize(doc: Document): number {
  return receivedSize(doc) ?? calculateObjectSize(doc);
}

export function receivedSize(doc: Document): number | undefined {
  const entry = received.get(doc);
  return typeof entry === 'number' ? entry : entry?.length;
}

/**
 * The bytes the document arrived as, once (later calls, and documents built or changed by the server, give
 * undefined). Valid only for the very object decoded from them: the engine never modifies a document in place.
 */
export function takeReceivedBson(doc: Document): Uint8Array | undefined {
  const entry = received.get(doc);
  if (entry === undefined || typeof entry === 'number') return undefined;
  received.set(doc, entry.length);
  return entry;
}

/** Bytes of a BSON element's value after its type byte and name, for the types whose size is fixed or prefixed. */
function valueSize(bytes: Uint8Array, view: DataView, type: number, at: number): number | undefined {
  switch (type) {
    case 0x01: // double
    case 0x09: // date
    case 0x11: // timestamp
    case 0x12: // int64
      return 8;
    case 0x02: // string
    case 0x0d: // JavaScript code
    case 0x0e: // symbol
      return 4 + view.getInt32(at, true);
    case 0x03: // document
    case 0x04: // array
    case 0x0f: // code with scope
      return view.getInt32(at, true);
    case 0x05: // binary: length, subtype, bytes
      return 5 + view.getInt32(at, true);
    case 0x06: // undefined
    case 0x0a: // null
    case 0xff: // MinKey
    case 0x7f: // MaxKey
      return 0;
    case 0x07: // ObjectId
      return 12;
    case 0x08: // bool
      return 1;
    case 0x0b: {
      // regex: two C strings
      const first = bytes.indexOf(0, at);
      const second = first < 0 ? -1 : bytes.indexOf(0, first + 1);
      return second < 0 ? undefined : second + 1 - at;
    }
    case 0x0c: // DBPointer: string, ObjectId
      return 4 + view.getInt32(at, true) + 12;
    case 0x10: // int32
      return 4;
    case 0x13: // decimal128
      return 16;
    default:
      return undefined;
  }
}

/**
 * Remembers, for each document of the array `field` of a command decoded from `bytes` (an insert's `documents`
 * sent inside the command rather than as a document sequence, as the driver sends insertOne), the bytes it was
 * decoded from, as decodeDocumentWithSize does for a sequence: the engine stores them as received. Anything
 * unexpected (a field missing, not an array of documents, a size that does not add up) leaves the documents as
 * they are: they are then encoded again, as before.
 */
export function rememberArrayDocumentBytes(command: Document, bytes: Uint8Array, field: string): void {
  const docs = command[field];
  if (!Array.isArray(docs) || docs.length === 0) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length - 1;
  let at = 4;
  while (at < end) {
    const type = bytes[at]!;
    const nameEnd = bytes.indexOf(0, at + 1);
    if (type === 0 || nameEnd < 0) return;
    const name = Buffer.from(bytes.buffer, bytes.byteOffset + at + 1, nameEnd - at - 1).toString('utf8');
    const valueAt = nameEnd + 1;
    const size = valueSize(bytes, view, type, valueAt);
    if (size === undefined || valueAt + size > end + 1) return;
    if (name === field) {
      if (type === 0x04) rememberElements(docs, bytes, view, valueAt, valueAt + size);
      return;
    }
    at = valueAt + size;
  }
}

function rememberElements(docs: unknown[], bytes: Uint8Array, view: DataView, start: number, end: number): void {
  const found: Array<[Document, Uint8Array]> = [];
  let at = start + 4;
  for (const doc of docs) {
    if (at >= end - 1 || bytes[at] !== 0x03 || doc === null || typeof doc !== 'object' || Array.isArray(doc)) return;
    const nameEnd = bytes.indexOf(0, at + 1);
    if (nameEnd < 0 || nameEnd >= end) return;
    const size = view.getInt32(nameEnd + 1, true);
    if (size < 5 || nameEnd + 1 + size > end) return;
    found.push([doc as Document, bytes.subarray(nameEnd + 1, nameEnd + 1 + size)]);
    at = nameEnd + 1 + size;
  }
  if (at !== end - 1) return;
  for (const [doc, docBytes] of found) received.set(doc, docBytes);
}
