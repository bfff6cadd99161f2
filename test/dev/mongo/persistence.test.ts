/**
 * Durability of the embedded server (no mongod counterpart): restart, a
 * SIGKILL of a server process, and a SIGKILL in the middle of a commit.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BSON, MongoClient, type Document } from 'mongodb';
import type { Test } from 'tap';
import { UUID } from 'bson';
import { encodeDocument } from '../../../src/dev/mongo/bson/codec.js';
import { startEmbeddedMongo } from '../../../src/dev/mongo/index.js';
import { crc32c } from '../../../src/dev/mongo/wire/crc32c.js';
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
    await c.insertMany(
      Array.from({ length: 50 }, (_, i) => ({ _id: i, mrn: `m${i}`, name: { family: `f${i % 5}` }, birthDate: new Date(2000, 0, i + 1) })),
    );
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
    t.same(
      (await c.indexes()).map((i) => i.name),
      ['_id_', 'mrn_1', 'by_name'],
    );
    const dup = await rejection(c.insertOne({ mrn: 'm3' }));
    t.equal(dup.code, 11000, 'unique index still enforced');
    const plan = (await c.find({ 'name.family': 'f1' }).explain()) as Document;
    t.equal(plan.queryPlanner.winningPlan.inputStage.indexName, 'by_name');
    t.same(
      (await client.db('app').listCollections().toArray()).map((x) => x.name),
      ['patients'],
    );
    const birth = (await c.findOne({ _id: 4 }))?.birthDate;
    t.ok(birth instanceof Date && birth.getTime() === new Date(2000, 0, 5).getTime(), 'types preserved');
  });
});

t.test('documents are stored compressed; a directory made before compression keeps working', async (t) => {
  // Resource-like documents: repeated system URLs and names, 6-7 KB each (an AuditEvent's size).
  const docs = Array.from({ length: 400 }, (_, i) => ({
    _id: `AuditEvent/ae-${i}`,
    entity: Array.from({ length: 20 }, (_, k) => ({
      what: { reference: `Patient/pat-${i * 20 + k}` },
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1' },
      role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' },
    })),
    n: i,
  }));
  const fill = async (dir: string, options: { compressDocuments?: boolean } = {}): Promise<void> => {
    const server = await startEmbeddedMongo({ dataDir: dir, ...options });
    await withClient(server.uri, async (client) => void (await client.db('app').collection<TestDoc>('events').insertMany(docs)));
    await server.close();
  };
  const allocated = (dir: string): number => statSync(join(dir, 'data.mdb')).blocks * 512;
  const compressed = await tempDir(t);
  const plain = await tempDir(t);
  await fill(compressed);
  await fill(plain, { compressDocuments: false });
  const raw = docs.reduce((sum, d) => sum + BSON.calculateObjectSize(d), 0);
  t.ok(allocated(plain) > raw, `uncompressed: the file holds at least the documents' ${raw} bytes (${allocated(plain)})`);
  t.ok(allocated(compressed) < allocated(plain) / 2, `compressed: under half of that (${allocated(compressed)} bytes)`);

  // The directory made without compression, opened by today's default: read, written and read again after a restart.
  for (let round = 0; round < 2; round++) {
    const server = await startEmbeddedMongo({ dataDir: plain });
    await withClient(server.uri, async (client) => {
      const events = client.db('app').collection<TestDoc>('events');
      t.same(
        await events.find({}, { sort: { n: 1 } }).toArray(),
        docs.concat(round > 0 ? [{ ...docs[0]!, _id: 'added', n: 1000 }] : []).sort((a, b) => a.n - b.n),
      );
      if (round === 0) await events.insertOne({ ...docs[0]!, _id: 'added', n: 1000 });
    });
    await server.close();
  }
  t.ok(allocated(plain) > raw, 'and it stays uncompressed');
});

t.test('a data directory serves one server at a time', async (t) => {
  const dir = await tempDir(t);
  const first = await startEmbeddedMongo({ dataDir: dir });
  await t.rejects(startEmbeddedMongo({ dataDir: dir }), /already in use/);
  await first.close();
  const second = await startEmbeddedMongo({ dataDir: dir });
  await second.close();
});

/** One record of the journal format used before LMDB: u32 length, u32 CRC-32C, BSON. */
function legacyRecord(doc: Document): Buffer {
  const payload = encodeDocument(doc);
  const header = Buffer.alloc(8);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(crc32c(payload), 4);
  return Buffer.concat([header, payload]);
}

t.test('a data directory in the journal format of earlier versions is imported once, torn tail ignored', async (t) => {
  const dir = await tempDir(t);
  const ns = 'app.patients';
  const journal = Buffer.concat([
    legacyRecord({
      ops: [
        { op: 'createCollection', ns, options: {}, uuid: new UUID() },
        { op: 'createIndex', ns, spec: { v: 2, key: { mrn: 1 }, name: 'mrn_1', unique: true } },
      ],
    }),
    legacyRecord({ ops: [1, 2, 3].map((i) => ({ op: 'insert', ns, doc: { _id: i, mrn: `m${i}` } })) }),
    legacyRecord({
      ops: [
        { op: 'replace', ns, doc: { _id: 2, mrn: 'm2', updated: true } },
        { op: 'delete', ns, id: 3 },
      ],
    }),
    // A crash mid-append: a header promising more than was written.
    Buffer.from([0xff, 0, 0, 0, 1, 2, 3, 4, 5]),
  ]);
  await writeFile(join(dir, 'journal-00000001.log'), journal);
  const first = await startEmbeddedMongo({ dataDir: dir });
  await withClient(first.uri, async (client) => {
    const c = client.db('app').collection<TestDoc>('patients');
    t.same(await c.find().sort({ _id: 1 }).toArray(), [
      { _id: 1, mrn: 'm1' },
      { _id: 2, mrn: 'm2', updated: true },
    ]);
    t.equal((await rejection(c.insertOne({ _id: 9, mrn: 'm1' }))).code, 11000, 'its unique index came along');
    await c.insertOne({ _id: 4, mrn: 'm4' });
  });
  await first.close();
  t.ok((await readdir(dir)).includes('journal-00000001.log.imported'), 'the old file is kept, renamed');
  const second = await startEmbeddedMongo({ dataDir: dir });
  t.teardown(() => second.close());
  await withClient(second.uri, async (client) => {
    t.same(
      (await client.db('app').collection<TestDoc>('patients').find().sort({ _id: 1 }).toArray()).map((d) => d._id),
      [1, 2, 4],
      'not imported a second time; later writes kept',
    );
  });
});

