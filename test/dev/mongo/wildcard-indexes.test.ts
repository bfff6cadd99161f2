/**
 * Wildcard indexes ('$**', 'path.$**', compound with regular fields, as mongod 7.0 has them): creation rules,
 * key generation, planning (one expansion per query path, $_path bounds), results equal to a collection scan,
 * counts, sorts, the plan cache, writes, transactions and persistence.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MinKey } from 'bson';
import { MongoClient, type Collection, type Db, type Document } from 'mongodb';
import type { Test } from 'tap';
import { encodeValue, invert } from '../../../src/dev/mongo/bson/keystring.js';
import { startEmbeddedMongo } from '../../../src/dev/mongo/index.js';
import { StorageEngine } from '../../../src/dev/mongo/storage/engine.js';
import { Index } from '../../../src/dev/mongo/storage/index.js';
import { LmdbStorage } from '../../../src/dev/mongo/storage/lmdb-storage.js';
import { CLIENT_OPTIONS, findStage, forEachBackend, rejection, winningPlan, type TestDoc } from './backends.js';

const DAY = 86_400_000;
const BASE = Date.UTC(2020, 0, 1);

/** FHIR-store-like resources: search values under `idx`, of every shape the store writes and a few it does not. */
function resources(): Document[] {
  const types = ['Observation', 'Condition', 'Patient'];
  const names = ['SMITH', 'SMYTHE', 'JONES', 'SMALL'];
  const docs: Document[] = [];
  for (let i = 0; i < 240; i++) {
    const code = `${1000 + (i % 7)}-5`;
    const idx: Document = {
      code: i % 4 === 0 ? [`http://loinc.org|${code}`, code] : code,
      subject: `Patient/p${i % 11}`,
      date: { lo: new Date(BASE + i * 5 * DAY), hi: new Date(BASE + (i * 5 + 1) * DAY) },
      'onset-date': { lo: new Date(BASE + (i % 37) * 30 * DAY) },
      // Mixed types under one path: strings, integers, doubles, booleans, null.
      value: [`v${i}`, i, i + 0.5, i % 2 === 0, null][i % 5],
      identifier: [
        { system: 'urn:sys', value: `id${i % 13}` },
        { system: 'urn:other', value: `o${i % 3}` },
      ],
      name: [names[i % 4], `N${i % 9}`],
    };
    if (i % 17 === 0) idx.empty = {};
    if (i % 19 === 0) idx.none = [];
    if (i % 23 === 0) idx.nested = [[1, 2], [3]];
    if (i % 29 === 0) delete idx.subject;
    docs.push({ _id: i, type: types[i % 3], deleted: i % 10 === 9, idx, other: i % 6 });
  }
  docs.push({ _id: 'bare', type: 'Observation', deleted: false });
  docs.push({ _id: 'flat', type: 'Observation', deleted: false, idx: 'flat' });
  docs.push({ _id: 'untyped', deleted: false, idx: { code: '1001-5' } });
  return docs;
}

const ids = (docs: Document[]): string[] => docs.map((d) => JSON.stringify(d._id)).sort();

/** The same documents through the planner and through a collection scan. */
async function sameAsCollscan(t: Test, c: Collection<TestDoc>, filter: Document, label = JSON.stringify(filter)): Promise<void> {
  const planned = await c.find(filter).toArray();
  const scanned = await c.find(filter).hint({ $natural: 1 }).toArray();
  t.same(ids(planned), ids(scanned), label);
}

async function explainFind(c: Collection<TestDoc>, filter: Document, options: Document = {}): Promise<Document> {
  return (await c.find(filter, options).explain('executionStats')) as Document;
}

/** The IXSCAN of an explain's winning plan. */
function ixscan(explain: Document): Document | undefined {
  return findStage(winningPlan(explain), 'IXSCAN');
}

