import t from 'tap';
import type { Document } from 'mongodb';
import { findStage, forEachBackend, winningPlan, rejection, type TestDoc } from './backends.js';

await forEachBackend(t, async (t, { client, db }) => {
  const c = db.collection<TestDoc>('plans');
  const docs: Document[] = [];
  for (let i = 0; i < 300; i++) {
    docs.push({
      _id: i,
      status: ['active', 'inactive', 'pending'][i % 3],
      age: i % 90,
      created: new Date(Date.UTC(2024, 0, 1) + i * 3600_000),
      tags: [`t${i % 5}`, `t${(i + 1) % 5}`],
      idx: [{ name: `n${i % 7}` }, { name: `m${i % 11}` }],
      code: `c${String(i).padStart(4, '0')}`,
      kind: i % 10 === 0 ? 'special' : 'plain',
    });
  }
  await c.insertMany(docs);
  await c.createIndexes([
    { key: { status: 1 } },
    { key: { age: 1 } },
    { key: { created: 1 } },
    { key: { tags: 1 } },
    { key: { 'idx.name': 1 } },
    { key: { status: 1, created: -1 }, name: 'status_created' },
    { key: { code: 1 }, name: 'code_partial', partialFilterExpression: { kind: 'special' } },
  ]);

  const explain = async (filter: Document, options: Document = {}): Promise<Document> =>
    (await c.find(filter, options).explain('executionStats')) as Document;

  await t.test('equality on an indexed field uses IXSCAN with that index', async (t) => {
    const e = await explain({ age: 42 });
    const ix = findStage(winningPlan(e), 'IXSCAN');
    t.equal(ix?.indexName, 'age_1');
    t.same(ix?.keyPattern, { age: 1 });
    t.equal(ix?.isMultiKey, false);
    t.equal(ix?.direction, 'forward');
    t.same(ix?.indexBounds, { age: ['[42, 42]'] });
    t.equal(e.executionStats.nReturned, await c.countDocuments({ age: 42 }));
    t.equal(e.executionStats.totalKeysExamined, e.executionStats.nReturned);
    t.equal(e.executionStats.totalDocsExamined, e.executionStats.nReturned);
  });

  await t.test('unindexed field is a COLLSCAN', async (t) => {
    const e = await explain({ kind: 'plain' });
    const plan = winningPlan(e);
    t.ok(findStage(plan, 'COLLSCAN'));
    t.notOk(findStage(plan, 'IXSCAN'));
    t.equal(e.executionStats.totalDocsExamined, 300);
    t.equal(e.executionStats.totalKeysExamined, 0);
  });

  await t.test('ranges and $in use index bounds', async (t) => {
    const range = await explain({ age: { $gte: 10, $lt: 20 } });
    const ix = findStage(winningPlan(range), 'IXSCAN');
    t.equal(ix?.indexName, 'age_1');
    t.same(ix?.indexBounds, { age: ['[10, 20)'] });
    t.equal(range.executionStats.nReturned, docs.filter((d) => d.age >= 10 && d.age < 20).length);
    const open = await explain({ age: { $gt: 85 } });
    t.same(findStage(winningPlan(open), 'IXSCAN')?.indexBounds, { age: ['(85, inf.0]'] });
    const inList = await explain({ age: { $in: [3, 1, 2] } });
    t.same(findStage(winningPlan(inList), 'IXSCAN')?.indexBounds, { age: ['[1, 1]', '[2, 2]', '[3, 3]'] });
    const dates = await c.find({ created: { $gte: new Date(Date.UTC(2024, 0, 2)) } }).toArray();
    t.equal(dates.length, 300 - 24);
  });

  await t.test('multikey indexes over arrays and dotted paths into arrays of sub-documents', async (t) => {
    const e = await explain({ tags: 't3' });
    const ix = findStage(winningPlan(e), 'IXSCAN');
    t.equal(ix?.indexName, 'tags_1');
    t.equal(ix?.isMultiKey, true);
    t.same(ix?.multiKeyPaths, { tags: ['tags'] });
    t.equal(e.executionStats.nReturned, docs.filter((d) => d.tags.includes('t3')).length);

    const nested = await explain({ 'idx.name': 'm4' });
    const nix = findStage(winningPlan(nested), 'IXSCAN');
    t.equal(nix?.indexName, 'idx.name_1');
    t.equal(nix?.isMultiKey, true);
    t.same(nix?.multiKeyPaths, { 'idx.name': ['idx'] });
    const expected = docs.filter((d) => d.idx.some((x: Document) => x.name === 'm4')).map((d) => d._id);
    t.same(
      await c
        .find({ 'idx.name': 'm4' })
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray(),
      expected,
    );
    t.same(
      await c
        .find({ 'idx.name': { $in: ['n1', 'm2'] } })
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray(),
      docs.filter((d) => d.idx.some((x: Document) => x.name === 'n1' || x.name === 'm2')).map((d) => d._id),
    );
  });

  await t.test('sort + limit follows the index order instead of sorting', async (t) => {
    const e = await explain({}, { sort: { created: -1 }, limit: 5 });
    const plan = winningPlan(e);
    const ix = findStage(plan, 'IXSCAN');
    t.equal(ix?.indexName, 'created_1');
    t.equal(ix?.direction, 'backward');
    t.notOk(findStage(plan, 'SORT'), 'no blocking sort');
    t.equal(e.executionStats.totalDocsExamined, 5);
    t.equal(e.executionStats.nReturned, 5);
    const top = await c
      .find({})
      .sort({ created: -1 })
      .limit(3)
      .map((d) => d._id)
      .toArray();
    t.same(top, [299, 298, 297]);

    const compound = await explain({ status: 'active' }, { sort: { created: -1 }, limit: 3 });
    const cix = findStage(winningPlan(compound), 'IXSCAN');
    t.equal(cix?.indexName, 'status_created');
    t.notOk(findStage(winningPlan(compound), 'SORT'));
    t.same(
      await c
        .find({ status: 'active' })
        .sort({ created: -1 })
        .limit(3)
        .map((d) => d._id)
        .toArray(),
      [297, 294, 291],
    );

    const blocking = await explain({ age: 3 }, { sort: { kind: 1 }, limit: 2 });
    t.ok(findStage(winningPlan(blocking), 'SORT'), 'sorting on an unindexed field needs SORT');
    t.equal(findStage(winningPlan(blocking), 'IXSCAN')?.indexName, 'age_1');
    const viaPartial = await explain({ kind: 'special' }, { sort: { code: 1 }, limit: 2 });
    t.equal(findStage(winningPlan(viaPartial), 'IXSCAN')?.indexName, 'code_partial', 'a partial index can provide the sort');
    t.notOk(findStage(winningPlan(viaPartial), 'SORT'));
  });

  await t.test('a blocking sort with skip and limit returns the slice of the whole sorted order', async (t) => {
    // The embedded server keeps only skip + limit documents while it scans (a top-k heap): the slice must be the
    // one sorting every match gives, at the start, in the middle, at the end and past it, both directions.
    const byKindThenCode = (a: Document, b: Document, dir: 1 | -1): number =>
      (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : a.code < b.code ? -1 : a.code > b.code ? 1 : 0) * dir;
    for (const dir of [1, -1] as const) {
      const expected = docs
        .filter((d) => d.status !== 'pending')
        .sort((a, b) => byKindThenCode(a, b, dir))
        .map((d) => d._id);
      for (const [skip, limit] of [
        [0, 1],
        [0, 7],
        [5, 10],
        [45, 20],
        [190, 30],
        [199, 5],
        [250, 5],
      ] as const) {
        const filter = { status: { $in: ['active', 'inactive'] } };
        const got = await c
          .find(filter)
          .sort({ kind: dir, code: dir })
          .skip(skip)
          .limit(limit)
          .map((d) => d._id)
          .toArray();
        t.same(got, expected.slice(skip, skip + limit), `sort ${dir}, skip ${skip}, limit ${limit}`);
      }
    }
    const e = await explain({ status: { $in: ['active', 'inactive'] } }, { sort: { kind: 1, code: 1 }, skip: 5, limit: 10 });
    t.ok(findStage(winningPlan(e), 'SORT'), 'a blocking sort');
    t.equal(e.executionStats.nReturned, 10);
  });

  await t.test('an _id-only find answered by an index holding _id reads no document (PROJECTION_COVERED)', async (t) => {
    const keyed = db.collection<TestDoc>('covered_ids');
    const rows: Document[] = [];
    for (let i = 0; i < 120; i++)
      rows.push({ _id: `Patient/p${String(i).padStart(3, '0')}`, family: ['smith', 'jones', 'brown'][i % 3], n: i });
    // Odd _ids too: a NUL inside, and ones that are not strings (the key cannot give those back: fetched).
    rows.push(
      { _id: 'Patient/with\u0000nul', family: 'smith', n: 500 },
      { _id: 7, family: 'smith', n: 501 },
      { _id: { a: 1 }, family: 'smith', n: 502 },
    );
    await keyed.insertMany(rows);
    await keyed.createIndexes([
      { key: { family: 1, _id: 1 }, name: 'family_id' },
      { key: { n: 1 }, name: 'n_only' },
    ]);
    const expected = rows.filter((r) => r.family === 'smith').map((r) => ({ _id: r._id }));
    const sortKey = (v: unknown): string => JSON.stringify(v);
    const got = await keyed.find({ family: 'smith' }, { projection: { _id: 1 } }).toArray();
    t.same(got.map((d) => sortKey(d._id)).sort(), expected.map((d) => sortKey(d._id)).sort(), 'every match, odd _ids included');
    t.ok(
      got.some((d) => d._id === 'Patient/with\u0000nul'),
      'a NUL inside a string _id comes back intact',
    );

    const strings = { family: 'jones' };
    const e = await keyed.find(strings, { projection: { _id: 1 } }).explain('executionStats');
    t.ok(findStage(winningPlan(e), 'PROJECTION_COVERED'), 'PROJECTION_COVERED');
    t.notOk(findStage(winningPlan(e), 'FETCH'), 'no FETCH');
    t.equal(e.executionStats.totalDocsExamined, 0, 'no document read');
    t.equal(e.executionStats.nReturned, 40);

    // Sorted by _id with a limit (a FHIR search's page of keys): still no document read.
    const page = await keyed
      .find(strings, { projection: { _id: 1 } })
      .sort({ _id: -1 })
      .limit(3)
      .toArray();
    t.same(page, [{ _id: 'Patient/p118' }, { _id: 'Patient/p115' }, { _id: 'Patient/p112' }]);
    const pe = await keyed
      .find(strings, { projection: { _id: 1 } })
      .sort({ _id: -1 })
      .limit(3)
      .explain('executionStats');
    t.equal(pe.executionStats.totalDocsExamined, 0, 'a sorted page of keys reads no document');

    // Not covered: the index lacks _id, the filter is not answered by the bounds, or more than _id is projected.
    const noId = await keyed.find({ n: { $lt: 10 } }, { projection: { _id: 1 } }).explain('executionStats');
    t.ok(findStage(winningPlan(noId), 'FETCH'), 'an index without _id fetches');
    t.equal(noId.executionStats.totalDocsExamined, 10);
    const residual = await keyed
      .find({ family: 'jones', n: { $gt: 100 } }, { projection: { _id: 1 } })
      .hint('family_id')
      .explain('executionStats');
    t.ok(findStage(winningPlan(residual), 'FETCH'), 'a residual filter fetches');
    t.same(
      await keyed
        .find({ family: 'jones', n: { $gt: 100 } }, { projection: { _id: 1 } })
        .hint('family_id')
        .toArray(),
      rows.filter((r) => r.family === 'jones' && r.n > 100).map((r) => ({ _id: r._id })),
    );
    const more = await keyed.find(strings, { projection: { _id: 1, n: 1 } }).explain('executionStats');
    t.ok(findStage(winningPlan(more), 'FETCH'), 'projecting a field outside the index fetches');
    t.same(
      (
        await keyed
          .find({ family: 'jones' }, { projection: { _id: 1, n: 1 } })
          .limit(1)
          .toArray()
      )[0],
      { _id: 'Patient/p001', n: 1 },
    );

    // Inside a transaction the documents decide (its own writes are not in the committed index).
    const session = client.startSession();
    try {
      await session.withTransaction(async () => {
        await keyed.insertOne({ _id: 'Patient/p999', family: 'jones', n: 999 }, { session });
        const inTxn = await keyed.find(strings, { projection: { _id: 1 }, session }).toArray();
        t.equal(inTxn.length, 41, 'a transaction sees its own insert');
        await keyed.deleteOne({ _id: 'Patient/p999' }, { session });
      });
    } finally {
      await session.endSession();
    }
  });

  await t.test('hint, $natural and results identical to a collection scan', async (t) => {
    const filters: Document[] = [
      { age: { $gt: 20, $lte: 30 }, status: 'pending' },
      { tags: { $in: ['t1', 't2'] }, age: { $lt: 10 } },
      { 'idx.name': 'n3', status: { $ne: 'active' } },
      { $or: [{ age: 5 }, { code: 'c0007' }] },
      { created: { $lt: new Date(Date.UTC(2024, 0, 3)) }, tags: 't0' },
      { status: /^act/ },
      { status: /^pend|ive$/ },
      { status: /^actx?/ },
      { status: { $regex: '^ACT', $options: 'i' } },
    ];
    for (const filter of filters) {
      const viaPlanner = await c
        .find(filter)
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray();
      const viaScan = await c
        .find(filter)
        .hint({ $natural: 1 })
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray();
      t.same(viaPlanner, viaScan, JSON.stringify(filter));
    }
    const hinted = await explain({ status: 'active', age: 3 }, { hint: 'status_1' });
    t.equal(findStage(winningPlan(hinted), 'IXSCAN')?.indexName, 'status_1');
    const natural = await explain({ age: 3 }, { hint: { $natural: 1 } });
    t.ok(findStage(winningPlan(natural), 'COLLSCAN'));
    const badHint = await rejection(c.find({}).hint('nope').toArray());
    t.equal(badHint.code, 2);
  });

  await t.test('$or of indexable branches is an OR of index scans', async (t) => {
    const e = await explain({ $or: [{ age: 5 }, { status: 'pending' }] });
    const or = findStage(winningPlan(e), 'OR');
    t.ok(or, 'OR stage');
    const names = ((or?.inputStages as Document[]) ?? []).map((s) => findStage(s, 'IXSCAN')?.indexName).sort();
    t.same(names, ['age_1', 'status_1']);
  });

  await t.test('a partial index is used only when the query implies its filter', async (t) => {
    const used = await explain({ code: 'c0010', kind: 'special' });
    t.equal(findStage(winningPlan(used), 'IXSCAN')?.indexName, 'code_partial');
    t.equal(used.executionStats.nReturned, 1);
    const notUsed = await explain({ code: 'c0010' });
    t.notOk(findStage(winningPlan(notUsed), 'IXSCAN'), 'cannot use the partial index');
    t.equal(notUsed.executionStats.nReturned, 1);
  });

  await t.test('aggregate with a leading $match plans through the index', async (t) => {
    const e = (await c
      .aggregate([{ $match: { age: 7 } }, { $group: { _id: '$status', n: { $sum: 1 } } }])
      .explain('queryPlanner')) as Document;
    t.equal(findStage(winningPlan(e), 'IXSCAN')?.indexName, 'age_1');
    const pushed = (await c
      .aggregate([{ $match: { status: 'active' } }, { $sort: { created: -1 } }, { $limit: 2 }])
      .explain('queryPlanner')) as Document;
    t.equal(findStage(winningPlan(pushed), 'IXSCAN')?.indexName, 'status_created');
    t.same(
      await c.aggregate([{ $match: { status: 'active' } }, { $sort: { created: -1 } }, { $limit: 2 }, { $project: { _id: 1 } }]).toArray(),
      [{ _id: 297 }, { _id: 294 }],
    );
  });

  await t.test('explain of count, distinct, update and delete', async (t) => {
    for (const command of [
      { count: 'plans', query: { age: 3 } },
      { distinct: 'plans', key: 'status', query: { age: 3 } },
      { update: 'plans', updates: [{ q: { age: 3 }, u: { $set: { x: 1 } } }] },
      { delete: 'plans', deletes: [{ q: { age: 3 }, limit: 1 }] },
    ]) {
      const e = await db.command({ explain: command, verbosity: 'queryPlanner' });
      // mongod may answer a count from the index alone (COUNT_SCAN); the index is what matters.
      const scan = ['IXSCAN', 'COUNT_SCAN'].map((s) => findStage(e.queryPlanner.winningPlan, s)).find(Boolean);
      t.equal(scan?.indexName, 'age_1', Object.keys(command)[0]);
    }
    t.equal(await c.countDocuments({ x: 1 }), 0, 'explain of a write does not execute it');
  });
});
