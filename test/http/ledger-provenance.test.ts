// Derived Provenance: one per version, read-only, searchable by target; registered in the CapabilityStatement.
import t from 'tap';
import type { Bundle, CapabilityStatement, Extension, Provenance } from '@medplum/fhirtypes';
import { LEDGER_ANCHOR_EXTENSION } from '../../src/ledger/provenance.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { createPatient, startLedgerApp, startTestNetwork, updatePatient, waitAnchored } from '../ledger/helpers/ledger-app.js';

function anchorPart(p: Provenance, url: string): Extension | undefined {
  return p.extension?.find((e) => e.url === LEDGER_ANCHOR_EXTENSION)?.extension?.find((e) => e.url === url);
}

t.test('Provenance per version, by search and by read', async (t) => {
  const net = await startTestNetwork(t);
  const { app, runtime, connection } = await startLedgerApp(t, net);
  const p = await createPatient(app, 'Prov');
  await updatePatient(app, p.id, 'Prov2');
  const del = await app.inject({ method: 'DELETE', url: `/Patient/${p.id}` });
  t.equal(del.statusCode, 204);

  const before = (await app.inject({ method: 'GET', url: `/Provenance?target=Patient/${p.id}` })).json() as Bundle<Provenance>;
  t.equal(before.type, 'searchset');
  t.equal(before.total, 3, 'three versions (the deletion included)');
  t.equal(anchorPart(before.entry![0]!.resource!, 'status')?.valueCode, 'pending');

  runtime.start();
  await waitAnchored(connection, 10_000);
  const res = await app.inject({ method: 'GET', url: `/Provenance?target=Patient/${p.id}` });
  t.equal(res.statusCode, 200);
  const bundle = res.json() as Bundle<Provenance>;
  const provs = bundle.entry!.map((e) => e.resource!);
  t.same(
    provs.map((x) => x.target[0]!.reference),
    [1, 2, 3].map((v) => `Patient/${p.id}/_history/${v}`),
    'version-specific targets',
  );
  t.same(
    provs.map((x) => x.activity?.coding?.[0]?.code),
    ['CREATE', 'UPDATE', 'DELETE'],
  );
  const versions = await connection.db
    .collection('resource_versions')
    .find({ id: p.id }, { sort: { versionId: 1 } })
    .toArray();
  t.same(
    provs.map((x) => x.recorded),
    versions.map((v) => (v.lastUpdated as Date).toISOString()),
    'recorded = the version lastUpdated',
  );
  t.equal(provs[0]!.agent[0]!.who.type, 'Device');
  t.equal(anchorPart(provs[0]!, 'status')?.valueCode, 'anchored');
  t.equal(anchorPart(provs[0]!, 'network')?.valueString, 'local (not Hedera)');
  t.match(anchorPart(provs[0]!, 'consensusTime')?.valueInstant, /Z$/);
  t.match(anchorPart(provs[0]!, 'verify')?.valueUri, new RegExp(`/Patient/${p.id}/_history/1/\\$verify$`));
  t.equal(bundle.entry![0]!.fullUrl, `http://127.0.0.1:8080/Provenance/${provs[0]!.id}`);

  const read = await app.inject({ method: 'GET', url: `/Provenance/${provs[1]!.id}` });
  t.equal(read.statusCode, 200);
  t.same(read.json(), provs[1], 'read gives the same resource as the search');

  const one = (await app.inject({ method: 'GET', url: `/Provenance?target=Patient/${p.id}/_history/2` })).json() as Bundle;
  t.equal(one.total, 1);
  const absolute = (
    await app.inject({ method: 'GET', url: `/Provenance?target=${encodeURIComponent(`http://127.0.0.1:8080/Patient/${p.id}`)}` })
  ).json() as Bundle;
  t.equal(absolute.total, 3, 'absolute references under the base URL');

  t.equal((await app.inject({ method: 'GET', url: '/Provenance' })).statusCode, 400, 'target is required');
  t.equal((await app.inject({ method: 'GET', url: '/Provenance/nope' })).statusCode, 404);
  t.equal((await app.inject({ method: 'GET', url: `/Provenance/Patient-9-${p.id}` })).statusCode, 404);
  t.equal(
    (await app.inject({ method: 'POST', url: '/Provenance', payload: {}, headers: { 'content-type': 'application/fhir+json' } }))
      .statusCode,
    405,
    'read-only',
  );

  // $proof on a deleted resource still covers its whole history, the tombstone included.
  const proof = await app.inject({ method: 'GET', url: `/Patient/${p.id}/$proof` });
  t.equal(proof.statusCode, 200);
  t.match(proof.headers['content-type'], /^application\/json/);
  const pkg = proof.json() as { format: string; formatVersion: number; versions: Array<{ status: string; resource: { meta?: unknown } }> };
  t.equal(pkg.format, 'fhir-ledger-proof');
  t.equal(pkg.formatVersion, 1);
  t.same(
    pkg.versions.map((v) => v.status),
    ['anchored', 'anchored', 'anchored'],
  );
});

t.test('the CapabilityStatement lists Provenance, $verify and $proof', async (t) => {
  const net = await startTestNetwork(t);
  const { app } = await startLedgerApp(t, net);
  const cs = (await app.inject({ method: 'GET', url: '/metadata' })).json() as CapabilityStatement;
  const resources = cs.rest![0]!.resource!;
  const prov = resources.find((r) => r.type === 'Provenance');
  t.ok(prov, 'Provenance is listed');
  t.same(prov?.interaction?.map((i) => i.code).sort(), ['read', 'search-type']);
  t.equal(prov?.searchParam?.[0]?.name, 'target');
  const patient = resources.find((r) => r.type === 'Patient');
  t.ok(patient?.operation?.some((o) => o.name === 'verify'));
  t.ok(patient?.operation?.some((o) => o.name === 'proof'));
  t.match(cs.rest![0]!.documentation, /Supported resource types: Patient, Encounter, MedicationRequest\./, 'hosted types unchanged');
});

stopMongoAtEnd(t);
