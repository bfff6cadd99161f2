/**
 * The embedded MongoDB's query engine alone, through the official driver: the two queries a FHIR search sends
 * (a page: find with sort + limit; its total: countDocuments, i.e. aggregate [$match, $limit, $group]), built by
 * the store's own code (src/store/search/*) from parsed FHIR searches, against N Patients stored as the FHIR
 * store stores them (heads and versions, with ensureIndexes' indexes). No HTTP and no FHIR rendering: what is
 * timed is the driver, the wire and the engine, all in this process, so a CPU profile shows the engine's share.
 *
 *   npm run build && node --expose-gc dist/bench/query-engine.js --patients 10000 --seconds 10
 *   node dist/bench/query-engine.js --patients 10000 --only family --what search --cpu-profile /tmp/family.cpuprofile
 *   node dist/bench/cpuprofile-summary.js /tmp/family.cpuprofile
 *
 * Queries are sequential (one in flight): throughput is 1 / latency, steadier on a shared machine than a
 * concurrent run. Each row's values vary per query (a different family name, identifier, month...), as a
 * server's searches do, so caches keyed by exact values do not flatter it.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { parseArgs } from 'node:util';
import type { Db, Document } from 'mongodb';
import { startEmbeddedMongo } from '../src/dev/mongo/index.js';
import { clientResourceTypes } from '../src/fhir/resource-types.js';
import { parseSearch } from '../src/fhir/search/parse.js';
import { searchRegistry } from '../src/fhir/search/registry.js';
import { connectMongo } from '../src/store/mongo.js';
import { insertNewVersions } from '../src/store/bulk-load.js';
import { ResourceStore, type NewVersion } from '../src/store/resource-store.js';
import { compileFilter, fullSort, sortDocument } from '../src/store/search/compile.js';
import { countMatches, findPage } from '../src/store/search/execute.js';
import type { StoreQuery } from '../src/store/search/query.js';
import { firstVersionOf } from './load-population.js';
import { measure, type Measurement } from './measure.js';
import { ACCENTED_FAMILY_NAMES, FAMILY_NAMES, generatePatient } from './population.js';
import { BENCH_SEARCHES, queryInputs, type QueryInputs } from './searches.js';

const { values } = parseArgs({
  options: {
    patients: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '20261125' },
    /** Seconds per row and query kind. */
    seconds: { type: 'string', default: '10' },
    /** Comma-separated row names (family, identifier, family3, gender-birthdate, name-birthdate, birthdate-range). */
    only: { type: 'string' },
    /** What to time per row: find, count, or both (a search: page then total). */
    what: { type: 'string', default: 'find,count,search' },
    /** Writes a CPU profile of the timed runs only (not the load) to this .cpuprofile file. */
    'cpu-profile': { type: 'string' },
    /** Prints, per row, the plan of its first query's page and count (explain executionStats) before timing. */
    explain: { type: 'boolean', default: false },
  },
});

/** serverStatus metrics.query.planCache.classic (hits, misses, replanned, skipped); empty where the server has none. */
async function planCacheCounters(db: Db): Promise<Record<string, number>> {
  const status = await db.admin().command({ serverStatus: 1 });
  const classic = (status.metrics as Document | undefined)?.query?.planCache?.classic as Document | undefined;
  return Object.fromEntries(Object.entries(classic ?? {}).map(([k, v]) => [k, Number(v)]));
}

/** "LIMIT < FETCH < IXSCAN(name)" and the keys/documents examined, from an explain. */
function planSummary(explain: Document): string {
  const stages: string[] = [];
  const walk = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    const n = node as Document;
    if (typeof n.stage === 'string') stages.push(n.indexName ? `${n.stage}(${n.indexName})` : n.stage);
    walk(n.inputStage ?? n.queryPlan);
  };
  const cursor = (explain.stages as Document[] | undefined)?.[0]?.$cursor as Document | undefined;
  const stats = (explain.executionStats ?? cursor?.executionStats) as Document | undefined;
  walk(stats?.executionStages ?? (explain.queryPlanner ?? cursor?.queryPlanner)?.winningPlan);
  return `${stages.join(' < ')}; keys/docs examined ${stats?.totalKeysExamined}/${stats?.totalDocsExamined}`;
}

