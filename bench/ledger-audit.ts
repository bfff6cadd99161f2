/**
 * npm run bench:ledger, second part: the throughput of the whole-database completeness audit
 * (src/ledger/completeness-audit.ts, what `fhir-ledger-audit` and GET [base]/$ledger-audit run) as the database grows.
 *
 * One database, grown step by step: for each step (a cumulative number of patients, e.g. 10 000, 50 000, 100 000)
 *   1. the next patients of the benchmark population (bench/population.ts, the seed of `npm run bench:population`:
 *      ~2 encounters and ~1.5 medication requests per patient, ~4.4 versions per patient) are bulk-loaded
 *      (bench/load-population.ts), every version pending its anchor as the write path leaves it;
 *   2. the anchoring worker is started and runs until nothing is pending and every batch is anchored (batches of up
 *      to LEDGER_BATCH_MAX_LEAVES 10 000), then stopped: how long that took and how many batches it made;
 *   3. the audit runs over every batch of the database in a process of its own (this file run with --child, as the
 *      CLI would run: its own MongoDB connection, reading the local ledger's mirror over HTTP), which samples its
 *      own memory (rss and heapUsed every SAMPLE_MS, and the kernel's peak RSS) and times where it waits.
 * Every loop is bounded: the steps by their count, the load by its patients, the anchoring and the audit by a
 * deadline (the audit child is killed past it).
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Db } from 'mongodb';
import type { LocalHedera } from '../src/dev/hedera/index.js';
import type { LedgerLogger } from '../src/ledger/anchor-worker.js';
import { auditCompleteness, auditedTopic, type AuditReport, type Finding } from '../src/ledger/completeness-audit.js';
import { LedgerRuntime, localLedgerEndpoint } from '../src/ledger/ledger-runtime.js';
import { LedgerStore } from '../src/ledger/ledger-store.js';
import { MirrorClient } from '../src/ledger/mirror-client.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { lineChartSvg } from './chart.js';
import { loadPopulation } from './load-population.js';
import { childCpuMs, residentMb } from './mongo-process.js';

/** The seed of `npm run bench:population` (bench/run.ts), so the population is the same one. */
export const AUDIT_POPULATION_SEED = 20261125;
const SAMPLE_MS = 50;
const MB = 2 ** 20;
const CHILD_MARKER = 'AUDIT-RESULT ';

/** What the audit child reports. */
export interface AuditChildResult {
  outcome: AuditReport['outcome'];
  summary: AuditReport['summary'];
  /** The first findings (all of them are counted in summary). */
  findings: Finding[];
  notes: string[];
  topicId: string | null;
  wallMs: number;
  /** Pass 1: every version's claim (a projection of the whole collection). */
  versionPassMs: number;
  /** Time spent waiting for the batch documents and for the member versions (MongoDB, the driver, BSON decoding). */
  batchReadMs: number;
  memberReadMs: number;
  cpuMs: number;
  rssBeforeMb: number;
  heapBeforeMb: number;
  peakRssMb: number;
  peakHeapMb: number;
  /** The kernel's high-water mark of the process (getrusage maxrss): exact, not sampled. */
  maxRssMb: number;
  samples: number;
}

export interface AuditStep {
  patients: number;
  /** Versions in the database at this step. */
  versions: number;
  loadedVersions: number;
  loadSeconds: number;
  anchorSeconds: number;
  /** Batches made anchoring this step's versions, and in the database after it. */
  newBatches: number;
  batches: number;
  audit: AuditChildResult;
  /** CPU during the audit: MongoDB's child process, and this process (the local ledger's mirror REST). */
  mongoCpuMs: number;
  benchCpuMs: number;
  mongoRssMb: number | undefined;
  /** MongoDB's resident memory sampled during the audit: before, and its peak. */
  mongoRssBeforeMb: number | undefined;
  mongoPeakRssMb: number | undefined;
}

