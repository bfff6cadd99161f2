/**
 * Document-level writes with mongod's checks, in two flavours:
 *
 * - DirectWriter (no transaction): every write commits on its own, after
 *   unique-index checks against the committed state. If a transaction holds
 *   a lock on the document or on a unique key being written, it throws
 *   LockWait and the command retries the statement once that transaction
 *   has ended.
 * - TransactionWriter: writes go to the transaction's write set after
 *   conflict checks (lock held by another transaction, or the document
 *   changed after the snapshot: WriteConflict) and unique checks against the
 *   transaction's own view.
 */
import type { Document } from 'bson';
import { writeConflict } from '../errors.js';
import { idKeyOf, type Collection } from '../storage/collection.js';
import type { StorageEngine } from '../storage/engine.js';
import { CommittedSource, TransactionSource, type DocumentSource } from '../storage/source.js';
import { docLockKey, uniqueLockKey, type TransactionManager } from '../txn/manager.js';
import type { Transaction } from '../txn/transaction.js';
import type { Index } from '../storage/index.js';

export interface Writer {
  readonly txn: Transaction | undefined;
  source(ns: string, coll: Collection | undefined): DocumentSource;
  insert(coll: Collection, doc: Document): void;
  /** `changed`: the dotted paths at which newDoc can differ from oldDoc (an operator update's), undefined: anywhere. */
  replace(coll: Collection, oldDoc: Document, newDoc: Document, changed?: readonly string[]): void;
  remove(coll: Collection, doc: Document): void;
}

export class DirectWriter implements Writer {
  readonly txn = undefined;

  constructor(
    private readonly engine: StorageEngine,
    private readonly txns: TransactionManager,
  ) {}

  source(ns: string, coll: Collection | undefined): DocumentSource {
    return new CommittedSource(ns, coll);
  }

  private checkLocks(coll: Collection, idKey: string, doc: Document | undefined, indexes: readonly Index[] = coll.indexes): void {
    if (!this.txns.hasLocks) return;
    this.txns.checkFree(docLockKey(coll.ns, idKey));
    if (!doc) return;
    for (const index of indexes) {
      if (!index.unique || index.isIdIndex) continue;
      for (const k of index.keysFor(doc).keys) this.txns.checkFree(uniqueLockKey(coll.ns, index.name, k.key));
    }
  }

  private checkUnique(coll: Collection, idKey: string, doc: Document, indexes: readonly Index[] = coll.indexes): void {
    const violation = coll.uniqueViolations(doc, idKey, undefined, indexes)[0];
    if (violation) throw violation.index.duplicateKeyError(coll.ns, violation.values);
  }

  insert(coll: Collection, doc: Document): void {
    const idKey = idKeyOf(doc);
    this.checkLocks(coll, idKey, doc);
    if (coll.docs.has(idKey)) throw coll.indexes[0]!.duplicateKeyError(coll.ns, [doc._id]);
    coll.assertIndexable(doc);
    this.checkUnique(coll, idKey, doc);
    this.engine.apply([{ op: 'insert', ns: coll.ns, doc }]);
  }

  replace(coll: Collection, oldDoc: Document, newDoc: Document, changed?: readonly string[]): void {
    const idKey = idKeyOf(oldDoc);
    // Keys of the indexes the change cannot reach stay as they are: no lock, uniqueness or key work for them.
    const indexes = coll.indexesChangedBy(changed);
    this.checkLocks(coll, idKey, newDoc, indexes);
    coll.assertIndexable(newDoc, indexes);
    this.checkUnique(coll, idKey, newDoc, indexes);
    this.engine.apply([{ op: 'replace', ns: coll.ns, doc: newDoc, ...(changed ? { changed } : {}) }]);
  }

  remove(coll: Collection, doc: Document): void {
    const idKey = idKeyOf(doc);
    this.checkLocks(coll, idKey, undefined);
    this.engine.apply([{ op: 'delete', ns: coll.ns, id: doc._id }]);
  }
}

export class TransactionWriter implements Writer {
  constructor(
    private readonly engine: StorageEngine,
    private readonly txns: TransactionManager,
    readonly txn: Transaction,
  ) {}

  source(ns: string, coll: Collection | undefined): DocumentSource {
    return new TransactionSource(ns, coll, this.txn, this.engine.history);
  }

  private conflict(): never {
    this.txns.abort(this.txn);
    throw writeConflict();
  }

  /** Unique checks in the transaction's view; returns the unique keys to remember. */
  private uniqueKeys(coll: Collection, idKey: string, doc: Document): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    const writes = this.txn.writesFor(coll.ns);
    for (const index of coll.indexes) {
      if (!index.unique || index.isIdIndex) continue;
      for (const k of index.keysFor(doc).keys) {
        this.txns.acquire(this.txn, uniqueLockKey(coll.ns, index.name, k.key));
        const owner = writes?.ownerOfKey(index.name, k.key);
        if (owner !== undefined && owner !== idKey) throw index.duplicateKeyError(coll.ns, k.values);
        for (const other of index.tree.idsWithKey(k.key)) {
          if (other === idKey || writes?.docs.has(other)) continue;
          if (this.engine.history.changedAfter(coll.ns, other, this.txn.snapshot)) this.conflict();
          throw index.duplicateKeyError(coll.ns, k.values);
        }
        out.push([index.name, k.key]);
      }
    }
    return out;
  }

  insert(coll: Collection, doc: Document): void {
    const idKey = idKeyOf(doc);
    this.txns.acquire(this.txn, docLockKey(coll.ns, idKey));
    const own = this.txn.writesFor(coll.ns)?.docs.get(idKey);
    if (own) {
      // Written by this transaction already: a duplicate unless it deleted it.
      if (own.doc) throw coll.indexes[0]!.duplicateKeyError(coll.ns, [doc._id]);
    } else {
      if (this.source(coll.ns, coll).get(idKey)) throw coll.indexes[0]!.duplicateKeyError(coll.ns, [doc._id]);
      // Present now but not in the snapshot: someone else inserted it since.
      if (coll.docs.has(idKey) || this.engine.history.changedAfter(coll.ns, idKey, this.txn.snapshot)) this.conflict();
    }
    coll.assertIndexable(doc);
    const keys = this.uniqueKeys(coll, idKey, doc);
    this.txn.writesForUpdate(coll.ns).set(idKey, { id: doc._id, doc }, keys);
  }

  replace(coll: Collection, oldDoc: Document, newDoc: Document): void {
    const idKey = idKeyOf(oldDoc);
    this.txns.acquire(this.txn, docLockKey(coll.ns, idKey));
    if (this.engine.history.changedAfter(coll.ns, idKey, this.txn.snapshot)) this.conflict();
    coll.assertIndexable(newDoc);
    const keys = this.uniqueKeys(coll, idKey, newDoc);
    this.txn.writesForUpdate(coll.ns).set(idKey, { id: newDoc._id, doc: newDoc }, keys);
  }

  remove(coll: Collection, doc: Document): void {
    const idKey = idKeyOf(doc);
    this.txns.acquire(this.txn, docLockKey(coll.ns, idKey));
    if (this.engine.history.changedAfter(coll.ns, idKey, this.txn.snapshot)) this.conflict();
    this.txn.writesForUpdate(coll.ns).set(idKey, { id: doc._id, doc: null }, []);
  }
}
