/**
 * npm run bench:population: one population in depth. Generates a deterministic population (bench/population.ts, default
 * 100 000 patients with ~2 encounters and ~1.5 medication requests each), loads it with the bulk loader, then
 * drives the server over real HTTP on 127.0.0.1 and reports p50/p95/p99 latency and throughput for creates,
 * reads and the typical searches of bench/searches.ts (with the plan explain() gives for each), transaction
 * Bundles against the same resources as single creates, and Bulk $export of the whole population.
 * Appends the results, with date, machine, MongoDB kind, population size and seed, to docs/benchmarks.md.
 *
 * MongoDB: MONGODB_URI when set, else the embedded server in a child process (bench/mongo-process.ts).
 * Every loop is bounded by a count and a time.
 *   npm run bench:population                                   # 100 000 patients
 *   npm run bench:population -- --quick                        # 2 000 patients, fewer requests, no report unless --out
 *   npm run bench:population -- --patients 20000 --seed 7 --concurrency 4 --requests 500
 * Loading once and measuring several times (e.g. against a long-running `npm run mongo:embedded`):
 *   MONGODB_URI=mongodb://127.0.0.1:27017/ npm run bench:population -- --db bench_100k --keep
 * With --db, a database that already holds this population (same seed and size, recorded in bench_population)
 * is measured as it is; its load figures are the ones recorded when it was loaded.
 */
import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { buildApp } from '../src/app.js';
import type { FhirContext } from '../src/fhir/context.js';
import { clientResourceTypes } from '../src/fhir/resource-types.js';
import { createResourceValidator } from '../src/fhir/validation/index.js';
import { PROJECT_ROOT } from '../src/software.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { loadPopulation, type LoadResult } from './load-population.js';
import { machineDescription, markdownTable, measure, summarize, type Measurement } from './measure.js';
import { benchMongo, residentMb } from './mongo-process.js';
import { explainBenchSearch } from './plans.js';
import { generatePatient, mulberry32, patientId, transactionBundles } from './population.js';
import { BENCH_SEARCHES, queryInputs } from './searches.js';
import { accessCostTable, measureAccessCost, type AccessCostResult } from './access-cost.js';
import { UNRESTRICTED_ACCESS } from '../src/fhir/access/access-policy.js';
import { withoutAccessControl } from '../src/config.js';