export interface AuditBenchOptions {
  mongo: { uri: string; pid: number | undefined };
  net: LocalHedera;
  /** Cumulative patients per step, ascending. */
  steps: number[];
  seed: number;
  intervalMs: number;
  /** Deadline for each step's anchoring, and for each audit. */
  timeoutSeconds: number;
  /**
   * The audit child's driver connectTimeoutMS (also the timeout of the driver's heartbeat to the server); 0: the
   * driver's default, as fhir-ledger-audit connects. The embedded server computes a cursor's whole result before its
   * first batch: when the audit's pass 1 was one cursor over every version, at 100,000 patients it held the server
   * past the driver's 30 s and the audit failed (docs/benchmarks.md, 2026-12-07T14:56); pass 1 now reads in pages.
   */
  driverTimeoutMs: number;
  log: (line: string) => void;
  /** Polls until nothing is pending and every batch is anchored (bench/ledger.ts's), bounded by the deadline. */
  drained: (db: Db, deadlineMs: number) => Promise<void>;
}

const quiet: LedgerLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: (_f, m) => console.error(m) };

/** Parses "10000,50000,100000": ascending positive integers; "0" or "" for none. */
export function parseSteps(text: string): number[] {
  if (text.trim() === '' || text.trim() === '0') return [];
  const steps = text.split(',').map((s) => Number(s.trim()));
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!;
    if (!Number.isInteger(s) || s <= 0 || (i > 0 && s <= steps[i - 1]!))
      throw new Error('--audit-steps must be ascending positive integers, e.g. 10000,50000,100000');
  }
  return steps;
}

/** Loads, anchors and audits step by step, in a database of its own; drops it at the end. */
export async function runAuditBench(options: AuditBenchOptions): Promise<AuditStep[]> {
  const { log } = options;
  const dbName = `bench_ledger_audit_${Date.now()}`;
  const connection = await connectMongo(options.mongo.uri, dbName);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const runtime = new LedgerRuntime({
    db: connection.db,
    config: {
      topicId: undefined,
      batchMaxLeaves: 10_000,
      batchIntervalMs: options.intervalMs,
      leaseTtlMs: 15_000,
      retryMaxMs: 5_000,
    },
    endpoint: localLedgerEndpoint(options.net),
    baseUrl: 'http://127.0.0.1',
    software: 'fhir-ledger-server',
    log: quiet,
  });
  await runtime.init();
  const versions = connection.db.collection('resource_versions');
  const batches = connection.db.collection('ledger_batches');
  const steps: AuditStep[] = [];
  let loaded = 0;
  try {
    for (const target of options.steps) {
      log(`audit step ${target} patients: loading patients ${loaded}..${target - 1}`);
      const load = await loadPopulation({
        store,
        baseUrl: 'http://127.0.0.1',
        seed: options.seed,
        from: loaded,
        to: target,
        progress: (done, resources) => {
          if (done % 20_000 === 0) log(`  loaded ${done} patients, ${resources} versions`);
        },
      });
      loaded = target;
      const batchesBefore = await batches.countDocuments();
      log(`  loaded ${load.resources} versions in ${load.seconds.toFixed(1)} s; anchoring`);
      const anchorStart = performance.now();
      runtime.start();
      await options.drained(connection.db, options.timeoutSeconds * 1000);
      const anchorSeconds = (performance.now() - anchorStart) / 1000;
      await runtime.worker.stop();
      const batchCount = await batches.countDocuments();
      const versionCount = await versions.countDocuments();
      log(`  anchored in ${anchorSeconds.toFixed(1)} s (${batchCount - batchesBefore} batches); auditing ${versionCount} versions`);

      const mongoCpuBefore = childCpuMs(options.mongo.pid);
      const benchCpuBefore = process.cpuUsage();
      const mongoRssBeforeMb = residentMb(options.mongo.pid);
      let mongoPeakRssMb = mongoRssBeforeMb;
      const mongoSampler = setInterval(() => {
        const rss = residentMb(options.mongo.pid);
        if (rss !== undefined) mongoPeakRssMb = Math.max(mongoPeakRssMb ?? 0, rss);
      }, 200);
      let audit: AuditChildResult;
      try {
        const uri =
          options.driverTimeoutMs > 0 ? withOption(options.mongo.uri, 'connectTimeoutMS', options.driverTimeoutMs) : options.mongo.uri;
        audit = await runAuditChild(uri, dbName, options.net.mirrorUrl, options.timeoutSeconds * 1000, log);
      } finally {
        clearInterval(mongoSampler);
      }
      const benchCpu = process.cpuUsage(benchCpuBefore);
      const step: AuditStep = {
        patients: target,
        versions: versionCount,
        loadedVersions: load.resources,
        loadSeconds: load.seconds,
        anchorSeconds,
        newBatches: batchCount - batchesBefore,
        batches: batchCount,
        audit,
        mongoCpuMs: childCpuMs(options.mongo.pid) - mongoCpuBefore,
        benchCpuMs: (benchCpu.user + benchCpu.system) / 1000,
        mongoRssMb: residentMb(options.mongo.pid),
        mongoRssBeforeMb,
        mongoPeakRssMb,
      };
      steps.push(step);
      log(
        `  audit: ${audit.outcome}, ${audit.summary.findings} findings, ${audit.summary.versionsChecked} versions in ${(audit.wallMs / 1000).toFixed(1)} s ` +
          `= ${((audit.summary.versionsChecked / audit.wallMs) * 1000).toFixed(0)} versions/s; peak RSS ${audit.maxRssMb} MB, heap ${audit.peakHeapMb} MB`,
      );
      log(`  step result: ${JSON.stringify({ ...step, audit: { ...audit, findings: audit.findings.length } })}`);
      for (const f of audit.findings.slice(0, 10)) log(`  FINDING ${f.kind} batch ${f.batch} ${f.resource ?? ''}: ${f.explanation}`);
    }
  } finally {
    await runtime.stop();
    await connection.db.dropDatabase();
    await connection.close();
  }
  return steps;
}

