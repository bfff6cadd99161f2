/**
 * Logical sessions (lsid): the transaction number high-water mark, the
 * current transaction, and the reply of the last retryable write so a
 * driver retry of the same txnNumber is answered without executing twice.
 */
import type { Document } from 'bson';
import { binaryBytes, isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import type { Transaction } from './transaction.js';

export class ServerSession {
  readonly key: string;
  readonly lsid: Document;
  lastUse = Date.now();
  /** Highest txnNumber seen on this session (-1: none). */
  txnNumber = -1;
  txn: Transaction | undefined;
  retryable: { txnNumber: number; reply: Document } | undefined;

  constructor(key: string, lsid: Document) {
    this.key = key;
    this.lsid = lsid;
  }
}

export function sessionKey(lsid: unknown): string {
  if (!isPlainObject(lsid) || lsid.id === undefined) {
    throw new CommandError(ErrorCode.BadValue, 'lsid must be an object with an id field');
  }
  const id = lsid.id;
  const raw = typeof id === 'object' && id !== null ? Buffer.from(binaryBytes(id).bytes).toString('hex') : String(id);
  return raw + (lsid.uid ? `:${Buffer.from(binaryBytes(lsid.uid).bytes).toString('hex')}` : '');
}

export class SessionRegistry {
  private readonly sessions = new Map<string, ServerSession>();

  get(lsid: unknown): ServerSession {
    const key = sessionKey(lsid);
    let s = this.sessions.get(key);
    if (!s) {
      s = new ServerSession(key, lsid as Document);
      this.sessions.set(key, s);
    }
    s.lastUse = Date.now();
    return s;
  }

  find(lsid: unknown): ServerSession | undefined {
    return this.sessions.get(sessionKey(lsid));
  }

  remove(session: ServerSession): void {
    this.sessions.delete(session.key);
  }

  all(): ServerSession[] {
    return [...this.sessions.values()];
  }

  /** Sessions idle longer than the logical session timeout. */
  expired(idleMs: number): ServerSession[] {
    const cutoff = Date.now() - idleMs;
    return this.all().filter((s) => s.lastUse < cutoff && (!s.txn || s.txn.state !== 'active'));
  }
}
