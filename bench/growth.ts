/**
 * npm run bench: how the server's cost grows with its data. Loads a deterministic population (bench/population.ts:
 * patients with ~2 encounters and ~1.5 medication requests each) in steps up to each population size (default
 * 10 000, 100 000 and 1 000 000 resources) and, at each step, drives the server over real HTTP on 127.0.0.1 with
 * 16 connections: create Patient, read Patient, `Patient?family=Smith&_count=20` (the read and that search also
 * answered in FHIR XML, compared with JSON in a table of their own), the typical searches of
 * bench/searches.ts, and transaction Bundles of 100 Patients. Records throughput, p50/p99 and the resident memory
 * of the server and of MongoDB at each step, draws them against population size (an SVG chart) and appends a
 * section to docs/benchmarks.md.
 *
 * As `npm start` runs: validation on, strict references, authorization on (a SMART access token of an identity
 * provider on every request, verified against its key) and audit on (an AuditEvent for every request: committed with
 * each write, written by the audit worker thread for reads and searches), the ledger on (the project's local Hedera
 * network in this process, anchoring every version and AuditEvent; the loaded population is anchored before a step
 * is measured), MongoDB the embedded server in a child process on a data directory (or MONGODB_URI). At each step
 * the same create, read and searches are also run against two more apps on the same database, without and with
 * authorization and audit, interleaved round by round: what both cost together (bench/access-cost.ts). Every loop
 * is bounded by a count and a time.
 *   npm run bench                                       # 10k, 100k, 1M resources
 *   npm run bench -- --steps 10000,100000 --requests 1000
 *   npm run bench -- --quick                            # 2k and 10k resources, short rows, no report unless --out
 */
