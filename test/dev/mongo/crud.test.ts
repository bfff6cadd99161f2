import t from 'tap';
import { Binary, BSON, Decimal128, Double, Int32, Long, MongoClient, ObjectId, type Document } from 'mongodb';
import { CLIENT_OPTIONS, forEachBackend, rejection, type TestDoc } from './backends.js';

await forEachBackend(t, async (t, { db, backend }) => {
  await t.test('a document no index can hold is refused whole (parallel arrays), in and out of transactions', async (t) => {
    const c = db.collection<TestDoc>('parallel');
    await c.createIndex({ a: 1 });
    await c.createIndex({ b: 1, c: 1 });
    await c.insertOne({ _id: 1, a: 1, b: [1, 2], c: 3 });
    t.equal((await rejection(c.insertOne({ _id: 2, a: 2, b: [1, 2], c: [3, 4] }))).code, 171, 'CannotIndexParallelArrays');
    t.equal((await rejection(c.updateOne({ _id: 1 }, { $set: { c: [5, 6] } }))).code, 171);
    const s = db.client.startSession();
    try {
      s.startTransaction();
      await c.insertOne({ _id: 3, a: 3 }, { session: s });
      t.equal((await rejection(c.insertOne({ _id: 4, a: 4, b: [1], c: [2, 3] }, { session: s }))).code, 171, 'in a transaction too');
      await s.abortTransaction().catch(() => undefined);
    } finally {
      await s.endSession();
    }
    t.same(await c.find().toArray(), [{ _id: 1, a: 1, b: [1, 2], c: 3 }], 'nothing of the refused writes');
    t.equal(await c.countDocuments({ a: 2 }, { hint: { a: 1 } }), 0, 'no index entry left behind');
    t.equal(await c.countDocuments({ b: 1 }, { hint: { b: 1, c: 1 } }), 1);
    await c.insertOne({ _id: 5, a: 5, b: 7, c: [8, 9] });
    t.equal(await c.countDocuments(), 2);
  });

  await t.test('an inserted document is stored as the bytes it was sent as (insertOne, insertMany, in a transaction)', async (t) => {
    // A double holding a whole number decodes to a JS number that would be encoded again as a 4-byte int32: stored
    // as received it keeps its 8 bytes, as mongod stores it. dataSize counts the stored bytes.
    const other = db.client.db(`${db.databaseName}_received`);
    const c = other.collection<TestDoc>('bytes');
    const one = { _id: 'one', d: new Double(1), s: 'x' };
    const many = [
      { _id: 'm1', d: new Double(2), n: [new Double(3)] },
      { _id: 'm2', d: new Double(4) },
    ];
    const inTxn = { _id: 't1', d: new Double(5) };
    await c.insertOne(one);
    await c.insertMany(many);
    const s = db.client.startSession();
    try {
      await s.withTransaction(async () => void (await c.insertOne(inTxn, { session: s })));
    } finally {
      await s.endSession();
    }
    const sent = [one, ...many, inTxn].reduce((sum, doc) => sum + BSON.calculateObjectSize(doc), 0);
    t.equal((await other.command({ dbStats: 1 })).dataSize, sent, 'the bytes sent, doubles as doubles');
    t.same(await c.find({}, { sort: { _id: 1 } }).toArray(), [
      { _id: 'm1', d: 2, n: [3] },
      { _id: 'm2', d: 4 },
      { _id: 'one', d: 1, s: 'x' },
      { _id: 't1', d: 5 },
    ]);
    await other.dropDatabase();
  });

  await t.test('insert and find with filter, sort, projection, skip, limit', async (t) => {
    const c = db.collection<TestDoc>('people');
    const res = await c.insertMany([
      { _id: 1, name: 'ann', age: 31, tags: ['a', 'b'] },
      { _id: 2, name: 'bob', age: 25, tags: ['b'] },
      { _id: 3, name: 'cid', age: 42 },
      { _id: 4, name: 'dee', age: 25, address: { city: 'Oslo' } },
    ]);
    t.equal(res.insertedCount, 4);
    t.same(await c.find({ age: 25 }).sort({ _id: 1 }).toArray(), [
      { _id: 2, name: 'bob', age: 25, tags: ['b'] },
      { _id: 4, name: 'dee', age: 25, address: { city: 'Oslo' } },
    ]);
    t.same(
      await c
        .find({}, { projection: { name: 1 } })
        .sort({ age: -1, _id: 1 })
        .skip(1)
        .limit(2)
        .toArray(),
      [
        { _id: 1, name: 'ann' },
        { _id: 2, name: 'bob' },
      ],
    );
    t.same(
      await c
        .find({ tags: 'b' }, { projection: { _id: 0, name: 1 } })
        .sort({ name: 1 })
        .toArray(),
      [{ name: 'ann' }, { name: 'bob' }],
    );
    t.same(await c.find({ 'address.city': 'Oslo' }, { projection: { tags: 0, address: 0 } }).toArray(), [{ _id: 4, name: 'dee', age: 25 }]);
    t.same(
      await c
        .find({ age: { $gt: 30 }, name: { $in: ['ann', 'cid', 'zed'] } })
        .sort({ age: 1 })
        .map((d) => d._id)
        .toArray(),
      [1, 3],
    );
    t.same(
      await c
        .find({ $or: [{ age: 42 }, { name: /^bo/ }] })
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray(),
      [2, 3],
    );
    t.same(
      await c
        .find({ tags: { $exists: false } })
        .map((d) => d._id)
        .toArray(),
      [3, 4],
    );
    t.same(await c.find({}).sort({ _id: -1 }).limit(1).toArray(), [{ _id: 4, name: 'dee', age: 25, address: { city: 'Oslo' } }]);
    const one = await c.findOne({ _id: 3 });
    t.same(one, { _id: 3, name: 'cid', age: 42 });
  });

  await t.test("inclusion projections of dotted paths, in the document's field order, through arrays", async (t) => {
    const c = db.collection<TestDoc>('projected');
    await c.insertMany([
      { _id: 1, a: [{ b: 1, c: 2 }, 5, [{ b: 3, d: 0 }], { c: 4 }], x: 1, z: { q: 1, p: 2, r: 3 } },
      { _id: 2, a: 5, x: 2 },
      { _id: 3, a: { c: 1 }, x: 3 },
    ]);
    const find = (projection: Document) => c.find({}, { projection }).sort({ _id: 1 }).toArray();
    t.same(
      await find({ 'a.b': 1 }),
      [{ _id: 1, a: [{ b: 1 }, [{ b: 3 }], {}] }, { _id: 2 }, { _id: 3, a: {} }],
      'scalars in arrays dropped, sub-documents projected',
    );
    t.same(await find({ x: 1, _id: 0 }), [{ x: 1 }, { x: 2 }, { x: 3 }]);
    const ordered = await c.findOne({ _id: 1 }, { projection: { 'z.r': 1, 'z.q': 1, x: 1 } });
    t.same(Object.keys(ordered ?? {}), ['_id', 'x', 'z'], "the document's order, not the projection's");
    t.same(Object.keys((ordered?.z as Document | undefined) ?? {}), ['q', 'r']);
    t.same(
      await c.findOne({ _id: 2 }, { projection: { missing: 1, 'also.missing': true } }),
      { _id: 2 },
      'paths that are not there give nothing',
    );
    const collision = await c
      .find({}, { projection: { a: 1, 'a.b': 1 } })
      .toArray()
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    t.ok(collision instanceof Error, 'a path and its prefix together are refused');
  });

  await t.test('generated _id is an ObjectId and comes first', async (t) => {
    const c = db.collection<TestDoc>('ids');
    const { insertedId } = await c.insertOne({ b: 1 });
    t.ok(insertedId instanceof ObjectId);
    const doc = await c.findOne({ _id: insertedId });
    t.same(Object.keys(doc ?? {}), ['_id', 'b']);
    await c.insertOne({ x: 1, _id: 'late' });
    t.same(Object.keys((await c.findOne({ _id: 'late' })) ?? {}), ['_id', 'x']);
  });

  await t.test('ordered inserts stop at the first error, unordered continue', async (t) => {
    const c = db.collection<TestDoc>('batches');
    const ordered = await rejection(c.insertMany([{ _id: 1 }, { _id: 1 }, { _id: 2 }]));
    t.equal(ordered.code, 11000);
    t.equal(ordered.result.insertedCount, 1);
    t.equal(ordered.writeErrors[0].index, 1);
    t.equal(await c.countDocuments(), 1);
    const unordered = await rejection(c.insertMany([{ _id: 1 }, { _id: 3 }, { _id: 3 }, { _id: 4 }], { ordered: false }));
    t.equal(unordered.result.insertedCount, 2);
    t.same(
      unordered.writeErrors.map((w: Document) => w.index),
      [0, 2],
    );
    t.same(
      await c
        .find()
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray(),
      [1, 3, 4],
    );
  });

  await t.test('update operators, multi, upsert, arrayFilters, pipeline, replace', async (t) => {
    const c = db.collection<TestDoc>('updates');
    await c.insertMany([
      {
        _id: 1,
        n: 1,
        items: [
          { k: 'a', v: 1 },
          { k: 'b', v: 2 },
        ],
        list: [1, 2, 3],
      },
      { _id: 2, n: 2, items: [], list: [] },
    ]);
    const mixed: Document = { $inc: { n: 10 }, $set: { 'sub.x': 1 }, $push: { list: 4 } };
    let r = await c.updateOne({ _id: 1 }, mixed);
    t.same([r.matchedCount, r.modifiedCount], [1, 1]);
    t.same(await c.findOne({ _id: 1 }, { projection: { n: 1, sub: 1, list: 1 } }), { _id: 1, n: 11, list: [1, 2, 3, 4], sub: { x: 1 } });
    r = await c.updateOne({ _id: 1 }, { $set: { n: 11 } });
    t.same([r.matchedCount, r.modifiedCount], [1, 0], 'no-op update matches but does not modify');
    r = await c.updateMany({}, { $set: { flag: true } });
    t.same([r.matchedCount, r.modifiedCount], [2, 2]);
    r = await c.updateOne({ _id: 1 }, { $set: { 'items.$[e].v': 20 } }, { arrayFilters: [{ 'e.k': 'b' }] });
    t.equal(r.modifiedCount, 1);
    t.same((await c.findOne({ _id: 1 }))?.items, [
      { k: 'a', v: 1 },
      { k: 'b', v: 20 },
    ]);
    r = await c.updateOne({ _id: 1, 'items.k': 'a' }, { $set: { 'items.$.v': 10 } });
    t.same((await c.findOne({ _id: 1 }))?.items, [
      { k: 'a', v: 10 },
      { k: 'b', v: 20 },
    ]);
    r = await c.updateOne({ _id: 2 }, [{ $set: { doubled: { $multiply: ['$n', 2] } } }]);
    t.equal((await c.findOne({ _id: 2 }))?.doubled, 4);
    r = await c.updateOne({ key: 'new' }, { $set: { v: 1 }, $setOnInsert: { created: true } }, { upsert: true });
    t.equal(r.upsertedCount, 1);
    t.ok(r.upsertedId instanceof ObjectId);
    const upserted = await c.findOne({ key: 'new' });
    t.same({ ...upserted, _id: null }, { _id: null, key: 'new', v: 1, created: true });
    r = await c.updateOne({ key: 'new' }, { $set: { v: 2 }, $setOnInsert: { created: false } }, { upsert: true });
    t.same([r.matchedCount, r.upsertedCount], [1, 0]);
    t.equal((await c.findOne({ key: 'new' }))?.created, true, '$setOnInsert only applies on insert');
    r = await c.updateOne({ _id: 99 }, { $set: { v: 1 } }, { upsert: true });
    t.equal(r.upsertedId, 99);
    // An upsert whose filter the seed cannot satisfy ($or, ranges) still applies its $set (mongod does).
    await c.updateOne(
      { _id: 100, $or: [{ v: { $exists: false } }, { v: { $lt: 5 } }] },
      { $set: { v: 5, w: 1 }, $setOnInsert: { x: 1 } },
      { upsert: true },
    );
    t.same(await c.findOne({ _id: 100 }), { _id: 100, v: 5, w: 1, x: 1 });
    const replaced = await c.replaceOne({ _id: 2 }, { only: 'this' });
    t.equal(replaced.modifiedCount, 1);
    t.same(await c.findOne({ _id: 2 }), { _id: 2, only: 'this' });
    const bad = await rejection(c.updateOne({ _id: 2 }, { $set: { _id: 3 } }));
    t.equal(bad.code, 66, 'changing _id is ImmutableField');
    const badOp = await db.command({ update: 'updates', updates: [{ q: {}, u: { $frobnicate: { a: 1 } } }] });
    t.equal(badOp.writeErrors[0].code, 9, 'unknown update operator is FailedToParse');
  });

  await t.test('delete one and many', async (t) => {
    const c = db.collection<TestDoc>('deletes');
    await c.insertMany([{ g: 1 }, { g: 1 }, { g: 2 }, { g: 3 }]);
    t.equal((await c.deleteOne({ g: 1 })).deletedCount, 1);
    t.equal((await c.deleteMany({ g: { $gte: 1 } })).deletedCount, 3);
    t.equal(await c.countDocuments(), 0);
    t.equal((await c.deleteMany({ nothing: 1 })).deletedCount, 0);
  });

  await t.test('findAndModify variants', async (t) => {
    const c = db.collection<TestDoc>('fam');
    await c.insertMany([
      { _id: 1, q: 1, n: 5 },
      { _id: 2, q: 1, n: 3 },
    ]);
    const before = await c.findOneAndUpdate({ q: 1 }, { $inc: { n: 1 } }, { sort: { n: 1 }, returnDocument: 'before' });
    t.same(before, { _id: 2, q: 1, n: 3 });
    const after = await c.findOneAndUpdate(
      { q: 1 },
      { $inc: { n: 1 } },
      { sort: { n: -1 }, returnDocument: 'after', projection: { n: 1 } },
    );
    t.same(after, { _id: 1, n: 6 });
    const upserted = await c.findOneAndUpdate({ _id: 3 }, { $set: { n: 0 } }, { upsert: true, returnDocument: 'after' });
    t.same(upserted, { _id: 3, n: 0 });
    const replaced = await c.findOneAndReplace({ _id: 3 }, { n: 100 }, { returnDocument: 'after' });
    t.same(replaced, { _id: 3, n: 100 });
    const removed = await c.findOneAndDelete({ _id: 1 });
    t.same(removed, { _id: 1, q: 1, n: 6 });
    t.equal(await c.findOneAndDelete({ _id: 1 }), null);
    const raw = await db.command({ findAndModify: 'fam', query: { _id: 42 }, update: { $set: { a: 1 } }, upsert: true, new: true });
    t.same(raw.lastErrorObject, { n: 1, updatedExisting: false, upserted: 42 });
    t.same(raw.value, { _id: 42, a: 1 });
  });

  await t.test('count, estimatedDocumentCount and distinct', async (t) => {
    const c = db.collection<TestDoc>('counting');
    await c.insertMany([{ k: 1, tags: ['x', 'y'] }, { k: 2, tags: ['y'] }, { k: 2 }, { k: null }]);
    t.equal(await c.countDocuments({ k: 2 }), 2);
    t.equal(await c.countDocuments({}, { skip: 1, limit: 2 }), 2);
    t.equal(await c.estimatedDocumentCount(), 4);
    t.equal((await db.command({ count: 'counting', query: { k: { $gte: 1 } } })).n, 3);
    t.same(await c.distinct('k'), [null, 1, 2]);
    t.same(await c.distinct('tags'), ['x', 'y']);
    t.same(await c.distinct('k', { tags: 'y' }), [1, 2]);
    t.equal(await db.collection<TestDoc>('missing').countDocuments(), 0);
  });

  await t.test('aggregation stages', async (t) => {
    const orders = db.collection<TestDoc>('orders');
    const customers = db.collection<TestDoc>('customers');
    await customers.insertMany([
      { _id: 'c1', name: 'Ann' },
      { _id: 'c2', name: 'Bob' },
    ]);
    await orders.insertMany([
      { _id: 1, customer: 'c1', total: 10, items: ['a', 'b'] },
      { _id: 2, customer: 'c1', total: 5, items: ['c'] },
      { _id: 3, customer: 'c2', total: 7, items: [] },
    ]);
    t.same(
      await orders
        .aggregate([
          { $match: { total: { $gte: 5 } } },
          { $group: { _id: '$customer', sum: { $sum: '$total' }, n: { $sum: 1 } } },
          { $sort: { _id: 1 } },
        ])
        .toArray(),
      [
        { _id: 'c1', sum: 15, n: 2 },
        { _id: 'c2', sum: 7, n: 1 },
      ],
    );
    t.same(await orders.aggregate([{ $unwind: '$items' }, { $count: 'n' }]).toArray(), [{ n: 3 }]);
    t.same(
      await orders
        .aggregate([
          { $sort: { total: -1 } },
          { $skip: 1 },
          { $limit: 1 },
          { $lookup: { from: 'customers', localField: 'customer', foreignField: '_id', as: 'who' } },
          { $project: { _id: 1, name: { $first: '$who.name' } } },
        ])
        .toArray(),
      [{ _id: 3, name: 'Bob' }],
    );
    t.same(
      await orders
        .aggregate([
          { $addFields: { big: { $gt: ['$total', 6] } } },
          { $set: { half: { $divide: ['$total', 2] } } },
          { $match: { big: true } },
          { $project: { half: 1 } },
          { $sort: { _id: 1 } },
        ])
        .toArray(),
      [
        { _id: 1, half: 5 },
        { _id: 3, half: 3.5 },
      ],
    );
    const [facet] = await orders
      .aggregate([{ $facet: { count: [{ $count: 'n' }], top: [{ $sort: { total: -1 } }, { $limit: 1 }, { $project: { _id: 1 } }] } }])
      .toArray();
    t.same(facet, { count: [{ n: 3 }], top: [{ _id: 1 }] });
    t.same(
      await db
        .collection<TestDoc>('nothing')
        .aggregate([{ $match: {} }])
        .toArray(),
      [],
    );
    const bad = await rejection(orders.aggregate([{ $nosuchstage: {} }]).toArray());
    t.ok(bad instanceof Error, 'unknown stage fails');
  });

  await t.test('aggregation details: field order, missing values, $out and $merge', async (t) => {
    const src = db.collection<TestDoc>('agg_src');
    await src.insertMany([
      { _id: 1, b: 'x', a: 1, grp: 'g' },
      { _id: 2, b: 'y', grp: 'g' },
    ]);
    const projected = await src.aggregate([{ $project: { a: 1, b: 1, label: { $concat: ['$b', '!'] } } }, { $sort: { _id: 1 } }]).toArray();
    t.same(Object.keys(projected[0]!), ['_id', 'b', 'a', 'label'], '$project keeps document order, _id first, computed last');
    const [grouped] = await src
      .aggregate([{ $group: { _id: '$grp', as: { $push: '$a' }, set: { $addToSet: '$a' }, first: { $first: '$a' } } }])
      .toArray();
    t.same(grouped, { _id: 'g', as: [1], set: [1], first: 1 }, '$push and $addToSet skip missing fields');
    const buckets = await src.aggregate([{ $bucket: { groupBy: '$_id', boundaries: [0, 10] } }]).toArray();
    t.same(Object.keys(buckets[0]!), ['_id', 'count']);
    t.same(
      await src
        .find({ a: { $mod: [1, 0] } })
        .map((d) => d._id)
        .toArray(),
      [1],
      '$mod ignores missing and null',
    );

    await src.aggregate([{ $match: { a: 1 } }, { $project: { b: 1 } }, { $out: 'agg_out' }]).toArray();
    t.same(await db.collection<TestDoc>('agg_out').find().toArray(), [{ _id: 1, b: 'x' }]);
    await src.aggregate([{ $project: { b: 1 } }, { $out: 'agg_out' }]).toArray();
    t.equal(await db.collection<TestDoc>('agg_out').countDocuments(), 2, '$out replaces the target');
    await db.collection<TestDoc>('agg_out').updateOne({ _id: 2 }, { $set: { kept: true } });
    await src
      .aggregate([{ $project: { grp: 1 } }, { $merge: { into: 'agg_out', whenMatched: 'merge', whenNotMatched: 'insert' } }])
      .toArray();
    t.same(await db.collection<TestDoc>('agg_out').find().sort({ _id: 1 }).toArray(), [
      { _id: 1, b: 'x', grp: 'g' },
      { _id: 2, b: 'y', kept: true, grp: 'g' },
    ]);
  });

  await t.test('getMore across batches and killCursors', async (t) => {
    const c = db.collection<TestDoc>('cursors');
    await c.insertMany(Array.from({ length: 25 }, (_, i) => ({ _id: i })));
    const first = await db.command({ find: 'cursors', sort: { _id: 1 }, batchSize: 10 });
    t.equal(first.cursor.firstBatch.length, 10);
    t.not(first.cursor.id.toString(), '0');
    t.equal(first.cursor.ns, `${db.databaseName}.cursors`);
    const second = await db.command({ getMore: first.cursor.id, collection: 'cursors', batchSize: 10 });
    t.same(
      second.cursor.nextBatch.map((d: Document) => d._id),
      [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
    );
    const third = await db.command({ getMore: first.cursor.id, collection: 'cursors', batchSize: 10 });
    t.equal(third.cursor.nextBatch.length, 5);
    t.equal(third.cursor.id.toString(), '0', 'exhausted cursor is closed');
    const gone = await rejection(db.command({ getMore: first.cursor.id, collection: 'cursors' }));
    t.equal(gone.code, 43, 'CursorNotFound');

    const open = await db.command({ find: 'cursors', batchSize: 2 });
    const killed = await db.command({ killCursors: 'cursors', cursors: [open.cursor.id] });
    t.same(killed.cursorsKilled.map(String), [open.cursor.id.toString()]);
    const afterKill = await rejection(db.command({ getMore: open.cursor.id, collection: 'cursors' }));
    t.equal(afterKill.code, 43);

    const all = await c.find({}, { batchSize: 7 }).sort({ _id: 1 }).toArray();
    t.equal(all.length, 25);

    const monitored = new MongoClient(backend.uri, { ...CLIENT_OPTIONS, monitorCommands: true });
    t.teardown(() => monitored.close());
    const events: string[] = [];
    monitored.on('commandSucceeded', (e) => events.push(e.commandName));
    monitored.on('commandFailed', (e) => events.push(`${e.commandName} failed`));
    const cursor = monitored.db(db.databaseName).collection<TestDoc>('cursors').find({}, { batchSize: 3 });
    await cursor.next();
    await cursor.next();
    await cursor.next();
    await cursor.next();
    await cursor.close();
    t.same(events, ['find', 'getMore', 'killCursors'], 'driver getMore then killCursors on early close');
  });

  await t.test('BSON types: equality and mongod sort order', async (t) => {
    const c = db.collection<TestDoc>('types');
    const oid = new ObjectId('650000000000000000000001');
    const when = new Date('2024-01-02T03:04:05.000Z');
    await c.insertMany([
      { _id: 1, v: 'text' },
      { _id: 2, v: 5 },
      { _id: 3, v: oid },
      { _id: 4, v: when },
      { _id: 5, v: null },
      { _id: 6, v: true },
      { _id: 7, v: { a: 1 } },
      { _id: 8, v: new Binary(Buffer.from('xy')) },
      { _id: 9, v: Long.fromString('9007199254740993') },
      { _id: 10, v: Decimal128.fromString('2.5') },
      { _id: 11, v: [0, 100] },
      { _id: 12 },
      { _id: 13, v: new Int32(7) },
      { _id: 14, v: new Double(-1.5) },
    ]);
    t.same(
      await c
        .find({ v: oid })
        .map((d) => d._id)
        .toArray(),
      [3],
    );
    t.same(
      await c
        .find({ v: new ObjectId(oid.toHexString()) })
        .map((d) => d._id)
        .toArray(),
      [3],
    );
    t.same(
      await c
        .find({ v: new Date(when.getTime()) })
        .map((d) => d._id)
        .toArray(),
      [4],
    );
    t.same(
      await c
        .find({ v: 7 })
        .map((d) => d._id)
        .toArray(),
      [13],
      'int32 equals number',
    );
    t.same(
      await c
        .find({ v: Long.fromNumber(5) })
        .map((d) => d._id)
        .toArray(),
      [2],
      'Long equals number',
    );
    t.same(
      await c
        .find({ v: new Binary(Buffer.from('xy')) })
        .map((d) => d._id)
        .toArray(),
      [8],
    );
    t.same(
      await c
        .find({ v: Long.fromString('9007199254740993') })
        .map((d) => d._id)
        .toArray(),
      [9],
      'Long beyond 2^53 exact',
    );
    t.same(
      await c
        .find({ v: null })
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray(),
      [5, 12],
      'null matches missing',
    );
    t.same(
      await c
        .find({ v: { $gt: 2 } })
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray(),
      [2, 9, 10, 11, 13],
      'numbers only, arrays by element',
    );
    t.same(
      await c
        .find({ v: { $type: 'objectId' } })
        .map((d) => d._id)
        .toArray(),
      [3],
    );
    t.same(
      await c
        .find({ v: { $type: 'date' } })
        .map((d) => d._id)
        .toArray(),
      [4],
    );
    t.same(
      await c
        .find({ v: { $type: 'number' } })
        .sort({ _id: 1 })
        .map((d) => d._id)
        .toArray(),
      [2, 9, 10, 11, 13, 14],
    );
    const ascending = await c
      .find()
      .sort({ v: 1, _id: 1 })
      .map((d) => d._id)
      .toArray();
    // null/missing < numbers < string < object < binData < objectId < bool < date
    t.same(ascending, [5, 12, 14, 11, 10, 2, 13, 9, 1, 7, 8, 3, 6, 4]);
    const descending = await c
      .find()
      .sort({ v: -1, _id: 1 })
      .map((d) => d._id)
      .toArray();
    t.same(descending, [4, 6, 3, 8, 7, 1, 9, 11, 13, 2, 10, 14, 5, 12]);
    t.same(
      await c
        .aggregate([{ $match: { _id: { $in: [2, 9, 10, 13, 14] } } }, { $sort: { v: 1 } }, { $project: { _id: 1 } }])
        .map((d) => d._id)
        .toArray(),
      [14, 10, 2, 13, 9],
      'aggregate $sort uses BSON numeric order',
    );
  });
});
