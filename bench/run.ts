/**
 * npm run bench: starts the server on the MongoDB the configuration gives (MONGODB_URI, else a local mongod,
 * else the embedded server), drives it over real HTTP on 127.0.0.1, and appends the results, with date and
 * machine, to docs/benchmarks.md. Every loop is bounded by a count.
 *   npm run bench -- --count 2000 --concurrency 8
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildApp } from '../src/app.js';
import { provideMongo } from '../src/dev/provide-mongo.js';
import { createResourceValidator } from '../src/fhir/validation/index.js';
import { PROJECT_ROOT } from '../src/software.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { machineDescription, markdownTable, measure, type Measurement } from './measure.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    out: { type: 'string', default: 'docs/benchmarks.md' },
  },
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);

async function main(): Promise<void> {
  const mongo = await provideMongo({ uri: process.env.MONGODB_URI, mongodTimeoutMs: 5000, allowDownload: false, log: () => {} });
  const connection = await connectMongo(mongo.uri, `bench_${Date.now()}`);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const validator = await createResourceValidator({ profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)), log: () => {} });
  const app = await buildApp(
    { basePath: '', baseUrl: 'http://127.0.0.1', bodyLimit: 16 * 1024 * 1024, logLevel: 'silent', referencePolicy: 'strict' },
    { store, validator, logger: false },
  );
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const headers = { 'content-type': 'application/fhir+json' };
  const ids: string[] = new Array(count);
  const call = async (method: string, path: string, body?: unknown, expected = 200): Promise<Response> => {
    const res = await fetch(`${address}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status !== expected) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res;
  };
  const patient = (i: number) => ({
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: `MRN-${i}` }],
    name: [{ family: `Family${i % 500}`, given: ['Given', `G${i}`] }],
    gender: i % 2 === 0 ? 'female' : 'male',
    birthDate: `19${String(40 + (i % 60)).padStart(2, '0')}-0${1 + (i % 9)}-1${i % 10}`,
  });

  const results: Measurement[] = [];
  results.push(
    await measure('GET /metadata', count, concurrency, async () => {
      await (await call('GET', '/metadata')).arrayBuffer();
    }),
  );
  results.push(
    await measure('create Patient', count, concurrency, async (i) => {
      ids[i] = ((await (await call('POST', '/Patient', patient(i), 201)).json()) as { id: string }).id;
    }),
  );
  results.push(
    await measure('read Patient', count, concurrency, async (i) => {
      await (await call('GET', `/Patient/${ids[i]}`)).arrayBuffer();
    }),
  );
  results.push(
    await measure('vread Patient', count, concurrency, async (i) => {
      await (await call('GET', `/Patient/${ids[i]}/_history/1`)).arrayBuffer();
    }),
  );
  results.push(
    await measure('update Patient', count, concurrency, async (i) => {
      await (await call('PUT', `/Patient/${ids[i]}`, { ...patient(i), id: ids[i], active: true })).arrayBuffer();
    }),
  );
  results.push(
    await measure('encounter referencing a patient (strict check)', count, concurrency, async (i) => {
      const encounter = { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: { reference: `Patient/${ids[i]}` } };
      await (await call('POST', '/Encounter', encounter, 201)).arrayBuffer();
    }),
  );
  results.push(
    await measure('instance history', count, concurrency, async (i) => {
      await (await call('GET', `/Patient/${ids[i]}/_history`)).arrayBuffer();
    }),
  );
  // Searches, each through its index (test/store/search-indexes.test.ts asserts the plans).
  results.push(
    await measure('search Patient by identifier', count, concurrency, async (i) => {
      await (await call('GET', `/Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|MRN-${i}`)).arrayBuffer();
    }),
  );
  results.push(
    await measure('search Patient by family prefix', count, concurrency, async (i) => {
      await (await call('GET', `/Patient?family=Family${i % 500}`)).arrayBuffer();
    }),
  );
  results.push(
    await measure('search Patient gender + birthdate year', count, concurrency, async (i) => {
      await (await call('GET', `/Patient?gender=female&birthdate=19${String(40 + (i % 60)).padStart(2, '0')}`)).arrayBuffer();
    }),
  );
  results.push(
    await measure('search Encounter of a patient, _sort=-date', count, concurrency, async (i) => {
      await (await call('GET', `/Encounter?patient=${ids[i]}&_sort=-date`)).arrayBuffer();
    }),
  );
  results.push(
    await measure('search Encounter chained patient.identifier', count, concurrency, async (i) => {
      await (await call('GET', `/Encounter?patient.identifier=urn:oid:1.2.36.146.595.217.0.1|MRN-${i}`)).arrayBuffer();
    }),
  );
  results.push(
    await measure('page through all Patients (_count=100)', Math.max(1, Math.floor(count / 200)), 1, async () => {
      let next: string | undefined = '/Patient?_count=100';
      while (next) {
        const bundle = (await (await call('GET', next)).json()) as { link?: Array<{ relation: string; url: string }> };
        const url = bundle.link?.find((l) => l.relation === 'next')?.url;
        next = url ? url.slice(url.indexOf('/Patient')) : undefined;
      }
    }),
  );

  await app.close();
  await connection.db.dropDatabase();
  await connection.close();
  await mongo.stop();

  const section = [
    `## ${new Date().toISOString()}`,
    '',
    `Machine: ${machineDescription()}; MongoDB: ${mongo.description}.`,
    '',
    markdownTable(results),
    '',
  ].join('\n');
  console.log(section);
  await mkdir('docs', { recursive: true });
  await appendFile(values.out, `\n${section}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
