import t from 'tap';
import { BSON, type Document } from 'mongodb';
import { forEachBackend, rejection, type TestDoc } from './backends.js';

await forEachBackend(t, async (t, { backend, client, db }) => {
  const admin = client.db('admin');

  await t.test('handshake and diagnostic commands', async (t) => {
    const hello = await admin.command({ hello: 1 });
    t.equal(hello.ok, 1);
    t.equal(hello.isWritablePrimary, true);
    t.type(hello.setName, 'string');
    t.ok(Array.isArray(hello.hosts) && hello.hosts.includes(hello.me), 'the member list contains this server');
    t.ok(hello.logicalSessionTimeoutMinutes > 0);
    t.ok(hello.maxWireVersion >= 17);
    t.ok(hello.topologyVersion?.processId);
    const legacy = await admin.command({ isMaster: 1 });
    t.equal(legacy.ismaster, true);
    t.equal((await admin.command({ ismaster: 1 })).ismaster, true);
    t.equal((await admin.command({ ping: 1 })).ok, 1);
    const build = await admin.command({ buildInfo: 1 });
    t.match(build.version, /^\d+\.\d+\.\d+/);
    t.ok(Array.isArray(build.versionArray));
    t.equal((await admin.command({ serverStatus: 1 })).ok, 1);
    t.equal((await admin.command({ connectionStatus: 1 })).ok, 1);
    const fcv = await admin.command({ getParameter: 1, featureCompatibilityVersion: 1 });
    t.type(fcv.featureCompatibilityVersion.version, 'string');
    const s = client.startSession();
    await db.collection<TestDoc>('warmup').findOne({}, { session: s });
    await s.endSession();
    t.equal((await admin.command({ endSessions: [s.id] })).ok, 1);
    t.equal((await admin.command({ killAllSessions: [] })).ok, 1);
    if (backend.name === 'embedded') {
      // Removed from mongod in 5.1; kept for old clients.
      t.equal((await db.command({ getLastError: 1 })).ok, 1);
    }
  });

  await t.test('create, list and drop collections', async (t) => {
    await db.createCollection('alpha');
    await db.createCollection('beta', { validator: { n: { $type: 'number' } } });
    const different = await rejection(db.createCollection('beta', { validator: { n: { $type: 'string' } } }));
    t.equal(different.code, 48, 'NamespaceExists');
    const names = (await db.listCollections().toArray()).map((c) => c.name).sort();
    t.same(names, ['alpha', 'beta']);
    const info = await db.listCollections({ name: 'beta' }, { nameOnly: false }).toArray();
    t.equal(info.length, 1);
    t.equal(info[0]!.type, 'collection');
    t.same(info[0]!.options?.validator, { n: { $type: 'number' } });
    t.ok(info[0]!.info?.uuid, 'collection uuid');
    const nameOnly = await db.listCollections({}, { nameOnly: true }).toArray();
    t.same(Object.keys(nameOnly[0]!).sort(), ['name', 'type']);
    const invalid = await rejection(db.collection<TestDoc>('beta').insertOne({ n: 'x' }));
    t.equal(invalid.code, 121, 'validator enforced');
    await db.collection<TestDoc>('beta').insertOne({ n: 1 });
    t.ok(await db.collection<TestDoc>('alpha').drop());
    t.same(
      (await db.listCollections().toArray()).map((c) => c.name),
      ['beta'],
    );
    await db.collection<TestDoc>('gamma').insertOne({ implicit: true });
    t.ok((await db.listCollections({ name: 'gamma' }).toArray()).length, 'insert creates the collection');
    await db.renameCollection('gamma', 'delta');
    t.same(
      await db
        .collection<TestDoc>('delta')
        .find({}, { projection: { _id: 0 } })
        .toArray(),
      [{ implicit: true }],
    );
    t.equal((await db.listCollections({ name: 'gamma' }).toArray()).length, 0);
  });

  await t.test('listDatabases and dropDatabase', async (t) => {
    const other = client.db(`${db.databaseName}_other`);
    await other.collection<TestDoc>('x').insertOne({ a: 1 });
    const listed = await admin.command({ listDatabases: 1, nameOnly: true });
    t.ok(listed.databases.some((d: Document) => d.name === other.databaseName));
    const full = await admin.command({ listDatabases: 1 });
    t.ok(full.databases.find((d: Document) => d.name === other.databaseName)?.sizeOnDisk >= 0);
    if (backend.name === 'embedded') {
      // Sizes come from the totals kept as documents are written (not from reading every document again): they
      // must follow inserts, updates that grow a document, and deletes, to the byte.
      const x = other.collection<TestDoc>('x');
      await x.insertMany([{ b: 'x'.repeat(100) }, { c: [1, 2, 3] }]);
      await x.updateOne({ a: 1 }, { $set: { grown: 'y'.repeat(50) } });
      await x.deleteOne({ c: { $exists: true } });
      const expected = (await x.find().toArray()).reduce((sum, doc) => sum + BSON.calculateObjectSize(doc), 0);
      const sized = await admin.command({ listDatabases: 1, filter: { name: other.databaseName } });
      t.equal(sized.databases[0]?.sizeOnDisk, expected, 'sizeOnDisk: the BSON bytes of the documents');
      t.equal((await other.command({ dbStats: 1 })).dataSize, expected, 'dbStats.dataSize');
    }
    t.ok((await other.dropDatabase()) === true);
    const after = await admin.command({ listDatabases: 1, nameOnly: true });
    t.notOk(after.databases.some((d: Document) => d.name === other.databaseName));
  });

  await t.test('createIndexes, listIndexes, dropIndexes', async (t) => {
    const c = db.collection<TestDoc>('indexed');
    await c.insertOne({ a: 1, b: 2, c: 3 });
    t.equal(await c.createIndex({ a: 1 }), 'a_1');
    t.equal(await c.createIndex({ b: -1, c: 1 }, { unique: true, name: 'bc' }), 'bc');
    t.equal(await c.createIndex({ c: 1 }, { sparse: true }), 'c_1');
    t.equal(await c.createIndex({ d: 1 }, { partialFilterExpression: { d: { $exists: true } } }), 'd_1');
    t.equal(await c.createIndex({ a: 1 }), 'a_1', 'creating the same index again is a no-op');
    const sameNameOtherKey = await rejection(db.command({ createIndexes: 'indexed', indexes: [{ key: { z: 1 }, name: 'a_1' }] }));
    t.equal(sameNameOtherKey.code, 86, 'IndexKeySpecsConflict');
    const otherName = await rejection(db.command({ createIndexes: 'indexed', indexes: [{ key: { a: 1 }, name: 'another' }] }));
    t.equal(otherName.code, 85, 'IndexOptionsConflict');
    const specs = await c.indexes();
    t.same(
      specs.map((i) => i.name),
      ['_id_', 'a_1', 'bc', 'c_1', 'd_1'],
    );
    const bc = specs.find((i) => i.name === 'bc')!;
    t.same(bc.key, { b: -1, c: 1 });
    t.equal(bc.unique, true);
    t.equal(specs.find((i) => i.name === 'c_1')!.sparse, true);
    t.same(specs.find((i) => i.name === 'd_1')!.partialFilterExpression, { d: { $exists: true } });
    const raw = await db.command({ createIndexes: 'fresh', indexes: [{ key: { q: 1 }, name: 'q_1' }] });
    t.equal(raw.createdCollectionAutomatically, true);
    t.equal(raw.numIndexesBefore, 1);
    t.equal(raw.numIndexesAfter, 2);
    await c.dropIndex('a_1');
    await db.command({ dropIndexes: 'indexed', index: { b: -1, c: 1 } });
    t.same(
      (await c.indexes()).map((i) => i.name),
      ['_id_', 'c_1', 'd_1'],
    );
    const missing = await rejection(c.dropIndex('nope'));
    t.equal(missing.code, 27, 'IndexNotFound');
    await c.dropIndexes();
    t.same(
      (await c.indexes()).map((i) => i.name),
      ['_id_'],
    );
    for (let i = 0; i < 5; i++) await c.createIndex({ [`f${i}`]: 1 });
    const batched = await c.listIndexes({ batchSize: 2 }).toArray();
    t.equal(batched.length, 6, 'listIndexes continues with getMore');
    for (let i = 0; i < 4; i++) await db.createCollection(`many${i}`);
    const manyNames = await db.listCollections({}, { batchSize: 1, nameOnly: true }).toArray();
    t.ok(manyNames.length >= 5, 'listCollections continues with getMore');
    const noColl = await rejection(db.command({ listIndexes: 'does_not_exist' }));
    t.equal(noColl.code, 26, 'NamespaceNotFound');
  });
});
