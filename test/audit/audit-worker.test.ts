/**
 * The audit worker thread (the server's configuration): AuditEvents of reads are built and written off the
 * request thread, every one of them; a flush waits for the worker; if the worker dies, a new one gets every event
 * not yet confirmed as stored, so none is lost.
 */
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { buildApp } from '../../src/app.js';
import { connectMongo } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { TEST_CONFIG, stopMongoAtEnd, testValidator } from '../helpers/app.js';
import { testMongo, uniqueDbName } from '../helpers/mongo.js';

stopMongoAtEnd(t);

async function workerApp(t: Test): Promise<{ app: FastifyInstance; store: ResourceStore }> {
  const mongo = await testMongo();
  const dbName = uniqueDbName('auditworker');
  const connection = await connectMongo(mongo.uri, dbName);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const app = await buildApp(
    { ...TEST_CONFIG, audit: { enabled: true, flushIntervalMs: 50, bufferMax: 5000 } },
    { store, validator: await testValidator(), logger: false, auditWorker: { mongoUri: mongo.uri, dbName } },
  );
  await app.ready();
  t.teardown(async () => {
    await app.close();
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
  });
  return { app, store };
}

const events = (store: ResourceStore, requestIds: string[]) =>
  store.versions.countDocuments({ type: 'AuditEvent', 'resource.entity.what.identifier.value': { $in: requestIds } });

t.test('reads are audited through the worker thread, and a flush waits for it', async (t) => {
  const { app, store } = await workerApp(t);
  const created = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: { 'content-type': 'application/fhir+json' },
    payload: { resourceType: 'Patient' },
  });
  const id = created.json().id as string;
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const res = await app.inject({ url: `/Patient/${id}`, headers: { 'x-request-id': `worker-read-${i}` } });
    t.equal(res.statusCode, 200);
    ids.push(res.headers['x-request-id'] as string);
  }
  await app.auditRecorder!.flush();
  t.equal(app.auditRecorder!.pending, 0, 'nothing left to write');
  t.equal(await events(store, ids), 40, 'one AuditEvent per read, written by the worker');
  const stored = await store.versions.findOne({ type: 'AuditEvent', 'resource.entity.what.identifier.value': ids[0] });
  t.ok(stored?.idx && stored.anchor, 'with its index values and its pending ledger anchor');
});

t.test('a worker that dies is replaced, and the events it had not confirmed are written by the next one', async (t) => {
  const { app, store } = await workerApp(t);
  const created = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: { 'content-type': 'application/fhir+json' },
    payload: { resourceType: 'Patient' },
  });
  const id = created.json().id as string;
  const ids: string[] = [];
  const read = async (label: string) => {
    const res = await app.inject({ url: `/Patient/${id}`, headers: { 'x-request-id': label } });
    ids.push(res.headers['x-request-id'] as string);
  };
  for (let i = 0; i < 10; i++) await read(`before-${i}`);
  // Kill the worker thread while events may still be in flight (the channel is internal: reached on purpose here).
  const channel = (app.auditRecorder as unknown as { channel: { worker?: { terminate(): Promise<number> } } }).channel;
  await channel.worker?.terminate();
  for (let i = 0; i < 10; i++) await read(`after-${i}`);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && (await events(store, ids)) < ids.length) {
    await app.auditRecorder!.flush();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.ok((await events(store, ids)) >= ids.length, 'every read recorded before and after the death is stored (twice at worst)');
  const distinct = await store.versions.distinct('resource.entity.what.identifier.value', {
    type: 'AuditEvent',
    'resource.entity.what.identifier.value': { $in: ids },
  });
  t.same(distinct.filter((v) => typeof v === 'string').sort(), [...ids].sort(), 'none is missing');
});
