import t from 'tap';
import type { Db, Document } from 'mongodb';
import { findStage, forEachBackend, rejection, winningPlan, type TestDoc } from './backends.js';

/** $planCacheStats of a collection, the fields these tests look at. */
async function cacheEntries(db: Db, name: string): Promise<Document[]> {
  return db
    .collection(name)
    .aggregate([
      { $planCacheStats: {} },
      { $project: { _id: 0, queryHash: 1, planCacheKey: 1, isActive: 1, works: 1, cachedPlan: 1, createdFromQuery: 1 } },
    ])
    .toArray();
}

/** The index a cached plan reads. */
function cachedIndex(entry: Document | undefined): unknown {
  return findStage(entry?.cachedPlan, 'IXSCAN')?.indexName;
}

async function planCacheMetrics(db: Db): Promise<{ hits: number; misses: number; replanned: number }> {
  const status = await db.admin().command({ serverStatus: 1 });
  const classic = status.metrics?.query?.planCache?.classic ?? {};
  return { hits: Number(classic.hits ?? 0), misses: Number(classic.misses ?? 0), replanned: Number(classic.replanned ?? 0) };
}

await t.test('plan cache: caching, reuse, replanning, invalidation', async (t) => {
  await forEachBackend(t, async (t, { db, backend }) => {
    const embedded = backend.name === 'embedded';
    const c = db.collection<TestDoc>('cache');
    // a is unique above 500 and 0 below it; b is unique: {a: 700, b: 700} is best answered by either index,
    // {a: 0, b: 30} only by b (a = 0 has 500 documents).
    const docs: Document[] = [];
    for (let i = 0; i < 1000; i++)
      docs.push({ _id: i, a: i < 500 ? 0 : i, b: i, tags: [`t${i % 7}`, `u${i % 3}`], kind: i % 10 === 0 ? 'special' : 'plain' });
    await c.insertMany(docs);
    await c.createIndexes([
      { key: { a: 1 }, name: 'a_1' },
      { key: { b: 1 }, name: 'b_1' },
    ]);

    await t.test('a shape is cached inactive first, activated by its second planning, then used without a trial', async (t) => {
      await db.command({ planCacheClear: 'cache' });
      t.same(await c.find({ a: 700, b: 700 }).toArray(), [docs[700]]);
      let entries = await cacheEntries(db, 'cache');
      t.equal(entries.length, 1, 'one entry for the shape');
      t.equal(entries[0]!.isActive, false, 'inactive after the first planning');
      t.same(entries[0]!.createdFromQuery.query, { a: 700, b: 700 });
      t.same(await c.find({ a: 701, b: 701 }).toArray(), [docs[701]]);
      entries = await cacheEntries(db, 'cache');
      t.equal(entries.length, 1, 'same shape, same entry, other values');
      t.equal(entries[0]!.isActive, true, 'active once a second planning needed no more works');

      const before = await planCacheMetrics(db);
      t.same(await c.find({ a: 702, b: 702 }).toArray(), [docs[702]]);
      const after = await planCacheMetrics(db);
      t.equal(after.hits, before.hits + 1, 'a cache hit');
      t.equal(after.misses, before.misses, 'no trial');

      const e = (await c.find({ a: 703, b: 703 }).explain('executionStats')) as Document;
      t.equal(e.executionStats.nReturned, 1);
      t.equal(e.queryPlanner.planCacheKey, entries[0]!.planCacheKey, 'explain names the entry');
      if (embedded) {
        t.equal(e.queryPlanner.winningPlan.isCached, true, 'explain shows the cached plan ran');
        t.same(e.queryPlanner.rejectedPlans, [], 'no other plan was tried');
      }
      t.equal((await planCacheMetrics(db)).hits, after.hits + (embedded ? 0 : 1), 'explain leaves the counters alone (embedded)');
    });

    await t.test('a cached plan that does much worse than its works is replanned and replaced', async (t) => {
      await db.command({ planCacheClear: 'cache' });
      await c.find({ a: 700, b: 700 }).toArray();
      await c.find({ a: 700, b: 700 }).toArray();
      const [entry] = await cacheEntries(db, 'cache');
      t.equal(entry?.isActive, true);
      const index = cachedIndex(entry);
      t.ok(index === 'a_1' || index === 'b_1');
      // Force the a_1 plan into the cache (hint is never cached; plan with a shape only a_1 answers well first).
      await db.command({ planCacheClear: 'cache' });
      await c.find({ a: 999, b: { $gte: 0, $lte: 999 } }).toArray();
      await c.find({ a: 998, b: { $gte: 0, $lte: 999 } }).toArray();
      const [forced] = await cacheEntries(db, 'cache');
      t.equal(cachedIndex(forced), 'a_1');
      t.equal(forced?.isActive, true);
      const before = await planCacheMetrics(db);
      // Same shape; a = 0 makes the a_1 scan read 31 keys for its one match: beyond 10 x its 2 works.
      const found = await c.find({ a: 0, b: { $gte: 30, $lte: 30 } }).toArray();
      t.same(
        found.map((d) => d._id),
        [30],
      );
      const after = await planCacheMetrics(db);
      t.equal(after.replanned, before.replanned + 1, 'replanned');
      const [replaced] = await cacheEntries(db, 'cache');
      t.equal(cachedIndex(replaced), 'b_1', 'the new winner is cached');
      t.same(replaced?.createdFromQuery.query, { a: 0, b: { $gte: 30, $lte: 30 } });
      t.equal(replaced?.isActive, true, 'as cheap as the works it replaces: active at once');
    });

    await t.test('results with a cached plan equal a collection scan, whatever the values', async (t) => {
      await db.command({ planCacheClear: 'cache' });
      for (let i = 0; i < 40; i++) {
        const filter = { a: i % 4 === 0 ? 0 : 500 + i * 11, b: { $gte: (i * 37) % 1000 } };
        const viaPlanner = await c
          .find(filter)
          .sort({ _id: 1 })
          .limit(5)
          .map((d) => d._id)
          .toArray();
        const viaScan = await c
          .find(filter)
          .hint({ $natural: 1 })
          .sort({ _id: 1 })
          .limit(5)
          .map((d) => d._id)
          .toArray();
        t.same(viaPlanner, viaScan, JSON.stringify(filter));
        t.equal(
          await c.countDocuments(filter),
          await c.countDocuments(filter, { hint: { $natural: 1 } }),
          `count ${JSON.stringify(filter)}`,
        );
      }
    });

    await t.test('creating or dropping an index, dropping the collection and planCacheClear empty the cache', async (t) => {
      const prime = async (): Promise<void> => {
        await c.find({ a: 700, b: 700 }).toArray();
        await c.find({ a: { $gt: 900 }, b: { $lt: 10 } }).toArray();
      };
      await db.command({ planCacheClear: 'cache' });
      await prime();
      t.equal((await cacheEntries(db, 'cache')).length, 2);
      await c.createIndex({ a: 1, b: 1 }, { name: 'a_b' });
      t.equal((await cacheEntries(db, 'cache')).length, 0, 'createIndex');
      await prime();
      t.ok((await cacheEntries(db, 'cache')).length > 0);
      await c.dropIndex('a_b');
      t.equal((await cacheEntries(db, 'cache')).length, 0, 'dropIndex');
      await prime();
      await db.command({ planCacheClear: 'cache', query: { a: 1, b: 2 } });
      const left = await cacheEntries(db, 'cache');
      t.equal(left.length, 1, 'planCacheClear with a query clears that shape only');
      t.same(Object.keys(left[0]!.createdFromQuery.query), ['a', 'b']);
      t.same(left[0]!.createdFromQuery.query.a, { $gt: 900 });
      await db.command({ planCacheClear: 'cache' });
      t.equal((await cacheEntries(db, 'cache')).length, 0, 'planCacheClear');

      const other = db.collection<TestDoc>('dropped');
      await other.insertMany(docs.slice(0, 50));
      await other.createIndexes([{ key: { a: 1 } }, { key: { b: 1 } }]);
      await other.find({ a: 1, b: 1 }).toArray();
      t.equal((await cacheEntries(db, 'dropped')).length, 1);
      await other.drop();
      await other.insertMany(docs.slice(0, 50));
      await other.createIndexes([{ key: { a: 1 } }, { key: { b: 1 } }]);
      t.equal((await cacheEntries(db, 'dropped')).length, 0, 'a dropped collection takes its cache along');
    });

    await t.test('a query with one candidate plan is not cached', async (t) => {
      await db.command({ planCacheClear: 'cache' });
      await c.find({ b: 5 }).toArray();
      await c.find({ _id: 5 }).toArray();
      await c.find({ a: 700, b: 700 }).hint('a_1').toArray();
      t.same(await cacheEntries(db, 'cache'), []);
    });
  });
});

