/**
 * The same searches against two or more running servers over one database, in interleaved rounds, to compare
 * builds or settings on a shared machine (where only interleaving makes two runs comparable): each round runs
 * every search on every server, the servers' order reversed every other round; the report gives each server's
 * median over the rounds of its per-round p50 and throughput. With --breakdown it also times, at the store
 * (MONGODB_URI, no HTTP), the queries a search may run: the page (_count + 1 by keyset), a count bounded at the
 * estimate limit, and the full count.
 *
 *   node dist/bench/compare-searches.js --db bench_50k --patients 50000 --load          # load once (resumable)
 *   node dist/bench/compare-searches.js --server before=http://127.0.0.1:8101 --server after=http://127.0.0.1:8102 \
 *     --search 'Patient?family=Smith&_count=20' --search 'Patient?_count=20' --rounds 7 --requests 40 --breakdown \
 *     --pid before=1234 --pid after=1235 --mongo-pid 1200                                  # CPU per request too
 */
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Bundle } from '@medplum/fhirtypes';
import { UNRESTRICTED_ACCESS } from '../src/fhir/access/access-policy.js';
import type { FhirContext } from '../src/fhir/context.js';
import { clientResourceTypes } from '../src/fhir/resource-types.js';
import { DEFAULT_SEARCH_SETTINGS, ESTIMATE_COUNT_LIMIT, parseForScope, storeQueryOf } from '../src/fhir/search/search.js';
import { createResourceValidator } from '../src/fhir/validation/index.js';
import { PROJECT_ROOT } from '../src/software.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { countMatches, findPage } from '../src/store/search/execute.js';
import { loadPopulation, type LoadResult } from './load-population.js';
import { machineDescription, measure } from './measure.js';
import { childCpuMs } from './mongo-process.js';

