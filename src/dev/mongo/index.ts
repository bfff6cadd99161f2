/**
 * Embedded MongoDB-wire-compatible server for development and tests, for
 * machines where no mongod binary is available. The official driver talks
 * to it over TCP exactly as to a one-member replica set, so sessions,
 * retryable writes and transactions work through a plain connection string.
 */
import { MongoInstance } from './instance.js';
import { WireServer } from './server.js';
import { importLegacyJournal } from './storage/legacy-journal.js';
import { LmdbStorage } from './storage/lmdb-storage.js';

export interface EmbeddedMongoOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Directory of the LMDB data file; undefined: a temporary directory, removed on close. */
  dataDir?: string;
  /** Budget of the decoded-document cache in MiB (default 64). */
  cacheMb?: number;
  /**
   * Whether a NEW data directory stores its documents LZ4-compressed (default true). An existing directory keeps
   * the format it was made with; false makes one as versions before compression did (tests of such directories).
   */
  compressDocuments?: boolean;
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
  const storage = await LmdbStorage.open({
    dataDir: options.dataDir,
    cacheBytes: options.cacheMb === undefined ? undefined : options.cacheMb * 1024 * 1024,
    compressDocuments: options.compressDocuments,
    log,
  });
  let instance: MongoInstance;
  try {
    instance = new MongoInstance('unbound:0', log, storage);
    if (options.dataDir !== undefined) await importLegacyJournal(options.dataDir, instance.engine, log);
  } catch (err) {
    await storage.close();
    throw err;
  }
  const server = new WireServer(instance);
  let port: number;
  try {
    port = await server.listen(host, options.port ?? 0);
  } catch (err) {
    await storage.close();
    throw err;
  }
  instance.identity.me = `${advertisedHost(host)}:${port}`;
  const uri = `mongodb://${instance.identity.me}/`;
  log(`embedded mongo listening on ${uri}${options.dataDir !== undefined ? ` (data in ${options.dataDir})` : ' (temporary data)'}`);
  let closing: Promise<void> | undefined;
  return {
    uri,
    port,
    close(): Promise<void> {
      closing ??= (async () => {
        instance.shutdown.abort();
        await server.close();
        instance.txns.abortAll();
        await storage.close();
        log(`embedded mongo on ${uri} stopped`);
      })();
      return closing;
    },
  };
}