await t.test('wildcard indexes through the driver', async (t) => {
  await forEachBackend(t, async (t, { db, client, backend }) => {
    const embedded = backend.name === 'embedded';

    await t.test('creation, listIndexes, and the specs mongod refuses', async (t) => {
      const c = db.collection<TestDoc>('create');
      t.equal(await c.createIndex({ '$**': 1 }), '$**_1');
      t.equal(await c.createIndex({ 'attrs.$**': -1 }), 'attrs.$**_-1');
      t.equal(
        await c.createIndex({ type: 1, 'idx.$**': 1 }, { name: 'search_any_type', partialFilterExpression: { deleted: false } }),
        'search_any_type',
      );
      t.equal(
        await c.createIndex({ tenant: 1, '$**': 1 }, { name: 'tenant_all', wildcardProjection: { tenant: 0, secret: 0 } }),
        'tenant_all',
      );
      t.equal(await c.createIndex({ 'idx.$**': 1, type: 1 }), 'idx.$**_1_type_1', 'the wildcard term may come first');
      const specs = await c.listIndexes().toArray();
      const byName = new Map(specs.map((s) => [s.name as string, s]));
      t.same(byName.get('$**_1')?.key, { '$**': 1 });
      t.same(byName.get('attrs.$**_-1')?.key, { 'attrs.$**': -1 });
      t.same(byName.get('search_any_type')?.key, { type: 1, 'idx.$**': 1 });
      t.same(byName.get('search_any_type')?.partialFilterExpression, { deleted: false });
      t.same(byName.get('tenant_all')?.wildcardProjection, { tenant: 0, secret: 0 }, 'the projection as given');
      t.equal(
        await c.createIndex({ type: 1, 'idx.$**': 1 }, { name: 'search_any_type', partialFilterExpression: { deleted: false } }),
        'search_any_type',
        'the same spec again is a no-op',
      );

      const refused = async (key: Document, options: Document, code: number, message?: RegExp): Promise<void> => {
        const err = await rejection(c.createIndex(key, options));
        t.equal(err.code, code, `${JSON.stringify(key)} ${JSON.stringify(options)}: code`);
        if (message && embedded) t.match(err.message, message, `${JSON.stringify(key)}: message`);
      };
      await refused({ 'a.$**': 1, 'b.$**': 1 }, {}, 7246201);
      await refused({ 'a.$**': 1 }, { unique: true }, 67, /Index type 'wildcard' does not support the 'unique' option/);
      await refused({ 'a.$**': 1, b: 1 }, { sparse: true }, 67, /'sparse' option/);
      await refused({ 'a.$**': 1 }, { expireAfterSeconds: 60 }, 67, /cannot make a TTL index/);
      await refused({ 'a.$**': 1, b: 'text' }, {}, 67, /Index type 'text' on field 'b' is not supported by the embedded server/);
      await refused({ 'a.$**': 1, b: 'hashed' }, {}, 67);
      await refused({ b: '2dsphere', 'a.$**': 1 }, {}, 67, /Index type '2dsphere'/);
      await refused({ a: 'text' }, {}, 67, /Index type 'text' on field 'a' is not supported by the embedded server/);
      await refused({ a: 1, b: 1 }, { wildcardProjection: { c: 1 } }, 2, /only allowed in an 'wildcard' index/);
      await refused({ 'a.$**': 1 }, { wildcardProjection: { 'a.b': 1 } }, 9, /only allowed when 'key' is \{"\$\*\*": ±1\}/);
      await refused({ '$**': 1 }, { wildcardProjection: {} }, 9, /can't be an empty object/);
      await refused({ '$**': 1 }, { wildcardProjection: { a: 1, b: 0 } }, 31254);
      await refused({ '$**': 1 }, { wildcardProjection: { a: 'x' } }, 51271);
      await refused({ a: 1, 'a.$**': 1 }, {}, 7246204);
      await refused({ 'a.b.c': 1, 'a.b.$**': 1 }, {}, 7246204);
      await refused({ a: 1, '$**': 1 }, {}, 67, /requires a 'wildcardProjection'/);
      await refused({ a: 1, '$**': 1 }, { wildcardProjection: { a: 1 } }, 7246208);
      await refused({ a: 1, b: 1, '$**': 1 }, { wildcardProjection: { b: 0 } }, 7246209);
      await refused({ a: 1, '$**': 1 }, { wildcardProjection: { _id: 0 } }, 7246210);
      await refused({ c: 1, '$**': 1 }, { wildcardProjection: { _id: 0, a: 0, b: 1 } }, 7246211);
      await refused({ c: 1, '$**': 1 }, { wildcardProjection: { 'a.b': 1, 'a.b.c': 1 } }, 7246200);
      await refused({ 'a.$**.b': 1 }, {}, 67, /field name starts with '\$'/);
      t.equal((await c.listIndexes().toArray()).length, specs.length, 'nothing was created by the refused specs');
      if (embedded) {
        const ttl = await rejection(db.command({ collMod: 'create', index: { name: '$**_1', expireAfterSeconds: 5 } }));
        t.equal(ttl.code, 72, 'collMod cannot make a wildcard index TTL');
      }
    });

    await t.test('a regular field of a compound wildcard index cannot be an array', async (t) => {
      const c = db.collection<TestDoc>('multikeyRegular');
      await c.createIndex({ type: 1, 'idx.$**': 1 });
      await c.insertOne({ _id: 1, type: 'A', idx: { a: [1, 2] } });
      const err = await rejection(c.insertOne({ _id: 2, type: ['A', 'B'], idx: { a: 1 } }));
      if (embedded) t.equal(err.code, 7246301);
      t.match(err.message, /type/);
      t.equal(await c.countDocuments({}), 1, 'the document was refused');
      const update = await rejection(c.updateOne({ _id: 1 }, { $set: { type: [] } }));
      if (embedded) t.equal(update.code, 7246301, 'an update that makes it an array is refused');
      t.same(await c.findOne({ _id: 1 }), { _id: 1, type: 'A', idx: { a: [1, 2] } });
      const other = db.collection<TestDoc>('multikeyRegularBuild');
      await other.insertOne({ _id: 1, type: ['A'], idx: { a: 1 } });
      const build = await rejection(other.createIndex({ type: 1, 'idx.$**': 1 }));
      if (embedded) t.equal(build.code, 7246301, 'an index build over such a document fails');
      t.equal((await other.listIndexes().toArray()).length, 1);
    });

    const docs = resources();
    const c = db.collection<TestDoc>('resources');
    await c.insertMany(docs);
    await c.createIndex({ type: 1, 'idx.$**': 1 }, { name: 'search_any_type', partialFilterExpression: { deleted: false } });
    const live = (type: string): Document => ({ type, deleted: false });

    await t.test('results equal a collection scan, and usable predicates scan the wildcard index', async (t) => {
      const usable: Document[] = [
        { ...live('Observation'), 'idx.code': { $in: ['http://loinc.org|1001-5', '1001-5'] } },
        { ...live('Observation'), 'idx.code': '1003-5' },
        { ...live('Condition'), 'idx.onset-date.lo': { $gte: new Date(BASE + 400 * DAY) } },
        { ...live('Condition'), 'idx.date.lo': { $gte: new Date(BASE + 100 * DAY), $lt: new Date(BASE + 600 * DAY) } },
        { ...live('Observation'), 'idx.subject': 'Patient/p3', 'idx.date.lo': { $gte: new Date(BASE + 300 * DAY) } },
        { ...live('Patient'), 'idx.name': /^SMI/ },
        { ...live('Patient'), 'idx.name': { $regex: '^SM' } },
        { ...live('Observation'), 'idx.identifier.value': 'id5' },
        { ...live('Observation'), 'idx.identifier.system': 'urn:sys', 'idx.identifier.value': { $in: ['id1', 'id2'] } },
        { ...live('Condition'), 'idx.value': { $gt: 50, $lte: 150 } },
        { ...live('Condition'), 'idx.value': { $in: ['v10', 11, true, 13.5] } },
        { ...live('Patient'), 'idx.value': { $lt: 'v5' } },
        { ...live('Observation'), 'idx.value': false },
        { ...live('Observation'), 'idx.empty': {} },
        { ...live('Observation'), idx: 'flat' },
        { ...live('Observation'), 'idx.code': { $gt: '1004' }, other: { $lt: 3 } },
        { ...live('Observation') },
      ];
      for (const filter of usable) {
        await sameAsCollscan(t, c, filter);
        const scan = ixscan(await explainFind(c, filter));
        t.equal(scan?.indexName, 'search_any_type', `IXSCAN for ${JSON.stringify(filter)}`);
      }
      // Predicates a wildcard index cannot answer: still right, from another plan or filtered.
      const other: Document[] = [
        { ...live('Observation'), 'idx.value': null },
        { ...live('Observation'), 'idx.code': { $ne: '1001-5' } },
        { ...live('Observation'), 'idx.code': { $nin: ['1001-5'] } },
        { ...live('Observation'), 'idx.subject': { $exists: false } },
        { ...live('Observation'), 'idx.none': [] },
        { ...live('Observation'), 'idx.nested': [1, 2] },
        { ...live('Observation'), 'idx.date': { lo: new Date(BASE), hi: new Date(BASE + DAY) } },
        { ...live('Observation'), 'idx.identifier': { $elemMatch: { system: 'urn:sys', value: 'id5' } } },
        { ...live('Observation'), 'idx.identifier.0.value': 'id5' },
        { ...live('Observation'), 'idx.code': { $not: /^1001/ } },
        { type: 'Observation', 'idx.code': '1001-5' },
        { deleted: false, 'idx.code': '1001-5' },
      ];
      for (const filter of other) await sameAsCollscan(t, c, filter);
      const positional = ixscan(await explainFind(c, { ...live('Observation'), 'idx.identifier.0.value': 'id5' }));
      t.not(positional?.indexBounds?.$_path?.[0], '["idx.identifier.0.value", "idx.identifier.0.value"]', 'no positional path');
      const notImplied = await explainFind(c, { type: 'Observation', 'idx.code': '1001-5' });
      t.ok(findStage(winningPlan(notImplied), 'COLLSCAN'), 'a query not implying the partial filter cannot use it');
    });

    await t.test('explain: the expanded key pattern, $_path bounds, multikey paths', async (t) => {
      const filter = { ...live('Observation'), 'idx.code': { $in: ['http://loinc.org|1234-5', '1001-5'] } };
      const e = await explainFind(c, filter);
      const scan = ixscan(e);
      t.same(scan?.keyPattern, { type: 1, $_path: 1, 'idx.code': 1 });
      t.equal(scan?.indexName, 'search_any_type');
      t.same(scan?.indexBounds, {
        type: ['["Observation", "Observation"]'],
        $_path: ['["idx.code", "idx.code"]'],
        'idx.code': ['["1001-5", "1001-5"]', '["http://loinc.org|1234-5", "http://loinc.org|1234-5"]'],
      });
      t.equal(scan?.isMultiKey, true, 'idx.code holds arrays');
      t.same(scan?.multiKeyPaths, { type: [], $_path: [], 'idx.code': ['idx.code'] });
      t.equal(scan?.isPartial, true);
      // (mongod fetches to check the partial filter's clauses; this engine takes them as answered by the index.)
      if (embedded) t.notOk(findStage(winningPlan(e), 'FETCH')?.filter, 'the bounds and the partial filter answer everything');
      t.equal(
        e.executionStats.nReturned,
        docs.filter((d) => d.type === 'Observation' && !d.deleted && [d.idx?.code].flat().includes('1001-5')).length,
      );

      const dates = ixscan(await explainFind(c, { ...live('Condition'), 'idx.onset-date.lo': { $gte: new Date(BASE + 400 * DAY) } }));
      t.same(dates?.keyPattern, { type: 1, $_path: 1, 'idx.onset-date.lo': 1 });
      t.equal(dates?.isMultiKey, false, 'no array on the way to idx.onset-date.lo');
      t.same(dates?.indexBounds?.$_path, ['["idx.onset-date.lo", "idx.onset-date.lo"]']);
      t.same(dates?.indexBounds?.['idx.onset-date.lo'], [`[new Date(${BASE + 400 * DAY}), new Date(9223372036854775807)]`]);

      const nested = ixscan(await explainFind(c, { ...live('Observation'), 'idx.identifier.value': 'id5' }));
      t.same(nested?.multiKeyPaths, { type: [], $_path: [], 'idx.identifier.value': ['idx.identifier'] }, 'the array on the way');

      const prefix = ixscan(await explainFind(c, live('Observation')));
      t.same(prefix?.keyPattern, { type: 1, $_path: 1 }, 'a scan of the regular prefix alone');
      // mongod's reply names $_path twice (path, then value); the driver keeps the last, this engine sends the first.
      if (embedded) t.same(prefix?.indexBounds, { type: ['["Observation", "Observation"]'], $_path: ['[MinKey, MinKey]', '["", {})'] });

      // Two wildcard paths: one candidate each, the trial picks; the other is a rejected plan.
      const two = await explainFind(c, {
        ...live('Observation'),
        'idx.subject': 'Patient/p3',
        'idx.date.lo': { $gte: new Date(BASE + 900 * DAY) },
      });
      const paths = [ixscan(two), ...(two.queryPlanner.rejectedPlans as Document[]).map((p) => findStage(p, 'IXSCAN'))].map(
        (s) => s?.indexBounds?.$_path?.[0],
      );
      t.ok(paths.includes('["idx.subject", "idx.subject"]'), 'a plan on idx.subject');
      t.ok(paths.includes('["idx.date.lo", "idx.date.lo"]'), 'a plan on idx.date.lo');
    });

    await t.test('counts: from the keys when the bounds are exact, else from the documents', async (t) => {
      const count = async (query: Document): Promise<{ n: number; plan: Document; docsExamined: number }> => {
        const e = await db.command({ explain: { count: 'resources', query }, verbosity: 'executionStats' });
        const n = (await db.command({ count: 'resources', query })).n as number;
        t.equal(n, await c.countDocuments(query, { hint: { $natural: 1 } }), `count ${JSON.stringify(query)}`);
        return { n, plan: e.queryPlanner.winningPlan as Document, docsExamined: e.executionStats.totalDocsExamined as number };
      };
      const single = await count({ ...live('Condition'), 'idx.subject': 'Patient/p4' });
      const countScan = findStage(single.plan, 'COUNT_SCAN');
      if (embedded) {
        t.equal(countScan?.indexName, 'search_any_type', 'one key range: COUNT_SCAN');
        t.same(countScan?.indexBounds, {
          startKey: { type: 'Condition', $_path: 'idx.subject', 'idx.subject': 'Patient/p4' },
          startKeyInclusive: true,
          endKey: { type: 'Condition', $_path: 'idx.subject', 'idx.subject': 'Patient/p4' },
          endKeyInclusive: true,
        });
        t.equal(single.docsExamined, 0);
      }
      const multi = await count({ ...live('Observation'), 'idx.code': { $in: ['http://loinc.org|1001-5', '1001-5'] } });
      if (embedded) {
        t.notOk(findStage(multi.plan, 'FETCH'), 'exact bounds on a multikey path: keys only, deduplicated');
        t.equal(multi.docsExamined, 0);
      }
      t.equal(multi.n, docs.filter((d) => d.type === 'Observation' && !d.deleted && [d.idx?.code].flat().includes('1001-5')).length);
      const inexact = await count({ ...live('Observation'), 'idx.code': '1001-5', other: 1 });
      t.ok(findStage(inexact.plan, 'FETCH'), 'a predicate the index does not answer needs the documents');
      const regex = await count({ ...live('Patient'), 'idx.name': /^SM.*H/ });
      t.ok(findStage(regex.plan, 'FETCH'), 'a regex that is more than a prefix needs the documents');
      await count({ ...live('Observation'), 'idx.empty': {} });
      await count(live('Patient'));
    });

    await t.test('sort: provided only on the queried path when it is never an array', async (t) => {
      const check = async (filter: Document, sort: Document, blocking: boolean, label: string): Promise<void> => {
        const e = await explainFind(c, filter, { sort });
        t.equal(ixscan(e)?.indexName, 'search_any_type', `${label}: the wildcard index`);
        t.equal(Boolean(findStage(winningPlan(e), 'SORT')), blocking, `${label}: ${blocking ? 'blocking' : 'index-ordered'}`);
        // Documents with equal sort keys may come in any order: the keys' sequence and the set of documents must agree.
        const sortKeys = (list: Document[]): string[] =>
          list.map((d) =>
            JSON.stringify(Object.keys(sort).map((path) => path.split('.').reduce<unknown>((v, p) => (v as Document)?.[p], d))),
          );
        const planned = await c.find(filter).sort(sort).toArray();
        const scanned = await c.find(filter).sort(sort).hint({ $natural: 1 }).toArray();
        t.same(sortKeys(planned), sortKeys(scanned), `${label}: same order as a collection scan`);
        t.same(ids(planned), ids(scanned), `${label}: same documents`);
      };
      const since = { ...live('Condition'), 'idx.date.lo': { $gte: new Date(BASE + 200 * DAY) } };
      await check(since, { 'idx.date.lo': 1 }, false, 'ascending on the path');
      await check(since, { 'idx.date.lo': -1 }, false, 'descending on the path');
      await check({ ...live('Observation'), 'idx.code': { $gt: '1002' } }, { 'idx.code': 1 }, true, 'a multikey path');
      await check(since, { 'idx.date.hi': 1 }, true, 'another path');
      await check({ type: { $in: ['Condition', 'Patient'] }, deleted: false }, { type: 1 }, false, 'the regular prefix');
      await check({ type: { $in: ['Condition', 'Patient'] }, deleted: false }, { type: 1, 'idx.subject': 1 }, true, 'prefix then a path');
    });

    await t.test('plan cache: the expanded path is part of the cached choice', async (t) => {
      await db.command({ planCacheClear: 'resources' });
      const bySubject = (p: number, day: number): Document => ({
        ...live('Observation'),
        'idx.subject': `Patient/p${p}`,
        'idx.date.lo': { $gte: new Date(BASE + day * DAY) },
      });
      // Few documents have a date this late: the idx.date.lo scan wins.
      for (const [p, day] of [
        [3, 1150],
        [4, 1150],
      ] as const)
        await sameAsCollscan(t, c, bySubject(p, day));
      const entries = await db
        .collection('resources')
        .aggregate([{ $planCacheStats: {} }])
        .toArray();
      const entry = entries.find((e) => e.createdFromQuery?.query?.['idx.subject'] !== undefined);
      t.equal(entry?.isActive, true, 'cached and active');
      const cachedPath = (findStage(entry?.cachedPlan, 'IXSCAN') as Document | undefined)?.indexBounds?.$_path?.[0];
      t.ok(typeof cachedPath === 'string' && cachedPath.startsWith('["idx.'), `cached plan on one path: ${String(cachedPath)}`);
      // The same shape with other values: the cached path, bounds rebuilt from the new values.
      for (const [p, day] of [
        [5, 1100],
        [7, 1190],
      ] as const) {
        const filter = bySubject(p, day);
        await sameAsCollscan(t, c, filter);
        const e = await explainFind(c, filter);
        if (embedded) t.equal(e.queryPlanner.winningPlan.isCached, true, 'from the cache');
        t.equal(ixscan(e)?.indexBounds?.$_path?.[0], cachedPath, 'the cached path');
        t.same(ixscan(e)?.indexBounds?.type, ['["Observation", "Observation"]']);
        t.same(ixscan(e)?.indexBounds?.['idx.date.lo'], [`[new Date(${BASE + day * DAY}), new Date(9223372036854775807)]`], 'its bounds');
      }
      // Values for which the cached path is a poor choice (nearly every date qualifies): the cached plan overruns its
      // works, the entry is deactivated, and the trial picks the other path.
      await sameAsCollscan(t, c, bySubject(6, 10));
      const replanned = (
        await db
          .collection('resources')
          .aggregate([{ $planCacheStats: {} }])
          .toArray()
      ).find((e) => e.createdFromQuery?.query?.['idx.subject'] !== undefined);
      if (embedded) t.equal(replanned?.isActive, false, 'deactivated by the replan');
      const trial = await explainFind(c, bySubject(8, 20));
      t.same(ixscan(trial)?.indexBounds?.$_path, ['["idx.subject", "idx.subject"]'], 'planned again: the selective path wins');
      await sameAsCollscan(t, c, bySubject(8, 20));
      // Another shape (another path) gets its own entry and its own path.
      const byCode = (code: string, day: number): Document => ({
        ...live('Condition'),
        'idx.code': code,
        'idx.onset-date.lo': { $gte: new Date(BASE + day * DAY) },
      });
      await sameAsCollscan(t, c, byCode('1002-5', 1000));
      await sameAsCollscan(t, c, byCode('1003-5', 1000));
      const e = await explainFind(c, byCode('1004-5', 1050));
      const codePath = ixscan(e)?.indexBounds?.$_path?.[0];
      t.ok(codePath === '["idx.code", "idx.code"]' || codePath === '["idx.onset-date.lo", "idx.onset-date.lo"]', String(codePath));
      t.equal(
        (
          await db
            .collection('resources')
            .aggregate([{ $planCacheStats: {} }])
            .toArray()
        ).length,
        2,
        'one entry per shape',
      );
    });

    await t.test('writes keep the index right: updates, replacements, deletes', async (t) => {
      const w = db.collection<TestDoc>('writes');
      await w.createIndex({ type: 1, 'idx.$**': 1 }, { name: 'search_any_type', partialFilterExpression: { deleted: false } });
      await w.insertMany([
        { _id: 1, type: 'Obs', deleted: false, idx: { code: ['a', 'b'], status: 'final' } },
        { _id: 2, type: 'Obs', deleted: false, idx: { code: 'c', status: 'final' } },
        { _id: 3, type: 'Obs', deleted: true, idx: { code: 'a' } },
      ]);
      const found = async (filter: Document): Promise<unknown[]> => {
        const planned = await w.find(filter).toArray();
        const scanned = await w.find(filter).hint({ $natural: 1 }).toArray();
        t.same(ids(planned), ids(scanned), JSON.stringify(filter));
        t.equal(ixscan(await explainFind(w, filter))?.indexName, 'search_any_type');
        return planned.map((d) => d._id).sort();
      };
      const code = (v: string): Document => ({ type: 'Obs', deleted: false, 'idx.code': v });
      t.same(await found(code('a')), [1]);
      await w.updateOne({ _id: 2 }, { $set: { 'idx.code': ['a', 'd'] } });
      t.same(await found(code('a')), [1, 2], 'after $set of an array');
      t.same(await found(code('c')), [], 'the old key is gone');
      await w.updateOne({ _id: 1 }, { $pull: { 'idx.code': 'a' } as Document });
      t.same(await found(code('a')), [2], 'after $pull');
      await w.updateOne({ _id: 1 }, { $set: { note: 'unrelated' } });
      t.same(await found(code('b')), [1], 'an unrelated update leaves the keys');
      await w.updateOne({ _id: 1 }, { $set: { 'idx.extra.deep': 7 } });
      t.same(await found({ type: 'Obs', deleted: false, 'idx.extra.deep': 7 }), [1], 'a new path');
      await w.updateOne({ _id: 3 }, { $set: { deleted: false } });
      t.same(await found(code('a')), [2, 3], 'entering the partial filter');
      await w.updateOne({ _id: 2 }, { $set: { deleted: true } });
      t.same(await found(code('a')), [3], 'leaving it');
      await w.replaceOne({ _id: 3 }, { type: 'Obs', deleted: false, idx: { status: 'amended' } });
      t.same(await found(code('a')), [], 'after a replacement');
      t.same(await found({ type: 'Obs', deleted: false, 'idx.status': 'amended' }), [3]);
      await w.deleteOne({ _id: 3 });
      t.same(await found({ type: 'Obs', deleted: false, 'idx.status': 'amended' }), [], 'after a delete');
      await w.updateOne({ _id: 1 }, { $unset: { idx: '' } });
      t.same(await found({ type: 'Obs', deleted: false }), [1], 'a document without wildcard leaves is still under its type');
      t.same(await found({ type: 'Obs', deleted: false, 'idx.code': 'b' }), []);
    });

    await t.test('transactions: own writes visible inside, none after an abort, all after a commit', async (t) => {
      const x = db.collection<TestDoc>('txn');
      await x.createIndex({ type: 1, 'idx.$**': 1 }, { name: 'search_any_type', partialFilterExpression: { deleted: false } });
      await x.insertMany([
        { _id: 1, type: 'Obs', deleted: false, idx: { code: 'a' } },
        { _id: 2, type: 'Obs', deleted: false, idx: { code: 'b' } },
      ]);
      const filter = (v: string): Document => ({ type: 'Obs', deleted: false, 'idx.code': v });
      const session = client.startSession();
      try {
        session.startTransaction();
        await x.insertOne({ _id: 3, type: 'Obs', deleted: false, idx: { code: 'a' } }, { session });
        await x.updateOne({ _id: 2 }, { $set: { 'idx.code': 'a' } }, { session });
        await x.updateOne({ _id: 1 }, { $set: { 'idx.code': 'z' } }, { session });
        const inside = await x.find(filter('a'), { session }).toArray();
        t.same(ids(inside), ids([{ _id: 2 }, { _id: 3 }]), 'the transaction sees its writes');
        t.equal(await x.countDocuments(filter('a'), { session }), 2);
        t.same(ids(await x.find(filter('a')).toArray()), ids([{ _id: 1 }]), 'others do not');
        await session.abortTransaction();
        t.same(ids(await x.find(filter('a')).toArray()), ids([{ _id: 1 }]), 'nothing after the abort');
        t.equal(await x.countDocuments(filter('z')), 0);

        session.startTransaction();
        await x.insertOne({ _id: 3, type: 'Obs', deleted: false, idx: { code: 'a' } }, { session });
        await x.deleteOne({ _id: 1 }, { session });
        await session.commitTransaction();
      } finally {
        await session.endSession();
      }
      t.same(ids(await x.find(filter('a')).toArray()), ids([{ _id: 3 }]), 'the commit');
      t.equal(ixscan(await explainFind(x, filter('a')))?.indexName, 'search_any_type');
      t.equal(await x.countDocuments(filter('a')), 1);
    });

    await t.test("'$**' and 'path.$**' indexes, projections, descending and trailing fields", async (t) => {
      const a = db.collection<TestDoc>('all');
      const rows: Document[] = [];
      for (let i = 0; i < 60; i++) {
        rows.push({
          _id: i,
          tenant: `t${i % 3}`,
          attrs: { color: ['red', 'green', 'blue'][i % 3], size: i % 10, tags: [`g${i % 4}`, { k: `k${i % 5}` }] },
          secret: `s${i}`,
          flat: i % 7,
        });
      }
      await a.insertMany(rows);
      await a.createIndex({ '$**': 1 }, { name: 'all' });
      const viaAll = [{ flat: 3 }, { 'attrs.size': { $gte: 7 } }, { 'attrs.tags': 'g2' }, { 'attrs.tags.k': 'k1' }, { secret: 's5' }];
      for (const filter of viaAll) {
        await sameAsCollscan(t, a, filter);
        t.equal(ixscan(await explainFind(a, filter))?.indexName, 'all', JSON.stringify(filter));
      }
      t.same(ixscan(await explainFind(a, { 'attrs.tags.k': 'k1' }))?.keyPattern, { $_path: 1, 'attrs.tags.k': 1 });
      // Each $or branch on a path of its own: one expansion per branch under OR.
      const either = { $or: [{ flat: 3 }, { 'attrs.color': 'red', 'attrs.size': { $lt: 2 } }] };
      await sameAsCollscan(t, a, either);
      const or = findStage(winningPlan(await explainFind(a, either)), 'OR');
      const branchPaths = ((or?.inputStages as Document[] | undefined) ?? [])
        .map((s) => findStage(s, 'IXSCAN')?.indexBounds as Document | undefined)
        .map((bounds) => bounds?.$_path?.[0] as string);
      t.equal(branchPaths.length, 2, 'an OR of two wildcard scans');
      t.equal(branchPaths[0], '["flat", "flat"]');
      t.ok(['["attrs.color", "attrs.color"]', '["attrs.size", "attrs.size"]'].includes(branchPaths[1]!), branchPaths[1]);
      const idOnly = await explainFind(a, { _id: { $gt: 50 } });
      t.notOk(ixscan(idOnly)?.indexName === 'all', '_id is not in a $** index');
      await a.dropIndex('all');

      await a.createIndex({ 'attrs.$**': -1 }, { name: 'attrs_desc' });
      await a.createIndex({ '$**': 1, tenant: 1 }, { name: 'proj', wildcardProjection: { 'attrs.color': 1, flat: 1 } });
      const desc = await explainFind(a, { 'attrs.size': { $gt: 3, $lte: 8 } }, { sort: { 'attrs.size': -1 } });
      t.equal(ixscan(desc)?.indexName, 'attrs_desc');
      t.same(ixscan(desc)?.keyPattern, { $_path: 1, 'attrs.size': -1 });
      t.same(ixscan(desc)?.indexBounds?.['attrs.size'], ['[8, 3)'], 'a descending value, read from 8 down');
      t.notOk(findStage(winningPlan(desc), 'SORT'), 'a descending term provides the descending sort');
      await sameAsCollscan(t, a, { 'attrs.size': { $gt: 3, $lte: 8 } });
      // attrs_desc answers attrs.color as well (and as cheaply): the hint picks the compound one.
      const projected = await explainFind(a, { 'attrs.color': 'red', tenant: 't0' }, { hint: 'proj' });
      t.equal(ixscan(projected)?.indexName, 'proj');
      t.same(ixscan(projected)?.keyPattern, { $_path: 1, 'attrs.color': 1, tenant: 1 });
      t.same(ixscan(projected)?.indexBounds?.tenant, ['["t0", "t0"]'], 'a trailing regular field is bounded too');
      await sameAsCollscan(t, a, { 'attrs.color': 'red', tenant: 't0' });
      const excluded = await explainFind(a, { secret: 's5' });
      t.notOk(ixscan(excluded), 'a path outside the projection cannot use it');
      await sameAsCollscan(t, a, { 'attrs.tags.k': 'k2', 'attrs.color': { $in: ['red', 'blue'] } });
    });

    await t.test('hint: a wildcard index the query cannot use is an error, else one of its paths', async (t) => {
      const hinted = await c
        .find({ ...live('Observation'), 'idx.code': '1001-5' })
        .hint('search_any_type')
        .toArray();
      t.same(ids(hinted), ids(await c.find({ ...live('Observation'), 'idx.code': '1001-5' }).toArray()));
      const byKey = await explainFind(c, { ...live('Observation'), 'idx.code': '1001-5' }, { hint: { type: 1, 'idx.$**': 1 } });
      t.same(ixscan(byKey)?.indexBounds?.$_path, ['["idx.code", "idx.code"]']);
      const err = await rejection(c.find({ deleted: false, other: 1 }).hint('search_any_type').toArray());
      if (embedded) t.equal(err.code, 291, 'NoQueryExecutionPlans');
    });
  });
});

t.test('wildcard keys: what is indexed, as mongod keys it', async (t) => {
  const keyOf = (path: unknown, value: unknown, descending = false): string => {
    const enc = encodeValue(value);
    return encodeValue(path) + (descending ? invert(enc) : enc);
  };
  const keys = (index: Index, doc: Document): string[] =>
    index
      .keysFor(doc)
      .keys.map((k) => k.key)
      .sort();
  const expect = (pairs: Array<[unknown, unknown]>, descending = false): string[] => pairs.map(([p, v]) => keyOf(p, v, descending)).sort();
  const all = new Index({ v: 2, key: { '$**': 1 }, name: 'all' });

  t.same(
    keys(all, { _id: 1, a: 1, b: 'hello', c: true }),
    expect([
      ['a', 1],
      ['b', 'hello'],
      ['c', true],
    ]),
    '_id left out',
  );
  t.same(
    keys(all, { a: { b: 1, c: 2 } }),
    expect([
      ['a.b', 1],
      ['a.c', 2],
    ]),
    'nested documents',
  );
  const arrays = all.keysFor({ a: [1, 2, 3] });
  t.same(
    arrays.keys.map((k) => k.key).sort(),
    expect([
      ['a', 1],
      ['a', 2],
      ['a', 3],
    ]),
  );
  t.same(arrays.arrayPaths, ['a'], 'a multikey path');
  t.same(keys(all, { a: null }), expect([['a', null]]));
  t.same(keys(all, { a: {} }), expect([['a', {}]]), 'an empty document is a leaf');
  const empty = all.keysFor({ a: [] });
  t.same(
    empty.keys.map((k) => k.key),
    expect([['a', undefined]]),
    'an empty array is keyed as undefined',
  );
  t.same(empty.arrayPaths, ['a']);
  const objects = all.keysFor({ a: [{ b: 1 }, { b: 2 }] });
  t.same(
    objects.keys.map((k) => k.key).sort(),
    expect([
      ['a.b', 1],
      ['a.b', 2],
    ]),
    'array positions are not in the path',
  );
  t.same(objects.arrayPaths, ['a']);
  t.same(
    keys(all, {
      a: [
        [1, 2],
        [3, 4],
      ],
    }),
    expect([
      ['a', [1, 2]],
      ['a', [3, 4]],
    ]),
    'a nested array is a value',
  );
  t.same(all.keysFor({ a: [{ b: [1, 2] }, { b: [3, 4] }] }).arrayPaths, ['a', 'a.b', 'a.b']);
  t.same(
    keys(all, { a: [1, 1, 2] }),
    expect([
      ['a', 1],
      ['a', 2],
    ]),
    'one key per distinct (path, value)',
  );
  t.same(keys(all, { '0': 'zero' }), expect([['0', 'zero']]));
  t.same(keys(all, { 'a.b': 1, c: 2 }), expect([['c', 2]]), 'a field name with a dot cannot be queried: skipped');
  t.same(keys(all, { _id: 'only' }), [], 'nothing to index');

  const sub = new Index({ v: 2, key: { 'a.$**': 1 }, name: 'sub' });
  t.same(
    keys(sub, { a: { x: 1, y: 2 }, b: 3 }),
    expect([
      ['a.x', 1],
      ['a.y', 2],
    ]),
  );
  t.same(keys(sub, { a: 5 }), expect([['a', 5]]), 'the prefix itself when it is a value');
  t.same(keys(sub, { b: 1 }), [], 'nothing under the prefix');
  const deep = new Index({ v: 2, key: { 'a.b.$**': -1 }, name: 'deep' });
  t.same(keys(deep, { a: { b: { x: 1 }, c: 3 }, d: 4 }), expect([['a.b.x', 1]], true), 'a descending term complements the value');
  t.same(keys(deep, { a: [{ b: { x: 1 } }, 7] }), expect([['a.b.x', 1]], true), 'through an array of documents');

  const include = new Index({ v: 2, key: { '$**': 1 }, name: 'inc', wildcardProjection: { a: 1, 'c.d': 1 } });
  t.same(
    keys(include, { a: 1, b: 2, c: { d: 3, e: 4 } }),
    expect([
      ['a', 1],
      ['c.d', 3],
    ]),
  );
  const exclude = new Index({ v: 2, key: { '$**': 1 }, name: 'exc', wildcardProjection: { b: 0, _id: 1 } });
  t.same(
    keys(exclude, { _id: 1, a: 1, b: 2 }),
    expect([
      ['_id', 1],
      ['a', 1],
    ]),
    '_id: 1 keeps _id',
  );

  const compound = new Index({ v: 2, key: { type: 1, 'idx.$**': 1, n: -1 }, name: 'cw' });
  const pre = encodeValue('Obs');
  const post = invert(encodeValue(3));
  t.same(
    keys(compound, { type: 'Obs', n: 3, idx: { a: 1, b: [2] } }),
    [pre + keyOf('idx.a', 1) + post, pre + keyOf('idx.b', 2) + post].sort(),
    'regular fields around each leaf',
  );
  const min = encodeValue(new MinKey());
  t.same(keys(compound, { type: 'Obs' }), [pre + min + min + invert(encodeValue(null))], 'no leaf, a regular field: MinKey');
  t.same(keys(compound, { other: 1 }), [], 'neither: no key');
  t.throws(() => compound.keysFor({ type: ['a'], idx: { a: 1 } }), { code: 7246301 });

  const partial = new Index({ v: 2, key: { type: 1, 'idx.$**': 1 }, name: 'p', partialFilterExpression: { deleted: false } });
  t.equal(partial.keysFor({ type: 'A', deleted: true, idx: { a: 1 } }).keys.length, 0, 'outside the partial filter');
  t.equal(partial.keysFor({ type: 'A', deleted: [true, false], idx: { a: 1 } }).keys.length, 1, 'an array element matches');
  t.equal(partial.keysFor({ type: 'A', idx: { a: 1 } }).keys.length, 0, 'missing is not false');

  // Which updates can change its keys: anything under the prefix, the regular fields, the partial filter's fields.
  t.ok(partial.dependsOnAny(['idx.code']));
  t.ok(partial.dependsOnAny(['idx']));
  t.ok(partial.dependsOnAny(['type']));
  t.ok(partial.dependsOnAny(['deleted']));
  t.notOk(partial.dependsOnAny(['meta.versionId']), 'an unrelated path skips the index');
  t.ok(all.dependsOnAny(['anything']), "'$**' depends on everything");
  t.notOk(include.dependsOnAny(['b']), 'an inclusion projection depends on its paths');
  t.ok(include.dependsOnAny(['c.d.e']));
});

t.test('persistence: specs and multikey paths survive a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'embedded-mongo-wildcard-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const withDb = async <T>(fn: (db: Db) => Promise<T>): Promise<T> => {
    const server = await startEmbeddedMongo({ dataDir: dir });
    const client = new MongoClient(server.uri, CLIENT_OPTIONS);
    await client.connect();
    try {
      return await fn(client.db('persist'));
    } finally {
      await client.close();
      await server.close();
    }
  };
  const filterArrays = { type: 'Obs', deleted: false, 'idx.code': 'a' };
  const filterScalar = { type: 'Obs', deleted: false, 'idx.status': 'final' };
  await withDb(async (db) => {
    const c = db.collection<TestDoc>('resources');
    await c.createIndex({ type: 1, 'idx.$**': 1 }, { name: 'search_any_type', partialFilterExpression: { deleted: false } });
    await c.createIndex({ '$**': 1 }, { name: 'proj', wildcardProjection: { meta: 1 } });
    await c.insertMany([
      { _id: 1, type: 'Obs', deleted: false, idx: { code: ['a', 'b'], status: 'final' }, meta: { v: 1 } },
      { _id: 2, type: 'Obs', deleted: false, idx: { code: 'a', status: 'draft' } },
    ]);
    t.equal(ixscan(await explainFind(c, filterArrays))?.isMultiKey, true);
  });
  await withDb(async (db) => {
    const c = db.collection<TestDoc>('resources');
    const specs = await c.listIndexes().toArray();
    t.same(
      specs.map((s) => [s.name, s.key, s.wildcardProjection ?? null]),
      [
        ['_id_', { _id: 1 }, null],
        ['search_any_type', { type: 1, 'idx.$**': 1 }, null],
        ['proj', { '$**': 1 }, { meta: 1 }],
      ],
    );
    const arrays = ixscan(await explainFind(c, filterArrays));
    t.equal(arrays?.indexName, 'search_any_type');
    t.equal(arrays?.isMultiKey, true, 'the multikey path is remembered');
    t.same(arrays?.multiKeyPaths, { type: [], $_path: [], 'idx.code': ['idx.code'] });
    t.equal(ixscan(await explainFind(c, filterScalar))?.isMultiKey, false, 'other paths are not multikey');
    t.same(ids(await c.find(filterArrays).toArray()), ids([{ _id: 1 }, { _id: 2 }]));
    t.same(ids(await c.find(filterScalar).toArray()), ids([{ _id: 1 }]));
    t.same(ids(await c.find({ 'meta.v': 1 }).toArray()), ids([{ _id: 1 }]));
    t.equal(ixscan(await explainFind(c, { 'meta.v': 1 }))?.indexName, 'proj');
    await c.insertOne({ _id: 3, type: 'Obs', deleted: false, idx: { status: ['final', 'x'] } });
    t.same(ids(await c.find(filterScalar).toArray()), ids([{ _id: 1 }, { _id: 3 }]));
  });
  await withDb(async (db) => {
    const c = db.collection<TestDoc>('resources');
    t.equal(ixscan(await explainFind(c, filterScalar))?.isMultiKey, true, 'a path that became multikey after the restart');
  });
});

