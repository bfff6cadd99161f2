/**
 * Everything one running server owns: storage, transactions, sessions,
 * cursors and its replica-set identity. Commands receive it through their
 * context; the TCP layer knows nothing about it beyond dispatching.
 */
import { ObjectId, Timestamp, UUID, type Document } from 'bson';
import { CursorRegistry } from './cursors.js';
import { PlanCacheRegistry } from './query/plan-cache.js';
import type { QueryExecutorMetrics } from './query/planner.js';
import { CommandError, ErrorCode } from './errors.js';
import { validateCollectionName, validateDatabaseName } from './storage/catalog.js';
import type { Collection } from './storage/collection.js';
import { StorageEngine, type StorageBackend } from './storage/engine.js';
import type { DocumentSource } from './storage/source.js';
import { TransactionManager } from './txn/manager.js';
import { SessionRegistry } from './txn/sessions.js';
import type { Transaction } from './txn/transaction.js';
import { DirectWriter, TransactionWriter, type Writer } from './write/writer.js';

/** Reported as a MongoDB 7.0 server (wire version 21). */
export const SERVER_VERSION = '7.0.14';
export const MAX_WIRE_VERSION = 21;
export const REPLICA_SET_NAME = 'rs0';
export const LOGICAL_SESSION_TIMEOUT_MINUTES = 30;

export interface InstanceIdentity {
  /** host:port as clients address this server; the replica set's only member. */
  me: string;
  processId: ObjectId;
  startedAt: Date;
}

export class MongoInstance {
  readonly engine: StorageEngine;
  readonly txns: TransactionManager;
  readonly sessions = new SessionRegistry();
  readonly cursors = new CursorRegistry();
  /** Per-collection plan caches and their hit/miss counters. */
  readonly planCaches = new PlanCacheRegistry();
  /** serverStatus metrics.queryExecutor. */
  readonly queryExecutor: QueryExecutorMetrics = { scanned: 0, scannedObjects: 0 };
  readonly identity: InstanceIdentity;
  readonly log: (msg: string) => void;
  /** Aborted when the server shuts down (ends awaitable hello waits). */
  readonly shutdown = new AbortController();
  connectionsCreated = 0;
  connectionsOpen = 0;
  private clusterSeconds = 0;
  private clusterIncrement = 0;

  constructor(me: string, log: (msg: string) => void, backend?: StorageBackend) {
    this.engine = new StorageEngine(backend);
    this.txns = new TransactionManager(this.engine);
    this.identity = { me, processId: new ObjectId(), startedAt: new Date() };
    this.log = log;
  }

  /** Logical cluster time: advances on every command so operationTime is monotonic. */
  clusterTime(): Timestamp {
    const now = Math.floor(Date.now() / 1000);
    if (now > this.clusterSeconds) {
      this.clusterSeconds = now;
      this.clusterIncrement = 1;
    } else {
      this.clusterIncrement++;
    }
    return new Timestamp({ t: this.clusterSeconds, i: this.clusterIncrement });
  }

  source(ns: string, coll: Collection | undefined, txn: Transaction | undefined): DocumentSource {
    return this.writer(txn).source(ns, coll);
  }

  writer(txn: Transaction | undefined): Writer {
    return txn ? new TransactionWriter(this.engine, this.txns, txn) : new DirectWriter(this.engine, this.txns);
  }

  collection(db: string, name: string): Collection | undefined {
    return this.engine.catalog.getIn(db, name);
  }

  /**
   * The collection, created (and journaled) if missing. Implicit creation is
   * not part of any transaction: it takes effect immediately.
   */
  ensureCollection(db: string, name: string, options: Document = {}): { coll: Collection; created: boolean } {
    validateDatabaseName(db);
    validateCollectionName(db, name);
    const existing = this.collection(db, name);
    if (existing) return { coll: existing, created: false };
    this.engine.apply([{ op: 'createCollection', ns: `${db}.${name}`, options, uuid: new UUID() }]);
    const coll = this.collection(db, name);
    if (!coll) throw new CommandError(ErrorCode.InternalError, `failed to create ${db}.${name}`);
    return { coll, created: true };
  }
}