import { readFileSync, statSync } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import { buildApp } from '../src/app.js';
import { withoutAccessControl } from '../src/config.js';
import { startEmbeddedMongoProcess } from '../src/dev/mongo-process.js';
import { startLocalHedera } from '../src/dev/hedera/index.js';
import { createResourceValidator } from '../src/fhir/validation/index.js';
import type { LedgerLogger } from '../src/ledger/anchor-worker.js';
import { LedgerRuntime, localLedgerEndpoint } from '../src/ledger/ledger-runtime.js';
import { PROJECT_ROOT } from '../src/software.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { lineChartSvg, type Panel } from './chart.js';
import { loadPopulation } from './load-population.js';
import { machineDescription, markdownTable, measure, type Measurement } from './measure.js';
import { accessCostTable, benchIssuer, measureAccessCost, securedSettings, type AccessCostResult } from './access-cost.js';
import { residentMb } from './mongo-process.js';
import { generatePatient, mulberry32, patientId } from './population.js';
import { BENCH_SEARCHES, queryInputs } from './searches.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string' },
    seed: { type: 'string', default: '20261206' },
    concurrency: { type: 'string', default: '16' },
    requests: { type: 'string' },
    'max-seconds': { type: 'string' },
    /** Transaction Bundles of 100 Patients per step. */
    bundles: { type: 'string' },
    /** Interleaved rounds of the authorization-and-audit comparison per step (0: not measured). */
    'access-rounds': { type: 'string' },
    quick: { type: 'boolean', default: false },
    ledger: { type: 'boolean', default: true },
    out: { type: 'string' },
    chart: { type: 'string' },
    note: { type: 'string' },
  },
  allowNegative: true,
});
const quick = values.quick;
const steps = (values.steps ?? (quick ? '2000,10000' : '10000,100000,1000000')).split(',').map(Number);
const seed = Number(values.seed);
const concurrency = Number(values.concurrency);
const requests = Number(values.requests ?? (quick ? 300 : 3000));
const maxSeconds = Number(values['max-seconds'] ?? (quick ? 5 : 20));
const bundleCount = Number(values.bundles ?? (quick ? 5 : 30));
const accessRounds = Number(values['access-rounds'] ?? (quick ? 1 : 2));
const out = values.out ?? (quick ? undefined : 'docs/benchmarks.md');
const chartPath = values.chart ?? (quick ? undefined : 'docs/benchmarks-growth.svg');
for (const [name, value] of Object.entries({ seed, concurrency, requests, maxSeconds, bundleCount, accessRounds })) {
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`);
}
if (steps.some((s) => !Number.isInteger(s) || s <= 0) || steps.some((s, i) => i > 0 && s <= steps[i - 1]!)) {
  throw new Error('--steps: increasing positive integers, e.g. 10000,100000,1000000');
}

const BASE_URL = 'http://127.0.0.1';
const FHIR_JSON = 'application/fhir+json';
const started = Date.now();
const log = (message: string): void => console.error(`[bench +${((Date.now() - started) / 1000).toFixed(0)}s] ${message}`);
const quiet: LedgerLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: (_f, m) => log(`ledger: ${m}`) };

const TRANSACTION_ROW = 'transaction of 100 Patients (resources/s = 100 × throughput)';
const throughput = (m: Measurement): number => m.throughput;

interface StepResult {
  resources: number;
  patients: number;
  loadSeconds: number;
  loadedResources: number;
  rows: Measurement[];
  /** Authorization and audit off against on, at this population (undefined: --access-rounds 0). */
  access: AccessCostResult | undefined;
  serverRssMb: number;
  serverHeapMb: number;
  mongoRssMb: number | undefined;
  mongoAnonMb: number | undefined;
  dataFileMb: number | undefined;
}

/** Anonymous (heap) and file-backed (mapped data) resident memory of a process, from /proc (Linux). */
function residentParts(pid: number | undefined): { anonMb?: number; fileMb?: number } {
  if (pid === undefined) return {};
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number | undefined => {
      const m = new RegExp(`${name}:\\s+(\\d+) kB`).exec(status);
      return m ? Math.round(Number(m[1]) / 1024) : undefined;
    };
    return { anonMb: kb('RssAnon'), fileMb: kb('RssFile') };
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0];
  const dataDir = await mkdtemp(join(tmpdir(), 'fhir-bench-growth-'));
  const partialPath = join(tmpdir(), 'fhir-bench-growth-partial.md');
  const configured = process.env.MONGODB_URI;
  const mongoDescription = configured
    ? 'MONGODB_URI'
    : "the project's embedded MongoDB-compatible server (src/dev/mongo, LMDB storage) in a child process";
  const child = configured ? undefined : await startEmbeddedMongoProcess({ dataDir, log });
  const mongoUri = configured ?? child!.uri;
  const connection = await connectMongo(mongoUri, `bench_growth_${Date.now()}`);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const validator = await createResourceValidator({ profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)), log: () => {} });
  const net = values.ledger ? await startLocalHedera({ log: () => {} }) : undefined;
  const runtime = net
    ? new LedgerRuntime({
        db: connection.db,
        config: { topicId: undefined, batchMaxLeaves: 10_000, batchIntervalMs: 1000, leaseTtlMs: 15_000, retryMaxMs: 5_000 },
        endpoint: localLedgerEndpoint(net),
        baseUrl: BASE_URL,
        software: 'fhir-ledger-server',
        log: quiet,
      })
    : undefined;
  await runtime?.init();
  runtime?.start();
  // The hospital's identity provider: the app trusts its key, the bench asks it for a token now and then (a client
  // reuses its token for the token's lifetime; this one is renewed well before its 10 minutes are up).
  const issuer = await benchIssuer(BASE_URL);
  const database = { mongoUri, dbName: connection.db.databaseName };
  const app = await buildApp(
    {
      basePath: '',
      baseUrl: BASE_URL,
      bodyLimit: 64 * 1024 * 1024,
      logLevel: 'silent',
      referencePolicy: 'strict',
      ...withoutAccessControl(BASE_URL),
      ...securedSettings(BASE_URL),
    },
    { store, validator, logger: false, auth: issuer.auth, auditWorker: database, ...(runtime ? { ledger: runtime.service } : {}) },
  );
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  let token = { value: '', at: 0 };
  const authorization = async (): Promise<string> => {
    if (Date.now() - token.at > 5 * 60_000) token = { value: `Bearer ${await issuer.token('system/*.cruds')}`, at: Date.now() };
    return token.value;
  };
  const call = async (method: string, path: string, body?: unknown, expected = 200): Promise<Response> => {
    const res = await fetch(`${address}${path}`, {
      method,
      headers: { accept: FHIR_JSON, authorization: await authorization(), ...(body === undefined ? {} : { 'content-type': FHIR_JSON }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status !== expected) throw new Error(`${method} ${path}: ${res.status} ${(await res.text()).slice(0, 300)}`);
    return res;
  };

  /** Waits until a version written now is anchored: the backlog before it is then anchored too (bounded). */
  const ledgerCaughtUp = async (deadlineMs: number): Promise<number> => {
    if (!runtime) return 0;
    const t0 = Date.now();
    const probe = (await (await call('POST', '/Patient', { resourceType: 'Patient', name: [{ family: 'Probe' }] }, 201)).json()) as {
      id: string;
    };
    while (Date.now() - t0 < deadlineMs) {
      const verdict = (await (await call('GET', `/Patient/${probe.id}/_history/1/$verify`)).json()) as Parameters;
      const status = verdict.parameter?.find((p) => p.name === 'status')?.valueCode;
      if (status === 'anchored') return (Date.now() - t0) / 1000;
      if (status === 'failed') throw new Error('the probe failed verification');
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`the ledger did not catch up within ${deadlineMs / 1000} s`);
  };

  let loadedPatients = 0;
  let storedResources = 0;
  // Created patients are numbered beyond anything the population will reach.
  let nextNewPatient = 50_000_000;
  const results: StepResult[] = [];
  for (const target of steps) {
    let loadSeconds = 0;
    let loadedResources = 0;
    while (storedResources < target) {
      // ~4.5 resources a patient; never overshoot by more than a few patients.
      const more = Math.max(1, Math.ceil((target - storedResources) / 4.6));
      log(`loading patients ${loadedPatients}..${loadedPatients + more}`);
      const load = await loadPopulation({
        store,
        baseUrl: BASE_URL,
        seed,
        from: loadedPatients,
        to: loadedPatients + more,
        validateEvery: 1000,
        validator,
        progress: (done, resources) => {
          if (done % 50_000 === 0)
            log(
              `  ${loadedPatients + done} patients, ${storedResources + resources} resources, mongo RSS ${residentMb(child?.pid) ?? '?'} MB`,
            );
        },
      });
      loadedPatients += more;
      storedResources += load.resources;
      loadSeconds += load.seconds;
      loadedResources += load.resources;
    }
    const anchorWait = await ledgerCaughtUp(3_600_000);
    log(
      `step ${target}: ${storedResources} resources (${loadedPatients} patients) loaded at ${(loadedResources / loadSeconds).toFixed(0)}/s; ledger caught up in ${anchorWait.toFixed(0)} s`,
    );

    const rows: Measurement[] = [];
    const record = (m: Measurement): void => {
      rows.push(m);
      log(`  ${m.name}: ${m.throughput.toFixed(0)}/s, p50 ${m.p50.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms`);
    };
    const bounded = { maxSeconds };
    const pick = mulberry32(seed ^ target);
    const anyPatient = (): string => patientId(Math.floor(pick() * loadedPatients));
    // A warm-up so that JIT and caches do not count against the first row.
    await measure(
      'warm-up',
      Math.min(requests, 500),
      concurrency,
      async () => void (await (await call('GET', `/Patient/${anyPatient()}`)).arrayBuffer()),
      { maxSeconds: 5 },
    );
    record(
      await measure(
        'create Patient',
        requests,
        concurrency,
        async () => {
          const { id: _id, ...patient } = generatePatient(seed, nextNewPatient++).patient;
          await (await call('POST', '/Patient', patient, 201)).arrayBuffer();
        },
        bounded,
      ),
    );
    record(
      await measure(
        'read Patient',
        requests,
        concurrency,
        async () => void (await (await call('GET', `/Patient/${anyPatient()}`)).arrayBuffer()),
        bounded,
      ),
    );
    record(
      await measure(
        'search Patient?family=Smith&_count=20',
        requests,
        concurrency,
        async () => {
          const bundle = (await (await call('GET', '/Patient?family=Smith&_count=20')).json()) as Bundle;
          if (bundle.resourceType !== 'Bundle') throw new Error('family=Smith: not a Bundle');
        },
        bounded,
      ),
    );
    // The same read and search answered in FHIR XML (src/fhir/xml: the resource is stored and handled as JSON and
    // written as XML by the reply), against JSON, interleaved round by round with the order alternating: rows run one
    // after the other are skewed by what the row before left behind (the creates' audit and anchoring work).
    const xmlGet = async (path: string, root: string): Promise<void> => {
      const res = await fetch(`${address}${path}`, { headers: { accept: FHIR_XML, authorization: await authorization() } });
      const text = await res.text();
      if (res.status !== 200 || !text.startsWith(`<?xml version="1.0" encoding="UTF-8"?><${root} `)) {
        throw new Error(`GET ${path} as XML: ${res.status} ${text.slice(0, 300)}`);
      }
    };
    const jsonGet = async (path: string): Promise<void> => void (await (await call('GET', path)).arrayBuffer());
    const formatPairs: Array<[string, (format: 'json' | 'xml') => Promise<void>]> = [
      [
        'read Patient',
        async (format) => (format === 'xml' ? xmlGet(`/Patient/${anyPatient()}`, 'Patient') : jsonGet(`/Patient/${anyPatient()}`)),
      ],
      [
        'search Patient?family=Smith&_count=20',
        async (format) =>
          format === 'xml' ? xmlGet('/Patient?family=Smith&_count=20', 'Bundle') : jsonGet('/Patient?family=Smith&_count=20'),
      ],
    ];
    for (const [name, op] of formatPairs) {
      const samples: Record<'json' | 'xml', Measurement[]> = { json: [], xml: [] };
      const perRound = Math.max(100, Math.floor(requests / FORMAT_ROUNDS));
      for (let round = 0; round < FORMAT_ROUNDS; round++) {
        for (const format of round % 2 === 0 ? (['json', 'xml'] as const) : (['xml', 'json'] as const)) {
          samples[format].push(
            await measure(name, perRound, concurrency, async () => op(format), { maxSeconds: maxSeconds / FORMAT_ROUNDS }),
          );
        }
      }
      record(medianRow(`${name}, ${FORMAT_ROUNDS} rounds interleaved: JSON`, samples.json));
      record(medianRow(`${name}, ${FORMAT_ROUNDS} rounds interleaved: XML`, samples.xml));
    }
    const inputsBase = { patients: loadedPatients, loadedFrom: new Date(started), loadedTo: new Date() };
    for (const [n, search] of BENCH_SEARCHES.entries()) {
      if (search.deepPage) continue;
      // A search the server stops at SEARCH_TIMEOUT_MS (400 too-costly), or answers 503 because the database did not
      // answer in time, is counted and named in the row, not fatal: at a large population that is a result worth
      // reporting. Anything else (a 500) stops the benchmark.
      let stopped = 0;
      let unavailable = 0;
      const m = await measure(
        `search ${search.name}`,
        requests,
        concurrency,
        async (i) => {
          const path = `/${search.type}?${search.query(queryInputs(seed, n, i, inputsBase))}`;
          const res = await fetch(`${address}${path}`, { headers: { accept: FHIR_JSON, authorization: await authorization() } });
          const text = await res.text();
          if (res.status === 400 && text.includes('"too-costly"')) stopped++;
          else if (res.status === 503) unavailable++;
          else if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 300)}`);
        },
        bounded,
      );
      const notes = [
        ...(stopped > 0 ? [`${stopped} of ${m.count} stopped at SEARCH_TIMEOUT_MS (400 too-costly)`] : []),
        ...(unavailable > 0 ? [`${unavailable} of ${m.count} answered 503 (database unavailable)`] : []),
      ];
      record(notes.length > 0 ? { ...m, name: `${m.name} — ${notes.join('; ')}` } : m);
    }
    const tx = await measure(
      'transaction of 100 Patients',
      bundleCount,
      Math.min(concurrency, 4),
      async () => {
        const entry = Array.from({ length: 100 }, () => {
          const { id: _id, ...patient } = generatePatient(seed, nextNewPatient++).patient;
          return { resource: patient, request: { method: 'POST', url: 'Patient' } };
        });
        const response = (await (await call('POST', '/', { resourceType: 'Bundle', type: 'transaction', entry })).json()) as Bundle;
        if (response.entry?.length !== 100) throw new Error('transaction: not 100 entries back');
      },
      { maxSeconds: maxSeconds * 2 },
    );
    record({ ...tx, name: TRANSACTION_ROW });

    const access =
      accessRounds > 0
        ? await measureAccessCost({
            store,
            database,
            mongoPid: child?.pid,
            validator,
            baseUrl: BASE_URL,
            seed,
            patients: loadedPatients,
            requests,
            concurrency,
            maxSeconds,
            rounds: accessRounds,
            // Beyond the population and this bench's own creates: ids never collide.
            firstNewPatient: 100_000_000 + results.length * 10_000_000,
            log,
          })
        : undefined;
    // Creates, transactions, probes and the comparison's creates (AuditEvents are not counted: they have no heads).
    storedResources = await store.heads.estimatedDocumentCount();

    const server = residentParts(process.pid);
    const mongo = residentParts(child?.pid);
    let dataFileMb: number | undefined;
    try {
      dataFileMb = Math.round((statSync(join(dataDir, 'data.mdb')).blocks * 512) / 2 ** 20);
    } catch {
      dataFileMb = undefined;
    }
    results.push({
      resources: target,
      patients: loadedPatients,
      loadSeconds,
      loadedResources,
      rows,
      access,
      serverRssMb: residentMb(process.pid) ?? 0,
      serverHeapMb: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
      mongoRssMb: residentMb(child?.pid),
      mongoAnonMb: mongo.anonMb,
      dataFileMb,
    });
    log(
      `  memory: server ${server.anonMb ?? '?'} MB anon; MongoDB ${mongo.anonMb ?? '?'} MB anon + ${mongo.fileMb ?? '?'} MB mapped file pages; data file ${dataFileMb ?? '?'} MB`,
    );
    // The steps so far, as the report will show them: an hour-long run that fails at its last step keeps the rest.
    await writeFile(partialPath, report(results, loadAtStart, mongoDescription));
    log(`  steps so far written to ${partialPath}`);
  }

  await app.close();
  await runtime?.stop();
  await net?.close();
  await connection.db.dropDatabase().catch(() => undefined);
  await connection.close();
  await child?.stop(30_000);
  await rm(dataDir, { recursive: true, force: true });

  const section = report(results, loadAtStart, mongoDescription);
  console.log(section);
  if (chartPath) {
    await writeFile(chartPath, chart(results));
    log(`chart written to ${chartPath}`);
  }
  if (out) {
    await appendFile(out, `\n${section}`);
    log(`appended to ${out}`);
  }
}

