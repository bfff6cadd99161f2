/**
 * Backends the driver-level tests run against:
 *
 * - "embedded": this project's server (always).
 * - "mongod": a real MongoDB, when MONGODB_URI is set, or when
 *   mongodb-memory-server-core can start a one-member replica set within a
 *   few seconds (it cannot offline: its binary download fails and the
 *   backend is skipped).
 *
 * MONGODB_TEST_BACKENDS=embedded (or =mongod) restricts the list.
 * Every test gets its own database, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient, type Db, type Document, type MongoClientOptions, type ObjectId } from 'mongodb';
import type { Test } from 'tap';
import { startEmbeddedMongo, type EmbeddedMongo } from '../../../src/dev/mongo/index.js';

export type BackendName = 'embedded' | 'mongod';

export interface Backend {
  readonly name: BackendName;
  readonly uri: string;
  /** Only for the embedded backend. */
  readonly server?: EmbeddedMongo;
  close(): Promise<void>;
}

export interface BackendContext {
  backend: Backend;
  client: MongoClient;
  db: Db;
}

const REAL_START_TIMEOUT_MS = Number(process.env.MONGODB_TEST_START_TIMEOUT_MS ?? 8000);

export const CLIENT_OPTIONS: MongoClientOptions = {
  serverSelectionTimeoutMS: 5000,
  connectTimeoutMS: 5000,
  maxPoolSize: 10,
};

function wanted(name: BackendName): boolean {
  const only = process.env.MONGODB_TEST_BACKENDS;
  return (
    !only ||
    only
      .split(',')
      .map((s) => s.trim())
      .includes(name)
  );
}

export async function startEmbeddedBackend(): Promise<Backend> {
  const server = await startEmbeddedMongo({ host: '127.0.0.1', port: 0 });
  return { name: 'embedded', uri: server.uri, server, close: () => server.close() };
}

async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  // mongodb-memory-server prints its download failure at length; the skip reason is reported instead.
  const { error, warn } = console;
  console.error = () => undefined;
  console.warn = () => undefined;
  try {
    return await fn();
  } finally {
    console.error = error;
    console.warn = warn;
  }
}

/** A real mongod, or the reason there is none. */
export async function startRealBackend(): Promise<Backend | string> {
  if (process.env.MONGODB_URI) {
    const uri = process.env.MONGODB_URI;
    return { name: 'mongod', uri, close: async () => undefined };
  }
  // One download attempt only: offline it fails at once instead of retrying.
  process.env.MONGOMS_MAX_RETRIES ??= '0';
  try {
    const { MongoMemoryReplSet } = await import('mongodb-memory-server-core');
    const starting = quietly(() => MongoMemoryReplSet.create({ replSet: { count: 1, storageEngine: 'wiredTiger' } }));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not start within ${REAL_START_TIMEOUT_MS} ms`)), REAL_START_TIMEOUT_MS);
      timer.unref();
    });
    try {
      const rs = await Promise.race([starting, timeout]);
      return { name: 'mongod', uri: rs.getUri(), close: async () => void (await rs.stop()) };
    } catch (err) {
      starting.then(
        (rs) => rs.stop(),
        () => undefined,
      );
      return `no mongod available (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
    } finally {
      clearTimeout(timer);
    }
  } catch (err) {
    return `no mongod available (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
}

export async function startBackends(t: Test): Promise<Backend[]> {
  const out: Backend[] = [];
  if (wanted('embedded')) out.push(await startEmbeddedBackend());
  if (wanted('mongod')) {
    const real = await startRealBackend();
    if (typeof real === 'string') t.comment(`skipping the mongod backend: ${real}`);
    else out.push(real);
  }
  t.teardown(async () => {
    for (const b of out) await b.close();
  });
  return out;
}

export function uniqueDbName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/**
 * Runs `fn` as one subtest per backend, each with its own client and a
 * fresh database.
 */
export async function forEachBackend(
  t: Test,
  fn: (t: Test, ctx: BackendContext) => Promise<void>,
  options: MongoClientOptions = {},
): Promise<void> {
  const backends = await startBackends(t);
  for (const backend of backends) {
    await t.test(backend.name, async (t) => {
      const client = new MongoClient(backend.uri, { ...CLIENT_OPTIONS, ...options });
      await client.connect();
      const db = client.db(uniqueDbName('t'));
      t.teardown(async () => {
        await db.dropDatabase().catch(() => undefined);
        await client.close();
      });
      await fn(t, { backend, client, db });
    });
  }
}

/** The first stage of a plan tree with the given name, searching depth-first. */
export function findStage(plan: unknown, stage: string): Record<string, unknown> | undefined {
  if (!plan || typeof plan !== 'object') return undefined;
  const node = plan as Record<string, unknown>;
  if (node.stage === stage) return node;
  for (const key of ['inputStage', 'queryPlan']) {
    const found = findStage(node[key], stage);
    if (found) return found;
  }
  if (Array.isArray(node.inputStages)) {
    for (const s of node.inputStages) {
      const found = findStage(s, stage);
      if (found) return found;
    }
  }
  return undefined;
}

/** winningPlan of a find/aggregate explain, wherever mongod put it. */
export function winningPlan(explain: Record<string, unknown>): unknown {
  const qp = (explain.queryPlanner ??
    (explain.stages as Array<Record<string, Record<string, unknown>>> | undefined)?.[0]?.$cursor?.queryPlanner) as
    Record<string, unknown> | undefined;
  return qp?.winningPlan;
}

/** Schema of test collections: any fields (Document); _id a string, number or ObjectId. */
export type TestDoc = Document & { _id?: string | number | ObjectId };

/** The error an operation fails with (the test fails if it succeeds). */
export async function rejection(operation: Promise<unknown>): Promise<Document> {
  try {
    await operation;
  } catch (err) {
    return err as Document;
  }
  throw new Error('expected the operation to fail');
}
