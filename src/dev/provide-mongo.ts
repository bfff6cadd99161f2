/**
 * Which MongoDB the server (and the tests) use, decided once at start:
 * 1. MONGODB_URI, when configured: production, or a developer's own server.
 * 2. Otherwise a real mongod through mongodb-memory-server, when a binary can be had (cached, on the system,
 *    or downloadable) within a few seconds. It runs as a one-member replica set so transactions work.
 * 3. Otherwise (offline, no binary) the project's embedded MongoDB-wire-compatible server.
 * The log line says plainly which one is in use.
 */
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { startEmbeddedMongo } from './mongo/index.js';
import { startEmbeddedMongoProcess } from './mongo-process.js';

export type MongoKind = 'configured' | 'mongod' | 'embedded';

export interface ProvidedMongo {
  uri: string;
  kind: MongoKind;
  /** One human sentence for the start-up log. */
  description: string;
  stop(): Promise<void>;
}

export interface ProvideMongoOptions {
  uri?: string;
  /** Where a local server keeps its files; undefined keeps everything in memory (tests). */
  dataDir?: string;
  /** How long to wait for mongodb-memory-server's download of a mongod; 0 skips real mongod entirely. */
  mongodTimeoutMs: number;
  /** Whether a mongod may be downloaded (the server: yes; tests: no, they use what is already here). */
  allowDownload: boolean;
  /**
   * Run the embedded server (when it is the one used) in a child process rather than in this one: the server's
   * default, so that a costly query does not stall this process's event loop. Tests keep it in-process.
   */
  embeddedInChildProcess?: boolean;
  log: (message: string) => void;
}

/** A mongod binary already on this machine (mongodb-memory-server's cache, MONGOMS_SYSTEM_BINARY, or PATH). */
async function locateMongod(): Promise<string | undefined> {
  const { DryMongoBinary } = await import('mongodb-memory-server-core');
  const options = await DryMongoBinary.generateOptions().catch(() => undefined);
  const cached = options ? await DryMongoBinary.locateBinary(options).catch(() => undefined) : undefined;
  if (cached) return cached;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'mongod');
    if (
      dir &&
      (await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      ))
    )
      return candidate;
  }
  return undefined;
}

/** Downloads a mongod through mongodb-memory-server, giving up after timeoutMs (offline it fails at once). */
async function downloadMongod(timeoutMs: number): Promise<string | undefined> {
  const { MongoBinary } = await import('mongodb-memory-server-core');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  const path = await Promise.race([MongoBinary.getPath({}).catch(() => undefined), timeout]);
  clearTimeout(timer);
  return path;
}

async function startMongod(dataDir: string | undefined, timeoutMs: number, allowDownload: boolean): Promise<ProvidedMongo | undefined> {
  if (timeoutMs <= 0) return undefined;
  const binary = (await locateMongod()) ?? (allowDownload ? await downloadMongod(timeoutMs) : undefined);
  if (!binary) return undefined;
  const { MongoMemoryReplSet } = await import('mongodb-memory-server-core');
  let dbPath: string | undefined;
  if (dataDir) {
    dbPath = join(dataDir, 'mongod');
    await mkdir(dbPath, { recursive: true });
  }
  try {
    const replSet = await MongoMemoryReplSet.create({
      binary: { systemBinary: binary },
      replSet: { count: 1, storageEngine: 'wiredTiger' },
      instanceOpts: dbPath ? [{ dbPath, storageEngine: 'wiredTiger' }] : [],
    });
    return {
      uri: replSet.getUri(),
      kind: 'mongod',
      description: `a real mongod (${binary}, one-member replica set${dbPath ? `, data in ${dbPath}` : ', in memory'})`,
      stop: async () => {
        await replSet.stop({ doCleanup: !dbPath });
      },
    };
  } catch {
    return undefined;
  }
}

export async function provideMongo(options: ProvideMongoOptions): Promise<ProvidedMongo> {
  if (options.uri) {
    return { uri: options.uri, kind: 'configured', description: 'the MongoDB configured in MONGODB_URI', stop: async () => {} };
  }
  const mongod = await startMongod(options.dataDir, options.mongodTimeoutMs, options.allowDownload);
  if (mongod) return mongod;

  const dataDir = options.dataDir ? join(options.dataDir, 'embedded-mongo') : undefined;
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const where = dataDir ? `; data in ${dataDir}` : '; data in a temporary directory';
  const advice = 'For production, set MONGODB_URI to a real MongoDB replica set';
  if (options.embeddedInChildProcess) {
    const child = await startEmbeddedMongoProcess({ dataDir, log: options.log });
    return {
      uri: child.uri,
      kind: 'embedded',
      description: `the project's EMBEDDED MongoDB-compatible server, in a process of its own (pid ${child.pid}; no mongod binary could be had${where}). ${advice}`,
      // The child's last sync is quick; the server waits 5 s at most, and a child still stopping finishes alone.
      stop: () => child.stop(5_000),
    };
  }
  const embedded = await startEmbeddedMongo({ dataDir, log: options.log });
  return {
    uri: embedded.uri,
    kind: 'embedded',
    description: `the project's EMBEDDED MongoDB-compatible server (no mongod binary could be had${where}). ${advice}`,
    stop: () => embedded.close(),
  };
}