t.test('a wildcard key pattern saved by an engine that took it for a field name is rebuilt at start', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'embedded-mongo-wildcard-legacy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ns = 'legacy.resources';
  const entriesOf = (index: Index | undefined): number => [...(index?.tree.range(null, null) ?? [])].length;
  const first = await LmdbStorage.open({ dataDir: dir });
  try {
    const engine = new StorageEngine(first);
    engine.apply([
      { op: 'insert', ns, doc: { _id: 1, type: 'Obs', idx: { code: ['a', 'b'] } } },
      { op: 'insert', ns, doc: { _id: 2, type: 'Obs', idx: { code: 'c' } } },
      { op: 'createIndex', ns, spec: { v: 2, key: { type: 1, 'idx.$**': 1 }, name: 'search' } },
    ]);
    const coll = engine.catalog.get(ns)!;
    const index = coll.index('search')!;
    t.equal(entriesOf(index), 3);
    // What the earlier engine stored: one key per document on a field named 'idx.$**', and no wildcard record.
    engine.apply([{ op: 'dropIndex', ns, name: 'search' }]);
    const legacy = new Index({ v: 2, key: { type: 1, legacy: 1 }, name: 'search' }, coll.store.newIndexTable());
    for (const [idKey, doc] of coll.docs) legacy.add(idKey, legacy.keysFor(doc));
    Object.assign(legacy.spec, { key: { type: 1, 'idx.$**': 1 } });
    coll.indexes.push(legacy);
    coll.store.saveMetadata(coll);
    t.equal(entriesOf(legacy), 2);
  } finally {
    await first.close();
  }
  const second = await LmdbStorage.open({ dataDir: dir });
  try {
    const engine = new StorageEngine(second);
    const index = engine.catalog.get(ns)?.index('search');
    t.ok(index?.wildcard, 'read as a wildcard index');
    t.equal(index?.staleEntries, false);
    t.equal(entriesOf(index), 3, 'its entries rebuilt as wildcard keys');
    t.same([...(index?.wildcardMultikeyPaths ?? [])], ['idx.code']);
  } finally {
    await second.close();
  }
  const third = await LmdbStorage.open({ dataDir: dir });
  try {
    const index = new StorageEngine(third).catalog.get(ns)?.index('search');
    t.equal(index?.staleEntries, false, 'rebuilt once: its metadata now says so');
    t.equal(entriesOf(index), 3);
  } finally {
    await third.close();
  }
});
