/**
 * BSON (de)serialization settings shared by the wire protocol and the
 * journal, so a document stored and replayed is identical to one received.
 */
import { calculateObjectSize, deserialize, serializeWithBufferAndIndex, type Document } from 'bson';

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

/** Serializes documents of any size (bson's `serialize` is limited by its internal buffer). */
export function encodeDocument(doc: Document): Buffer {
  const size = calculateObjectSize(doc, { serializeFunctions: false, ignoreUndefined: false });
  const buf = Buffer.allocUnsafe(size);
  serializeWithBufferAndIndex(doc, buf, { serializeFunctions: false, ignoreUndefined: false, checkKeys: false });
  return buf;
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
