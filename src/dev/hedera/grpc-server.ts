/**
 * The consensus node's gRPC API on @grpc/grpc-js, at the paths the Hedera SDK calls
 * ("/proto.ConsensusService/submitMessage", ...), in plaintext: the SDK only uses TLS for
 * port 50212. Messages stay raw bytes at this layer; the node decodes them itself because
 * it needs the exact bytes (for size limits and transaction hashes).
 *
 * Every transaction method of the two services is served, so an operation this network
 * does not implement gets Hedera's NOT_SUPPORTED precheck rather than a transport error;
 * unimplemented query methods are left to gRPC's UNIMPLEMENTED.
 */
import * as grpc from '@grpc/grpc-js';
import type { ConsensusNode } from './consensus-node.js';
import { proto, toLong } from './proto.js';
import { UnsupportedQueryError, type QueryAnswerer } from './queries.js';

const SERVICES = {
  ConsensusService: {
    transactions: ['createTopic', 'updateTopic', 'deleteTopic', 'submitMessage'],
    queries: ['getTopicInfo'],
  },
  CryptoService: {
    transactions: [
      'createAccount',
      'updateAccount',
      'cryptoTransfer',
      'cryptoDelete',
      'approveAllowances',
      'deleteAllowances',
      'addLiveHash',
      'deleteLiveHash',
    ],
    queries: ['cryptoGetBalance', 'getTransactionReceipts', 'getTxRecordByTxID'],
  },
} as const;

type RawCall = grpc.ServerUnaryCall<Buffer, Buffer>;
type RawCallback = grpc.sendUnaryData<Buffer>;

const identity = (b: Buffer): Buffer => b;

function method(service: string, name: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: `/proto.${service}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

export interface GrpcServer {
  port: number;
  close(): Promise<void>;
}

export async function startGrpcServer(opts: {
  host: string;
  port: number;
  node: ConsensusNode;
  queries: QueryAnswerer;
  log: (msg: string) => void;
}): Promise<GrpcServer> {
  const server = new grpc.Server();

  const onTransaction = (call: RawCall, callback: RawCallback): void => {
    try {
      const outcome = opts.node.submit(call.request);
      const response = proto.TransactionResponse.encode({
        nodeTransactionPrecheckCode: outcome.code,
        cost: toLong(outcome.cost),
      }).finish();
      callback(null, Buffer.from(response));
    } catch (e) {
      opts.log(`transaction failed: ${(e as Error).stack ?? String(e)}`);
      callback({ code: grpc.status.INTERNAL, details: (e as Error).message });
    }
  };

  const onQuery = (call: RawCall, callback: RawCallback): void => {
    try {
      callback(null, opts.queries.answer(call.request));
    } catch (e) {
      const unsupported = e instanceof UnsupportedQueryError;
      if (!unsupported) opts.log(`query failed: ${(e as Error).stack ?? String(e)}`);
      callback({ code: unsupported ? grpc.status.UNIMPLEMENTED : grpc.status.INVALID_ARGUMENT, details: (e as Error).message });
    }
  };

  for (const [service, methods] of Object.entries(SERVICES)) {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const name of methods.transactions) {
      definition[name] = method(service, name);
      implementation[name] = onTransaction;
    }
    for (const name of methods.queries) {
      definition[name] = method(service, name);
      implementation[name] = onQuery;
    }
    server.addService(definition, implementation);
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, boundPort) =>
      err ? reject(err) : resolve(boundPort),
    );
  });

  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        // Let in-flight calls finish, but do not wait on idle client connections forever.
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