/** Starts fixtures/server-process.ts in a child node with the same TypeScript loader tap uses. */
function startChild(dataDir: string, crashAfterIndexEntries?: number): { child: ChildProcess; uri: Promise<string> } {
  const script = fileURLToPath(new URL('./fixtures/server-process.ts', import.meta.url));
  const loader = import.meta.resolve('@tapjs/typescript/import');
  const env: NodeJS.ProcessEnv = { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', NODE_OPTIONS: '' };
  for (const key of Object.keys(env)) if (key.startsWith('_TAPJS_')) delete env[key];
  const args = [`--import=${loader}`, script, dataDir, ...(crashAfterIndexEntries === undefined ? [] : [String(crashAfterIndexEntries)])];
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
    t.same(
      docs,
      [...expected.values()].sort((a, b) => a._id - b._id),
    );
    const dup = await rejection(c.insertOne({ seq: 10 }));
    t.equal(dup.code, 11000, 'the unique index was recovered too');
  });
});

t.test('killed in the middle of a commit: the commit is absent as a whole, everything before it present, indexes consistent', async (t) => {
  const dir = await tempDir(t);
  // The crashing commit is a transaction of 40 documents with 3 indexes each (120 entries, plus _id's): die after 50.
  const { child, uri } = startChild(dir, 50);
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const accounts = 200;
  await withClient(await uri, async (client) => {
    const c = client.db('bank').collection<TestDoc>('accounts');
    await c.createIndex({ owner: 1 }, { unique: true });
    await c.createIndex({ balance: 1 });
    await c.createIndex({ tags: 1 });
    await c.insertMany(Array.from({ length: accounts }, (_, i) => ({ _id: i, owner: `o${i}`, balance: 100, tags: [`t${i % 7}`, 'all'] })));
    // Transfers keep the total at accounts * 100.
    const s = client.startSession();
    for (let i = 0; i < 20; i++) {
      await s.withTransaction(async () => {
        await c.updateOne({ _id: i }, { $inc: { balance: -10 } }, { session: s });
        await c.updateOne({ _id: i + 1 }, { $inc: { balance: 10 } }, { session: s });
      });
    }
    // The commit that dies half-way: moves 40 x 5 and adds documents, all in one transaction.
    const dying = s.withTransaction(async () => {
      for (let i = 0; i < 40; i++) {
        await c.updateOne({ _id: 100 + i }, { $inc: { balance: -5 }, $set: { tags: [`moved${i}`] } }, { session: s });
        await c.insertOne({ _id: 1000 + i, owner: `new${i}`, balance: 5, tags: ['new'], crashHere: i === 39 }, { session: s });
      }
    });
    await t.rejects(dying, 'the client sees the connection die, not an acknowledgement');
    await s.endSession().catch(() => undefined);
  });
  await new Promise((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(undefined)));
  t.equal(child.signalCode, 'SIGKILL', 'the server died inside the commit');

  const restarted = await startEmbeddedMongo({ dataDir: dir });
  t.teardown(() => restarted.close());
  await withClient(restarted.uri, async (client) => {
    const c = client.db('bank').collection<TestDoc>('accounts');
    const docs = await c.find().sort({ _id: 1 }).toArray();
    t.equal(docs.length, accounts, "none of the dying commit's inserts");
    t.equal(
      docs.reduce((sum, d) => sum + Number(d.balance), 0),
      accounts * 100,
      'the total is intact: every transfer whole or absent',
    );
    t.equal(docs[0]!.balance, 90, 'the acknowledged transfers are there');
    t.equal(
      docs.filter((d) => Array.isArray(d.tags) && String(d.tags[0]).startsWith('moved')).length,
      0,
      "none of the dying commit's updates",
    );
    // Every index answers exactly what a collection scan answers.
    t.equal(await c.countDocuments({ balance: 100 }, { hint: { balance: 1 } }), docs.filter((d) => d.balance === 100).length);
    t.equal(await c.countDocuments({ tags: 'all' }, { hint: { tags: 1 } }), accounts);
    t.equal(await c.countDocuments({ tags: 'new' }, { hint: { tags: 1 } }), 0, 'no index entry left by the dying commit');
    t.equal(await c.countDocuments({ owner: { $gte: '' } }, { hint: { owner: 1 } }), accounts);
    await c.insertOne({ _id: 1000, owner: 'new0', balance: 0, tags: [] });
    t.equal((await rejection(c.insertOne({ _id: 2000, owner: 'o5' }))).code, 11000, 'unique index intact');
    t.equal(await c.countDocuments(), accounts + 1, 'writable after the crash');
  });
});
