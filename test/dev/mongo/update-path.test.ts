/**
 * Operator updates copy only what they change and maintain only the indexes on what they change. What must not
 * follow from that: a document already stored (and held by a transaction's snapshot, a cursor, the cache) changed in
 * place; an index left with stale entries; a real change taken for a no-op, or the reverse. Each case runs an update
 * outside a transaction that has read the document before, and then checks the snapshot, every index and nModified.
 */
import t from 'tap';
import type { ClientSession, Document } from 'mongodb';
import { forEachBackend, type TestDoc } from './backends.js';

/** A document with nested objects and arrays under several indexed and unindexed paths. */
function original(): TestDoc {
  return {
    _id: 'doc',
    tag: 'x',
    anchor: { state: 'pending', commitment: 'c1' },
    nested: { a: { b: 1 }, list: [1, 2, 3] },
    items: [
      { sku: 'p1', qty: 1, tags: ['a'] },
      { sku: 'p2', qty: 2, tags: ['b'] },
    ],
    counts: { n: 5 },
    bits: 5,
  };
}

/** `expect`: the whole document after the update, field order included (as mongod gives it). */
const CASES: Array<{ name: string; update: Document; arrayFilters?: Document[]; query?: Document; expect?: Document }> = [
  { name: '$set of a nested field', update: { $set: { 'anchor.state': 'batched', 'anchor.batch': 7 } } },
  { name: '$set of a whole subdocument', update: { $set: { nested: { a: { b: 9 } } } } },
  // Plain paths (the engine applies these without mingo): new intermediate objects, existing and new fields mixed.
  {
    name: '$set creating a nested path',
    update: { $set: { 'fresh.deep.value': { list: [1, { x: 2 }] }, 'anchor.state': 'batched' } },
    expect: { ...original(), anchor: { state: 'batched', commitment: 'c1' }, fresh: { deep: { value: { list: [1, { x: 2 }] } } } },
  },
  {
    name: '$set of existing and new fields under one object',
    update: { $set: { 'nested.a.c': 3, 'nested.a.b': 2, 'counts.m': 1 } },
    expect: { ...original(), nested: { a: { b: 2, c: 3 }, list: [1, 2, 3] }, counts: { n: 5, m: 1 } },
  },
  { name: '$inc deep', update: { $inc: { 'nested.a.b': 1, 'counts.n': -1 } } },
  { name: '$push to a nested array', update: { $push: { 'nested.list': 4 } } },
  { name: '$push with $each and $sort', update: { $push: { 'nested.list': { $each: [0], $sort: -1 } } } },
  { name: '$addToSet', update: { $addToSet: { 'nested.list': 9 } } },
  { name: '$pop', update: { $pop: { 'nested.list': 1 } } },
  { name: '$pull', update: { $pull: { 'nested.list': 2 } } },
  { name: '$pullAll', update: { $pullAll: { 'nested.list': [1, 3] } } },
  { name: 'positional $', update: { $set: { 'items.$.qty': 10 } }, query: { _id: 'doc', 'items.sku': 'p2' } },
  { name: 'all positional $[]', update: { $inc: { 'items.$[].qty': 5 } } },
  { name: 'filtered positional $[x]', update: { $push: { 'items.$[x].tags': 'z' } }, arrayFilters: [{ 'x.sku': 'p1' }] },
  { name: 'numeric path component', update: { $set: { 'items.1.sku': 'p9' } } },
  { name: '$unset nested', update: { $unset: { 'anchor.commitment': '' } } },
  { name: '$rename nested', update: { $rename: { 'anchor.commitment': 'anchor.c' } } },
  { name: '$min and $max nested', update: { $min: { 'nested.a.b': 0 }, $max: { 'counts.n': 50 } } },
  { name: '$mul', update: { $mul: { 'counts.n': 3 } } },
  { name: '$bit', update: { $bit: { bits: { or: 2 } } } },
  { name: '$currentDate nested', update: { $currentDate: { 'anchor.at': true } } },
];

const INDEXES: Array<Record<string, 1 | -1>> = [
  { tag: 1 },
  { 'anchor.state': 1 },
  { 'nested.a.b': 1 },
  { 'nested.list': 1 },
  { 'items.sku': 1, tag: 1 },
  { 'items.qty': -1 },
  { 'counts.n': 1 },
];

