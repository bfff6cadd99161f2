/**
 * Contained $or (mongod's "contained $or pushdown"): an $or inside a conjunction is answered by an OR of one index
 * scan per branch, each scan also bounded by the predicates outside the $or that its index can take (the outer
 * `type` equality as the leading bound), then FETCH with what the scans do not settle. It competes in the trial,
 * is cached and re-instantiated with other values, and is not planned when a branch has no index.
 */
import t from 'tap';
import type { Collection, Db, Document } from 'mongodb';
import type { Test } from 'tap';
import { findStage, forEachBackend, winningPlan, type TestDoc } from './backends.js';

const ids = (docs: Document[]): string[] => docs.map((d) => JSON.stringify(d._id)).sort();

/** The same documents through the planner and through a collection scan (and no document twice). */
async function sameAsCollscan(t: Test, c: Collection<TestDoc>, filter: Document, label = JSON.stringify(filter)): Promise<number> {
  const planned = await c.find(filter).toArray();
  const scanned = await c.find(filter).hint({ $natural: 1 }).toArray();
  t.same(ids(planned), ids(scanned), label);
  t.equal(new Set(ids(planned)).size, planned.length, `${label}: no duplicates`);
  t.equal(await c.countDocuments(filter), scanned.length, `${label}: count`);
  return scanned.length;
}

async function explainFind(c: Collection<TestDoc>, filter: Document, options: Document = {}): Promise<Document> {
  return (await c.find(filter, options).explain('executionStats')) as Document;
}

/** The IXSCANs under the winning plan's OR stage (looking through a branch's FETCH), or undefined without one. */
function orScans(plan: unknown): Document[] | undefined {
  const or = findStage(plan, 'OR');
  if (!or) return undefined;
  return ((or.inputStages as Document[] | undefined) ?? []).map((s) => findStage(s, 'IXSCAN') ?? {});
}

async function cachedPlans(db: Db, name: string): Promise<Document[]> {
  return db
    .collection(name)
    .aggregate([{ $planCacheStats: {} }, { $project: { _id: 0, isActive: 1, cachedPlan: 1, createdFromQuery: 1 } }])
    .toArray();
}

