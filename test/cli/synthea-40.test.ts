/**
 * All 40 Synthea patient Bundles through fhir-import into a server with REFERENCE_POLICY=strict: every entry of
 * every type stored (none skipped, none rejected), the counts per type equal to the Bundles', and the references
 * between them intact (each patient's resources found through the Patient compartment).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { runImport } from '../../src/cli/import/command.js';
import { startTestApp, stopMongoAtEnd, TEST_CONFIG, testValidator } from '../helpers/app.js';
import { testMongo } from '../helpers/mongo.js';

stopMongoAtEnd(t);
// 12,389 resources through validation, indexing and the store: longer than the suite's default 180 s on a loaded machine.
t.setTimeout(600_000);

const FIXTURES = fileURLToPath(new URL('../fixtures/synthea-40/', import.meta.url));

t.test('40 Synthea Bundles: 0 skipped, counts per type as in the Bundles, references intact', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'synthea-40-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const inputs = join(dir, 'bundles');
  await mkdir(inputs);
  const expected = new Map<string, number>();
  const families: string[] = [];
  const perPatient: number[] = [];
  const names = (await readdir(FIXTURES)).filter((n) => n.endsWith('.json.gz')).sort();
  t.equal(names.length, 40);
  for (const name of names) {
    const text = gunzipSync(await readFile(join(FIXTURES, name))).toString('utf8');
    await writeFile(join(inputs, name.replace(/\.gz$/, '')), text);
    const bundle = JSON.parse(text) as Bundle;
    for (const entry of bundle.entry ?? []) {
      const type = entry.resource!.resourceType;
      expected.set(type, (expected.get(type) ?? 0) + 1);
    }
    const patient = bundle.entry!.find((e) => e.resource?.resourceType === 'Patient')!.resource as Patient;
    families.push(`${patient.name![0].family}|${patient.birthDate}`);
    // Synthea's Organizations and Practitioners are nobody's; everything else is in its patient's compartment.
    perPatient.push(bundle.entry!.filter((e) => !['Organization', 'Practitioner'].includes(e.resource!.resourceType)).length);
  }

  const test = await startTestApp(t, { referencePolicy: 'strict' });
  let stdout = '';
  const result = await runImport(
    ['--mongodb', (await testMongo()).uri, '--db', test.connection.db.databaseName, '--quiet', '--checkpoint', join(dir, 's.json'), inputs],
    { BASE_URL: TEST_CONFIG.baseUrl, REFERENCE_POLICY: 'strict', LOG_LEVEL: 'silent' },
    { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stdout += s) } },
    { validator: await testValidator() },
  );
  t.equal(result.code, 0, stdout.slice(0, 4000));
  const totals = result.report!.totals;
  t.same(
    Object.fromEntries(Object.entries(totals).sort()),
    Object.fromEntries([...expected].sort().map(([type, count]) => [type, { imported: count, unchanged: 0, skipped: 0, rejected: 0 }])),
    `every one of the ${[...expected.values()].reduce((a, b) => a + b, 0)} entries imported: ${[...expected].map(([k, v]) => `${k} ${v}`).join(', ')}`,
  );
  for (const [type, count] of expected) {
    const stored = await test.connection.db.collection('resources').countDocuments({ type, deleted: false });
    t.equal(stored, count, `${type}: ${count} stored`);
  }

  // References intact: each patient's compartment holds exactly their Bundle's resources (minus the shared ones).
  for (const [i, key] of families.entries()) {
    if (i % 8 !== 0) continue; // five patients, spread over the set
    const [family, birthDate] = key.split('|');
    const found = (
      await test.app.inject({ url: `/Patient?family:exact=${encodeURIComponent(family)}&birthdate=${birthDate}` })
    ).json() as Bundle;
    t.equal(found.entry?.length, 1, `${family}: one patient`);
    const id = found.entry![0].resource!.id;
    const everything = (await test.app.inject({ url: `/Patient/${id}/*?_count=1000&_total=accurate` })).json() as Bundle;
    t.equal(everything.total, perPatient[i], `${family}: the compartment holds the Bundle's ${perPatient[i]} resources`);
  }
});
