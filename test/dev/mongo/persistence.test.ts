/**
 * Durability of the embedded server (no mongod counterpart): restart,
 * torn journal tails and a SIGKILL of a server process.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MongoClient, type Document } from 'mongodb';
import type { Test } from 'tap';
import { startEmbeddedMongo } from '../../../src/dev/mongo/index.js';
import { CLIENT_OPTIONS, rejection, type TestDoc } from './backends.js';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'embedded-mongo-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function withClient<T>(uri: string, fn: (client: MongoClient) => Promise<T>): Promise<T> {
  const client = new MongoClient(uri, CLIENT_OPTIONS);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

t.test('data and indexes survive close and restart', async (t) => {
  const dir = await tempDir(t);
  const first = await startEmbeddedMongo({ dataDir: dir });
  await withClient(first.uri, async (client) => {
    const c = client.db('app').collection<TestDoc>('patients');
    await c.createIndex({ mrn: 1 }, { unique: true });
    await c.createIndex({ 'name.family': 1, birthDate: -1 }, { name: 'by_name' });
    await c.insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i, mrn: `m${i}`, name: { family: `f${i % 5}` }, birthDate: new Date(2000, 0, i + 1) })));
    await c.updateMany({ _id: { $lt: 10 } }, { $set: { flagged: true } });
    await c.deleteMany({ _id: { $gte: 45 } });
    const s = client.startSession();
    await s.withTransaction(async () => {
      await c.insertOne({ _id: 'txn', mrn: 'mt' }, { session: s });
      await c.updateOne({ _id: 0 }, { $set: { inTxn: true } }, { session: s });
    });
    s.startTransaction();
    await c.insertOne({ _id: 'aborted', mrn: 'ma' }, { session: s });
    await s.abortTransaction();
    await s.endSession();
    await client.db('app').collection<TestDoc>('dropped').insertOne({ x: 1 });
    await client.db('app').collection<TestDoc>('dropped').drop();
  });
  await first.close();

  const second = await startEmbeddedMongo({ dataDir: dir });
  t.teardown(() => second.close());
  await withClient(second.uri, async (client) => {
    const c = client.db('app').collection<TestDoc>('patients');
    t.equal(await c.countDocuments(), 46);
    t.equal(await c.countDocuments({ flagged: true }), 10);
    t.same(await c.findOne({ _id: 0 }, { projection: { inTxn: 1 } }), { _id: 0, inTxn: true });
    t.equal(await c.countDocuments({ _id: 'txn' }), 1);
    t.equal(await c.countDocuments({ _id: 'aborted' }), 0);
    t.same((await c.indexes()).map((i) => i.name), ['_id_', 'mrn_1', 'by_name']);
    const dup = await rejection(c.insertOne({ mrn: 'm3' }));
    t.equal(dup.code, 11000, 'unique index still enforced');
    const plan = (await c.find({ 'name.family': 'f1' }).explain()) as Document;
    t.equal(plan.queryPlanner.winningPlan.inputStage.indexName, 'by_name');
    t.same((await client.db('app').listCollections().toArray()).map((x) => x.name), ['patients']);
    const birth = (await c.findOne({ _id: 4 }))?.birthDate;
    t.ok(birth instanceof Date && birth.getTime() === new Date(2000, 0, 5).getTime(), 'types preserved');
  });
});

t.test('a data directory serves one server at a time', async (t) => {
  const dir = await tempDir(t);
  const first = await startEmbeddedMongo({ dataDir: dir });
  await t.rejects(startEmbeddedMongo({ dataDir: dir }), /already in use/);
  await first.close();
  const second = await startEmbeddedMongo({ dataDir: dir });
  await second.close();
});

t.test('a torn record at the end of the journal is ignored', async (t) => {
  const dir = await tempDir(t);
  const first = await startEmbeddedMongo({ dataDir: dir });
  await withClient(first.uri, (client) => client.db('app').collection<TestDoc>('c').insertMany([{ _id: 1 }, { _id: 2 }]));
  await first.close();
  const journal = (await readdir(dir)).find((f) => f.startsWith('journal-'));
  t.ok(journal, 'a journal file exists');
  // A header promising more bytes than were written, as a crash mid-append leaves it.
  await appendFile(join(dir, journal!), Buffer.from([0xff, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x01, 0x02]));
  const second = await startEmbeddedMongo({ dataDir: dir });
  t.teardown(() => second.close());
  await withClient(second.uri, async (client) => {
    t.equal(await client.db('app').collection<TestDoc>('c').countDocuments(), 2);
    await client.db('app').collection<TestDoc>('c').insertOne({ _id: 3 });
  });
  await second.close();
  const third = await startEmbeddedMongo({ dataDir: dir });
  t.teardown(() => third.close());
  await withClient(third.uri, async (client) => {
    t.equal(await client.db('app').collection<TestDoc>('c').countDocuments(), 3, 'writes after the torn record are kept');
  });
});

/** Starts fixtures/server-process.ts in a child node with the same TypeScript loader tap uses. */
function startChild(dataDir: string): { child: ChildProcess; uri: Promise<string> } {
  const script = fileURLToPath(new URL('./fixtures/server-process.ts', import.meta.url));
  const loader = import.meta.resolve('@tapjs/typescript/import');
  const env: NodeJS.ProcessEnv = { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', NODE_OPTIONS: '' };
  for (const key of Object.keys(env)) if (key.startsWith('_TAPJS_')) delete env[key];
  const child = spawn(process.execPath, [`--import=${loader}`, script, dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const uri = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not start in time: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { uri: string }).uri);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited with ${code}: ${stderr}`));
    });
  });
  return { child, uri };
}

t.test('every acknowledged write survives kill -9 of the server process', async (t) => {
  const dir = await tempDir(t);
  const { child, uri } = startChild(dir);
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const expected = new Map<number, Document>();
  await withClient(await uri, async (client) => {
    const c = client.db('app').collection<TestDoc>('events');
    await c.createIndex({ seq: 1 }, { unique: true });
    for (let batch = 0; batch < 10; batch++) {
      const docs = Array.from({ length: 100 }, (_, i) => ({ _id: batch * 100 + i, seq: batch * 100 + i, payload: 'x'.repeat(64) }));
      await c.insertMany(docs);
      for (const d of docs) expected.set(d._id, d);
    }
    await c.updateMany({ _id: { $lt: 50 } }, { $set: { updated: true } });
    for (let i = 0; i < 50; i++) expected.set(i, { ...expected.get(i), updated: true });
    await c.deleteMany({ _id: { $gte: 950 } });
    for (let i = 950; i < 1000; i++) expected.delete(i);
    const s = client.startSession();
    await s.withTransaction(async () => {
      await c.insertOne({ _id: 5000, seq: 5000 }, { session: s });
      await c.deleteOne({ _id: 900 }, { session: s });
    });
    await s.endSession();
    expected.set(5000, { _id: 5000, seq: 5000 });
    expected.delete(900);
    // Concurrent single writes, all acknowledged before the kill.
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.insertOne({ _id: 6000 + i, seq: 6000 + i })));
    for (let i = 0; i < 20; i++) expected.set(6000 + i, { _id: 6000 + i, seq: 6000 + i });
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  t.equal(child.signalCode, 'SIGKILL');

  const restarted = await startEmbeddedMongo({ dataDir: dir });
  t.teardown(() => restarted.close());
  await withClient(restarted.uri, async (client) => {
    const c = client.db('app').collection<TestDoc>('events');
    const docs = await c.find().sort({ _id: 1 }).toArray();
    t.equal(docs.length, expected.size);
    t.same(docs, [...expected.values()].sort((a, b) => a._id - b._id));
    const dup = await rejection(c.insertOne({ seq: 10 }));
    t.equal(dup.code, 11000, 'the unique index was recovered too');
  });
});