await forEachBackend(t, async (t, { client, db }) => {
  const sessions: ClientSession[] = [];
  t.teardown(async () => {
    for (const s of sessions) await s.endSession().catch(() => undefined);
  });

  for (const [n, c] of CASES.entries()) {
    await t.test(c.name, async (t) => {
      const coll = db.collection<TestDoc>(`update_path_${n}`);
      await coll.createIndexes(INDEXES.map((key) => ({ key })));
      // A partial index over a field the update does not touch, filtered on one it may.
      await coll.createIndex({ tag: 1, bits: 1 }, { name: 'partial_pending', partialFilterExpression: { 'anchor.state': 'pending' } });
      await coll.insertOne(original());

      const s = client.startSession();
      sessions.push(s);
      s.startTransaction({ readConcern: { level: 'snapshot' } });
      const before = await coll.findOne({ _id: 'doc' }, { session: s });
      t.same(before, original(), 'the transaction reads the document');

      const result = await coll.updateOne(c.query ?? { _id: 'doc' }, c.update, c.arrayFilters ? { arrayFilters: c.arrayFilters } : {});
      t.equal(result.modifiedCount, 1, 'a real change is not taken for a no-op');
      const after = await coll.findOne({ _id: 'doc' });
      t.notSame(after, original(), 'the document changed');
      if (c.expect) t.equal(JSON.stringify(after), JSON.stringify(c.expect), 'the document is the expected one, field order included');

      t.same(await coll.findOne({ _id: 'doc' }, { session: s }), original(), "the transaction's snapshot still has the old document");
      await s.commitTransaction();

      // Every index agrees with the document: each indexed value finds it, and a scan of each index finds it once.
      for (const index of await coll.indexes()) {
        const partial = index.partialFilterExpression !== undefined;
        // (A partial index answers only queries that imply its filter.)
        const viaIndex = await coll
          .find(partial ? { 'anchor.state': 'pending' } : {})
          .hint(index.name as string)
          .toArray();
        const expected = partial ? (after?.anchor as Document | undefined)?.state === 'pending' : true;
        t.equal(viaIndex.length, expected ? 1 : 0, `index ${String(index.name)} holds the document ${expected ? 'once' : 'no more'}`);
      }
      for (const [path, value] of [
        ['anchor.state', (after?.anchor as Document | undefined)?.state],
        ['nested.a.b', ((after?.nested as Document | undefined)?.a as Document | undefined)?.b],
        ['counts.n', (after?.counts as Document | undefined)?.n],
      ] as const) {
        if (value === undefined) continue;
        t.equal(await coll.countDocuments({ [path]: value }), 1, `found by its new ${path}`);
      }
      for (const item of (after?.items as Document[] | undefined) ?? []) {
        t.equal(await coll.countDocuments({ 'items.sku': item.sku, tag: 'x' }), 1, `found by items.sku ${String(item.sku)}`);
        t.equal(await coll.countDocuments({ 'items.qty': item.qty }), 1, `found by items.qty ${String(item.qty)}`);
      }
      if (c.name.startsWith('$set of a nested')) {
        t.equal(await coll.countDocuments({ 'anchor.state': 'pending' }), 0, 'not found by the old value');
      }
      // Applying a $set of the values it already has is a no-op.
      const same = await coll.updateOne(
        { _id: 'doc' },
        { $set: { tag: 'x', 'counts.n': (after?.counts as Document | undefined)?.n ?? null } },
      );
      t.equal(
        same.modifiedCount,
        (after?.counts as Document | undefined)?.n === undefined ? 1 : 0,
        'setting what is there changes nothing',
      );
    });
  }

  await t.test('updateMany over a thousand documents: one indexed field changed, the rest of the indexes intact', async (t) => {
    const coll = db.collection<TestDoc>('update_path_many');
    await coll.createIndexes(INDEXES.map((key) => ({ key })));
    await coll.insertMany(Array.from({ length: 1000 }, (_, i) => ({ ...original(), _id: `d${i}`, tag: `t${i % 10}`, counts: { n: i } })));
    const claimed = await coll.updateMany({ 'counts.n': { $lt: 500 } }, { $set: { 'anchor.state': 'batched', 'anchor.batch': 1 } });
    t.equal(claimed.modifiedCount, 500);
    t.equal(await coll.countDocuments({ 'anchor.state': 'batched' }), 500);
    t.equal(await coll.countDocuments({ 'anchor.state': 'pending' }), 500);
    t.equal(await coll.countDocuments({ tag: 't3' }), 100, 'an index the update did not touch still finds every document');
    t.equal(await coll.countDocuments({ 'counts.n': { $gte: 250, $lt: 750 } }), 500);
    const again = await coll.updateMany({ 'counts.n': { $lt: 500 } }, { $set: { 'anchor.state': 'batched', 'anchor.batch': 1 } });
    t.equal(again.modifiedCount, 0, 'the same update again modifies nothing');
  });
});