const { values } = parseArgs({
  options: {
    patients: { type: 'string' },
    seed: { type: 'string', default: '20261125' },
    concurrency: { type: 'string', default: '4' },
    requests: { type: 'string' },
    'max-seconds': { type: 'string' },
    bundles: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'heap-mb': { type: 'string', default: '12288' },
    out: { type: 'string' },
    note: { type: 'string' },
    /** Rounds of the authorization-and-audit comparison (0 skips it). */
    'access-rounds': { type: 'string' },
    /** Only the authorization-and-audit comparison (with the population): skips the other rows. */
    'access-only': { type: 'boolean', default: false },
    db: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'mongo-pid': { type: 'string' },
    /** Where the server's error log goes (a file); none by default. */
    'server-log': { type: 'string' },
  },
});
const quick = values.quick;
const patients = Number(values.patients ?? (quick ? 2000 : 100_000));
const seed = Number(values.seed);
const concurrency = Number(values.concurrency);
const requests = Number(values.requests ?? (quick ? 200 : 1000));
const maxSeconds = Number(values['max-seconds'] ?? (quick ? 10 : 30));
const bundleCount = Number(values.bundles ?? (quick ? 1 : 3));
const accessRounds = Number(values['access-rounds'] ?? 3);
const accessOnly = values['access-only'];
const out = values.out ?? (quick ? undefined : 'docs/benchmarks.md');
for (const [name, value] of Object.entries({ patients, seed, concurrency, requests, maxSeconds, bundleCount, accessRounds })) {
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`);
}

const BASE_URL = 'http://127.0.0.1';
const FHIR_JSON = 'application/fhir+json';
const started = Date.now();
const log = (message: string): void => console.error(`[bench +${((Date.now() - started) / 1000).toFixed(0)}s] ${message}`);

interface BundleComparison {
  entries: number;
  bundleSeconds: number;
  singleSeconds: number;
  bundleLatencies: number[];
}
interface ExportResult {
  resources: number;
  files: number;
  megabytes: number;
  exportSeconds: number;
  downloadSeconds: number;
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0];
  const mongo = await benchMongo({ heapMb: Number(values['heap-mb']), log });
  log(`MongoDB: ${mongo.description}`);
  const connection = await connectMongo(mongo.uri, values.db ?? `bench_${Date.now()}`);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const build = await connection.db.admin().command({ buildInfo: 1 });
  const mongoDescription = process.env.MONGODB_URI
    ? `${build.gitVersion === 'embedded' ? "the project's EMBEDDED MongoDB-compatible server (src/dev/mongo)" : `MongoDB ${build.version as string}`}, given by MONGODB_URI`
    : mongo.description;
  const validator = await createResourceValidator({ profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)), log: () => {} });
  const ctx: FhirContext = {
    store,
    validator,
    baseUrl: BASE_URL,
    resourceTypes: clientResourceTypes(),
    referencePolicy: 'strict',
    now: () => new Date(),
    newId: () => randomUUID(),
    access: UNRESTRICTED_ACCESS,
  };

  const populations = connection.db.collection<{ _id: string; load: LoadResult; mongoRss?: number }>('bench_population');
  const populationKey = `seed ${seed}, ${patients} patients`;
  const earlier = values.db ? await populations.findOne({ _id: populationKey }) : null;
  // An interrupted load into --db resumes a little before the last patient stored (chunks complete out of
  // order), skipping what is already there: the generator gives the same resources again.
  const present = values.db && !earlier ? await store.heads.countDocuments({ type: 'Patient' }) : 0;
  const resumeFrom = Math.max(0, present - 1000);
  if (earlier) log(`reusing the population loaded earlier into ${values.db}`);
  else log(`loading ${patients} patients (seed ${seed})${present > 0 ? `, resuming at patient ${resumeFrom}` : ''}`);
  const load =
    earlier?.load ??
    (await loadPopulation({
      store,
      baseUrl: BASE_URL,
      seed,
      from: resumeFrom,
      skipExisting: present > 0,
      to: patients,
      validateEvery: 1000,
      validator,
      progress: (done, resources) =>
        log(
          `  ${done} patients, ${resources} resources, mongo RSS ${residentMb(mongo.pid ?? (values['mongo-pid'] ? Number(values['mongo-pid']) : undefined)) ?? '?'} MB`,
        ),
    }));
  // Resident memory of the MongoDB process: the child's, or the one --mongo-pid names (a server given by URI).
  const mongoPid = mongo.pid ?? (values['mongo-pid'] ? Number(values['mongo-pid']) : undefined);
  const mongoRss = earlier ? earlier.mongoRss : residentMb(mongoPid);
  if (!earlier) await populations.insertOne({ _id: populationKey, load, ...(mongoRss !== undefined ? { mongoRss } : {}) });
  log(`loaded ${load.resources} resources in ${load.seconds.toFixed(0)} s (${(load.resources / load.seconds).toFixed(0)}/s)`);

  const exportDir = await mkdtemp(join(tmpdir(), 'fhir-bench-export-'));
  const app = await buildApp(
    {
      basePath: '',
      baseUrl: BASE_URL,
      bodyLimit: 64 * 1024 * 1024,
      logLevel: 'silent',
      referencePolicy: 'strict',
      ...withoutAccessControl(BASE_URL),
    },
    // Bulk export files go to a temporary directory, removed at the end.
    {
      store,
      validator,
      logger: values['server-log'] ? { level: 'error', file: values['server-log'] } : false,
      bulkExport: { dir: exportDir },
    },
  );
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const pathOf = (url: string): string => (url.startsWith(BASE_URL) ? url.slice(BASE_URL.length) : url);
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    expected = 200,
    headers: Record<string, string> = {},
  ): Promise<Response> => {
    const res = await fetch(`${address}${path}`, {
      method,
      headers: { accept: FHIR_JSON, ...(body === undefined ? {} : { 'content-type': FHIR_JSON }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status !== expected) throw new Error(`${method} ${path}: ${res.status} ${(await res.text()).slice(0, 500)}`);
    return res;
  };
  const drain = async (res: Response): Promise<void> => {
    await res.arrayBuffer();
  };
  const bounded = { maxSeconds };
  const results: Measurement[] = [];
  const record = (m: Measurement): void => {
    results.push(m);
    log(
      `${m.name}: ${m.count} in ${m.seconds.toFixed(1)} s, p50 ${m.p50.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms${m.plan ? ` [${m.plan}]` : ''}`,
    );
  };

  // Writes: new patients beyond the population (numbers patients.. so ids never collide), and encounters that
  // reference existing patients (the strict reference check reads the patient first).
  const pick = mulberry32(seed ^ 0x2545f491);
  const anyLoadedPatient = (): string => patientId(Math.floor(pick() * patients));
  if (!accessOnly) {
    record(
      await measure(
        'create Patient',
        requests,
        concurrency,
        async (i) => {
          const { id: _id, ...patient } = generatePatient(seed, patients + i).patient;
          await drain(await call('POST', '/Patient', patient, 201));
        },
        bounded,
      ),
    );
    record(
      await measure(
        'create Encounter (strict reference check)',
        requests,
        concurrency,
        async (i) => {
          const { id: _id, ...encounter } =
            generatePatient(seed, patients + requests + i).encounters[0] ?? generatePatient(seed, 0).encounters[0];
          await drain(await call('POST', '/Encounter', { ...encounter, subject: { reference: `Patient/${anyLoadedPatient()}` } }, 201));
        },
        bounded,
      ),
    );
    record(
      await measure(
        'read Patient',
        requests,
        concurrency,
        async () => {
          await drain(await call('GET', `/Patient/${anyLoadedPatient()}`));
        },
        bounded,
      ),
    );

    const inputsBase = { patients, loadedFrom: load.firstUpdated, loadedTo: load.lastUpdated };
    for (const [n, search] of BENCH_SEARCHES.entries()) {
      const first = search.query(queryInputs(seed, n, 0, inputsBase));
      const plan = await explainBenchSearch(
        ctx,
        search,
        first,
        search.deepPage ? `Patient/${patientId(Math.floor(patients / 2))}` : undefined,
      );
      if (!search.deepPage) {
        // A failed request is counted and reported on its row rather than ending the run.
        const failures: string[] = [];
        const m = await measure(
          `${search.name}: \`${search.type}?${decodeURIComponent(first)}\``,
          requests,
          concurrency,
          async (i) => {
            try {
              const res = await call('GET', `/${search.type}?${search.query(queryInputs(seed, n, i, inputsBase))}`);
              const bundle = (await res.json()) as Bundle;
              if (bundle.resourceType !== 'Bundle') throw new Error(`${search.name}: not a Bundle`);
            } catch (error) {
              failures.push((error as Error).message.slice(0, 160));
            }
          },
          bounded,
        );
        if (failures.length > 0) {
          m.name += ` — **${failures.length} failed** (first: ${failures[0]})`;
          log(`${failures.length} failures: ${failures[0]}`);
        }
        record({ ...m, plan: plan.summary });
        continue;
      }
      // The deep page: follow next links to page 50; the page-50 request is timed on its own, and the whole walk.
      const walks = Math.max(2, Math.min(30, Math.floor(requests / 25)));
      const pageLatencies: number[] = [];
      const walkFailures: string[] = [];
      const walk = await measure(
        `${search.name} — the whole walk (50 requests)`,
        walks,
        concurrency,
        async (i) => {
          let path: string | undefined = `/${search.type}?${search.query(queryInputs(seed, n, i, inputsBase))}`;
          try {
            for (let page = 1; page <= 50; page++) {
              if (!path) throw new Error(`${search.name}: no next link before page ${page}`);
              const t0 = performance.now();
              const bundle = (await (await call('GET', path)).json()) as Bundle;
              if (page === 50) pageLatencies.push(performance.now() - t0);
              const next = bundle.link?.find((l) => l.relation === 'next')?.url;
              path = next ? pathOf(next) : undefined;
            }
          } catch (error) {
            walkFailures.push((error as Error).message.slice(0, 160));
          }
        },
        bounded,
      );
      if (walkFailures.length > 0) walk.name += ` — **${walkFailures.length} failed** (first: ${walkFailures[0]})`;
      const pageSeconds = pageLatencies.reduce((a, b) => a + b, 0) / 1000 / Math.min(concurrency, walks);
      record({
        ...summarize(
          `${search.name}: \`${search.type}?${decodeURIComponent(first)}\` (page 50 request)`,
          pageLatencies,
          pageSeconds,
          concurrency,
        ),
        plan: plan.summary,
      });
      record(walk);
    }
  }

  const bundles = accessOnly ? 'not measured in this run (--access-only)' : await compareBundles(call, address);
  const exported = accessOnly ? 'not measured in this run (--access-only)' : await bulkExport(call, pathOf, address);
  await app.close();

  log(`authorization and audit: ${accessRounds} interleaved rounds`);
  const access =
    accessRounds > 0
      ? await measureAccessCost({
          store,
          database: { mongoUri: mongo.uri, dbName: connection.db.databaseName },
          mongoPid,
          validator,
          baseUrl: BASE_URL,
          seed,
          patients,
          requests,
          concurrency,
          maxSeconds,
          rounds: accessRounds,
          // Beyond the population, the creates above and the Bundles' patients: ids never collide.
          firstNewPatient: patients * 3 + 1_000_000,
          log,
        })
      : undefined;

  await rm(exportDir, { recursive: true, force: true });
  if (!values.keep) await connection.db.dropDatabase().catch(() => undefined);
  await connection.close();
  await mongo.stop();

  const section = report(load, results, bundles, exported, access, {
    mongo: mongoDescription,
    mongoRss,
    loadAtStart,
    reused: earlier !== null,
  });
  console.log(section);
  if (out) {
    await mkdir('docs', { recursive: true });
    await appendFile(out, `\n${section}`);
    log(`appended to ${out}`);
  }
}

