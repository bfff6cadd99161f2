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

/** Sizes of documents as they arrived on the wire, so the 16 MiB check need not re-measure them. */
const receivedSizes = new WeakMap<Document, number>();

export function decodeDocumentWithSize(bytes: Uint8Array): Document {
  const doc = decodeDocument(bytes);
  receivedSizes.set(doc, bytes.length);
  return doc;
}

/** BSON size of a document (its wire size when it arrived in a document sequence). */
export function documentSize(doc: Document): number {
  return receivedSizes.get(doc) ?? calculateObjectSize(doc);
}

export function receivedSize(doc: Document): number | undefined {
  return receivedSizes.get(doc);
}
