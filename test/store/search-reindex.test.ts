/**
 * idxVersion stamping and the reindex command: stale heads are recomputed, in batches with a checkpoint
 * (an interrupted run resumes), safely next to concurrent writes; the CLI runs it on a configured database.
 */
import { Writable } from 'node:stream';
import type { Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { runReindex } from '../../src/cli/reindex.js';
import { extractIndex } from '../../src/fhir/search/extract.js';
import { REINDEX_CHECKPOINTS, reindex } from '../../src/fhir/search/reindex.js';
import { searchRegistry } from '../../src/fhir/search/registry.js';
import { versionKey } from '../../src/store/resource-store.js';
import { BASE, JSON_HEADERS, create, ids } from '../fhir/search/helpers.js';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { testMongo } from '../helpers/mongo.js';

stopMongoAtEnd(t);

const current = searchRegistry().indexVersion(BASE);

t.test('every write stamps idx and idxVersion on the head and its version', async (t) => {
  const { app, store } = await startTestApp(t);
  const p = await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Stamp' }] });
  const head = await store.heads.findOne({ _id: `Patient/${p.id}` });
  t.equal(head?.idxVersion, current);
  t.same(head?.idx?.family, ['stamp']);
  const version = await store.versions.findOne({ _id: versionKey('Patient', p.id, 1) });
  t.same(version?.idx, head?.idx, 'the version carries the same values');
  await app.inject({ method: 'DELETE', url: `/Patient/${p.id}` });
  const tombstone = await store.heads.findOne({ _id: `Patient/${p.id}` });
  t.equal(tombstone?.idx, undefined, 'a deletion leaves no index values on the head');
});

t.test('reindex: stale heads only, batches, checkpoint and resume, concurrent writes', async (t) => {
  const { app, store } = await startTestApp(t);
  const created: string[] = [];
  for (let i = 0; i < 12; i++) created.push((await create<Patient>(app, { resourceType: 'Patient', name: [{ family: `Re${i}` }] })).id);
  const gone = created[11];
  await app.inject({ method: 'DELETE', url: `/Patient/${gone}` });
  // As if written by older definitions: wrong values, old idxVersion (10 live heads and a tombstone).
  await store.heads.updateMany({ _id: { $ne: `Patient/${created[0]}` } }, { $set: { idx: { family: ['stale'] }, idxVersion: 1 } });
  t.same(await ids(app, '/Patient?family=re3'), [], 'stale values: not found');

  const controller = new AbortController();
  const progress: Array<[number, number]> = [];
  const first = await reindex(store, BASE, {
    batchSize: 4,
    signal: controller.signal,
    onProgress: (done, total) => {
      progress.push([done, total]);
      if (done >= 4) controller.abort();
    },
  });
  t.equal(first.completed, false, 'interrupted after the first batch');
  t.equal(first.total, 11, 'only stale heads are counted (the current one is not)');
  t.equal(first.updated, 4);
  t.same(progress, [
    [0, 11],
    [4, 11],
  ]);
  const checkpoint = await store.db.collection(REINDEX_CHECKPOINTS).findOne({});
  t.equal(checkpoint?.idxVersion, current);
  t.type(checkpoint?.lastId, 'string');

  const second = await reindex(store, BASE, { batchSize: 4 });
  t.equal(second.resumedFrom, checkpoint?.lastId, 'resumes after the checkpoint');
  t.equal(second.updated, 7);
  t.equal(second.completed, true);
  t.same(await ids(app, '/Patient?family=re3'), [created[3]], 'found again');
  const tombstone = await store.heads.findOne({ _id: `Patient/${gone}` });
  t.equal(tombstone?.idxVersion, current);
  t.equal(tombstone?.idx, undefined, 'a tombstone is stamped, not indexed');
  const again = await reindex(store, BASE, {});
  t.equal(again.total, 0, 'nothing stale any more');

  // Concurrent writes: a reindex and updates of the same resources; every head ends current and correct.
  await store.heads.updateMany({ deleted: false }, { $set: { idx: {}, idxVersion: 2 } });
  const writes = (async () => {
    for (let round = 0; round < 3; round++) {
      for (const id of created.slice(0, 10)) {
        const res = await app.inject({
          method: 'PUT',
          url: `/Patient/${id}`,
          headers: JSON_HEADERS,
          payload: { resourceType: 'Patient', id, name: [{ family: `Re${created.indexOf(id)}`, given: [`Round${round}`] }] },
        });
        if (res.statusCode !== 200) throw new Error(`update ${res.statusCode}`);
      }
    }
  })();
  await Promise.all([reindex(store, BASE, { batchSize: 1, restart: true }), writes]);
  const heads = await store.heads.find({ deleted: false }).toArray();
  t.ok(
    heads.every((h) => h.idxVersion === current),
    'every head current',
  );
  t.ok(
    heads.every((h) => JSON.stringify(h.idx) === JSON.stringify(extractIndex(searchRegistry(), h.resource, BASE).idx)),
    'and its values those of its own version',
  );
  t.same(await ids(app, '/Patient?given=round2'), [...created.slice(0, 10)].sort());
});

t.test('npm run reindex: the CLI on a configured database', async (t) => {
  const { app, store, connection } = await startTestApp(t);
  await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Cli' }] });
  await store.heads.updateMany({}, { $set: { idxVersion: 7 } });
  let out = '';
  let err = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk, _encoding, done) {
        append(String(chunk));
        done();
      },
    });
  const env = { MONGODB_URI: (await testMongo()).uri, MONGODB_DB: connection.db.databaseName, BASE_URL: BASE };
  const { code, result } = await runReindex(['--batch', '10'], env, { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)) });
  t.equal(code, 0, err);
  t.equal(result?.updated, 1);
  t.match(out, /reindex done: 1 updated/);
  t.equal((await store.heads.findOne({}))?.idxVersion, current);
  const usage = await runReindex(['--batch', 'many'], env, { stdout: sink(() => {}), stderr: sink((s) => (err += s)) });
  t.equal(usage.code, 2);
  const noUri = await runReindex([], {}, { stdout: sink(() => {}), stderr: sink((s) => (err += s)) });
  t.equal(noUri.code, 2);
  t.match(err, /MONGODB_URI/);
});
