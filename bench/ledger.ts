/**
 * npm run bench:ledger: what anchoring costs the write path, and what it produces.
 *
 *   1. create Patient throughput with the anchoring worker stopped and running, in the same process, interleaved
 *      round by round (off, on, on, off, ...) so that a noisy machine drifts both sides alike; medians, and the
 *      ratio on/off. The write path is identical (it only inserts the pending anchor); the difference is the
 *      worker competing for the same CPU and MongoDB. CPU per create (this process + a MongoDB child) is reported
 *      beside throughput: steadier on a shared machine.
 *   2. time from write to anchored (version lastUpdated -> its batch's anchoredAt), p50 and p99, under that load;
 *   3. HCS messages per 10 000 versions: under that load, and when a backlog drains (--backlog 0 skips it);
 *   4. the whole-database completeness audit's throughput (versions/s) and memory as the database grows, in a
 *      database of its own: bench/ledger-audit.ts (--audit-steps 10000,50000,100000 patients by default, cumulative;
 *      --audit-steps 0 skips it, --audit-only runs only it). It writes its own section and chart.
 *
 * Before an "on" phase the worker is started and everything written so far is anchored; after it, everything
 * is anchored again and the worker stopped: each "on" phase anchors its own versions only.
 *
 * The ledger is the project's LOCAL network in this process (no Hedera fees, no network latency): the latency
 * numbers are this machine's lower bound, not testnet's (add testnet's ~3-5 s to consensus). MongoDB: MONGODB_URI,
 * else the embedded server in a child process as `npm start` runs it (--mongo in-process: in this process, as the
 * tests run it). Appends a section to docs/benchmarks.md. Every loop is bounded by a count.
 *   npm run bench:ledger -- --count 2000 --concurrency 8 --rounds 5 --backlog 10000
 *   npm run bench:ledger -- --audit-only --audit-steps 10000,50000,100000 --audit-timeout 1800
 */
import { appendFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Db } from 'mongodb';
import { buildApp } from '../src/app.js';
import { startLocalHedera, type LocalHedera } from '../src/dev/hedera/index.js';
import { provideMongo } from '../src/dev/provide-mongo.js';
import { createResourceValidator } from '../src/fhir/validation/index.js';
import type { LedgerLogger } from '../src/ledger/anchor-worker.js';
import { LedgerRuntime, localLedgerEndpoint } from '../src/ledger/ledger-runtime.js';
import { PROJECT_ROOT } from '../src/software.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { machineDescription, measure, type Measurement } from './measure.js';
import { benchMongo, childCpuMs } from './mongo-process.js';
import { AUDIT_POPULATION_SEED, auditChartSvg, auditSection, parseSteps, runAuditBench } from './ledger-audit.js';
import { withoutAccessControl } from '../src/config.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '5' },
    backlog: { type: 'string', default: '10000' },
    interval: { type: 'string', default: '1000' },
    /** child: the embedded MongoDB in a process of its own (npm start's default); in-process: in this one. */
    mongo: { type: 'string', default: 'child' },
    out: { type: 'string', default: 'docs/benchmarks.md' },
    /** The audit benchmark: cumulative patients per step ("0": none). */
    'audit-steps': { type: 'string', default: '10000,50000,100000' },
    /** Only the audit benchmark (no create-throughput rows). */
    'audit-only': { type: 'boolean', default: false },
    /** Deadline, in seconds, for each step's anchoring and for each audit. */
    'audit-timeout': { type: 'string', default: '1800' },
    'audit-seed': { type: 'string', default: String(AUDIT_POPULATION_SEED) },
    /** The audit child's driver connectTimeoutMS in seconds (0: the driver's 30 s, as fhir-ledger-audit connects); see bench/ledger-audit.ts. */
    'audit-driver-timeout': { type: 'string', default: '0' },
    /** The audit chart (SVG); linked from the section. */
    chart: { type: 'string', default: 'docs/benchmarks-ledger-audit.svg' },
    /** V8 heap of the embedded MongoDB child (its decoded-document cache); the audit's 100 000 patients need more. */
    'mongo-heap-mb': { type: 'string' },
  },
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
const backlog = Number(values.backlog);
const intervalMs = Number(values.interval);
const auditSteps = parseSteps(values['audit-steps']);
const auditOnly = values['audit-only'];
const auditTimeout = Number(values['audit-timeout']);
const auditSeed = Number(values['audit-seed']);
const auditDriverTimeout = Number(values['audit-driver-timeout']);
const mongoHeapMb = Number(values['mongo-heap-mb'] ?? (auditSteps.length > 0 ? 12_288 : 4096));
for (const [name, value] of Object.entries({
  count,
  concurrency,
  rounds,
  backlog,
  intervalMs,
  auditTimeout,
  auditSeed,
  auditDriverTimeout,
  mongoHeapMb,
})) {
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`);
}
if (auditOnly && auditSteps.length === 0) throw new Error('--audit-only needs --audit-steps');
const started = Date.now();
const log = (message: string): void => console.error(`[bench:ledger +${((Date.now() - started) / 1000).toFixed(0)}s] ${message}`);

const quiet: LedgerLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: (_f, m) => console.error(m) };

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const median = (list: number[]): number => {
  const sorted = [...list].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/**
 * Polls until every version is anchored (bounded by a deadline): none pending, and no batch short of 'anchored'.
 * (A version's own anchor says only pending or claimed by a batch; the batch says whether that batch is anchored.)
 */
async function drained(db: Db, deadlineMs: number): Promise<void> {
  const versions = db.collection('resource_versions');
  const batches = db.collection('ledger_batches');
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    const open =
      (await versions.countDocuments({ 'anchor.state': 'pending' }, { limit: 1 })) +
      (await batches.countDocuments({ state: { $ne: 'anchored' } }));
    if (open === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the ledger did not drain in time');
}

async function openMongo(): Promise<{ uri: string; description: string; pid: number | undefined; stop: () => Promise<void> }> {
  if (values.mongo === 'in-process') {
    const mongo = await provideMongo({ uri: process.env.MONGODB_URI, mongodTimeoutMs: 5000, allowDownload: false, log: () => {} });
    return { uri: mongo.uri, description: mongo.description, pid: undefined, stop: () => mongo.stop() };
  }
  const mongo = await benchMongo({ heapMb: mongoHeapMb, log: () => {} });
  return { uri: mongo.uri, description: mongo.description, pid: mongo.pid, stop: () => mongo.stop() };
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0]!;
  const mongo = await openMongo();
  const net = await startLocalHedera({ log: () => {} });
  try {
    if (!auditOnly) await createBench(mongo, net);
    if (auditSteps.length > 0) await auditBench(mongo, net, loadAtStart);
  } finally {
    await net.close();
    await mongo.stop();
  }
}

/** 4. the completeness audit as the database grows (bench/ledger-audit.ts); its own section and chart. */
async function auditBench(mongo: Awaited<ReturnType<typeof openMongo>>, net: LocalHedera, loadAtStart: number): Promise<void> {
  const steps = await runAuditBench({
    mongo,
    net,
    steps: auditSteps,
    seed: auditSeed,
    intervalMs,
    timeoutSeconds: auditTimeout,
    driverTimeoutMs: auditDriverTimeout * 1000,
    log,
    drained,
  });
  if (values.chart) await writeFile(values.chart, auditChartSvg(steps));
  const section = auditSection(steps, {
    machine: machineDescription(),
    mongo: mongo.description,
    seed: auditSeed,
    intervalMs,
    chart: values.chart ? relative(dirname(values.out), values.chart) : null,
    loadAtStart,
    loadAtEnd: loadavg()[0]!,
    wallSeconds: (Date.now() - started) / 1000,
    driverTimeoutMs: auditDriverTimeout * 1000,
  });
  console.log(section);
  await appendFile(values.out, `\n${section}`);
}

/** 1-3: create throughput with the worker stopped and running, write -> anchored, HCS messages; its own section. */
async function createBench(mongo: Awaited<ReturnType<typeof openMongo>>, net: LocalHedera): Promise<void> {
  const connection = await connectMongo(mongo.uri, `bench_ledger_${Date.now()}`);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
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
    {
      basePath: '',
      baseUrl: 'http://127.0.0.1',
      bodyLimit: 16 * 1024 * 1024,
      logLevel: 'silent',
      referencePolicy: 'strict',
      ...withoutAccessControl('http://127.0.0.1'),
    },
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
  let nextPatient = 0;
  const create = async (): Promise<void> => {
    const i = nextPatient++;
    const res = await fetch(`${address}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify(patient(i)),
    });
    if (res.status !== 201) throw new Error(`create: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  };
  const versions = connection.db.collection<{ _id: string; lastUpdated: Date; anchor?: { batch?: number } }>('resource_versions');
  const batches = connection.db.collection<{ _id: number; anchoredAt?: Date; size: number }>('ledger_batches');

  // A warm-up first (JIT, validator caches) with the worker running, so that neither side is penalised for being
  // first and the worker's own code is warm too.
  runtime.start();
  await measure('warm-up', Math.min(count, 1000), concurrency, create);
  await drained(connection.db, 120_000);
  await runtime.worker.stop();

  const sides = { off: [] as Measurement[], on: [] as Measurement[] };
  const cpu = { off: [] as number[], on: [] as number[] };
  /** The MongoDB child's share of cpu (ms per create). */
  const mongoCpu = { off: [] as number[], on: [] as number[] };
  const delays: number[] = [];
  let loadBatches = 0;
  let loadVersions = 0;
  for (let round = 0; round < rounds; round++) {
    const order: Array<'off' | 'on'> = round % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
    for (const side of order) {
      if (side === 'on') {
        runtime.start();
        await drained(connection.db, 120_000);
      }
      const firstBatch = ((await batches.find().sort({ _id: -1 }).limit(1).next())?._id ?? 0) + 1;
      const loadStart = new Date();
      const cpuBefore = process.cpuUsage();
      const childBefore = childCpuMs(mongo.pid);
      const m = await measure(`create Patient, anchoring worker ${side === 'on' ? 'running' : 'stopped'}`, count, concurrency, create);
      const used = process.cpuUsage(cpuBefore);
      const childMs = (childCpuMs(mongo.pid) - childBefore) / Math.max(1, m.count);
      const cpuMs = (used.user + used.system) / 1000 / Math.max(1, m.count) + childMs;
      sides[side].push(m);
      cpu[side].push(cpuMs);
      mongoCpu[side].push(childMs);
      console.log(
        `round ${round + 1}: ${m.name}: ${m.throughput.toFixed(1)}/s, p50 ${m.p50.toFixed(1)} ms, ${cpuMs.toFixed(2)} ms CPU per create (MongoDB ${childMs.toFixed(2)})`,
      );
      if (side === 'on') {
        await drained(connection.db, 120_000);
        await runtime.worker.stop();
        // Write -> anchored for the versions written under load.
        const anchoredAt = new Map(
          (await batches.find({ _id: { $gte: firstBatch } }).toArray()).map((b) => [b._id, b.anchoredAt!.getTime()]),
        );
        const written = await versions
          .find({ lastUpdated: { $gte: loadStart } }, { projection: { lastUpdated: 1, 'anchor.batch': 1 } })
          .toArray();
        for (const v of written) delays.push(anchoredAt.get(v.anchor!.batch!)! - v.lastUpdated.getTime());
        loadBatches += anchoredAt.size;
        loadVersions += written.length;
      }
    }
  }
  delays.sort((a, b) => a - b);

  // A backlog of `backlog` versions written while the worker is stopped, then drained.
  let drain: { seconds: number; batches: number } | null = null;
  if (backlog > 0) {
    await measure(`backlog writes`, backlog, concurrency, create);
    const beforeDrain = await batches.countDocuments();
    const drainStart = Date.now();
    runtime.worker.start();
    await drained(connection.db, 600_000);
    drain = { seconds: (Date.now() - drainStart) / 1000, batches: (await batches.countDocuments()) - beforeDrain };
  }
  const population = await versions.countDocuments();

  await app.close();
  await runtime.stop();
  await connection.db.dropDatabase();
  await connection.close();

  const off = median(sides.off.map((m) => m.throughput));
  const on = median(sides.on.map((m) => m.throughput));
  const cpuOff = median(cpu.off);
  const cpuOn = median(cpu.on);
  const row = (name: string, list: Measurement[], cpuList: number[], mongoList: number[]) =>
    `| ${name} | ${median(list.map((m) => m.throughput)).toFixed(1)} | ${median(list.map((m) => m.p50)).toFixed(1)} | ${median(list.map((m) => m.p99)).toFixed(1)} | ` +
    `${median(cpuList).toFixed(2)} | ${mongo.pid === undefined ? 'in the total' : median(mongoList).toFixed(2)} | ${list.map((m) => m.throughput.toFixed(0)).join(', ')} |`;
  const section = [
    `## ${new Date().toISOString()} — ledger anchoring (bench/ledger.ts)`,
    '',
    `Machine: ${machineDescription()}; MongoDB: ${mongo.description}. ` +
      `Ledger: the project's LOCAL Hedera-compatible network in the same process (not Hedera). LEDGER_BATCH_MAX_LEAVES=10000, LEDGER_BATCH_INTERVAL_MS=${intervalMs}. ` +
      `${rounds} interleaved rounds of ${count} creates each side (${concurrency} in flight), after a warm-up; medians. ${population.toLocaleString('en')} versions in the database at the end.`,
    '',
    '| create Patient | throughput (/s) | p50 (ms) | p99 (ms) | CPU per create (ms) | of which MongoDB (ms) | rounds (/s) |',
    '|---|---:|---:|---:|---:|---:|---|',
    row('anchoring worker stopped', sides.off, cpu.off, mongoCpu.off),
    row('anchoring worker running', sides.on, cpu.on, mongoCpu.on),
    '',
    `**With anchoring: ${((on / off) * 100).toFixed(1)} % of the throughput without** (${on.toFixed(1)} / ${off.toFixed(1)} creates/s); CPU per create ${cpuOn.toFixed(2)} ms against ${cpuOff.toFixed(2)} ms (+${((cpuOn / cpuOff - 1) * 100).toFixed(1)} %).`,
    '',
    '| anchoring | value |',
    '|---|---:|',
    `| write -> anchored, p50 (ms) | ${percentile(delays, 50).toFixed(0)} |`,
    `| write -> anchored, p99 (ms) | ${percentile(delays, 99).toFixed(0)} |`,
    `| HCS messages for the ${loadVersions} versions written under load | ${loadBatches} (${((loadBatches / Math.max(1, loadVersions)) * 10_000).toFixed(1)} per 10 000 versions) |`,
    drain
      ? `| HCS messages to drain a backlog of ${backlog} versions | ${drain.batches} (${((drain.batches / backlog) * 10_000).toFixed(1)} per 10 000 versions), in ${drain.seconds.toFixed(1)} s |`
      : '| backlog drain | not measured (--backlog 0) |',
    '',
  ].join('\n');
  console.log(section);
  await appendFile(values.out, `\n${section}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
