/**
 * A multi-document transaction: a snapshot timestamp, the transaction's own
 * versions of the documents it wrote (its write set), and the locks that
 * make a second writer of the same document or unique key conflict.
 */
import type { Document } from 'bson';
import type { StorageOp } from '../storage/ops.js';

export interface TxnDocWrite {
  id: unknown;
  /** The transaction's version; null when it deleted the document. */
  doc: Document | null;
}

/** Write set of one namespace, with the unique keys of its versions for duplicate checks. */
export class TxnNamespaceWrites {
  readonly docs = new Map<string, TxnDocWrite>();
  /** index name -> key -> document key, for the transaction's current versions. */
  private readonly uniqueKeys = new Map<string, Map<string, string>>();
  private readonly keysById = new Map<string, Array<[string, string]>>();

  set(idKey: string, write: TxnDocWrite, keys: Array<[string, string]>): void {
    for (const [index, key] of this.keysById.get(idKey) ?? []) {
      const byKey = this.uniqueKeys.get(index);
      if (byKey?.get(key) === idKey) byKey.delete(key);
    }
    this.docs.set(idKey, write);
    this.keysById.set(idKey, keys);
    for (const [index, key] of keys) {
      let byKey = this.uniqueKeys.get(index);
      if (!byKey) {
        byKey = new Map();
        this.uniqueKeys.set(index, byKey);
      }
      byKey.set(key, idKey);
    }
  }

  ownerOfKey(index: string, key: string): string | undefined {
    return this.uniqueKeys.get(index)?.get(key);
  }
}

export type TxnState = 'active' | 'committed' | 'aborted';

export class Transaction {
  readonly sessionKey: string;
  readonly txnNumber: number;
  readonly snapshot: number;
  state: TxnState = 'active';
  readonly writes = new Map<string, TxnNamespaceWrites>();
  readonly locks = new Set<string>();
  readonly done: Promise<void>;
  expiry: NodeJS.Timeout | undefined;
  private finish!: () => void;

  constructor(sessionKey: string, txnNumber: number, snapshot: number) {
    this.sessionKey = sessionKey;
    this.txnNumber = txnNumber;
    this.snapshot = snapshot;
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
  }

  writesFor(ns: string): TxnNamespaceWrites | undefined {
    return this.writes.get(ns);
  }

  writesForUpdate(ns: string): TxnNamespaceWrites {
    let w = this.writes.get(ns);
    if (!w) {
      w = new TxnNamespaceWrites();
      this.writes.set(ns, w);
    }
    return w;
  }

  /** The write set as storage operations, in the order documents were first written. */
  toStorageOps(): StorageOp[] {
    const ops: StorageOp[] = [];
    for (const [ns, w] of this.writes) {
      for (const { id, doc } of w.docs.values()) {
        ops.push(doc === null ? { op: 'delete', ns, id } : { op: 'replace', ns, doc });
      }
    }
    return ops;
  }

  end(state: Exclude<TxnState, 'active'>): void {
    this.state = state;
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = undefined;
    this.finish();
  }
}
