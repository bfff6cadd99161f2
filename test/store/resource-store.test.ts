/**
 * The persistence model: every version kept, current and any version read by one lookup, concurrent writers of the
 * same resource cannot both win, and a crash between a write's two steps is healed instead of lost.
 */
import type { Patient } from '@medplum/fhirtypes';
import t, { type Test } from 'tap';
import { connectMongo } from '../../src/store/mongo.js';
import { ResourceStore, VersionConflictError, type NewVersion } from '../../src/store/resource-store.js';
import { stopTestMongo, testMongo, uniqueDbName } from '../helpers/mongo.js';

t.teardown(stopTestMongo);

async function openStore(t: Test, forceNoTransactions = false): Promise<ResourceStore> {
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, uniqueDbName('store'));
  t.teardown(async () => {
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
  });
  const store = new ResourceStore(connection.db, forceNoTransactions ? false : connection.supportsTransactions);
  await store.ensureIndexes();
  return store;
}

function patientVersion(id: string, versionId: number, family: string): NewVersion {
  const lastUpdated = new Date(Date.UTC(2026, 0, 1, 0, 0, versionId));
  const resource: Patient = {
    resourceType: 'Patient',
    id,
    meta: { versionId: String(versionId), lastUpdated: lastUpdated.toISOString() },
    name: [{ family }],
  };
  return {
    type: 'Patient',
    id,
    versionId,
    lastUpdated,
    deleted: false,
    method: versionId === 1 ? 'POST' : 'PUT',
    resource,
    anchor: { state: 'pending' },
  };
}

for (const mode of ['deployment default', 'no transactions (standalone mongod)'] as const) {
  t.test(`${mode}: versions are kept and read back`, async (t) => {
    const store = await openStore(t, mode !== 'deployment default');
    await store.writeVersion(patientVersion('p1', 1, 'One'));
    await store.writeVersion(patientVersion('p1', 2, 'Two'));
    await store.writeVersion({ ...patientVersion('p1', 3, 'Two'), deleted: true });

    const current = await store.readCurrent('Patient', 'p1');
    t.equal(current?.versionId, 3);
    t.equal(current?.deleted, true);
    t.equal(((await store.readVersion('Patient', 'p1', 1))?.resource as Patient).name?.[0].family, 'One');
    t.equal(((await store.readVersion('Patient', 'p1', 2))?.resource as Patient).name?.[0].family, 'Two');
    t.same((await store.readVersion('Patient', 'p1', 1))?.anchor, { state: 'pending' }, 'anchor state stored with the version');
    t.equal(await store.readVersion('Patient', 'p1', 4), null);
    t.equal(await store.readCurrent('Patient', 'nope'), null);
    t.equal(await store.versions.countDocuments({ type: 'Patient', id: 'p1' }), 3, 'every version kept');
    t.equal(await store.heads.countDocuments({ type: 'Patient', id: 'p1' }), 1, 'one head per resource');
  });

  t.test(`${mode}: of concurrent writers of the same version exactly one wins`, async (t) => {
    const store = await openStore(t, mode !== 'deployment default');
    await store.writeVersion(patientVersion('p2', 1, 'Base'));
    const writers = Array.from({ length: 12 }, (_, i) => store.writeVersion(patientVersion('p2', 2, `Writer${i}`)));
    const results = await Promise.allSettled(writers);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    t.equal(won.length, 1, 'one winner');
    t.equal(lost.length, 11);
    for (const loss of lost) t.ok(loss.reason instanceof VersionConflictError, String(loss.reason));
    const current = await store.readCurrent('Patient', 'p2');
    const stored = await store.readVersion('Patient', 'p2', 2);
    t.equal(current?.versionId, 2);
    t.same(current?.resource, stored?.resource, 'the head is the winning version');

    const creators = Array.from({ length: 8 }, (_, i) => store.writeVersion(patientVersion('p3', 1, `Creator${i}`)));
    const created = await Promise.allSettled(creators);
    t.equal(created.filter((r) => r.status === 'fulfilled').length, 1, 'concurrent creates of one id: one wins');
  });
}

t.test('a crash between the version insert and the head update is rolled forward by the next writer', async (t) => {
  const store = await openStore(t, true);
  await store.writeVersion(patientVersion('p4', 1, 'Before'));
  // Simulate a process that died after step 1: version 2 exists, the head still says 1.
  const stranded = patientVersion('p4', 2, 'Stranded');
  await store.versions.insertOne({ _id: 'Patient/p4/2', ...stranded });
  t.equal((await store.readCurrent('Patient', 'p4'))?.versionId, 1);

  await t.rejects(store.writeVersion(patientVersion('p4', 2, 'Late')), VersionConflictError, 'the late writer loses');
  const head = await store.readCurrent('Patient', 'p4');
  t.equal(head?.versionId, 2, 'head rolled forward');
  t.equal((head?.resource as Patient).name?.[0].family, 'Stranded', 'to the stored version, not the loser');
  await store.writeVersion(patientVersion('p4', 3, 'After'));
  t.equal((await store.readCurrent('Patient', 'p4'))?.versionId, 3, 'and writes continue');
});

t.test('ensureIndexes is idempotent and creates the lookups reads rely on', async (t) => {
  const store = await openStore(t);
  await store.ensureIndexes();
  await store.ensureIndexes();
  const versionIndexes = (await store.versions.listIndexes().toArray()).map((i) => i.name).sort();
  t.same(versionIndexes, [
    '_id_',
    'lastUpdated',
    // The audit trail is stored as versions only (single-version type): its search indexes are here.
    'search_AuditEvent_agent_date',
    'search_AuditEvent_agent_identifier_date',
    'search_AuditEvent_date',
    'search_AuditEvent_entity_date',
    'search_AuditEvent_patient_date',
    'type_id_version',
    'type_lastUpdated',
  ]);
  const headIndexes = await store.heads.listIndexes().toArray();
  t.ok(headIndexes.find((i) => i.name === 'type_id')?.unique, 'one head per type and id, enforced');
  t.notOk(
    headIndexes.some((i) => i.name?.startsWith('search_AuditEvent')),
    'no AuditEvent heads, so no AuditEvent indexes on heads',
  );

  await store.writeVersion(patientVersion('p5', 1, 'X'));
  const plan = await store.versions.find({ type: 'Patient', id: 'p5' }).sort({ versionId: -1 }).explain();
  t.match(JSON.stringify(plan.queryPlanner.winningPlan), /"indexName":"type_id_version"/, 'history uses the index');
});