/** The URI with one more option in its query string. */
function withOption(uri: string, name: string, value: number): string {
  const [base, query] = uri.split('?', 2) as [string, string | undefined];
  return `${base}${base.includes('/', 'mongodb://'.length) ? '' : '/'}?${query ? `${query}&` : ''}${name}=${value}`;
}

/** Runs the audit in a child process (this file, --child); its result, or an error past the deadline. */
function runAuditChild(
  uri: string,
  db: string,
  mirrorUrl: string,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<AuditChildResult> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [script, '--child', '--uri', uri, '--db', db, '--mirror', mirrorUrl], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line.trim()) log(`  [audit] ${line}`);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the audit did not finish within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith(CHILD_MARKER));
      if (code !== 0 || !line) reject(new Error(`the audit child exited with ${code}: ${stdout.slice(-2000)}`));
      else resolve(JSON.parse(line.slice(CHILD_MARKER.length)) as AuditChildResult);
    });
  });
}

/** The child: one audit of every batch, as fhir-ledger-audit runs it, with its memory sampled. */
async function childMain(): Promise<void> {
  const { values } = parseArgs({
    options: { child: { type: 'boolean' }, uri: { type: 'string' }, db: { type: 'string' }, mirror: { type: 'string' } },
  });
  const connection = await connectMongo(values.uri!, values.db!);
  const store = new LedgerStore(connection.db);
  // Where the audit waits: wrapped on this instance only (the audit calls them through the store).
  let batchReadMs = 0;
  let memberReadMs = 0;
  const auditedBatch = store.auditedBatch.bind(store);
  const auditedVersions = store.auditedVersions.bind(store);
  store.auditedBatch = async (n) => {
    const t0 = performance.now();
    try {
      return await auditedBatch(n);
    } finally {
      batchReadMs += performance.now() - t0;
    }
  };
  store.auditedVersions = async (keys) => {
    const t0 = performance.now();
    try {
      return await auditedVersions(keys);
    } finally {
      memberReadMs += performance.now() - t0;
    }
  };
  const { topicId, network } = await auditedTopic(store, undefined);
  const mirror = new MirrorClient(values.mirror!);
  const before = process.memoryUsage();
  let peakRss = before.rss;
  let peakHeap = before.heapUsed;
  let samples = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
    samples++;
  }, SAMPLE_MS);
  let versionPassMs = 0;
  const cpuBefore = process.cpuUsage();
  const t0 = performance.now();
  const report = await auditCompleteness({
    store,
    mirror,
    topicId,
    network,
    mirrorNote: 'the local ledger of the benchmark',
    from: 1,
    to: null,
    graceMs: 15 * 60_000,
    progressEvery: 10,
    onProgress: (p) => {
      if (p.phase === 'versions') versionPassMs = p.elapsedMs;
      else
        console.error(
          `batches ${p.batchesDone}/${p.batchesTotal}, versions checked ${p.versionsChecked}, ${(p.elapsedMs / 1000).toFixed(1)} s`,
        );
    },
  });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpuBefore);
  clearInterval(sampler);
  const end = process.memoryUsage();
  const result: AuditChildResult = {
    outcome: report.outcome,
    summary: report.summary,
    findings: report.findings.slice(0, 50),
    notes: report.notes,
    topicId,
    wallMs,
    versionPassMs,
    batchReadMs,
    memberReadMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssBeforeMb: Math.round(before.rss / MB),
    heapBeforeMb: Math.round(before.heapUsed / MB),
    peakRssMb: Math.round(Math.max(peakRss, end.rss) / MB),
    peakHeapMb: Math.round(Math.max(peakHeap, end.heapUsed) / MB),
    maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    samples,
  };
  await connection.close();
  process.stdout.write(`${CHILD_MARKER}${JSON.stringify(result)}\n`);
}

