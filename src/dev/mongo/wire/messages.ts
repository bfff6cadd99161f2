/**
 * MongoDB wire protocol messages: framing of the byte stream, OP_MSG (with
 * kind-1 document sequences and the CRC-32C checksum flag), and the legacy
 * OP_QUERY / OP_REPLY pair drivers still use for the first handshake.
 *
 * Anything malformed raises ProtocolError; the connection that sent it is
 * closed, as mongod does, and nothing else is affected.
 */
import { calculateObjectSize, serializeWithBufferAndIndex, type Document } from 'bson';
import { decodeDocument, decodeDocumentWithSize, encodeDocument, rememberArrayDocumentBytes } from '../bson/codec.js';
import { knownReplySize } from '../cursors.js';
import { crc32c } from './crc32c.js';

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_COMPRESSED = 2012;
export const OP_MSG = 2013;

export const MAX_MESSAGE_BYTES = 48_000_000;
const HEADER_BYTES = 16;

const FLAG_CHECKSUM_PRESENT = 1 << 0;
const FLAG_MORE_TO_COME = 1 << 1;
const FLAG_EXHAUST_ALLOWED = 1 << 16;
/** Bits 0-15 are "required": a receiver must reject ones it does not know. */
const KNOWN_REQUIRED_FLAGS = FLAG_CHECKSUM_PRESENT | FLAG_MORE_TO_COME;

export class ProtocolError extends Error {}

export interface MessageHeader {
  length: number;
  requestId: number;
  responseTo: number;
  opCode: number;
}

export interface OpMsgRequest {
  kind: 'msg';
  header: MessageHeader;
  body: Document;
  moreToCome: boolean;
  exhaustAllowed: boolean;
}

export interface OpQueryRequest {
  kind: 'query';
  header: MessageHeader;
  flags: number;
  collection: string;
  numberToSkip: number;
  numberToReturn: number;
  query: Document;
}

export type WireRequest = OpMsgRequest | OpQueryRequest;

/** Splits a TCP byte stream into whole messages, copying each message at most once. */
export class MessageFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected: number | undefined;

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    while (this.buffered >= 4) {
      if (this.expected === undefined) {
        const length = this.peek(4).readInt32LE(0);
        if (length < HEADER_BYTES || length > MAX_MESSAGE_BYTES) throw new ProtocolError(`invalid message length ${length}`);
        this.expected = length;
      }
      if (this.buffered < this.expected) break;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
      out.push(all.subarray(0, this.expected));
      const rest = all.subarray(this.expected);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
      this.expected = undefined;
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const joined = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [joined];
    return joined;
  }
}

function readHeader(buf: Buffer): MessageHeader {
  return {
    length: buf.readInt32LE(0),
    requestId: buf.readInt32LE(4),
    responseTo: buf.readInt32LE(8),
    opCode: buf.readInt32LE(12),
  };
}

function readCString(buf: Buffer, offset: number, end: number): { value: string; next: number } {
  const zero = buf.indexOf(0, offset);
  if (zero < 0 || zero >= end) throw new ProtocolError('unterminated string in message');
  return { value: buf.toString('utf8', offset, zero), next: zero + 1 };
}

