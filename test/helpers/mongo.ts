/**
 * The MongoDB the tests run against, one per test process: MONGODB_URI if set, else a real mongod already on
 * this machine (mongodb-memory-server's cache, MONGOMS_SYSTEM_BINARY or PATH; tests never download), else the
 * embedded MongoDB-compatible server in memory. Each test gets a database of its own.
 */
import { randomBytes } from 'node:crypto';
import { provideMongo, type ProvidedMongo } from '../../src/dev/provide-mongo.js';

let provided: Promise<ProvidedMongo> | undefined;

export function testMongo(): Promise<ProvidedMongo> {
  provided ??= provideMongo({
    uri: process.env.MONGODB_URI,
    mongodTimeoutMs: 30_000,
    allowDownload: false,
    log: () => {},
  });
  return provided;
}

/** A database name no other test uses. */
export function uniqueDbName(prefix = 'test'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Stops the per-process MongoDB (call from a top-level teardown). */
export async function stopTestMongo(): Promise<void> {
  if (!provided) return;
  const mongo = await provided;
  provided = undefined;
  await mongo.stop();
}