const perSecond = (count: number, ms: number): number => (ms > 0 ? (count / ms) * 1000 : 0);
/** The audit's wall time after pass 1: the batches, their members read and their commitments recomputed. */
const batchPhaseMs = (s: AuditStep): number => s.audit.wallMs - s.audit.versionPassMs;
const int = (n: number): string => Math.round(n).toLocaleString('en');

/** The SVG chart: audit throughput, wall time and the audit process's memory against the versions stored. */
export function auditChartSvg(steps: AuditStep[]): string {
  const at = (y: (s: AuditStep) => number) => steps.map((s) => ({ x: s.versions, y: y(s) }));
  return lineChartSvg(
    [
      {
        title: 'Completeness audit: throughput',
        yLabel: 'versions checked per second',
        series: [
          { name: 'audit (versions/s)', points: at((s) => perSecond(s.audit.summary.versionsChecked, s.audit.wallMs)) },
          {
            name: 'audit, batch phase only (pass 1 excluded)',
            points: at((s) => perSecond(s.audit.summary.versionsChecked, batchPhaseMs(s))),
          },
          { name: 'anchoring the same versions (versions/s)', points: at((s) => s.loadedVersions / s.anchorSeconds) },
        ],
      },
      {
        title: 'Completeness audit: peak memory of the audit process',
        yLabel: 'MB',
        series: [
          { name: 'peak RSS (kernel high-water mark)', points: at((s) => s.audit.maxRssMb) },
          { name: 'peak V8 heap used (sampled)', points: at((s) => s.audit.peakHeapMb) },
        ],
      },
    ],
    320,
  );
}