type Call = (method: string, path: string, body?: unknown, expected?: number, headers?: Record<string, string>) => Promise<Response>;

/** Whether a response says the server has no such interaction (yet). */
function unsupported(status: number): boolean {
  return status === 404 || status === 405 || status === 501;
}

/**
 * Transaction Bundles of 1000 entries (new patients with encounters and prescriptions, urn:uuid references)
 * against the same resources as single creates, references resolved client-side.
 */
async function compareBundles(call: Call, address: string): Promise<BundleComparison | string> {
  if (bundleCount === 0) return 'skipped (--bundles 0)';
  const { bundles } = transactionBundles(seed, patients + 3 * requests, bundleCount, 1000);
  const probe = await fetch(`${address}/`, {
    method: 'POST',
    headers: { accept: FHIR_JSON, 'content-type': FHIR_JSON },
    body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [] }),
  });
  await probe.arrayBuffer();
  if (unsupported(probe.status))
    return `pending: POST [base] answered ${probe.status} (transaction Bundles are not available in this build)`;
  log(`transaction Bundles: ${bundles.length} × 1000 entries`);
  const bundleLatencies: number[] = [];
  const t0 = performance.now();
  for (const bundle of bundles) {
    const t = performance.now();
    const response = (await (await call('POST', '/', bundle)).json()) as Bundle;
    bundleLatencies.push(performance.now() - t);
    if (response.type !== 'transaction-response' || response.entry?.length !== bundle.entry.length) {
      throw new Error(`transaction: expected a transaction-response with ${bundle.entry.length} entries`);
    }
  }
  const bundleSeconds = (performance.now() - t0) / 1000;
  // The same resources one by one: each patient record in order (its references need the ids just assigned),
  // `concurrency` records at a time.
  const groups: BundleEntry[][] = [];
  for (const bundle of bundles) {
    for (const entry of bundle.entry) {
      if (entry.resource?.resourceType === 'Patient' || groups.length === 0) groups.push([]);
      groups[groups.length - 1].push(entry);
    }
  }
  const t1 = performance.now();
  await measure('single creates', groups.length, concurrency, async (g) => {
    const ids = new Map<string, string>();
    for (const entry of groups[g]) {
      const resource = structuredClone(entry.resource) as Resource & {
        subject?: { reference?: string };
        encounter?: { reference?: string };
      };
      for (const ref of [resource.subject, resource.encounter]) {
        if (ref?.reference && ids.has(ref.reference)) ref.reference = ids.get(ref.reference);
      }
      const created = (await (await call('POST', `/${resource.resourceType}`, resource, 201)).json()) as Resource;
      ids.set(entry.fullUrl!, `${created.resourceType}/${created.id}`);
    }
  });
  return { entries: bundles.length * 1000, bundleSeconds, singleSeconds: (performance.now() - t1) / 1000, bundleLatencies };
}

