/**
 * The benchmark's population generator: deterministic (same seed, same resources; another seed, other
 * resources), valid against the server's own validator, and shaped as the benchmark's searches expect.
 */
import type { Resource } from '@medplum/fhirtypes';
import t from 'tap';
import {
  generatePatient,
  generatePopulation,
  mrnOf,
  patientId,
  resourcesOf,
  transactionBundles,
  transactionEntries,
} from '../../bench/population.js';
import { testValidator } from '../helpers/app.js';

t.test('same seed, same population; another seed, another one', async (t) => {
  const a = JSON.stringify([...generatePopulation(42, 0, 200)]);
  const b = JSON.stringify([...generatePopulation(42, 0, 200)]);
  const c = JSON.stringify([...generatePopulation(43, 0, 200)]);
  t.equal(a, b, 'byte-identical for the same seed');
  t.not(a, c, 'a different seed gives different resources');
  // A patient does not depend on the ones generated before it (the loader generates in chunks).
  t.same(generatePatient(42, 150), [...generatePopulation(42, 0, 200)][150]);
  t.same(transactionBundles(42, 10, 2, 50), transactionBundles(42, 10, 2, 50), 'bundles are deterministic too');
});

t.test('a sample of the population validates with no errors', async (t) => {
  const validator = await testValidator();
  let checked = 0;
  const failures: string[] = [];
  for (const record of generatePopulation(7, 0, 300)) {
    for (const resource of resourcesOf(record)) {
      const errors = validator.validate(resource).filter((i) => i.severity === 'error' || i.severity === 'fatal');
      if (errors.length > 0) failures.push(`${resource.resourceType}/${resource.id}: ${errors.map((e) => e.diagnostics).join('; ')}`);
      checked++;
    }
  }
  t.ok(checked > 900, `checked ${checked} resources`);
  t.same(failures.slice(0, 5), [], 'no validation errors');
  // Transaction entries are the same resources without ids, with urn:uuid references.
  const entries = transactionEntries(7, generatePatient(7, 3));
  for (const entry of entries)
    t.same(
      validator.validate(entry.resource as Resource).filter((i) => i.severity === 'error'),
      [],
    );
});

t.test('the population has the shape the benchmark searches rely on', async (t) => {
  const records = [...generatePopulation(1, 0, 2000)];
  t.equal(records[5].patient.id, patientId(5));
  t.equal(records[5].patient.identifier?.[0].value, mrnOf(5));
  const encounters = records.flatMap((r) => r.encounters);
  const prescriptions = records.flatMap((r) => r.medicationRequests);
  t.ok(
    encounters.length / records.length > 1.6 && encounters.length / records.length < 2.6,
    `about 2 encounters per patient (${encounters.length})`,
  );
  t.ok(
    prescriptions.length / records.length > 1.1 && prescriptions.length / records.length < 1.9,
    `about 1.5 prescriptions per patient (${prescriptions.length})`,
  );
  const years = records.map((r) => Number(r.patient.birthDate!.slice(0, 4)));
  t.ok(Math.min(...years) <= 1932 && Math.max(...years) >= 2022, 'birth dates spread over 1930-2024');
  t.ok(
    records.some((r) => /[^\x00-\x7f]/.test(r.patient.name![0].family!)),
    'some names carry accents',
  );
  t.ok(prescriptions.some((m) => m.status === 'active') && prescriptions.some((m) => m.status !== 'active'));
  const strayEncounters = prescriptions.filter(
    (m) => m.encounter && !m.encounter.reference!.startsWith(`Encounter/enc-${m.subject!.reference!.slice('Patient/pat-'.length)}-`),
  );
  t.same(strayEncounters, [], "a prescription's encounter is one of its patient's");
  const { bundles, next } = transactionBundles(1, 0, 3, 1000);
  t.same(
    bundles.map((b) => b.entry.length),
    [1000, 1000, 1000],
    'bundles of exactly 1000 entries',
  );
  t.ok(next > 500 && next < 1000, `about 4.5 resources per patient (${next} patients)`);
  const urns = new Set(bundles[0].entry.map((e) => e.fullUrl));
  const problems: string[] = [];
  for (const e of bundles[0].entry) {
    const r = e.resource as Resource & { subject?: { reference: string }; encounter?: { reference: string } };
    if (r.id) problems.push(`${e.fullUrl} has an id (the server assigns them)`);
    for (const ref of [r.subject?.reference, r.encounter?.reference])
      if (ref && !urns.has(ref)) problems.push(`${ref} does not resolve within the bundle`);
  }
  t.same(problems, [], 'no ids, and every reference resolves within the bundle');
});
