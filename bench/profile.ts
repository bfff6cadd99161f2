/**
 * Where the time goes, for a CPU profile: N single creates over real HTTP (--what create), or the bulk loader
 * on N patients (--what load), against the embedded MongoDB started IN THIS process, so one profile shows the
 * FHIR server and the database together.
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile.js --what create --count 2000
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildApp } from '../src/app.js';
import { startEmbeddedMongo } from '../src/dev/mongo/index.js';
import { createResourceValidator } from '../src/fhir/validation/index.js';
import { PROJECT_ROOT } from '../src/software.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { loadPopulation } from './load-population.js';
import { measure } from './measure.js';
import { generatePatient } from './population.js';
import { withoutAccessControl } from '../src/config.js';

const { values } = parseArgs({
  options: { what: { type: 'string', default: 'create' }, count: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '8' } },
});

async function main(): Promise<void> {
  const mongo = await startEmbeddedMongo({ port: 0 });
  const connection = await connectMongo(mongo.uri, 'profile');
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const validator = await createResourceValidator({ profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)), log: () => {} });
  const app = await buildApp(
    { basePath: '', baseUrl: 'http://127.0.0.1', bodyLimit: 16 * 1024 * 1024, logLevel: 'silent', referencePolicy: 'strict', ...withoutAccessControl('http://127.0.0.1') },
    { store, validator, logger: false },
  );
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  if (values.what === 'load') {
    const load = await loadPopulation({ store, baseUrl: 'http://127.0.0.1', seed: 1, from: 0, to: Number(values.count) });
    console.log(JSON.stringify({ ...load, perSecond: load.resources / load.seconds }));
  }
  const result = await measure('create Patient', values.what === 'create' ? Number(values.count) : 0, Number(values.concurrency), async (i) => {
    const { id: _id, ...patient } = generatePatient(1, i).patient;
    const res = await fetch(`${address}/Patient`, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(patient) });
    if (res.status !== 201) throw new Error(`${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  });
  console.log(JSON.stringify(result));
  await app.close();
  await connection.close();
  await mongo.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