/** Bulk $export of the whole server: kick-off, poll to completion, download every file. */
async function bulkExport(call: Call, pathOf: (url: string) => string, address: string): Promise<ExportResult | string> {
  const kickoff = await fetch(`${address}/$export`, { headers: { accept: FHIR_JSON, prefer: 'respond-async' } });
  if (unsupported(kickoff.status))
    return `pending: GET [base]/$export answered ${kickoff.status} (Bulk export is not available in this build)`;
  if (kickoff.status !== 202) throw new Error(`$export kick-off: ${kickoff.status} ${await kickoff.text()}`);
  const status = kickoff.headers.get('content-location');
  if (!status) throw new Error('$export kick-off: no Content-Location');
  log('bulk export: started');
  const t0 = performance.now();
  const deadline = Date.now() + (quick ? 120_000 : 1_200_000);
  let manifest: { output?: Array<{ type: string; url: string }> } | undefined;
  while (Date.now() < deadline) {
    const res = await fetch(`${address}${pathOf(status)}`, { headers: { accept: 'application/json' } });
    if (res.status === 200) {
      manifest = (await res.json()) as typeof manifest;
      break;
    }
    if (res.status !== 202) throw new Error(`$export status: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!manifest) throw new Error('$export did not complete in time');
  const exportSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  let resources = 0;
  let bytes = 0;
  for (const file of manifest.output ?? []) {
    const res = await call('GET', pathOf(file.url), undefined, 200, { accept: 'application/fhir+ndjson' });
    const text = await res.text();
    bytes += Buffer.byteLength(text);
    for (let i = text.indexOf('\n'), from = 0; from < text.length; from = i + 1, i = text.indexOf('\n', from)) {
      if (i < 0) i = text.length;
      if (i > from) resources++;
    }
  }
  return {
    resources,
    files: manifest.output?.length ?? 0,
    megabytes: bytes / 2 ** 20,
    exportSeconds,
    downloadSeconds: (performance.now() - t1) / 1000,
  };
}

function report(
  load: LoadResult,
  results: Measurement[],
  bundles: BundleComparison | string,
  exported: ExportResult | string,
  access: AccessCostResult | undefined,
  env: { mongo: string; mongoRss: number | undefined; loadAtStart: number; reused: boolean },
): string {
  const types = Object.entries(load.byType)
    .map(([type, count]) => `${count.toLocaleString('en')} ${type}`)
    .join(', ');
  const lines = [
    `## ${new Date().toISOString()} — npm run bench:population, ${patients.toLocaleString('en')} patients, seed ${seed}`,
    '',
    `Machine: ${machineDescription()}; 1-minute load average ${loadAtStart(env.loadAtStart)} when the run started` +
      (values.note ? ` (${values.note})` : '') +
      '. The benchmark process (FHIR server and HTTP client) and MongoDB share these cores, so the numbers are lower bounds.',
    '',
    `MongoDB: ${env.mongo}.`,
    '',
    `Population: ${types} (${load.resources.toLocaleString('en')} resources, generated by bench/population.ts from the seed), ` +
      `bulk-loaded${env.reused ? ' (by an earlier run into the same database, whose figures these are)' : ''}` +
      `${load.patients < patients ? ` (an interrupted load resumed for the last ${load.patients.toLocaleString('en')} patients; the figures are the resumed part's)` : ''} in ${load.seconds.toFixed(0)} s: **${(load.resources / load.seconds).toFixed(0)} resources/s** ` +
      `(${(load.patients / load.seconds).toFixed(0)} patients/s; ${load.validated} sampled resources validated first)` +
      (env.mongoRss !== undefined ? `; MongoDB resident memory after the load: ${env.mongoRss.toLocaleString('en')} MB` : '') +
      '.',
    '',
    `Requests over HTTP on 127.0.0.1, ${concurrency} in flight, at most ${requests} per row or ${maxSeconds} s. ` +
      "The plan column is explain('executionStats') of each row's first query as the search runs it (the page query; " +
      'the deep page: a page read from a keyset cursor), with the keys and documents it examined. A search counts its ' +
      'matches for Bundle.total only when asked (`_total=accurate`, `_total=estimate`, `_summary=count`; the default policy, ' +
      'SEARCH_DEFAULT_TOTAL=none, counts nothing): that second query is not in the plan column.',
    '',
    results.length > 0 ? markdownTable(results) : 'not measured in this run (--access-only)',
    '',
    '### Transaction Bundles against single creates',
    '',
  ];
  if (typeof bundles === 'string') lines.push(bundles);
  else {
    const sorted = bundles.bundleLatencies.slice().sort((a, b) => a - b);
    lines.push(
      '| how | resources | seconds | resources/s |',
      '|---|---:|---:|---:|',
      `| ${bundles.bundleLatencies.length} transaction Bundles of 1000 entries, one at a time (median ${(sorted[Math.floor(sorted.length / 2)] / 1000).toFixed(2)} s each) | ${bundles.entries} | ${bundles.bundleSeconds.toFixed(1)} | ${(bundles.entries / bundles.bundleSeconds).toFixed(0)} |`,
      `| the same resources as single creates, ${concurrency} patients at a time | ${bundles.entries} | ${bundles.singleSeconds.toFixed(1)} | ${(bundles.entries / bundles.singleSeconds).toFixed(0)} |`,
    );
  }
  lines.push('', '### Bulk export of the whole population', '');
  if (typeof exported === 'string') lines.push(exported);
  else {
    lines.push(
      `\`GET [base]/$export\` (Prefer: respond-async) to a complete manifest: ${exported.resources.toLocaleString('en')} resources in ` +
        `${exported.exportSeconds.toFixed(1)} s, **${(exported.resources / exported.exportSeconds).toFixed(0)} resources/s**; ` +
        `downloading the ${exported.files} NDJSON files (${exported.megabytes.toFixed(0)} MB): ${exported.downloadSeconds.toFixed(1)} s ` +
        `(${(exported.resources / exported.downloadSeconds).toFixed(0)} resources/s).`,
    );
  }
  if (access) {
    lines.push(
      '',
      '### Authorization and audit: the cost of both together',
      '',
      `The same requests against two apps on this database, without authorization and audit and with both (a SMART token ` +
        `verified against the issuer's key, an AuditEvent per request: committed with each create, buffered for reads and ` +
        `searches), in ${access.rows[0]?.off.length ?? 0} interleaved rounds; medians. ${access.auditEvents.toLocaleString('en')} ` +
        'AuditEvents were stored. The anchoring worker is not running (its extra leaves are measured by `npm run bench:ledger`).',
      '',
      accessCostTable(access),
    );
  }
  lines.push('');
  return lines.join('\n');
}

function loadAtStart(value: number): string {
  return value.toFixed(1);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
