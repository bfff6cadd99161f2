/**
 * A LOCAL Hedera-compatible network for development and tests: one consensus node speaking
 * Hedera's gRPC API (so the real @hashgraph/sdk talks to it as to testnet) and a mirror
 * node REST API. It is NOT Hedera: nothing submitted here is anchored on any Hedera
 * network, and proofs against it only show what this local ledger recorded.
 *
 * Production code reaches testnet/mainnet through the same SDK calls; only the Client
 * configuration differs:
 *
 *   const client = Client.forNetwork({ [net.grpcEndpoint]: net.nodeAccountId }, { scheduleNetworkUpdate: false })
 *     .setOperator(net.operatorId, PrivateKey.fromStringDer(net.operatorKey));
 */
import { mkdirSync } from 'node:fs';
import { ConsensusClock } from './consensus-clock.js';
import { ConsensusNode } from './consensus-node.js';
import { lockDataDir } from './data-dir-lock.js';
import { startGrpcServer, type GrpcServer } from './grpc-server.js';
import { entityId, formatEntityId } from './ids.js';
import { memoryJournal, openJournal, type Journal } from './journal.js';
import { LedgerState, type Genesis, type TransactionResult } from './ledger-state.js';
import { startMirrorRest, type MirrorRest } from './mirror-rest.js';
import { loadOrCreateOperatorKey, type OperatorKeyType } from './operator-key.js';
import { encodeKey } from './signatures.js';
import { QueryAnswerer } from './queries.js';
import { FEE_COLLECTION_ACCOUNT } from './transaction-handlers.js';

export { computeRunningHashV3, initialRunningHash, RUNNING_HASH_VERSION } from './running-hash.js';
export type { RunningHashV3Input, EntityNumbers } from './running-hash.js';
export { NETWORK_LABEL } from './mirror-rest.js';

export interface LocalHederaOptions {
  /** Interface to bind both servers to; default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  grpcPort?: number;
  /** 0 (default) picks a free port. */
  mirrorPort?: number;
  /** Undefined: state in memory only. Otherwise state (and the operator key) persist here. */
  dataDir?: string;
  log?: (msg: string) => void;
  /**
   * Simulated time from acceptance to consensus, in ms (default 0: handled before the gRPC
   * response, so receipts are available immediately).
   */
  consensusDelayMs?: number;
  /** Key type of a newly generated operator key (default ed25519). */
  operatorKeyType?: OperatorKeyType;
}

export interface LocalHedera {
  /** "127.0.0.1:PORT", for Client.forNetwork({ [grpcEndpoint]: nodeAccountId }). */
  readonly grpcEndpoint: string;
  readonly nodeAccountId: string;
  /** "http://127.0.0.1:PORT"; REST paths are /api/v1/... */
  readonly mirrorUrl: string;
  readonly operatorId: string;
  /** DER hex; PrivateKey.fromStringDer / PrivateKey.fromString accept it. */
  readonly operatorKey: string;
  close(): Promise<void>;
}

const NODE_ACCOUNT = entityId(3);
const OPERATOR_ACCOUNT = entityId(2);
/** Hedera's total supply, all of it with the operator (as on Hedera's local-node setups). */
const OPERATOR_BALANCE = 50_000_000_000n * 100_000_000n;
/** First number for new entities, as on Hedera's local networks (system range below). */
const FIRST_ENTITY_NUM = 1001n;

function defaultLog(msg: string): void {
  process.stderr.write(`[local-hedera] ${msg}\n`);
}

export async function startLocalHedera(options: LocalHederaOptions = {}): Promise<LocalHedera> {
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? defaultLog;
  const dataDir = options.dataDir;
  let unlock = (): void => {};
  if (dataDir !== undefined) {
    mkdirSync(dataDir, { recursive: true });
    unlock = lockDataDir(dataDir);
  }
  try {
    return await start(options, host, log, dataDir, unlock);
  } catch (e) {
    unlock();
    throw e;
  }
}

async function start(
  options: LocalHederaOptions,
  host: string,
  log: (msg: string) => void,
  dataDir: string | undefined,
  unlock: () => void,
): Promise<LocalHedera> {
  const operatorId = formatEntityId(OPERATOR_ACCOUNT);
  const { key: operator } = loadOrCreateOperatorKey(dataDir, operatorId, options.operatorKeyType ?? 'ed25519');
  const makeGenesis = (): Genesis => ({
    firstEntityNum: FIRST_ENTITY_NUM,
    accounts: [
      { id: operatorId, balance: OPERATOR_BALANCE, key: encodeKey(operator.publicKeyProto) },
      // The node and fee accounts receive fees; nobody holds their keys here.
      { id: formatEntityId(NODE_ACCOUNT), balance: 0n, key: null },
      { id: formatEntityId(FEE_COLLECTION_ACCOUNT), balance: 0n, key: null },
    ],
  });

  let journal: Journal = memoryJournal;
  let genesis: Genesis;
  let history: TransactionResult[] = [];
  if (dataDir !== undefined) {
    const opened = openJournal(dataDir, makeGenesis);
    journal = opened.journal;
    genesis = opened.genesis;
    history = opened.results;
    if (opened.truncatedBytes > 0) log(`cut ${opened.truncatedBytes} bytes of an unfinished last journal line (never acknowledged)`);
  } else {
    genesis = makeGenesis();
  }

  let grpc: GrpcServer | undefined;
  let mirror: MirrorRest | undefined;
  try {
    const state = new LedgerState(genesis);
    for (const result of history) state.apply(result);
    const node = new ConsensusNode(state, journal, new ConsensusClock(state.lastConsensusNs), {
      nodeAccount: NODE_ACCOUNT,
      consensusDelayMs: options.consensusDelayMs ?? 0,
      log,
    });
    grpc = await startGrpcServer({ host, port: options.grpcPort ?? 0, node, queries: new QueryAnswerer(node), log });
    const grpcEndpoint = `${host}:${grpc.port}`;
    mirror = await startMirrorRest({
      host,
      port: options.mirrorPort ?? 0,
      state,
      info: {
        description:
          'Local Hedera-compatible ledger for development and tests. This is NOT the Hedera network: ' +
          'nothing recorded here is anchored on Hedera mainnet or testnet.',
        ledger_id: '0x03',
        node_account_id: formatEntityId(NODE_ACCOUNT),
        grpc_endpoint: grpcEndpoint,
        persistent: dataDir !== undefined,
      },
      log,
    });
    const mirrorUrl = `http://${host}:${mirror.port}`;
    log(
      `LOCAL ledger started, NOT Hedera: gRPC ${grpcEndpoint} (node ${formatEntityId(NODE_ACCOUNT)}), mirror REST ${mirrorUrl}, ` +
        `${history.length} journaled transactions, ${dataDir === undefined ? 'in memory' : `data in ${dataDir}`}`,
    );

    let closing: Promise<void> | undefined;
    const grpcServer = grpc;
    const mirrorServer = mirror;
    return {
      grpcEndpoint,
      nodeAccountId: formatEntityId(NODE_ACCOUNT),
      mirrorUrl,
      operatorId,
      operatorKey: operator.privateKey.toStringDer(),
      close() {
        closing ??= (async () => {
          await grpcServer.close();
          node.close();
          await mirrorServer.close();
          journal.close();
          unlock();
          log('LOCAL ledger stopped');
        })();
        return closing;
      },
    };
  } catch (e) {
    await grpc?.close();
    await mirror?.close();
    journal.close();
    throw e;
  }
}