await t.test('counts from index keys (COUNT_SCAN)', async (t) => {
  await forEachBackend(t, async (t, { db, client, backend }) => {
    const embedded = backend.name === 'embedded';
    const c = db.collection<TestDoc>('counts');
    const docs: Document[] = [];
    for (let i = 0; i < 400; i++) {
      docs.push({
        _id: i,
        n: i % 50,
        // Every document has two tags starting with "x" (a regex prefix matches both keys of one document).
        tags: [`x${i % 4}`, `x${(i + 1) % 4}`, `y${i % 9}`],
        name: `name${String(i % 40).padStart(2, '0')}`,
        kind: i % 5 === 0 ? 'special' : 'plain',
        ...(i % 3 === 0 ? { s: i % 6 } : {}),
      });
    }
    await c.insertMany(docs);
    await c.createIndexes([
      { key: { n: 1 }, name: 'n_1' },
      { key: { tags: 1 }, name: 'tags_1' },
      { key: { name: 1, _id: 1 }, name: 'name_partial', partialFilterExpression: { kind: 'special' } },
      { key: { s: 1 }, name: 's_sparse', sparse: true },
    ]);
    const expected = (f: (d: Document) => boolean): number => docs.filter(f).length;

    await t.test('count answered by index keys: COUNT_SCAN under COUNT, and the right number', async (t) => {
      const e = await db.command({ explain: { count: 'counts', query: { n: 7 } }, verbosity: 'executionStats' });
      const plan = e.queryPlanner.winningPlan;
      t.equal(plan.stage, 'COUNT');
      const scan = findStage(plan, 'COUNT_SCAN');
      t.equal(scan?.indexName, 'n_1');
      t.notOk(findStage(plan, 'FETCH'), 'no document is fetched');
      t.same(scan?.indexBounds, { startKey: { n: 7 }, startKeyInclusive: true, endKey: { n: 7 }, endKeyInclusive: true });
      t.equal(e.executionStats.totalDocsExamined, 0);
      t.equal(
        (await db.command({ count: 'counts', query: { n: 7 } })).n,
        expected((d) => d.n === 7),
      );
      t.equal(
        (await db.command({ count: 'counts', query: { n: { $gte: 10, $lt: 20 } } })).n,
        expected((d) => d.n >= 10 && d.n < 20),
      );
      t.equal((await db.command({ count: 'counts', query: { n: { $gte: 10 } }, skip: 5, limit: 30 })).n, 30);
      t.equal(
        (await db.command({ count: 'counts', query: { n: { $in: [1, 3, 5] } } })).n,
        expected((d) => [1, 3, 5].includes(d.n)),
      );
      const notCovered = await db.command({ explain: { count: 'counts', query: { n: 7, kind: 'plain' } }, verbosity: 'queryPlanner' });
      t.ok(findStage(notCovered.queryPlanner.winningPlan, 'FETCH'), 'a predicate the index does not answer needs the documents');
    });

    await t.test('countDocuments (aggregate $match + $group) counts keys too', async (t) => {
      const pipeline = [{ $match: { n: { $gt: 45 } } }, { $group: { _id: 1, n: { $sum: 1 } } }];
      const e = (await c.aggregate(pipeline).explain('executionStats')) as Document;
      const plan = winningPlan(e);
      t.ok(findStage(plan, 'COUNT_SCAN') ?? (!findStage(plan, 'FETCH') && findStage(plan, 'IXSCAN')), 'the index alone');
      t.notOk(findStage(plan, 'FETCH'));
      t.equal(
        await c.countDocuments({ n: { $gt: 45 } }),
        expected((d) => d.n > 45),
      );
      t.equal(await c.countDocuments({ n: { $gt: 45 } }, { skip: 3, limit: 10 }), 10);
      t.equal(await c.countDocuments({ n: { $gt: 45 } }, { skip: 30 }), expected((d) => d.n > 45) - 30);
      t.equal(await c.countDocuments({ n: 999 }), 0, 'no match: no group document, countDocuments says 0');
      t.same(await c.aggregate([{ $match: { n: 3 } }, { $group: { _id: null, total: { $sum: 1 } } }]).toArray(), [
        { _id: null, total: expected((d) => d.n === 3) },
      ]);
    });

    await t.test('multikey: a document with several matching keys is counted once', async (t) => {
      const filter = { tags: { $regex: /^x/ } };
      t.equal(await c.countDocuments(filter), 400);
      t.equal(
        await c.countDocuments({ tags: { $in: ['x1', 'x2'] } }),
        expected((d) => d.tags.includes('x1') || d.tags.includes('x2')),
      );
      t.equal(
        await c.countDocuments({ tags: 'y3' }),
        expected((d) => d.tags.includes('y3')),
      );
      t.equal(
        (await db.command({ count: 'counts', query: { tags: { $gte: 'x1', $lt: 'x3' } } })).n,
        expected((d) => d.tags.some((x: string) => x >= 'x1') && d.tags.some((x: string) => x < 'x3')),
        'two ranges on an array: each may hold for another element',
      );
      t.equal(
        await c.countDocuments({ tags: { $elemMatch: { $gte: 'x1', $lt: 'x3' } } }),
        expected((d) => d.tags.some((x: string) => x >= 'x1' && x < 'x3')),
      );
      const e = (await c.find(filter).explain('executionStats')) as Document;
      t.equal(e.executionStats.nReturned, 400);
    });

    await t.test('partial and sparse indexes count only what they may', async (t) => {
      const partial = { kind: 'special', name: { $gte: 'name10', $lt: 'name20' } };
      t.equal(
        await c.countDocuments(partial),
        expected((d) => d.kind === 'special' && d.name >= 'name10' && d.name < 'name20'),
      );
      const e = (await c.aggregate([{ $match: partial }, { $group: { _id: 1, n: { $sum: 1 } } }]).explain('executionStats')) as Document;
      t.equal(
        findStage(winningPlan(e), embedded ? 'COUNT_SCAN' : 'IXSCAN')?.indexName ?? findStage(winningPlan(e), 'COUNT_SCAN')?.indexName,
        'name_partial',
      );
      if (embedded) t.notOk(findStage(winningPlan(e), 'FETCH'), 'a clause of the partial filter holds for every key (embedded only)');
      t.equal(
        await c.countDocuments({ name: { $gte: 'name10', $lt: 'name20' } }),
        expected((d) => d.name >= 'name10' && d.name < 'name20'),
        'without the partial clause: not that index',
      );
      t.equal(
        await c.countDocuments({ s: 3 }),
        expected((d) => d.s === 3),
      );
      t.equal(
        await c.countDocuments({ s: { $gte: 1 } }),
        expected((d) => d.s !== undefined && d.s >= 1),
      );
      t.equal(
        await c.countDocuments({ s: null }),
        expected((d) => d.s === undefined),
        'null matches missing: not from the sparse index',
      );
      if (embedded) {
        const bad = await rejection(c.countDocuments({ name: 'name01' }, { hint: 'name_partial' }));
        t.equal(bad.code, 2, 'a hinted partial index that cannot answer the query is refused');
      }
    });

    await t.test('counts in a transaction see its own writes', async (t) => {
      const session = client.startSession();
      try {
        await session.withTransaction(async () => {
          await c.insertOne({ _id: 1000, n: 7, tags: ['x9'], name: 'name00', kind: 'special' }, { session });
          await c.updateOne({ _id: 7 }, { $set: { n: 8 } }, { session });
          await c.deleteOne({ _id: 57 }, { session });
          t.equal(await c.countDocuments({ n: 7 }, { session }), expected((d) => d.n === 7) + 1 - 2, 'insert +1, update and delete -2');
          t.equal(await c.countDocuments({ n: 8 }, { session }), expected((d) => d.n === 8) + 1);
          t.equal(await c.countDocuments({ tags: { $regex: /^x/ } }, { session }), 400, '+1 inserted, -1 deleted');
          t.equal(
            await c.countDocuments({ n: 7 }),
            expected((d) => d.n === 7),
            'outside the transaction: unchanged',
          );
          await session.abortTransaction();
        });
      } catch {
        // withTransaction ends on the abort above.
      } finally {
        await session.endSession();
      }
      t.equal(
        await c.countDocuments({ n: 7 }),
        expected((d) => d.n === 7),
        'aborted',
      );
    });

    await t.test('a scan that answers the whole filter fetches without filtering; results unchanged', async (t) => {
      const e = (await c.find({ n: { $in: [4, 9] } }).explain('executionStats')) as Document;
      const fetch = findStage(winningPlan(e), 'FETCH');
      t.ok(fetch);
      t.notOk(fetch?.filter, 'no residual filter');
      t.same(
        await c
          .find({ n: { $in: [4, 9] } })
          .sort({ _id: 1 })
          .map((d) => d._id)
          .toArray(),
        docs.filter((d) => d.n === 4 || d.n === 9).map((d) => d._id),
      );
      const residual = (await c.find({ n: 4, kind: 'special' }).explain('executionStats')) as Document;
      t.same(findStage(winningPlan(residual), 'FETCH')?.filter, { kind: { $eq: 'special' } });
    });
  });
});