/** The rows the chart draws (the tables hold every row): the issue's four, and three typical indexed searches. */
const CHARTED = [
  'create Patient',
  'read Patient',
  'search Patient?family=Smith&_count=20',
  TRANSACTION_ROW,
  'search Patient by identifier (system|MRN)',
  'search Encounters of a patient in a date range',
  'search active MedicationRequests of a patient',
];

const FHIR_XML = 'application/fhir+xml';
/** Rounds of the XML-against-JSON comparison, each format measured once per round, the order alternating. */
const FORMAT_ROUNDS = 6;

/** One row from several samples of the same operation: medians of their throughput and percentiles. */
function medianRow(name: string, samples: readonly Measurement[]): Measurement {
  const median = (pick: (m: Measurement) => number): number => {
    const sorted = samples.map(pick).sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  return {
    name,
    count: samples.reduce((sum, m) => sum + m.count, 0),
    concurrency: samples[0]?.concurrency ?? 0,
    seconds: samples.reduce((sum, m) => sum + m.seconds, 0),
    throughput: median((m) => m.throughput),
    p50: median((m) => m.p50),
    p95: median((m) => m.p95),
    p99: median((m) => m.p99),
  };
}

/** XML against JSON at one population: the same read and search, medians of interleaved rounds. */
function xmlComparison(rows: readonly Measurement[]): string[] {
  const lines = ['| operation | JSON /s | XML /s | XML / JSON throughput | JSON p50 ms | XML p50 ms |', '|---|---:|---:|---:|---:|---:|'];
  for (const json of rows.filter((r) => r.name.endsWith('interleaved: JSON'))) {
    const base = json.name.replace(/, \d+ rounds interleaved: JSON$/, '');
    const xml = rows.find((r) => r.name === json.name.replace(/JSON$/, 'XML'));
    if (!xml) continue;
    lines.push(
      `| ${base.replace(/\|/g, '\\|')} | ${json.throughput.toFixed(0)} | ${xml.throughput.toFixed(0)} | ${(xml.throughput / json.throughput).toFixed(2)} | ${json.p50.toFixed(1)} | ${xml.p50.toFixed(1)} |`,
    );
  }
  return lines.length > 2
    ? [
        `FHIR XML against JSON at this population: the same requests in ${FORMAT_ROUNDS} interleaved rounds (order alternating), medians:`,
        '',
        ...lines,
        '',
      ]
    : [];
}

function chart(results: StepResult[]): string {
  const names = CHARTED.filter((name) => results[0]?.rows.some((r) => r.name === name));
  // Transactions are drawn in resources/s (100 a Bundle), like the issue's target.
  const label = (name: string): string => (name === TRANSACTION_ROW ? 'transaction of 100 Patients (resources/s)' : name);
  const series = (metric: (m: Measurement) => number): Panel['series'] =>
    names.map((name) => ({
      name: label(name),
      points: results.flatMap((s) => {
        // (A row may carry a note after its name, e.g. how many of its searches were stopped.)
        const row = s.rows.find((r) => r.name === name || r.name.startsWith(`${name} — `));
        const y = row ? (name === TRANSACTION_ROW && metric === throughput ? row.throughput * 100 : metric(row)) : 0;
        return y > 0 ? [{ x: s.resources, y }] : [];
      }),
    }));
  const memory: Panel = {
    title: 'Resident memory',
    yLabel: 'MB',
    series: [
      { name: 'server (FHIR) RSS', points: results.map((s) => ({ x: s.resources, y: s.serverRssMb })) },
      { name: 'MongoDB RSS', points: results.map((s) => ({ x: s.resources, y: s.mongoRssMb ?? 0 })) },
      { name: 'MongoDB anonymous (heap)', points: results.map((s) => ({ x: s.resources, y: s.mongoAnonMb ?? 0 })) },
    ],
  };
  return lineChartSvg([
    { title: `Throughput, ${concurrency} connections`, yLabel: 'requests/s', series: series(throughput), logY: true },
    { title: 'Median latency', yLabel: 'p50 (ms)', series: series((m) => m.p50), logY: true },
    { title: '99th percentile latency', yLabel: 'p99 (ms)', series: series((m) => m.p99), logY: true },
    memory,
  ]);
}

function report(results: StepResult[], loadAtStart: number, mongo: string): string {
  const lines = [
    `## ${new Date().toISOString()} — npm run bench (growth), ${results.map((r) => r.resources.toLocaleString('en')).join(' / ')} resources, seed ${seed}`,
    '',
    `Machine: ${machineDescription()}; 1-minute load average ${loadAtStart.toFixed(2)} when the run started${values.note ? ` (${values.note})` : ''}. ` +
      'The benchmark process (FHIR server, ledger and HTTP client) and MongoDB share these cores.',
    '',
    `MongoDB: ${mongo}. Authorization on (a bench identity provider's ES256 token, renewed every 5 minutes), audit on, validation on, strict references, ledger ${values.ledger ? 'on (local network, every version anchored; the loaded population anchored before each step is measured)' : 'OFF'}. ` +
      `${concurrency} connections, at most ${requests} requests or ${maxSeconds} s per row.`,
    '',
    `![throughput, latency and memory against population size](${chartPath ? chartPath.replace(/^docs\//, '') : 'benchmarks-growth.svg'})`,
    '',
  ];
  for (const r of results) {
    lines.push(
      `### ${r.resources.toLocaleString('en')} resources (${r.patients.toLocaleString('en')} patients)`,
      '',
      `Loaded at ${(r.loadedResources / r.loadSeconds).toFixed(0)} resources/s. Memory after the step: server RSS ${r.serverRssMb} MB (JS heap ${r.serverHeapMb} MB); ` +
        `MongoDB RSS ${r.mongoRssMb ?? '?'} MB, of which ${r.mongoAnonMb ?? '?'} MB anonymous (its heap) and the rest mapped pages of the data file (${r.dataFileMb ?? '?'} MB on disk).`,
      '',
      markdownTable(r.rows),
      '',
      ...xmlComparison(r.rows),
    );
    if (r.access) {
      lines.push(
        `Authorization and audit, off against on, at this population: the same requests against two more apps on this database, ` +
          `in ${r.access.rows[0]?.off.length ?? 0} interleaved rounds, medians (the table above is the "on" side, as \`npm start\` runs). ` +
          `CPU per request counts this process (server, audit worker and HTTP client) and the MongoDB process.`,
        '',
        accessCostTable(r.access),
        '',
      );
    }
  }
  const first = results[0];
  const last = results.at(-1);
  if (first && last && first !== last) {
    lines.push(
      `### From ${first.resources.toLocaleString('en')} to ${last.resources.toLocaleString('en')} resources`,
      '',
      '| operation | throughput ratio (last / first) |',
      '|---|---:|',
    );
    for (const row of first.rows) {
      const base = row.name.split(' — ')[0]!;
      const later = last.rows.find((r) => r.name === base || r.name.startsWith(`${base} — `));
      if (later) lines.push(`| ${row.name.replace(/\|/g, '\\|')} | ${(later.throughput / row.throughput).toFixed(2)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
