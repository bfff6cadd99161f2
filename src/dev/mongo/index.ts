/**
 * Embedded MongoDB-wire-compatible server for development and tests, for
 * machines where no mongod binary is available. The official driver talks
 * to it over TCP exactly as to a one-member replica set, so sessions,
 * retryable writes and transactions work through a plain connection string.
 */
import { MongoInstance } from './instance.js';
import { WireServer } from './server.js';
import { Persistence } from './storage/persistence.js';

export interface EmbeddedMongoOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Directory for the journal and snapshots; undefined keeps everything in memory. */
  dataDir?: string;
  log?: (msg: string) => void;
}

export interface EmbeddedMongo {
  /** e.g. mongodb://127.0.0.1:PORT/ */
  readonly uri: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The address clients should use; a wildcard listen address is reached through loopback. */
function advertisedHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startEmbeddedMongo(options: EmbeddedMongoOptions = {}): Promise<EmbeddedMongo> {
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? (() => undefined);
  // The replica-set member name must equal the address clients connect to,
  // and the port is only known after listening; the instance is created with
  // a placeholder and given its identity once bound.
  const instance = new MongoInstance('unbound:0', log);
  if (options.dataDir !== undefined) {
    instance.persistence = await Persistence.open(options.dataDir, instance.engine, log);
  }
  const server = new WireServer(instance);
  let port: number;
  try {
    port = await server.listen(host, options.port ?? 0);
  } catch (err) {
    await instance.persistence?.close();
    throw err;
  }
  instance.identity.me = `${advertisedHost(host)}:${port}`;
  const uri = `mongodb://${instance.identity.me}/`;
  log(`embedded mongo listening on ${uri}${options.dataDir !== undefined ? ` (data in ${options.dataDir})` : ' (in memory)'}`);
  let closing: Promise<void> | undefined;
  return {
    uri,
    port,
    close(): Promise<void> {
      closing ??= (async () => {
        instance.shutdown.abort();
        await server.close();
        instance.txns.abortAll();
        await instance.persistence?.close();
        log(`embedded mongo on ${uri} stopped`);
      })();
      return closing;
    },
  };
}