await t.test('bounds after a range field, sort from the index', async (t) => {
  await forEachBackend(t, async (t, { db }) => {
    const c = db.collection<TestDoc>('bounds');
    const docs: Document[] = [];
    for (let i = 0; i < 600; i++) docs.push({ _id: i, a: i % 20, b: i % 7, c: i % 11, d: `v${i % 13}` });
    await c.insertMany(docs);
    await c.createIndexes([
      { key: { a: 1, b: 1, c: 1 }, name: 'abc' },
      { key: { d: 1, _id: 1 }, name: 'd_id' },
    ]);

    await t.test('fields after a range bound the scan too: keys outside them are not fetched', async (t) => {
      const filter = { a: { $gte: 5, $lt: 10 }, c: 3 };
      const e = (await c.find(filter).hint('abc').explain('executionStats')) as Document;
      const n = expectedCount(docs, (d) => d.a >= 5 && d.a < 10 && d.c === 3);
      t.equal(e.executionStats.nReturned, n);
      t.equal(e.executionStats.totalDocsExamined, n, 'only matching keys are fetched');
      t.same(findStage(winningPlan(e), 'IXSCAN')?.indexBounds, { a: ['[5, 10)'], b: ['[MinKey, MaxKey]'], c: ['[3, 3]'] });
      t.notOk(findStage(winningPlan(e), 'FETCH')?.filter, 'the bounds answer the filter');
      t.equal(await c.countDocuments(filter, { hint: 'abc' }), n);
      const desc = await c
        .find({ a: { $gt: 15 }, b: { $in: [2, 4] }, c: { $lt: 5 } })
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray();
      t.same(
        desc,
        docs.filter((d) => d.a > 15 && (d.b === 2 || d.b === 4) && d.c < 5).map((d) => d._id),
      );
    });

    await t.test('keyset paging over a range: the _id bound after the range field', async (t) => {
      const filter = { d: { $gte: 'v3', $lt: 'v6' }, _id: { $gt: 300 } };
      const e = (await c.find(filter).hint('d_id').explain('executionStats')) as Document;
      const n = expectedCount(docs, (d) => d.d >= 'v3' && d.d < 'v6' && d._id > 300);
      t.equal(e.executionStats.nReturned, n);
      t.equal(e.executionStats.totalDocsExamined, n);
    });

    await t.test('the index gives the sort after equality prefixes', async (t) => {
      const e = (await c
        .find({ a: 4, b: { $gte: 2 } })
        .sort({ b: 1, c: 1 })
        .limit(3)
        .explain('executionStats')) as Document;
      t.equal(findStage(winningPlan(e), 'IXSCAN')?.indexName, 'abc');
      t.notOk(findStage(winningPlan(e), 'SORT'), 'no blocking sort');
      const e2 = (await c.find({ a: 4, b: 2 }).sort({ c: -1 }).limit(3).explain('executionStats')) as Document;
      t.equal(findStage(winningPlan(e2), 'IXSCAN')?.direction, 'backward');
      t.notOk(findStage(winningPlan(e2), 'SORT'));
      t.same(
        await c
          .find({ a: 4, b: 2 })
          .sort({ c: -1 })
          .limit(3)
          .map((d) => d.c)
          .toArray(),
        docs
          .filter((d) => d.a === 4 && d.b === 2)
          .map((d) => d.c)
          .sort((x, y) => y - x)
          .slice(0, 3),
      );
    });
  });
});