/** The docs/benchmarks.md section (without the interpretation, which a person writes after reading the numbers). */
export function auditSection(
  steps: AuditStep[],
  context: {
    machine: string;
    mongo: string;
    seed: number;
    intervalMs: number;
    chart: string | null;
    loadAtStart: number;
    loadAtEnd: number;
    wallSeconds: number;
    driverTimeoutMs: number;
  },
): string {
  const last = steps.at(-1);
  const rows = steps.map((s) => {
    const a = s.audit;
    return (
      `| ${int(s.patients)} | ${int(s.versions)} | ${s.batches} | ${a.outcome}, ${a.summary.findings} | ${(a.wallMs / 1000).toFixed(1)} | ` +
      `**${int(perSecond(a.summary.versionsChecked, a.wallMs))}** | ${perSecond(a.summary.batchesChecked, a.wallMs).toFixed(2)} | ` +
      `${(a.versionPassMs / 1000).toFixed(1)} (${((a.versionPassMs / Math.max(1, a.summary.versionsScanned)) * 1000).toFixed(0)} µs/version) | ` +
      `${int(perSecond(a.summary.versionsChecked, batchPhaseMs(s)))} | ${(a.batchReadMs / 1000).toFixed(1)} | ${(a.memberReadMs / 1000).toFixed(1)} | ${(a.cpuMs / 1000).toFixed(1)} | ${(s.mongoCpuMs / 1000).toFixed(1)} | ` +
      `${a.rssBeforeMb} → ${a.maxRssMb} | ${a.peakRssMb} | ${a.heapBeforeMb} → ${a.peakHeapMb} |`
    );
  });
  const anchorRows = steps.map(
    (s) =>
      `| ${int(s.patients)} | ${int(s.loadedVersions)} | ${s.loadSeconds.toFixed(0)} (${int(s.loadedVersions / s.loadSeconds)}/s) | ` +
      `${s.anchorSeconds.toFixed(1)} | ${s.newBatches} | ${int(s.loadedVersions / s.anchorSeconds)} | ${s.mongoRssBeforeMb ?? '—'} → ${s.mongoPeakRssMb ?? '—'} |`,
  );
  const findings = steps.flatMap((s) =>
    s.audit.findings
      .slice(0, 5)
      .map((f) => `- step ${int(s.patients)}: ${f.kind}, batch ${f.batch ?? '—'}, ${f.resource ?? ''}: ${f.explanation}`),
  );
  return [
    `## ${new Date().toISOString()} — completeness audit throughput (bench/ledger-audit.ts), up to ${int(last?.patients ?? 0)} patients`,
    '',
    `Machine: ${context.machine}, shared with other work (load average ${context.loadAtStart.toFixed(1)} at the start, ${context.loadAtEnd.toFixed(1)} at the end); ` +
      `MongoDB: ${context.mongo}. Ledger: the project's LOCAL Hedera-compatible network in the benchmark's process (not Hedera); its mirror REST API read over HTTP ` +
      `on 127.0.0.1. LEDGER_BATCH_MAX_LEAVES=10000, LEDGER_BATCH_INTERVAL_MS=${context.intervalMs}. Population: bench/population.ts, seed ${context.seed}, ` +
      `grown in one database step by step (${steps.map((s) => int(s.patients)).join(' → ')} patients): each step bulk-loads the next patients ` +
      '(bench/load-population.ts, every version pending as the write path leaves it), runs the anchoring worker until nothing is pending, ' +
      `stops it, then runs \`auditCompleteness\` over every batch in a process of its own (as \`fhir-ledger-audit\` runs${context.driverTimeoutMs > 0 ? `, but with the driver's connectTimeoutMS raised to ${context.driverTimeoutMs / 1000} s` : ''}). Whole run: ${(context.wallSeconds / 60).toFixed(1)} min.`,
    '',
    '| patients | versions | batches | outcome, findings | audit wall (s) | versions/s | batches/s | of which pass 1 over all claims (s) | batch phase alone (versions/s) | reading batch documents (s) | reading member versions (s) | audit CPU (s) | MongoDB CPU (s) | audit RSS before → peak (MB) | peak RSS sampled (MB) | heap used before → peak (MB) |',
    '|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|',
    ...rows,
    '',
    'Versions/s: member versions checked against their batch (commitment recomputed from the stored resource, leaf compared) per second of the ' +
      "audit's wall time, which includes pass 1 (one projection over every version's claim). Peak RSS: the kernel's high-water mark of the audit " +
      `process (getrusage); heap: V8 heapUsed sampled every ${SAMPLE_MS} ms. "Reading": time spent awaiting \`auditedBatch\` / \`auditedVersions\` (MongoDB, the driver, BSON decoding); the rest of the batch phase is the audit's own computing (commitments, Merkle trees).`,
    '',
    '| step (patients) | versions loaded | load (s) | anchoring (s) | batches made | anchoring (versions/s) | MongoDB RSS during the audit: before → peak (MB) |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...anchorRows,
    '',
    ...(context.chart ? [`![audit throughput and peak memory against versions stored](${context.chart})`, ''] : []),
    ...(findings.length > 0 ? ['Findings (the database was not tampered with: each is a bug):', '', ...findings, ''] : []),
  ].join('\n');
}

if (process.argv.includes('--child') && process.argv[1] === fileURLToPath(import.meta.url)) {
  childMain().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
