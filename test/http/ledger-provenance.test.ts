// Derived Provenance: one per version, read-only, through $provenance; the Provenance type itself holds what clients store.
import t from 'tap';
import type { Bundle, CapabilityStatement, Extension, Provenance } from '@medplum/fhirtypes';
import { LEDGER_ANCHOR_EXTENSION } from '../../src/ledger/provenance.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { createPatient, startLedgerApp, startTestNetwork, updatePatient, waitAnchored } from '../ledger/helpers/ledger-app.js';

function anchorPart(p: Provenance, url: string): Extension | undefined {
  return p.extension?.find((e) => e.url === LEDGER_ANCHOR_EXTENSION)?.extension?.find((e) => e.url === url);
}

t.test('Provenance per version, through $provenance', async (t) => {
  const net = await startTestNetwork(t);
  const { app, runtime, connection } = await startLedgerApp(t, net);
  const p = await createPatient(app, 'Prov');
  await updatePatient(app, p.id, 'Prov2');
  const del = await app.inject({ method: 'DELETE', url: `/Patient/${p.id}` });
  t.equal(del.statusCode, 204);

  const before = (await app.inject({ method: 'GET', url: `/Patient/${p.id}/$provenance` })).json() as Bundle<Provenance>;
  t.equal(before.type, 'collection');
  t.equal(before.entry?.length, 3, 'three versions (the deletion included)');
  t.equal(anchorPart(before.entry![0]!.resource!, 'status')?.valueCode, 'pending');

  runtime.start();
  await waitAnchored(connection, 10_000);
  const res = await app.inject({ method: 'GET', url: `/Patient/${p.id}/$provenance` });
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
  t.equal(bundle.entry![0]!.fullUrl, undefined, 'derived: no URL of their own on this server');
  t.equal(provs[1]!.id, `Patient-2-${p.id}`);

  const one = (await app.inject({ method: 'GET', url: `/Patient/${p.id}/_history/2/$provenance` })).json() as Bundle<Provenance>;
  t.same(
    one.entry?.map((e) => e.resource),
    [provs[1]],
    'one version',
  );
  t.equal((await app.inject({ method: 'GET', url: `/Patient/${p.id}/_history/9/$provenance` })).statusCode, 404);
  t.equal((await app.inject({ method: 'GET', url: '/Patient/nobody/$provenance' })).statusCode, 404);

  // The Provenance type is a stored one like every other: derived Provenances are not among its resources.
  t.equal(((await app.inject({ method: 'GET', url: `/Provenance?target=Patient/${p.id}` })).json() as Bundle).total, 0);
  t.equal((await app.inject({ method: 'GET', url: `/Provenance/Patient-2-${p.id}` })).statusCode, 404);
  const stored = await app.inject({
    method: 'POST',
    url: '/Provenance',
    headers: { 'content-type': 'application/fhir+json' },
    payload: {
      resourceType: 'Provenance',
      target: [{ reference: `Patient/${p.id}/_history/1` }],
      recorded: '2026-01-01T00:00:00Z',
      agent: [{ who: { display: 'the sending system' } }],
    },
  });
  t.equal(stored.statusCode, 201, "a client's Provenance is stored");
  t.equal(((await app.inject({ method: 'GET', url: `/Provenance?target=Patient/${p.id}` })).json() as Bundle).total, 1);

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

t.test('the CapabilityStatement lists $provenance, $verify and $proof', async (t) => {
  const net = await startTestNetwork(t);
  const { app } = await startLedgerApp(t, net);
  const cs = (await app.inject({ method: 'GET', url: '/metadata' })).json() as CapabilityStatement;
  const resources = cs.rest![0]!.resource!;
  const prov = resources.find((r) => r.type === 'Provenance');
  t.ok(
    prov?.interaction?.some((i) => i.code === 'create'),
    'Provenance is a stored type',
  );
  for (const type of ['Patient', 'Observation', 'AuditEvent', 'Provenance']) {
    const operations = resources.find((r) => r.type === type)?.operation?.map((o) => o.name);
    t.ok(
      ['verify', 'proof', 'provenance'].every((name) => operations?.includes(name)),
      `${type}: the ledger's operations`,
    );
  }
});

stopMongoAtEnd(t);