function readDocument(buf: Buffer, offset: number, end: number, rememberSize = false): { doc: Document; next: number } {
  if (offset + 5 > end) throw new ProtocolError('truncated BSON document');
  const size = buf.readInt32LE(offset);
  if (size < 5 || offset + size > end) throw new ProtocolError(`invalid BSON document size ${size}`);
  try {
    const bytes = buf.subarray(offset, offset + size);
    return { doc: rememberSize ? decodeDocumentWithSize(bytes) : decodeDocument(bytes), next: offset + size };
  } catch (err) {
    throw new ProtocolError(`invalid BSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function parseOpMsg(buf: Buffer, header: MessageHeader): OpMsgRequest {
  if (buf.length < HEADER_BYTES + 5) throw new ProtocolError('OP_MSG too short');
  const flags = buf.readUInt32LE(16);
  if ((flags & 0xffff & ~KNOWN_REQUIRED_FLAGS) !== 0) throw new ProtocolError(`unsupported OP_MSG flag bits ${flags}`);
  let end = buf.length;
  if (flags & FLAG_CHECKSUM_PRESENT) {
    end -= 4;
    if (end < 21) throw new ProtocolError('OP_MSG too short for its checksum');
    if (crc32c(buf, 0, end) !== buf.readUInt32LE(end)) throw new ProtocolError('OP_MSG checksum mismatch');
  }
  let body: Document | undefined;
  const sequences: Array<{ id: string; docs: Document[] }> = [];
  let offset = 20;
  while (offset < end) {
    const kind = buf[offset++];
    if (kind === 0) {
      if (body) throw new ProtocolError('OP_MSG has more than one body section');
      const r = readDocument(buf, offset, end);
      body = r.doc;
      // An insert's documents inside the body: stored as the bytes they arrived as, like a sequence's.
      if (typeof body.insert === 'string') rememberArrayDocumentBytes(body, buf.subarray(offset, r.next), 'documents');
      offset = r.next;
    } else if (kind === 1) {
      if (offset + 4 > end) throw new ProtocolError('truncated document sequence');
      const size = buf.readInt32LE(offset);
      const seqEnd = offset + size;
      if (size < 5 || seqEnd > end) throw new ProtocolError(`invalid document sequence size ${size}`);
      const id = readCString(buf, offset + 4, seqEnd);
      const docs: Document[] = [];
      let o = id.next;
      while (o < seqEnd) {
        const r = readDocument(buf, o, seqEnd, true);
        docs.push(r.doc);
        o = r.next;
      }
      sequences.push({ id: id.value, docs });
      offset = seqEnd;
    } else {
      throw new ProtocolError(`unknown OP_MSG section kind ${String(kind)}`);
    }
  }
  if (!body) throw new ProtocolError('OP_MSG without a body section');
  for (const seq of sequences) {
    if (seq.id in body) throw new ProtocolError(`duplicate field ${seq.id} in OP_MSG body and document sequence`);
    body[seq.id] = seq.docs;
  }
  return {
    kind: 'msg',
    header,
    body,
    moreToCome: (flags & FLAG_MORE_TO_COME) !== 0,
    exhaustAllowed: (flags & FLAG_EXHAUST_ALLOWED) !== 0,
  };
}

function parseOpQuery(buf: Buffer, header: MessageHeader): OpQueryRequest {
  if (buf.length < HEADER_BYTES + 4 + 1 + 8 + 5) throw new ProtocolError('OP_QUERY too short');
  const flags = buf.readInt32LE(16);
  const coll = readCString(buf, 20, buf.length);
  if (coll.next + 8 > buf.length) throw new ProtocolError('OP_QUERY truncated');
  const numberToSkip = buf.readInt32LE(coll.next);
  const numberToReturn = buf.readInt32LE(coll.next + 4);
  const q = readDocument(buf, coll.next + 8, buf.length);
  if (q.next < buf.length) readDocument(buf, q.next, buf.length); // returnFieldsSelector: validated, unused
  return { kind: 'query', header, flags, collection: coll.value, numberToSkip, numberToReturn, query: q.doc };
}

export function parseMessage(buf: Buffer): WireRequest {
  const header = readHeader(buf);
  switch (header.opCode) {
    case OP_MSG:
      return parseOpMsg(buf, header);
    case OP_QUERY:
      return parseOpQuery(buf, header);
    default:
      // OP_COMPRESSED is never negotiated (hello answers no compression).
      throw new ProtocolError(`unsupported opCode ${header.opCode}`);
  }
}

let nextRequestId = 1;

function header(length: number, responseTo: number, opCode: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(nextRequestId, 4);
  nextRequestId = (nextRequestId + 1) & 0x7fffffff;
  h.writeInt32LE(responseTo, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

const SERIALIZE_OPTIONS = { serializeFunctions: false, ignoreUndefined: false, checkKeys: false } as const;

/**
 * A reply with a cursor batch whose documents were measured when the batch
 * was taken: its size is the envelope's plus theirs (an array element is a
 * type byte, the index as a C string, the document), so the documents are
 * walked once, to serialize them. The serializer must end exactly at that
 * size, else the reply is encoded the ordinary way.
 */
function encodeReply(body: Document): Buffer {
  const cursor: unknown = body.cursor;
  if (cursor === null || typeof cursor !== 'object') return encodeDocument(body);
  const c = cursor as Document;
  const key = Array.isArray(c.firstBatch) ? 'firstBatch' : Array.isArray(c.nextBatch) ? 'nextBatch' : undefined;
  if (!key) return encodeDocument(body);
  const batch = c[key] as Document[];
  let documents = 0;
  for (let i = 0; i < batch.length; i++) {
    const size = knownReplySize(batch[i]!);
    if (size === undefined) return encodeDocument(body);
    documents += 2 + String(i).length + size;
  }
  const size = calculateObjectSize({ ...body, cursor: { ...c, [key]: [] } }) + documents;
  const buf = Buffer.allocUnsafe(size);
  try {
    if (serializeWithBufferAndIndex(body, buf, SERIALIZE_OPTIONS) + 1 === size) return buf;
  } catch {
    // A size that was off: fall through to the ordinary encoding.
  }
  return encodeDocument(body);
}

export function encodeOpMsg(responseTo: number, body: Document, moreToCome = false): Buffer {
  const bson = encodeReply(body);
  const length = HEADER_BYTES + 4 + 1 + bson.length;
  const flags = Buffer.allocUnsafe(5);
  flags.writeUInt32LE(moreToCome ? FLAG_MORE_TO_COME : 0, 0);
  flags[4] = 0;
  return Buffer.concat([header(length, responseTo, OP_MSG), flags, bson], length);
}

export function encodeOpReply(responseTo: number, doc: Document, responseFlags = 0): Buffer {
  const bson = encodeDocument(doc);
  const length = HEADER_BYTES + 20 + bson.length;
  const fields = Buffer.alloc(20);
  fields.writeInt32LE(responseFlags, 0);
  // cursorID (int64) stays 0, startingFrom 0
  fields.writeInt32LE(1, 16);
  return Buffer.concat([header(length, responseTo, OP_REPLY), fields, bson], length);
}

/** OP_REPLY responseFlags bit for a failed legacy query. */
export const REPLY_QUERY_FAILURE = 2;
