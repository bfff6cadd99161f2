/**
 * Server-side cursors. A cursor holds the rest of its result set (documents
 * are never mutated in place, so holding references is a stable snapshot)
 * and a transform applied per batch (projection), so a client that stops
 * reading early never pays for projecting everything.
 */
import { Long, calculateObjectSize, type Document } from 'bson';
import { CommandError, ErrorCode } from './errors.js';

/** mongod caps a reply batch at 16 MiB of documents. */
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;
export const DEFAULT_FIRST_BATCH = 101;
/** mongod's cursorTimeoutMillis default. */
export const CURSOR_TIMEOUT_MS = 10 * 60 * 1000;

export type BatchTransform = (docs: Document[]) => Document[];

interface ServerCursor {
  id: bigint;
  ns: string;
  docs: Document[];
  pos: number;
  transform: BatchTransform;
  sessionKey: string | undefined;
  lastUsed: number;
}

export interface Batch {
  cursor: { id: Long; ns: string; firstBatch?: Document[]; nextBatch?: Document[] };
}

const identity: BatchTransform = (docs) => docs;

/**
 * BSON sizes of documents measured for a reply. Documents are never changed
 * in place, so a size stays true: a document returned again is not measured
 * again, and the reply encoder (wire/messages.ts) sizes its buffer from these
 * instead of measuring every document a second time.
 */
const replySizes = new WeakMap<Document, number>();

function measuredSize(doc: Document): number {
  let size = replySizes.get(doc);
  if (size === undefined) {
    size = calculateObjectSize(doc);
    replySizes.set(doc, size);
  }
  return size;
}

/** The size a reply batch document was measured at, if it was. */
export function knownReplySize(doc: Document): number | undefined {
  return replySizes.get(doc);
}

export class CursorRegistry {
  private readonly cursors = new Map<bigint, ServerCursor>();
  private next = BigInt(Date.now()) * 1000n;

  private takeBatch(c: ServerCursor, batchSize: number): Document[] {
    const limit = batchSize > 0 ? batchSize : Infinity;
    const raw: Document[] = [];
    while (c.pos < c.docs.length && raw.length < limit) raw.push(c.docs[c.pos++]!);
    const out = c.transform(raw);
    // Keep the reply under the 16 MiB cap; put back what does not fit.
    let bytes = 0;
    for (let i = 0; i < out.length; i++) {
      bytes += measuredSize(out[i]!);
      if (bytes > MAX_BATCH_BYTES && i > 0) {
        c.pos -= out.length - i;
        return out.slice(0, i);
      }
    }
    return out;
  }

  /** Builds a find/aggregate reply, registering a cursor when documents remain. */
  open(
    ns: string,
    docs: Document[],
    options: { batchSize?: number; singleBatch?: boolean; transform?: BatchTransform; sessionKey?: string },
  ): Batch {
    const c: ServerCursor = {
      id: 0n,
      ns,
      docs,
      pos: 0,
      transform: options.transform ?? identity,
      sessionKey: options.sessionKey,
      lastUsed: Date.now(),
    };
    const batchSize = options.batchSize ?? DEFAULT_FIRST_BATCH;
    // batchSize 0 opens the cursor without returning anything yet; singleBatch returns everything at once.
    const firstBatch = options.singleBatch ? this.takeBatch(c, 0) : batchSize === 0 ? [] : this.takeBatch(c, batchSize);
    if (c.pos < c.docs.length && !options.singleBatch) {
      c.id = ++this.next;
      this.cursors.set(c.id, c);
    }
    return { cursor: { firstBatch, id: Long.fromBigInt(c.id), ns } };
  }

  getMore(id: bigint, ns: string, batchSize: number, sessionKey: string | undefined): Batch {
    const c = this.cursors.get(id);
    if (!c) throw new CommandError(ErrorCode.CursorNotFound, `cursor id ${id} not found`);
    if (c.ns !== ns) {
      throw new CommandError(
        ErrorCode.Unauthorized,
        `Requested getMore on namespace '${ns}', but cursor belongs to a different namespace ${c.ns}`,
      );
    }
    if (c.sessionKey !== undefined && sessionKey !== undefined && c.sessionKey !== sessionKey) {
      throw new CommandError(ErrorCode.Unauthorized, `Cursor session id does not match this command's session id`);
    }
    c.lastUsed = Date.now();
    const nextBatch = this.takeBatch(c, batchSize);
    if (c.pos >= c.docs.length) this.cursors.delete(id);
    return { cursor: { nextBatch, id: Long.fromBigInt(this.cursors.has(id) ? id : 0n), ns } };
  }

  kill(id: bigint): boolean {
    return this.cursors.delete(id);
  }

  killForSession(sessionKey: string): void {
    for (const [id, c] of this.cursors) if (c.sessionKey === sessionKey) this.cursors.delete(id);
  }

  killForNamespace(ns: string): void {
    for (const [id, c] of this.cursors) if (c.ns === ns) this.cursors.delete(id);
  }

  reapIdle(now = Date.now()): void {
    for (const [id, c] of this.cursors) if (now - c.lastUsed > CURSOR_TIMEOUT_MS) this.cursors.delete(id);
  }

  get size(): number {
    return this.cursors.size;
  }
}
