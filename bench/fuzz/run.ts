/**
 * The long fuzz run (not in CI): a different seed from the test's and many more requests (20 000 by default)
 * against the server with a realistic population (5 000 patients by default), the embedded MongoDB in its own
 * process as `npm start` runs it (or MONGODB_URI's). Reports statuses, findings (5xx, errors that are not
 * OperationOutcomes, answers slower than the bound, /healthz failures), the slowest /healthz answer and the
 * server's memory, and appends a section to docs/benchmarks.md. Bounded by a count and a time budget.
 *   npm run bench:fuzz -- --seed 7 --requests 20000 --patients 5000
 */
import { appendFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { buildApp } from '../../src/app.js';
import { withoutAccessControl } from '../../src/config.js';
import { createResourceValidator } from '../../src/fhir/validation/index.js';
import { PROJECT_ROOT } from '../../src/software.js';
import { connectMongo } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { loadPopulation } from '../load-population.js';
import { machineDescription } from '../measure.js';
import { benchMongo, residentMb } from '../mongo-process.js';
import { patientId } from '../population.js';
import { describeFinding, runFuzz } from './run-fuzz.js';
import { fileURLToPath } from 'node:url';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '7' },
    requests: { type: 'string', default: '20000' },
    patients: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '8' },
    'budget-s': { type: 'string', default: '1800' },
    out: { type: 'string', default: 'docs/benchmarks.md' },
  },
});

async function main(): Promise<void> {
  const seed = Number(values.seed);
  const requests = Number(values.requests);
  const patients = Number(values.patients);
  const loadAtStart = loadavg()[0];
  const mongo = await benchMongo({ heapMb: 4096, log: () => undefined });
  const connection = await connectMongo(mongo.uri, `fuzz_${seed}`);
  await connection.db.dropDatabase();
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const validator = await createResourceValidator({ profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)), log: () => undefined });
  const baseUrl = 'http://127.0.0.1';
  console.log(`loading ${patients} patients...`);
  const loaded = await loadPopulation({ store, baseUrl, seed: 20261125, from: 0, to: patients });
  const app = await buildApp(
    { basePath: '', baseUrl, bodyLimit: 16 * 1024 * 1024, logLevel: 'silent', referencePolicy: 'strict', ...withoutAccessControl(baseUrl) },
    { store, validator, logger: false },
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const knownIds = Array.from({ length: Math.min(patients, 200) }, (_, i) => ({ type: 'Patient', id: patientId(i) }));
  const rssBefore = process.memoryUsage().rss;
  console.log(`fuzzing: ${requests} requests, seed ${seed}...`);
  const report = await runFuzz({
    port,
    seed,
    requests,
    concurrency: Number(values.concurrency),
    timeBudgetMs: Number(values['budget-s']) * 1000,
    slowMs: 5000,
    knownIds,
  });
  const rssAfter = process.memoryUsage().rss;
  const mongoMb = residentMb(mongo.pid);
  const fiveHundreds = report.findings.filter((f) => /^status 5|^no answer/.test(f.problem)).length;
  const lines = [
    '',
    `## ${new Date().toISOString()} — fuzz run (bench/fuzz/run.ts), seed ${seed}, ${report.sent} requests`,
    '',
    `Machine: ${machineDescription()}; load average at start ${loadAtStart.toFixed(2)}. MongoDB: ${mongo.description}. Population: ${loaded.patients} patients ` +
      `(${loaded.resources} resources, seed 20261125). Server as \`npm start\` builds it, authorization off (the credential fuzz is test/auth/fuzz-credentials.test.ts); ` +
      `${values.concurrency} concurrent clients; a probe asks /healthz every 200 ms.`,
    '',
    '| result | value |',
    '|---|---:|',
    `| requests sent | ${report.sent} in ${report.seconds.toFixed(0)} s |`,
    `| 5xx or no answer | ${fiveHundreds} |`,
    `| errors that are not an OperationOutcome | ${report.findings.filter((f) => /not an OperationOutcome/.test(f.problem)).length} |`,
    `| answers slower than 5 s | ${report.findings.filter((f) => /^answered in/.test(f.problem)).length} (slowest ${report.slowestMs} ms) |`,
    `| /healthz probes, slowest answer | ${report.healthProbes}, ${report.slowestHealthMs} ms |`,
    `| server RSS before → after | ${Math.round(rssBefore / 1048576)} → ${Math.round(rssAfter / 1048576)} MB |`,
    `| embedded MongoDB RSS after | ${mongoMb ?? 'n/a'} MB |`,
    '',
    `Statuses: ${Object.entries(report.byStatus)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([status, n]) => `${status}: ${n}`)
      .join(', ')}. Kinds: ${Object.entries(report.byKind)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(', ')}.`,
    '',
    ...(report.findings.length > 0
      ? [
          'Findings (first 20):',
          '',
          ...report.findings.slice(0, 20).map((f) => `- ${describeFinding(f).replace(/\|/g, '\\|').slice(0, 400)}`),
          '',
        ]
      : ['No findings.', '']),
  ];
  await appendFile(values.out!, lines.join('\n'));
  console.log(lines.join('\n'));
  await app.close();
  await connection.close();
  await mongo.stop();
  process.exit(report.findings.length > 0 ? 1 : 0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