function expectedCount(docs: Document[], f: (d: Document) => boolean): number {
  return docs.filter(f).length;
}

await t.test('a covered scan sorted by _id with a limit fetches only the documents it returns', async (t) => {
  await forEachBackend(t, async (t, { backend, db }) => {
    const embedded = backend.name === 'embedded';
    const c = db.collection<TestDoc>('by_record_id');
    const docs = Array.from({ length: 600 }, (_, i) => ({
      _id: `id${String((i * 7919) % 600).padStart(4, '0')}`,
      family: `${['smith', 'smithson', 'jones', 'brown'][i % 4]}${i % 3}`,
      tags: [`t${i % 5}`, `t${(i + 2) % 5}`],
      kind: i % 2 === 0 ? 'even' : 'odd',
    }));
    await c.insertMany(docs);
    await c.createIndexes([{ key: { family: 1 } }, { key: { tags: 1 } }]);
    const ids = (f: (d: (typeof docs)[number]) => boolean, direction: 1 | -1 = 1): string[] =>
      docs
        .filter(f)
        .map((d) => d._id)
        .sort((a, b) => (a < b ? -direction : a > b ? direction : 0));

    const prefix = { family: /^smith/ };
    const page = (filter: Document, skip: number, limit: number, direction: 1 | -1 = 1) =>
      c
        .find(filter)
        .sort({ _id: direction })
        .skip(skip)
        .limit(limit)
        .hint(Object.keys(filter)[0] === 'tags' ? 'tags_1' : 'family_1');
    t.same(
      await page(prefix, 0, 5)
        .map((d) => d._id)
        .toArray(),
      ids((d) => d.family.startsWith('smith')).slice(0, 5),
      'the first page in _id order',
    );
    t.same(
      await page(prefix, 7, 5)
        .map((d) => d._id)
        .toArray(),
      ids((d) => d.family.startsWith('smith')).slice(7, 12),
      'a later page (skip)',
    );
    t.same(
      await page(prefix, 0, 5, -1)
        .map((d) => d._id)
        .toArray(),
      ids((d) => d.family.startsWith('smith'), -1).slice(0, 5),
      'descending',
    );
    t.same(
      await page({ tags: { $in: ['t1', 't2'] } }, 0, 6)
        .map((d) => d._id)
        .toArray(),
      ids((d) => d.tags.includes('t1') || d.tags.includes('t2')).slice(0, 6),
      'multikey: each document once',
    );
    t.same(
      await page({ family: /^smith/, kind: 'odd' }, 0, 5)
        .map((d) => d._id)
        .toArray(),
      ids((d) => d.family.startsWith('smith') && d.kind === 'odd').slice(0, 5),
      'a filter the index does not answer: documents decide',
    );
    if (embedded) {
      const e = (await page(prefix, 0, 5).explain('executionStats')) as Document;
      t.equal(e.executionStats.totalKeysExamined, 300, 'every matching key is read');
      t.equal(e.executionStats.totalDocsExamined, 5, 'and only the returned documents are fetched');
      const residual = (await page({ family: /^smith/, kind: 'odd' }, 0, 5).explain('executionStats')) as Document;
      t.equal(residual.executionStats.totalDocsExamined, 300, 'with a residual filter every candidate is fetched');
    }
  });
});
