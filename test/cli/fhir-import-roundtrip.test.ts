// Export -> import round trip: data loaded into one server (Synthea Bundles with server-assigned ids, and NDJSON
// Patients) is exported with Bulk Data $export, the NDJSON files are downloaded and imported with the CLI into an
// empty database (files of every type, whose references to each other resolve whatever order they come in), and
// every resource there equals its source apart from meta.versionId/lastUpdated.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { runImport } from '../../src/cli/import/command.js';
import { connectMongo } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { startTestApp, stopMongoAtEnd, TEST_CONFIG, testValidator } from '../helpers/app.js';
import { testMongo, uniqueDbName } from '../helpers/mongo.js';
import { withoutServerMeta } from '../helpers/resources.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
/** The types in the two Synthea Bundles of test/fixtures/synthea (and the NDJSON Patients). */
const SYNTHEA_TYPES = [
  'CarePlan',
  'Claim',
  'Condition',
  'DiagnosticReport',
  'Encounter',
  'ExplanationOfBenefit',
  'Immunization',
  'MedicationRequest',
  'Observation',
  'Organization',
  'Patient',
  'Practitioner',
  'Procedure',
];
const ENV = { BASE_URL: TEST_CONFIG.baseUrl, REFERENCE_POLICY: 'strict', LOG_LEVEL: 'silent' };

async function importInto(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const sink = { write: (s: string) => (out += s) };
  const { code } = await runImport([...args, '--quiet'], ENV, { stdout: sink, stderr: sink }, { validator: await testValidator() });
  return { code, out };
}

async function all(app: FastifyInstance, type: string): Promise<Map<string, Resource>> {
  const res = await app.inject({ method: 'GET', url: `/${type}?_count=1000` });
  const bundle = res.json() as Bundle;
  return new Map((bundle.entry ?? []).map((e) => [e.resource!.id!, e.resource!]));
}

t.test('export -> import into an empty database -> identical apart from meta', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fhir-import-roundtrip-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  // The source: an app with Bulk export, loaded by the CLI over HTTP.
  const mongo = await testMongo();
  const sourceConnection = await connectMongo(mongo.uri, uniqueDbName('roundtrip'));
  const sourceStore = new ResourceStore(sourceConnection.db, sourceConnection.supportsTransactions);
  await sourceStore.ensureIndexes();
  const source = await buildApp(
    { ...TEST_CONFIG, referencePolicy: 'strict' },
    {
      store: sourceStore,
      validator: await testValidator(),
      logger: false,
      bulkExport: { dir: join(dir, 'exports'), tuning: { pollIntervalMs: 50 } },
    },
  );
  t.teardown(async () => {
    await source.close();
    await sourceConnection.db.dropDatabase().catch(() => undefined);
    await sourceConnection.close();
  });
  const address = await source.listen({ port: 0, host: '127.0.0.1' });
  const load = await importInto([
    '--url',
    address,
    '--checkpoint',
    join(dir, 'load.json'),
    join(FIXTURES, 'bulk-ndjson', 'Patient.000.ndjson'),
    join(FIXTURES, 'synthea'),
  ]);
  t.equal(load.code, 0, load.out);

  // Export everything, wait for the manifest, download the files.
  const kickoff = await source.inject({
    method: 'GET',
    url: '/$export',
    headers: { prefer: 'respond-async', accept: 'application/fhir+json' },
  });
  t.equal(kickoff.statusCode, 202, kickoff.body);
  const statusPath = String(kickoff.headers['content-location']).slice(TEST_CONFIG.baseUrl.length);
  let manifest: { output: Array<{ type: string; url: string; count: number }> } | undefined;
  const deadline = Date.now() + 15_000;
  while (!manifest && Date.now() < deadline) {
    const status = await source.inject({ method: 'GET', url: statusPath });
    if (status.statusCode === 200) manifest = status.json();
    else if (status.statusCode === 202) await new Promise((resolve) => setTimeout(resolve, 50));
    else t.fail(`status ${status.statusCode}: ${status.body}`);
  }
  if (!manifest) throw new Error('the export did not complete in 15 s');
  const files = join(dir, 'files');
  await mkdir(files);
  for (const output of manifest.output) {
    const res = await source.inject({ method: 'GET', url: output.url.slice(TEST_CONFIG.baseUrl.length) });
    t.equal(res.statusCode, 200);
    await writeFile(join(files, output.url.split('/').pop()!), res.body);
  }
  const exported = [...new Set(manifest.output.map((o) => o.type))].sort();
  t.same(
    exported,
    [...SYNTHEA_TYPES].sort(),
    'every type the Synthea Bundles hold was stored and exported (nothing was left out on the way in)',
  );

  // Import the files into an empty database, in-process.
  const target = await startTestApp(t);
  const imported = await importInto([
    '--mongodb',
    mongo.uri,
    '--db',
    target.connection.db.databaseName,
    '--checkpoint',
    join(dir, 'import.json'),
    files,
  ]);
  t.equal(imported.code, 0, imported.out);

  for (const type of exported) {
    const before = await all(source, type);
    const after = await all(target.app, type);
    t.ok(before.size > 0, `${type}: ${before.size} exported`);
    t.same([...after.keys()].sort(), [...before.keys()].sort(), `${type}: the same ids`);
    for (const [id, resource] of before) {
      const copy = after.get(id);
      if (!copy) continue;
      t.same(withoutServerMeta(copy), withoutServerMeta(resource), `${type}/${id} identical apart from meta`);
    }
  }
});

stopMongoAtEnd(t);
