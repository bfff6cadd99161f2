/**
 * npm run bench:ledger: what anchoring costs the write path, and what it produces.
 *
 *   1. create Patient throughput with the anchoring worker stopped, then running, in the same process and run
 *      (the write path is identical: it only inserts the pending anchor; the difference is the worker competing
 *      for the same CPU and MongoDB);
 *   2. time from write to anchored (version lastUpdated -> its batch's anchoredAt), p50 and p99, under that load;
 *   3. HCS messages per 10 000 versions: under that load, and when a backlog of 10 000 drains.
 *
 * The ledger is the project's LOCAL network in this process (no Hedera fees, no network latency): the latency
 * numbers are this machine's lower bound, not testnet's (add testnet's ~3-5 s to consensus). Appends a section
 * to docs/benchmarks.md. Every loop is bounded by a count.
 *   npm run bench:ledger -- --count 2000 --concurrency 8 --backlog 10000
 */
import { appendFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Db } from 'mongodb';
import { buildApp } from '../src/app.js';
import { startLocalHedera } from '../src/dev/hedera/index.js';
import { provideMongo } from '../src/dev/provide-mongo.js';
import { createResourceValidator } from '../src/fhir/validation/index.js';
import type { LedgerLogger } from '../src/ledger/anchor-worker.js';
import { LedgerRuntime, localLedgerEndpoint } from '../src/ledger/ledger-runtime.js';
import { PROJECT_ROOT } from '../src/software.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { machineDescription, markdownTable, measure, type Measurement } from './measure.js';
import { withoutAccessControl } from '../src/config.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    backlog: { type: 'string', default: '10000' },
    interval: { type: 'string', default: '1000' },
    out: { type: 'string', default: 'docs/benchmarks.md' },
  },
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);
const backlog = Number(values.backlog);
const intervalMs = Number(values.interval);

const quiet: LedgerLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: (_f, m) => console.error(m) };

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Polls until nothing is pending (bounded by a deadline). */
async function drained(db: Db, deadlineMs: number): Promise<void> {
  const versions = db.collection('resource_versions');
  const batches = db.collection('ledger_batches');
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    const open = (await versions.countDocuments({ 'anchor.state': { $ne: 'anchored' } })) + (await batches.countDocuments({ state: { $ne: 'anchored' } }));
    if (open === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the ledger did not drain in time');
}

async function main(): Promise<void> {
  const mongo = await provideMongo({ uri: process.env.MONGODB_URI, mongodTimeoutMs: 5000, allowDownload: false, log: () => {} });
  const connection = await connectMongo(mongo.uri, `bench_ledger_${Date.now()}`);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const net = await startLocalHedera({ log: () => {} });
  const runtime = new LedgerRuntime({
    db: connection.db,
    config: { topicId: undefined, batchMaxLeaves: 10_000, batchIntervalMs: intervalMs, leaseTtlMs: 15_000, retryMaxMs: 5_000 },
    endpoint: localLedgerEndpoint(net),
    baseUrl: 'http://127.0.0.1',
    software: 'fhir-ledger-server',
    log: quiet,
  });
  await runtime.init();
  const validator = await createResourceValidator({ profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)), log: () => {} });
  const app = await buildApp(
    { basePath: '', baseUrl: 'http://127.0.0.1', bodyLimit: 16 * 1024 * 1024, logLevel: 'silent', referencePolicy: 'strict', ...withoutAccessControl('http://127.0.0.1') },
    { store, validator, logger: false, ledger: runtime.service },
  );
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const patient = (i: number) => ({
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: `MRN-${i}` }],
    name: [{ family: `Family${i % 500}`, given: ['Given', `G${i}`] }],
    gender: i % 2 === 0 ? 'female' : 'male',
    birthDate: `19${String(40 + (i % 60)).padStart(2, '0')}-0${1 + (i % 9)}-1${i % 10}`,
  });
  const create = async (i: number): Promise<void> => {
    const res = await fetch(`${address}/Patient`, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(patient(i)) });
    if (res.status !== 201) throw new Error(`create: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  };
  const versions = connection.db.collection<{ _id: string; lastUpdated: Date; anchor?: { batch?: number } }>('resource_versions');
  const batches = connection.db.collection<{ _id: number; anchoredAt?: Date; size: number }>('ledger_batches');

  // 1. Anchoring off, then on. A warm-up first (JIT, validator caches), so that the first measured phase is not
  // penalised for being first; its versions are anchored before the second phase, outside the measurement.
  const warmup = Math.min(count, 1000);
  await measure('warm-up', warmup, concurrency, (i) => create(3 * count + backlog + i));
  const results: Measurement[] = [];
  results.push(await measure('create Patient, anchoring worker stopped', count, concurrency, create));
  runtime.start();
  await drained(connection.db, 120_000);
  const firstBatch = ((await batches.find().sort({ _id: -1 }).limit(1).next())?._id ?? 0) + 1;
  const loadStart = new Date();
  results.push(await measure('create Patient, anchoring worker running', count, concurrency, (i) => create(count + i)));
  await drained(connection.db, 120_000);

  // 2. Write -> anchored for the versions written under load.
  const anchoredAt = new Map((await batches.find({ _id: { $gte: firstBatch } }).toArray()).map((b) => [b._id, b.anchoredAt!.getTime()]));
  const delays = (await versions.find({ lastUpdated: { $gte: loadStart } }, { projection: { lastUpdated: 1, 'anchor.batch': 1 } }).toArray())
    .map((v) => anchoredAt.get(v.anchor!.batch!)! - v.lastUpdated.getTime())
    .sort((a, b) => a - b);
  const loadBatches = anchoredAt.size;

  // 3. A backlog of `backlog` versions written while the worker is stopped, then drained.
  await runtime.worker.stop();
  await measure(`backlog writes`, backlog, concurrency, (i) => create(2 * count + i));
  const beforeDrain = await batches.countDocuments();
  const drainStart = Date.now();
  runtime.worker.start();
  await drained(connection.db, 600_000);
  const drainSeconds = (Date.now() - drainStart) / 1000;
  const drainBatches = (await batches.countDocuments()) - beforeDrain;

  await app.close();
  await runtime.stop();
  await net.close();
  await connection.db.dropDatabase();
  await connection.close();
  await mongo.stop();

  const section = [
    `## ${new Date().toISOString()} — ledger anchoring (bench/ledger.ts)`,
    '',
    `Machine: ${machineDescription()}; MongoDB: ${mongo.description}. ` +
      `Ledger: the project's LOCAL Hedera-compatible network in the same process (not Hedera). LEDGER_BATCH_MAX_LEAVES=10000, LEDGER_BATCH_INTERVAL_MS=${intervalMs}.`,
    '',
    markdownTable(results),
    '',
    '| anchoring | value |',
    '|---|---:|',
    `| write -> anchored, p50 (ms) | ${percentile(delays, 50).toFixed(0)} |`,
    `| write -> anchored, p99 (ms) | ${percentile(delays, 99).toFixed(0)} |`,
    `| HCS messages for the ${count} versions written under load | ${loadBatches} (${((loadBatches / count) * 10_000).toFixed(1)} per 10 000 versions) |`,
    `| HCS messages to drain a backlog of ${backlog} versions | ${drainBatches} (${((drainBatches / backlog) * 10_000).toFixed(1)} per 10 000 versions), in ${drainSeconds.toFixed(1)} s |`,
    '',
  ].join('\n');
  console.log(section);
  await appendFile(values.out, `\n${section}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