await t.test('contained $or', async (t) => {
  await forEachBackend(t, async (t, { db, client, backend }) => {
    const embedded = backend.name === 'embedded';

    // 500 documents of type X, 100 of type Y; a and b unique-ish, tags an array (multikey), c partial-indexed.
    const c = db.collection<TestDoc>('plain');
    const docs: Document[] = [];
    for (let i = 0; i < 600; i++) {
      docs.push({
        _id: i,
        type: i < 500 ? 'X' : 'Y',
        id: `id${String(i).padStart(4, '0')}`,
        a: i,
        b: 1000 + i,
        m: i % 10,
        tags: [`t${i % 7}`, `u${i % 5}`],
        c: i % 40,
        deleted: i % 9 === 4,
      });
    }
    await c.insertMany(docs);
    await c.createIndexes([
      { key: { type: 1, id: 1 }, name: 'type_id' },
      { key: { type: 1, a: 1 }, name: 'type_a' },
      { key: { type: 1, b: -1 }, name: 'type_b_desc' },
      { key: { type: 1, tags: 1 }, name: 'type_tags' },
      { key: { type: 1, c: 1 }, name: 'type_c_live', partialFilterExpression: { deleted: false } },
    ]);

    await t.test('results are those of a collection scan', async (t) => {
      const filters: Document[] = [
        { type: 'X', $or: [{ a: 1 }, { b: 1002 }] },
        { $and: [{ type: 'X' }, { $or: [{ a: 7 }, { b: 1007 }] }] },
        { type: 'Y', $or: [{ a: { $gte: 590 } }, { b: { $lt: 1505 } }, { a: 1 }] },
        { type: { $in: ['X', 'Y'] }, $or: [{ a: { $in: [3, 550, 9999] } }, { b: { $gt: 1595 } }] },
        { type: 'X', $or: [{ tags: 't3' }, { a: { $lt: 10 } }] },
        { type: 'X', $or: [{ tags: { $in: ['t1', 'u2'] }, m: 4 }, { b: { $gte: 1490 } }] },
        { type: 'X', m: 3, $or: [{ tags: 'u1' }, { tags: 't6' }] },
        { type: 'X', deleted: false, $or: [{ c: 5 }, { a: { $gt: 495 } }] },
        { type: 'X', deleted: false, $or: [{ c: { $in: [1, 2] }, m: 1 }, { id: 'id0002' }] },
        { type: 'X', $or: [{ c: 5, deleted: false }, { a: 12 }] },
        { type: 'X', $or: [{ a: 1 }, { nothing: 5 }] },
        { $and: [{ type: 'X' }, { $or: [{ a: { $lt: 30 } }, { b: { $gt: 1470 } }] }, { $or: [{ m: 2 }, { tags: 'u0' }] }] },
        { type: 'X', $or: [{ a: 5 }, { $and: [{ b: 1006 }, { m: 6 }] }, { $or: [{ a: 8 }, { b: 1009 }] }] },
      ];
      for (const filter of filters) await sameAsCollscan(t, c, filter);
      t.equal(await sameAsCollscan(t, c, { type: 'X', $or: [{ a: 7 }, { b: 1007 }, { a: 300 }, { b: 1400 }] }), 3);
    });

    await t.test('explain: FETCH > OR > IXSCAN per branch, the outer equality the leading bound', async (t) => {
      const filter = { type: 'X', $or: [{ a: 7 }, { b: 1007 }, { a: 300 }, { b: 1400 }] };
      const e = await explainFind(c, filter);
      const plan = winningPlan(e) as Document;
      t.equal(plan.stage, 'FETCH');
      t.equal(plan.inputStage?.stage, 'OR', 'FETCH over OR');
      const scans = orScans(plan) ?? [];
      t.same(
        scans.map((s) => s.indexName),
        ['type_a', 'type_b_desc', 'type_a', 'type_b_desc'],
        'one scan per branch',
      );
      t.same(scans[0]?.indexBounds, { type: ['["X", "X"]'], a: ['[7, 7]'] });
      t.same(scans[1]?.indexBounds, { type: ['["X", "X"]'], b: ['[1007, 1007]'] });
      t.same(scans[3]?.indexBounds, { type: ['["X", "X"]'], b: ['[1400, 1400]'] });
      t.equal(e.executionStats.nReturned, 3, 'the document both of two branches match, once');
      if (embedded) {
        t.notOk(plan.filter, 'each branch answers its branch and the outer equality: nothing left to filter');
        t.equal(e.executionStats.totalKeysExamined, 4);
        t.equal(e.executionStats.totalDocsExamined, 3, 'a document met again is not fetched again');
        const stats = findStage(e.executionStats.executionStages, 'OR') as Document;
        t.same(
          (stats.inputStages as Document[]).map((s) => s.keysExamined),
          [1, 1, 1, 1],
          'per-branch keys',
        );
      }

      // A branch its index does not answer alone: FETCH with its residual under the OR; the outer residual above it.
      const inexact = await explainFind(c, { type: 'X', m: 3, $or: [{ a: { $lt: 40 }, tags: 'u1' }, { b: 1013 }] });
      const iplan = winningPlan(inexact) as Document;
      t.same(
        orScans(iplan)?.map((s) => s.indexName),
        ['type_a', 'type_b_desc'],
      );
      if (embedded) {
        t.same(iplan.filter, { m: { $eq: 3 } }, 'the outer predicate no scan answers');
        const or = findStage(iplan, 'OR') as Document;
        const first = (or.inputStages as Document[])[0]!;
        t.equal(first.stage, 'FETCH');
        t.same(first.filter, { tags: { $eq: 'u1' } }, "the branch's own residual");
        t.equal((or.inputStages as Document[])[1]!.stage, 'IXSCAN');
      }
      t.equal(
        inexact.executionStats.nReturned,
        docs.filter((d) => d.type === 'X' && d.m === 3 && ((d.a < 40 && d.tags.includes('u1')) || d.b === 1013)).length,
      );
    });

    await t.test('the trial picks the OR plan when it is much more selective', async (t) => {
      await db.command({ planCacheClear: 'plain' });
      const e = await explainFind(c, { type: 'X', $or: [{ a: 7 }, { b: 1007 }, { a: 300 }, { b: 1400 }] });
      t.ok(findStage(winningPlan(e), 'OR'), 'OR won');
      const rejected = (e.queryPlanner.rejectedPlans as Document[]).map((p) => findStage(p, 'IXSCAN')?.indexName);
      t.ok(rejected.includes('type_id'), 'the scan of { type: 1, id: 1 } was a candidate');
      t.ok(e.executionStats.totalDocsExamined < 10, `docs examined: ${e.executionStats.totalDocsExamined}`);

      // Not selective: every X matches a branch; whatever wins, the results are right.
      await sameAsCollscan(t, c, { type: 'X', $or: [{ a: { $gte: 0 } }, { b: 1 }] });
    });

    await t.test('sorts are blocking, counts fetch', async (t) => {
      const filter = { type: 'X', $or: [{ a: { $lt: 5 } }, { b: { $gt: 1494 } }] };
      const e = await explainFind(c, filter, { sort: { m: -1, a: -1 }, limit: 4 });
      const plan = winningPlan(e) as Document;
      t.equal(plan.stage, 'SORT', 'a blocking SORT over the OR');
      t.ok(findStage(plan, 'OR'));
      t.same(
        await c
          .find(filter)
          .sort({ m: -1, a: -1 })
          .limit(4)
          .map((d) => d._id)
          .toArray(),
        [499, 498, 497, 496],
      );
      t.same(
        await c
          .find(filter)
          .sort({ a: 1 })
          .skip(3)
          .limit(4)
          .map((d) => d._id)
          .toArray(),
        [3, 4, 495, 496],
      );
      const count = (await db.command({ explain: { count: 'plain', query: filter }, verbosity: 'executionStats' })) as Document;
      const countPlan = count.queryPlanner.winningPlan as Document;
      t.equal(countPlan.stage, 'COUNT');
      t.ok(findStage(countPlan, 'OR'), 'COUNT over the OR');
      t.notOk(findStage(countPlan, 'COUNT_SCAN'), 'no COUNT_SCAN for an OR');
      t.equal(await c.countDocuments(filter), 10);
    });

    await t.test('a partial index serves a branch when the outer predicates and the branch imply its filter', async (t) => {
      const withOuter = await explainFind(c, { type: 'X', deleted: false, $or: [{ c: 5 }, { a: 3 }] });
      const scans = orScans(winningPlan(withOuter));
      t.same(
        scans?.map((s) => s.indexName),
        ['type_c_live', 'type_a'],
        'deleted: false outside the $or',
      );
      t.same(scans?.[0]?.indexBounds, { type: ['["X", "X"]'], c: ['[5, 5]'] });
      const inBranch = await explainFind(c, { type: 'X', $or: [{ c: 5, deleted: false }, { a: 3 }] });
      t.same(
        orScans(winningPlan(inBranch))?.map((s) => s.indexName),
        ['type_c_live', 'type_a'],
        'deleted: false inside the branch',
      );
      const neither = await explainFind(c, { type: 'X', $or: [{ c: 5 }, { a: 3 }] });
      t.notOk(findStage(winningPlan(neither), 'OR'), 'nothing implies the partial filter: no OR plan');
      await sameAsCollscan(t, c, { type: 'X', $or: [{ c: 5 }, { a: 3 }] });
    });

    await t.test('a branch no index can serve: no OR plan', async (t) => {
      const e = await explainFind(c, { type: 'X', $or: [{ a: 1 }, { nothing: 5 }] });
      const plan = winningPlan(e);
      t.notOk(findStage(plan, 'OR'));
      t.equal(
        (findStage(plan, 'IXSCAN')?.indexBounds as Document | undefined)?.type?.[0],
        '["X", "X"]',
        'a scan of the outer equality, as before',
      );
      // Without the outer equality no branch scan has a bounded leading field.
      const rooted = await explainFind(c, { $or: [{ a: 1 }, { b: 1002 }] });
      t.notOk(findStage(winningPlan(rooted), 'OR'));
      t.ok(findStage(winningPlan(rooted), 'COLLSCAN'));
      t.equal(rooted.executionStats.nReturned, 2);
    });

    await t.test('the plan cache re-instantiates a cached contained-$or plan with other values', async (t) => {
      await db.command({ planCacheClear: 'plain' });
      const shape = (x: number, y: number): Document => ({ type: 'X', $or: [{ a: x }, { b: 1000 + y }] });
      t.equal((await c.find(shape(10, 20)).toArray()).length, 2);
      t.equal((await c.find(shape(11, 21)).toArray()).length, 2);
      const entries = await cachedPlans(db, 'plain');
      t.equal(entries.length, 1);
      if (embedded) {
        t.equal(entries[0]!.isActive, true, 'activated by the second planning');
        t.ok(findStage(entries[0]!.cachedPlan, 'OR'), 'the cached plan is the OR');
      }
      const e = await explainFind(c, shape(42, 42));
      if (embedded) t.equal(e.queryPlanner.winningPlan.isCached, true, 'from the cache');
      const scans = orScans(winningPlan(e));
      t.same(scans?.[0]?.indexBounds, { type: ['["X", "X"]'], a: ['[42, 42]'] }, 'with the new values');
      t.same(scans?.[1]?.indexBounds, { type: ['["X", "X"]'], b: ['[1042, 1042]'] });
      t.equal(e.executionStats.nReturned, 1, 'one document matches both branches');
      t.same(ids(await c.find(shape(120, 300)).toArray()), ids([docs[120]!, docs[300]!]));
      await sameAsCollscan(t, c, { type: 'Y', $or: [{ a: 555 }, { b: 1556 }] });

      // Whether a branch can use a partial index is part of the key (mongod's discriminators), inside an $or too.
      const partial = (deleted: boolean): Document => ({ type: 'X', $or: [{ c: 5, deleted }, { a: 3 }] });
      await c.find(partial(false)).toArray();
      await c.find(partial(false)).toArray();
      const live = await explainFind(c, partial(false));
      const dead = await explainFind(c, partial(true));
      t.not(dead.queryPlanner.planCacheKey, live.queryPlanner.planCacheKey, 'another entry for a branch that cannot use it');
      t.equal(dead.queryPlanner.queryHash, live.queryPlanner.queryHash, 'the same shape');
      if (embedded) t.equal(live.queryPlanner.winningPlan.isCached, true);
      t.same(
        orScans(winningPlan(live))?.map((s) => s.indexName),
        ['type_c_live', 'type_a'],
      );
      t.notOk(findStage(winningPlan(dead), 'OR'), 'no branch scan for c without deleted: false');
      await sameAsCollscan(t, c, partial(true));
    });

    await t.test('a transaction sees its own writes through an OR plan', async (t) => {
      const filter = { type: 'X', $or: [{ a: 7 }, { b: 1008 }] };
      const session = client.startSession();
      try {
        await session.withTransaction(async () => {
          await c.insertOne({ _id: 'new', type: 'X', a: 7, b: 0, tags: [] }, { session });
          await c.updateOne({ _id: 8 }, { $set: { b: 1 } }, { session });
          t.same(ids(await c.find(filter, { session }).toArray()), ids([{ _id: 7 }, { _id: 'new' }]));
          await session.abortTransaction();
        });
      } catch {
        // withTransaction's callback aborted on purpose.
      } finally {
        await session.endSession();
      }
      t.same(ids(await c.find(filter).toArray()), ids([{ _id: 7 }, { _id: 8 }]));
    });

    await t.test('compound wildcard index, partial on deleted: false', async (t) => {
      const w = db.collection<TestDoc>('resources');
      const rows: Document[] = [];
      const system = 'http://unitsofmeasure.org';
      for (let i = 0; i < 600; i++) {
        const type = i < 500 ? 'Observation' : 'Patient';
        const vq: Document[] = [{ v: i % 100, s: system, c: i % 2 ? 'kg' : 'g', cc: 'g', cv: (i % 100) * 1000 }];
        if (i % 3 === 0) vq.push({ v: i % 90, s: 'http://other', c: 'lb', cc: 'lb', cv: i });
        const idx: Document = i % 25 === 24 ? { code: 'none' } : { vq: i % 4 === 0 ? vq[0] : vq, code: `c${i % 10}` };
        rows.push({ _id: `${type}/${i}`, id: `${i}`, type, deleted: i % 50 === 7, idx });
      }
      await w.insertMany(rows);
      await w.createIndexes([
        { key: { type: 1, 'idx.$**': 1 }, name: 'search_any_type', partialFilterExpression: { deleted: false } },
        { key: { type: 1, id: 1 }, name: 'type_id' },
      ]);
      const quantity = (cv: number, v: number, code: string): Document => {
        const branches = [
          { 'idx.vq.cc': 'g', 'idx.vq.cv': { $gt: cv } },
          { 'idx.vq.v': { $gt: v }, 'idx.vq.s': system, 'idx.vq.c': code },
        ];
        return {
          $and: [
            { type: 'Observation' },
            { deleted: false },
            { $or: branches },
            {
              'idx.vq': {
                $elemMatch: {
                  $or: [
                    { cc: 'g', cv: { $gt: cv } },
                    { v: { $gt: v }, s: system, c: code },
                  ],
                },
              },
            },
          ],
        };
      };

      for (const [cv, v, code] of [
        [97000, 98, 'kg'],
        [50000, 60, 'g'],
        [0, 0, 'kg'],
        [99000, 99, 'lb'],
        [-1, 10, 'lb'],
      ] as const) {
        await sameAsCollscan(t, w, quantity(cv, v, code));
      }
      await sameAsCollscan(t, w, { type: 'Observation', deleted: false, $or: [{ 'idx.code': 'c3' }, { 'idx.vq.v': { $lt: 2 } }] });
      await sameAsCollscan(t, w, { type: 'Observation', deleted: false, $or: [{ 'idx.vq.c': 'lb' }, { id: '12' }] });

      await db.command({ planCacheClear: 'resources' });
      const e = await explainFind(w, quantity(97000, 98, 'kg'));
      const plan = winningPlan(e) as Document;
      t.equal(plan.stage, 'FETCH');
      t.equal(plan.inputStage?.stage, 'OR', 'FETCH > OR');
      const scans = orScans(plan) ?? [];
      t.equal(scans.length, 2);
      for (const scan of scans) {
        t.equal(scan.indexName, 'search_any_type');
        t.same(scan.indexBounds?.type, ['["Observation", "Observation"]'], 'the outer type equality leads each scan');
        t.equal(scan.isPartial, true);
      }
      t.ok(
        ['["idx.vq.cc", "idx.vq.cc"]', '["idx.vq.cv", "idx.vq.cv"]'].includes(scans[0]?.indexBounds?.$_path?.[0]),
        'the first branch scans one of its paths',
      );
      t.ok(
        ['["idx.vq.v", "idx.vq.v"]', '["idx.vq.s", "idx.vq.s"]', '["idx.vq.c", "idx.vq.c"]'].includes(scans[1]?.indexBounds?.$_path?.[0]),
        'the second branch scans one of its paths',
      );
      if (embedded) {
        t.same(scans[0]?.indexBounds?.$_path, ['["idx.vq.cv", "idx.vq.cv"]'], 'the trial picked the selective path');
        t.same(scans[1]?.indexBounds?.$_path, ['["idx.vq.v", "idx.vq.v"]']);
        t.ok(plan.filter?.['idx.vq']?.$elemMatch, 'the $elemMatch is left to the FETCH filter');
        t.notOk(JSON.stringify(plan.filter).includes('deleted'), 'the partial filter settles deleted: false');
        t.ok(e.executionStats.totalDocsExamined < 40, `docs examined: ${e.executionStats.totalDocsExamined}`);
        const rejected = (e.queryPlanner.rejectedPlans as Document[]).map((p) => findStage(p, 'IXSCAN')?.indexName);
        t.ok(rejected.includes('type_id'), 'the { type: 1, id: 1 } scan lost');
      }

      // Cached, then re-instantiated with other values (the wildcard index expanded again for the cached paths).
      await w.find(quantity(97000, 98, 'kg')).toArray();
      await w.find(quantity(97000, 98, 'kg')).toArray();
      const again = await explainFind(w, quantity(95000, 96, 'g'));
      if (embedded) t.equal(again.queryPlanner.winningPlan.isCached, true, 'the cached OR plan');
      const cachedScans = orScans(winningPlan(again)) ?? [];
      t.equal(cachedScans.length, 2);
      if (embedded) {
        t.same(cachedScans[0]?.indexBounds?.['idx.vq.cv'], ['(95000, inf.0]'], 'the new values');
        t.same(cachedScans[1]?.indexBounds?.['idx.vq.v'], ['(96, inf.0]']);
      }
      t.same(
        ids(await w.find(quantity(95000, 96, 'g')).toArray()),
        ids(
          await w
            .find(quantity(95000, 96, 'g'))
            .hint({ $natural: 1 })
            .toArray(),
        ),
      );

      // Without deleted: false the partial wildcard index cannot serve a branch: no OR plan.
      const live = quantity(97000, 98, 'kg');
      const notLive = { $and: (live.$and as Document[]).filter((d) => !('deleted' in d)) };
      const noOr = await explainFind(w, notLive);
      t.notOk(findStage(winningPlan(noOr), 'OR'));
      await sameAsCollscan(t, w, notLive);
    });
  });
});