const { values } = parseArgs({
  options: {
    /** label=URL of a running server (repeat: two or more). */
    server: { type: 'string', multiple: true, default: [] },
    /** A search as [type]?query (repeat). */
    search: { type: 'string', multiple: true, default: [] },
    rounds: { type: 'string', default: '5' },
    /** Requests per search, server and round. */
    requests: { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '2' },
    /** The database the servers use (for --load and --breakdown, through MONGODB_URI). */
    db: { type: 'string', default: 'bench_compare' },
    patients: { type: 'string', default: '50000' },
    seed: { type: 'string', default: '20261125' },
    /** Load the population into --db first (skipped when bench_population records it; resumes an interrupted load). */
    load: { type: 'boolean', default: false },
    /** Time the page query and the counts at the store, interleaved, --rounds times each. */
    breakdown: { type: 'boolean', default: false },
    /** label=PID of a server's process (repeat), and the database's process: CPU time per request (Linux /proc). */
    pid: { type: 'string', multiple: true, default: [] },
    'mongo-pid': { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const patients = Number(values.patients);
const seed = Number(values.seed);
const started = Date.now();
const log = (message: string): void => console.error(`[compare +${((Date.now() - started) / 1000).toFixed(0)}s] ${message}`);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function connect(): Promise<{ store: ResourceStore; close: () => Promise<void> }> {
  const uri = process.env.MONGODB_URI;
  if (!uri) throw new Error('--load and --breakdown need MONGODB_URI (the database the servers use)');
  const connection = await connectMongo(uri, values.db);
  // The store-level timings may take long on a slow planner: a minute per query before MongoDB stops one.
  const store = new ResourceStore(connection.db, connection.supportsTransactions, 60_000);
  return { store, close: () => connection.close() };
}

/** Loads the population as bench/run.ts does, recorded in bench_population so that either tool reuses it. */
async function load(): Promise<void> {
  const { store, close } = await connect();
  await store.ensureIndexes();
  const populations = store.db.collection<{ _id: string; load: LoadResult }>('bench_population');
  const key = `seed ${seed}, ${patients} patients`;
  if (await populations.findOne({ _id: key })) {
    log(`${values.db} already holds ${key}`);
  } else {
    const present = await store.heads.countDocuments({ type: 'Patient' });
    const from = Math.max(0, present - 1000);
    log(`loading ${key} into ${values.db}${present > 0 ? `, resuming at patient ${from}` : ''}`);
    const result = await loadPopulation({
      store,
      baseUrl: 'http://127.0.0.1',
      seed,
      from,
      to: patients,
      skipExisting: present > 0,
      progress: (done, resources) => log(`  ${done} patients, ${resources} resources`),
    });
    await populations.insertOne({ _id: key, load: result });
    log(`loaded ${result.resources} resources in ${result.seconds.toFixed(0)} s`);
  }
  await close();
}

interface Row {
  search: string;
  server: string;
  p50: number[];
  throughput: number[];
  total: string;
  failed: number;
  requests: number;
  /** CPU ms per request of the server's process and of the database's, per round (when their pids are given). */
  serverCpu: number[];
  mongoCpu: number[];
}

const pids = new Map(values.pid.map((p) => [p.slice(0, p.indexOf('=')), Number(p.slice(p.indexOf('=') + 1))]));
const mongoPid = values['mongo-pid'] ? Number(values['mongo-pid']) : undefined;

async function compare(servers: Array<[string, string]>): Promise<Row[]> {
  const rows = new Map<string, Row>();
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    for (const search of values.search) {
      for (const [label, url] of order) {
        let total = 'absent';
        let failed = 0;
        const cpuBefore = { server: childCpuMs(pids.get(label)), mongo: childCpuMs(mongoPid) };
        // A failed request (e.g. a 400 too-costly when a query outlives SEARCH_TIMEOUT_MS) is timed and counted.
        const m = await measure(`${label} ${search}`, requests, concurrency, async () => {
          const res = await fetch(`${url}/${search}`, { headers: { accept: 'application/fhir+json' } });
          if (res.status !== 200) {
            failed++;
            const text = await res.text();
            if (failed === 1) log(`${label} ${search}: ${res.status} ${text.slice(0, 200)}`);
            return;
          }
          const bundle = (await res.json()) as Bundle;
          total = bundle.total === undefined ? 'absent' : String(bundle.total);
        });
        const cpu = { server: childCpuMs(pids.get(label)) - cpuBefore.server, mongo: childCpuMs(mongoPid) - cpuBefore.mongo };
        const key = `${search}\u0000${label}`;
        const row = rows.get(key) ?? {
          search,
          server: label,
          p50: [],
          throughput: [],
          total,
          failed: 0,
          requests: 0,
          serverCpu: [],
          mongoCpu: [],
        };
        row.serverCpu.push(cpu.server / Math.max(1, m.count));
        row.mongoCpu.push(cpu.mongo / Math.max(1, m.count));
        row.p50.push(m.p50);
        row.throughput.push(m.throughput);
        row.total = total;
        row.failed += failed;
        row.requests += m.count;
        rows.set(key, row);
      }
    }
    log(`round ${round + 1}/${rounds} done (load ${loadavg()[0].toFixed(1)})`);
  }
  return [...rows.values()];
}

/** Store-level times of a search's queries, interleaved: the page, the bounded count, the full count. */
async function breakdown(): Promise<string[]> {
  const { store, close } = await connect();
  const ctx: FhirContext = {
    store,
    validator: await createResourceValidator({ profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)), log: () => {} }),
    baseUrl: 'http://127.0.0.1',
    resourceTypes: clientResourceTypes(),
    referencePolicy: 'lenient',
    now: () => new Date(),
    newId: () => randomUUID(),
    access: UNRESTRICTED_ACCESS,
  };
  const lines = [
    `| search | matches | page query (_count + 1) | count bounded at ${ESTIMATE_COUNT_LIMIT + 1} | full count |`,
    '|---|---:|---:|---:|---:|',
  ];
  for (const search of values.search) {
    const [type, query] = search.split('?');
    const parsed = parseForScope(
      ctx,
      DEFAULT_SEARCH_SETTINGS,
      { types: [type], path: type },
      { params: [...new URLSearchParams(query).entries()], strict: true },
    );
    const resolved = await storeQueryOf(ctx, parsed);
    const times: Record<'page' | 'bounded' | 'full', number[]> = { page: [], bounded: [], full: [] };
    let matches: number | undefined;
    const steps: Array<['page' | 'bounded' | 'full', () => Promise<unknown>]> = [
      ['page', () => findPage(store, resolved, parsed.count, { kind: 'first' })],
      ['bounded', () => countMatches(store, resolved, ESTIMATE_COUNT_LIMIT + 1)],
      ['full', async () => (matches = await countMatches(store, resolved))],
    ];
    for (let round = 0; round < rounds; round++) {
      for (const [name, run] of round % 2 === 0 ? steps : [...steps].reverse()) {
        const t0 = performance.now();
        // A query that outlives the time limit is recorded as such (Infinity) rather than ending the run.
        const ok = await run().then(
          () => true,
          (error: unknown) => (log(`${search} ${name}: ${(error as Error).message}`), false),
        );
        times[name].push(ok ? performance.now() - t0 : Infinity);
      }
    }
    const ms = (xs: number[]): string => (Number.isFinite(median(xs)) ? `${median(xs).toFixed(1)} ms` : 'timed out (60 s)');
    lines.push(`| \`${search}\` | ${matches ?? '?'} | ${ms(times.page)} | ${ms(times.bounded)} | ${ms(times.full)} |`);
  }
  await close();
  return lines;
}

async function main(): Promise<void> {
  if (values.load) await load();
  const servers = values.server.map((s): [string, string] => {
    const at = s.indexOf('=');
    if (at < 1) throw new Error(`--server ${s}: give label=URL`);
    return [s.slice(0, at), s.slice(at + 1).replace(/\/$/, '')];
  });
  const out: string[] = [`${new Date().toISOString()} — ${machineDescription()}; load average at start ${loadavg()[0].toFixed(1)}`];
  if (servers.length > 0 && values.search.length > 0) {
    const rows = await compare(servers);
    out.push(
      '',
      `${rounds} interleaved rounds of ${requests} requests per search and server, ${concurrency} in flight; medians over the rounds.`,
      '',
      'CPU per request: the server process and the database process (from /proc, when their pids are given), median over the rounds; ' +
        'steadier than wall time on a shared machine.',
      '',
      '| search | server | p50 (ms) | throughput (/s) | CPU/request server + database (ms) | Bundle.total | failed | per-round p50s |',
      '|---|---|---:|---:|---:|---|---:|---|',
      ...rows.map(
        (r) =>
          `| \`${r.search}\` | ${r.server} | ${median(r.p50).toFixed(1)} | ${median(r.throughput).toFixed(1)} | ` +
          `${pids.has(r.server) ? median(r.serverCpu).toFixed(1) : '?'} + ${mongoPid !== undefined ? median(r.mongoCpu).toFixed(1) : '?'} | ` +
          `${r.total} | ${r.failed} of ${r.requests} | ${r.p50.map((x) => x.toFixed(0)).join(', ')} |`,
      ),
    );
  }
  // Printed before the breakdown, which may take long: what is measured is not lost to what follows.
  console.log(out.join('\n'));
  if (values.breakdown)
    console.log(['', `At the store, ${rounds} interleaved runs of each query, medians:`, '', ...(await breakdown())].join('\n'));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
