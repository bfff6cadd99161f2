import t from 'tap';
import { MongoServerError, type Document } from 'mongodb';
import { forEachBackend, type TestDoc } from './backends.js';

async function failure(p: Promise<unknown>): Promise<MongoServerError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof MongoServerError) return err;
    throw err;
  }
  throw new Error('expected the operation to fail');
}

await forEachBackend(t, async (t, { db }) => {
  const ns = (c: string): string => `${db.databaseName}.${c}`;

  await t.test('unique index violations on insert, update, upsert and findAndModify', async (t) => {
    const c = db.collection<TestDoc>('users');
    await c.createIndex({ email: 1 }, { unique: true });
    await c.insertMany([
      { _id: 1, email: 'a@x' },
      { _id: 2, email: 'b@x' },
    ]);
    const onInsert = await failure(c.insertOne({ _id: 3, email: 'a@x' }));
    t.equal(onInsert.code, 11000);
    t.equal(onInsert.message, `E11000 duplicate key error collection: ${ns('users')} index: email_1 dup key: { email: "a@x" }`);
    t.same(onInsert.keyPattern, { email: 1 });
    t.same(onInsert.keyValue, { email: 'a@x' });

    const onUpdate = await failure(c.updateOne({ _id: 2 }, { $set: { email: 'a@x' } }));
    t.equal(onUpdate.code, 11000);
    t.same(onUpdate.keyValue, { email: 'a@x' });
    t.equal((await c.findOne({ _id: 2 }))?.email, 'b@x', 'failed update left the document alone');

    const onUpsert = await failure(c.updateOne({ _id: 9 }, { $set: { email: 'b@x' } }, { upsert: true }));
    t.equal(onUpsert.code, 11000);
    t.equal(await c.countDocuments({ _id: 9 }), 0);

    const onReplace = await failure(c.replaceOne({ _id: 1 }, { email: 'b@x' }));
    t.equal(onReplace.code, 11000);

    const onFam = await failure(c.findOneAndUpdate({ _id: 1 }, { $set: { email: 'b@x' } }));
    t.equal(onFam.code, 11000);
    t.same(onFam.keyValue, { email: 'b@x' });

    const onId = await failure(c.insertOne({ _id: 1, email: 'z@x' }));
    t.equal(onId.message, `E11000 duplicate key error collection: ${ns('users')} index: _id_ dup key: { _id: 1 }`);
    t.same(onId.keyPattern, { _id: 1 });

    t.equal((await c.updateOne({ _id: 1 }, { $set: { email: 'a@x', n: 1 } })).modifiedCount, 1, 'keeping its own key is fine');
  });

  await t.test('missing fields index as null and collide', async (t) => {
    const c = db.collection<TestDoc>('nulls');
    await c.createIndex({ code: 1 }, { unique: true });
    await c.insertOne({ _id: 1 });
    const err = await failure(c.insertOne({ _id: 2 }));
    t.equal(err.code, 11000);
    t.same(err.keyValue, { code: null });
    t.match(err.message, /dup key: \{ code: null \}/);
  });

  await t.test('compound unique index', async (t) => {
    const c = db.collection<TestDoc>('compound');
    await c.createIndex({ system: 1, value: 1 }, { unique: true, name: 'identifier' });
    await c.insertMany([
      { system: 's1', value: 'v1' },
      { system: 's1', value: 'v2' },
      { system: 's2', value: 'v1' },
    ]);
    const err = await failure(c.insertOne({ system: 's1', value: 'v2' }));
    t.equal(
      err.message,
      `E11000 duplicate key error collection: ${ns('compound')} index: identifier dup key: { system: "s1", value: "v2" }`,
    );
    t.same(err.keyPattern, { system: 1, value: 1 });
    t.same(err.keyValue, { system: 's1', value: 'v2' });
  });

  await t.test('partial unique index only constrains matching documents', async (t) => {
    const c = db.collection<TestDoc>('partial');
    await c.createIndex({ mrn: 1 }, { unique: true, partialFilterExpression: { active: true } });
    await c.insertMany([{ mrn: 'm1', active: true }, { mrn: 'm1', active: false }, { mrn: 'm1', active: false }, { active: true }]);
    const err = await failure(c.insertOne({ mrn: 'm1', active: true }));
    t.equal(err.code, 11000);
    const viaUpdate = await failure(c.updateOne({ active: false }, { $set: { active: true } }));
    t.equal(viaUpdate.code, 11000, 'an update that brings a document under the filter is checked');
    t.equal(await c.countDocuments({ mrn: 'm1' }), 3);

    const optional = db.collection<TestDoc>('optional_unique');
    await optional.createIndex({ email: 1 }, { unique: true, partialFilterExpression: { email: { $type: 'string' } } });
    await optional.insertMany([{ n: 1 }, { n: 2 }, { email: 'e' }]);
    t.equal((await failure(optional.insertOne({ email: 'e' }))).code, 11000);
  });

  await t.test('multikey unique index', async (t) => {
    const c = db.collection<TestDoc>('multikey_unique');
    await c.createIndex({ 'identifier.value': 1 }, { unique: true });
    await c.insertOne({ identifier: [{ value: 'a' }, { value: 'b' }] });
    await c.insertOne({ identifier: [{ value: 'c' }] });
    const err = await failure(c.insertOne({ identifier: [{ value: 'x' }, { value: 'b' }] }));
    t.equal(err.code, 11000);
    t.same(err.keyValue, { 'identifier.value': 'b' });
  });

  await t.test('bulk write with unique violations: ordered vs unordered', async (t) => {
    const c = db.collection<TestDoc>('bulk');
    await c.createIndex({ k: 1 }, { unique: true });
    const ordered = await failure(c.insertMany([{ k: 1 }, { k: 2 }, { k: 1 }, { k: 3 }]));
    t.equal((ordered as unknown as Document).result.insertedCount, 2);
    t.equal(await c.countDocuments(), 2);
    const unordered = await failure(c.insertMany([{ k: 4 }, { k: 2 }, { k: 5 }, { k: 4 }], { ordered: false }));
    const writeErrors = (unordered as unknown as Document).writeErrors as Document[];
    t.same(
      writeErrors.map((w) => [w.index, w.code]),
      [
        [1, 11000],
        [3, 11000],
      ],
    );
    t.equal(await c.countDocuments(), 4);
    const raw = await db.command({
      update: 'bulk',
      updates: [
        { q: { k: 5 }, u: { $set: { k: 4 } } },
        { q: { k: 2 }, u: { $set: { k: 6 } } },
      ],
      ordered: false,
    });
    t.equal(raw.n, 1);
    t.equal(raw.nModified, 1);
    t.equal(raw.writeErrors[0].index, 0);
    t.equal(raw.writeErrors[0].code, 11000);
    t.match(raw.writeErrors[0].errmsg, /E11000 duplicate key error/);
    t.same(raw.writeErrors[0].keyValue, { k: 4 });
  });

  await t.test('creating a unique index over duplicates fails and leaves no index', async (t) => {
    const c = db.collection<TestDoc>('dups');
    await c.insertMany([{ v: 1 }, { v: 1 }]);
    const err = await failure(c.createIndex({ v: 1 }, { unique: true }));
    t.equal(err.code, 11000);
    t.same(
      (await c.indexes()).map((i) => i.name),
      ['_id_'],
    );
  });
});
