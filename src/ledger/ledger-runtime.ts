/**
 * Wires the ledger for one process: the MongoDB state, the Hedera client, the mirror client, the lease, the
 * anchoring worker and the read-side service. main.ts, the end-to-end tests and the benchmark all build it the
 * same way; where the network is (a public one, or the local network main.ts started) comes in as a LedgerEndpoint.
 */
import type { Db } from 'mongodb';
import type { HederaNetworkName, LedgerConfig } from '../config.js';
import { AnchorWorker, type LedgerLogger } from './anchor-worker.js';
import { SdkHederaLedger, type HederaLedger } from './hedera-client.js';
import { Lease, newHolderId } from './lease.js';
import { LedgerService } from './ledger-service.js';
import { LedgerStore } from './ledger-store.js';
import { MirrorClient } from './mirror-client.js';

export interface LedgerEndpoint {
  network: HederaNetworkName;
  operatorId: string;
  operatorKey: string;
  mirrorUrl: string;
  /** For the local network only. */
  grpcEndpoint?: string;
  nodeAccountId?: string;
}

/** The endpoint of a local Hedera-compatible network (src/dev/hedera), described by what it listens on. */
export function localLedgerEndpoint(
  network: Pick<Required<LedgerEndpoint>, 'operatorId' | 'operatorKey' | 'mirrorUrl' | 'grpcEndpoint' | 'nodeAccountId'>,
): LedgerEndpoint {
  const { operatorId, operatorKey, mirrorUrl, grpcEndpoint, nodeAccountId } = network;
  return { network: 'local', operatorId, operatorKey, mirrorUrl, grpcEndpoint, nodeAccountId };
}

export interface LedgerRuntimeOptions {
  db: Db;
  config: Pick<LedgerConfig, 'topicId' | 'batchMaxLeaves' | 'batchIntervalMs' | 'leaseTtlMs' | 'retryMaxMs'>;
  endpoint: LedgerEndpoint;
  baseUrl: string;
  software: string;
  log: LedgerLogger;
  /** Defaults to host:pid:random. */
  holderId?: string;
  grpcDeadlineMs?: number;
  requestTimeoutMs?: number;
  retryMinMs?: number;
  afterSubmit?: (batchNumber: number) => void;
  /** Tests substitute a misbehaving network here. */
  ledger?: HederaLedger;
}

export class LedgerRuntime {
  readonly store: LedgerStore;
  readonly ledger: HederaLedger;
  readonly mirror: MirrorClient;
  readonly lease: Lease;
  readonly worker: AnchorWorker;
  readonly service: LedgerService;

  constructor(options: LedgerRuntimeOptions) {
    const { endpoint, config } = options;
    this.store = new LedgerStore(options.db);
    this.ledger =
      options.ledger ??
      new SdkHederaLedger({
        network: endpoint.network,
        operatorId: endpoint.operatorId,
        operatorKey: endpoint.operatorKey,
        grpcEndpoint: endpoint.grpcEndpoint,
        nodeAccountId: endpoint.nodeAccountId,
        grpcDeadlineMs: options.grpcDeadlineMs,
        requestTimeoutMs: options.requestTimeoutMs,
      });
    this.mirror = new MirrorClient(endpoint.mirrorUrl);
    this.lease = new Lease(options.db, options.holderId ?? newHolderId(), config.leaseTtlMs);
    this.worker = new AnchorWorker({
      store: this.store,
      ledger: this.ledger,
      mirror: this.mirror,
      lease: this.lease,
      topicId: config.topicId,
      batchMaxLeaves: config.batchMaxLeaves,
      batchIntervalMs: config.batchIntervalMs,
      retryMinMs: options.retryMinMs,
      retryMaxMs: config.retryMaxMs,
      log: options.log,
      afterSubmit: options.afterSubmit,
    });
    this.service = new LedgerService({
      store: this.store,
      network: this.ledger.networkLabel,
      mirrorUrl: endpoint.mirrorUrl,
      baseUrl: options.baseUrl,
      software: options.software,
    });
  }

  /** Creates the ledger's indexes (idempotent); call once before start(). */
  async init(): Promise<void> {
    await this.store.ensureIndexes();
  }

  start(): void {
    this.worker.start();
  }

  /** Stops the worker (releasing the lease) and closes the Hedera client. */
  async stop(): Promise<void> {
    await this.worker.stop();
    this.ledger.close();
  }
}