/** A CPU profiler over the timed runs (node --cpu-prof would also profile the load, which dwarfs them). */
async function startProfiler(): Promise<() => Promise<void>> {
  const file = values['cpu-profile'];
  if (!file) return async () => undefined;
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return async () => {
    const { profile } = (await post('Profiler.stop')) as { profile: object };
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

const BASE_URL = 'http://127.0.0.1';
const CHEAP_TOTAL_LIMIT = 10_000; // src/fhir/search/search.ts: the total a search counts up to

interface Row {
  name: string;
  query(inputs: QueryInputs): string;
}

const familyOf = (q: QueryInputs): string =>
  q.rng() < 1 / 7
    ? ACCENTED_FAMILY_NAMES[Math.floor(q.rng() * ACCENTED_FAMILY_NAMES.length)]
    : FAMILY_NAMES[Math.floor(q.rng() * FAMILY_NAMES.length)];

const patientSearch = (name: string): Row => {
  const search = BENCH_SEARCHES.find((s) => s.name === name);
  if (!search) throw new Error(`no bench search named ${name}`);
  return { name, query: (q) => search.query(q) };
};

const ROWS: Record<string, Row> = {
  // The issue's query: GET Patient?family=Smith&_count=20, a whole family name.
  family: { name: 'Patient?family=<family name>', query: (q) => `family=${encodeURIComponent(familyOf(q))}` },
  identifier: patientSearch('Patient by identifier (system|MRN)'),
  family3: patientSearch('Patient by family-name prefix (3 letters)'),
  'gender-birthdate': patientSearch('Patient gender + birthdate (month)'),
  'name-birthdate': patientSearch('Patient name + birthdate (year)'),
  'birthdate-range': patientSearch('Patient birthdate range (ge&le, 1 month)'),
};

function storeQuery(queryString: string): StoreQuery {
  const params = [...new URLSearchParams(queryString).entries()];
  const parsed = parseSearch(['Patient'], params, {
    registry: searchRegistry(),
    baseUrl: BASE_URL,
    hostedTypes: clientResourceTypes(),
    defaultCount: 20,
    maxCount: 1000,
    now: new Date(),
  });
  if (parsed.problems.length > 0) throw new Error(`${queryString}: ${JSON.stringify(parsed.problems)}`);
  return { types: parsed.types, where: parsed.where, sort: parsed.sort };
}

async function loadPatients(store: ResourceStore, seed: number, count: number): Promise<{ seconds: number; from: Date; to: Date }> {
  const started = performance.now();
  const from = new Date();
  let chunk: NewVersion[] = [];
  for (let i = 0; i < count; i++) {
    chunk.push(firstVersionOf(generatePatient(seed, i).patient, new Date(), BASE_URL));
    if (chunk.length === 1000) {
      await insertNewVersions(store, chunk);
      chunk = [];
    }
  }
  await insertNewVersions(store, chunk);
  return { seconds: (performance.now() - started) / 1000, from, to: new Date() };
}

async function main(): Promise<void> {
  const patients = Number(values.patients);
  const seed = Number(values.seed);
  const seconds = Number(values.seconds);
  const kinds = values.what.split(',');
  const rows = (values.only ? values.only.split(',') : Object.keys(ROWS)).map((key) => {
    const row = ROWS[key];
    if (!row) throw new Error(`unknown row ${key}; rows: ${Object.keys(ROWS).join(', ')}`);
    return row;
  });

  const mongo = await startEmbeddedMongo({ port: 0 });
  const connection = await connectMongo(mongo.uri, 'query_engine_bench');
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const load = await loadPatients(store, seed, patients);
  console.log(JSON.stringify({ patients, loadSeconds: Math.round(load.seconds * 10) / 10 }));

  const results: Array<Measurement & { row: string; kind: string; cpuMs: number }> = [];
  const stopProfiler = await startProfiler();
  for (const [r, row] of rows.entries()) {
    const queries: StoreQuery[] = [];
    for (let i = 0; i < 500; i++) {
      queries.push(storeQuery(row.query(queryInputs(seed, r, i, { patients, loadedFrom: load.from, loadedTo: load.to }))));
    }
    if (values.explain) {
      const q = queries[0]!;
      const filter = compileFilter(q);
      const collection = store.currentOf(q.types);
      const page = await collection
        .find(filter)
        .sort(sortDocument(fullSort(q.sort)))
        .limit(21)
        .explain('executionStats');
      const count = await connection.db.command({
        explain: {
          aggregate: collection.collectionName,
          pipeline: [{ $match: filter }, { $limit: CHEAP_TOTAL_LIMIT }, { $group: { _id: 1, n: { $sum: 1 } } }],
          cursor: {},
        },
        verbosity: 'executionStats',
      });
      console.log(JSON.stringify({ row: row.name, page: planSummary(page), count: planSummary(count) }));
    }
    const ops: Record<string, (q: StoreQuery) => Promise<void>> = {
      find: async (q) => void (await findPage(store, q, 20, { kind: 'first' })),
      count: async (q) => void (await countMatches(store, q, CHEAP_TOTAL_LIMIT)),
      search: async (q) => {
        await findPage(store, q, 20, { kind: 'first' });
        await countMatches(store, q, CHEAP_TOTAL_LIMIT);
      },
    };
    for (const kind of kinds) {
      const op = ops[kind];
      if (!op) throw new Error(`unknown kind ${kind}`);
      // Each timed run starts from a collected heap (with node --expose-gc): the load and the previous run leave
      // garbage whose collection would otherwise be billed to whichever run comes next.
      (globalThis as { gc?: () => void }).gc?.();
      // A short warm-up (JIT, and whatever the engine caches), then the timed run.
      for (let i = 0; i < 20; i++) await op(queries[i % queries.length]!);
      const cacheBefore = await planCacheCounters(connection.db);
      // CPU time of this process (driver, wire and engine) per query: steadier than wall time on a shared machine.
      const cpuBefore = process.cpuUsage();
      const m = await measure(`${row.name} ${kind}`, 1_000_000, 1, (i) => op(queries[i % queries.length]!), { maxSeconds: seconds });
      const cpu = process.cpuUsage(cpuBefore);
      const cpuMs = (cpu.user + cpu.system) / 1000 / Math.max(1, m.count);
      results.push({ ...m, row: row.name, kind, cpuMs });
      const cacheAfter = await planCacheCounters(connection.db);
      const planCache = Object.fromEntries(Object.entries(cacheAfter).map(([k, v]) => [k, v - (cacheBefore[k] ?? 0)]));
      console.log(
        JSON.stringify({
          row: row.name,
          kind,
          perSecond: Math.round(m.throughput),
          cpuMs: cpuMs.toFixed(2),
          p50: m.p50.toFixed(2),
          p95: m.p95.toFixed(2),
          planCache,
        }),
      );
    }
  }
  await stopProfiler();
  console.log('\n| row | kind | queries/s | CPU ms/query | p50 (ms) | p95 (ms) |\n|---|---|---:|---:|---:|---:|');
  for (const r of results) {
    console.log(
      `| ${r.row} | ${r.kind} | ${Math.round(r.throughput)} | ${r.cpuMs.toFixed(2)} | ${r.p50.toFixed(2)} | ${r.p95.toFixed(2)} |`,
    );
  }
  await connection.close();
  await mongo.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
