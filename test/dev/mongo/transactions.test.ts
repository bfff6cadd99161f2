import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Long, MongoServerError, type ClientSession, type Document } from 'mongodb';
import { forEachBackend, rejection, type TestDoc } from './backends.js';

async function failure(p: Promise<unknown>): Promise<MongoServerError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof MongoServerError) return err;
    throw err;
  }
  throw new Error('expected the operation to fail');
}

await forEachBackend(t, async (t, { client, db }) => {
  const sessions: ClientSession[] = [];
  const session = (): ClientSession => {
    const s = client.startSession();
    sessions.push(s);
    return s;
  };
  t.teardown(async () => {
    for (const s of sessions) await s.endSession().catch(() => undefined);
  });
  // Collections are created up front: DDL inside transactions is not what is tested here.
  for (const name of ['accounts', 'ledger', 'uniq', 'iso']) await db.createCollection(name);
  const accounts = db.collection<TestDoc>('accounts');
  const ledger = db.collection<TestDoc>('ledger');

  await t.test('committed writes appear together; readers outside see none before commit', async (t) => {
    await accounts.insertMany([
      { _id: 'a', balance: 100 },
      { _id: 'b', balance: 0 },
    ]);
    const s = session();
    s.startTransaction();
    await accounts.updateOne({ _id: 'a' }, { $inc: { balance: -30 } }, { session: s });
    await accounts.updateOne({ _id: 'b' }, { $inc: { balance: 30 } }, { session: s });
    await ledger.insertOne({ from: 'a', to: 'b', amount: 30 }, { session: s });
    t.same(
      await accounts
        .find({}, { session: s })
        .sort({ _id: 1 })
        .map((d) => d.balance)
        .toArray(),
      [70, 30],
      'reads inside see own writes',
    );
    t.equal(await ledger.countDocuments({}, { session: s }), 1);
    t.same(
      await accounts
        .find()
        .sort({ _id: 1 })
        .map((d) => d.balance)
        .toArray(),
      [100, 0],
      'outside sees nothing yet',
    );
    t.equal(await ledger.countDocuments(), 0);
    await s.commitTransaction();
    t.same(
      await accounts
        .find()
        .sort({ _id: 1 })
        .map((d) => d.balance)
        .toArray(),
      [70, 30],
    );
    t.equal(await ledger.countDocuments(), 1);
  });

  await t.test('an aborted transaction leaves no trace', async (t) => {
    const s = session();
    s.startTransaction();
    await accounts.insertOne({ _id: 'c', balance: 5 }, { session: s });
    await accounts.deleteOne({ _id: 'a' }, { session: s });
    await accounts.updateOne({ _id: 'b' }, { $set: { frozen: true } }, { session: s });
    t.equal(await accounts.countDocuments({}, { session: s }), 2);
    await s.abortTransaction();
    t.same(await accounts.find().sort({ _id: 1 }).toArray(), [
      { _id: 'a', balance: 70 },
      { _id: 'b', balance: 30 },
    ]);
  });

  await t.test('reads in a transaction see its inserts and deletes through indexes and aggregation', async (t) => {
    await accounts.createIndex({ balance: 1 });
    const s = session();
    s.startTransaction();
    await accounts.insertOne({ _id: 'd', balance: 70 }, { session: s });
    await accounts.updateOne({ _id: 'a' }, { $set: { balance: 71 } }, { session: s });
    t.same(
      await accounts
        .find({ balance: 70 }, { session: s })
        .map((d) => d._id)
        .toArray(),
      ['d'],
    );
    t.same(
      await accounts
        .find({ balance: { $gte: 30 } }, { session: s })
        .sort({ balance: -1 })
        .map((d) => d._id)
        .toArray(),
      ['a', 'd', 'b'],
    );
    t.same(await accounts.aggregate([{ $match: { balance: { $gt: 50 } } }, { $count: 'n' }], { session: s }).toArray(), [{ n: 2 }]);
    t.same(
      await accounts
        .find({ balance: 70 })
        .map((d) => d._id)
        .toArray(),
      ['a'],
      'outside still sees the old value',
    );
    await s.abortTransaction();
  });

  await t.test('delete then re-insert the same _id inside one transaction', async (t) => {
    const s = session();
    await s
      .withTransaction(async () => {
        await accounts.deleteOne({ _id: 'b' }, { session: s });
        await accounts.insertOne({ _id: 'b', balance: 30, reinserted: true }, { session: s });
        const dup = await rejection(accounts.insertOne({ _id: 'b' }, { session: s }));
        t.equal(dup.code, 11000);
        throw Object.assign(new Error('rollback on purpose'), { skipCommit: true });
      })
      .catch((err: unknown) => {
        if (!(err instanceof Error) || err.message !== 'rollback on purpose') throw err;
      });
    t.same(await accounts.findOne({ _id: 'b' }), { _id: 'b', balance: 30 });
    const s2 = session();
    await s2.withTransaction(async () => {
      await accounts.deleteOne({ _id: 'b' }, { session: s2 });
      await accounts.insertOne({ _id: 'b', balance: 30, reinserted: true }, { session: s2 });
    });
    t.same(await accounts.findOne({ _id: 'b' }), { _id: 'b', balance: 30, reinserted: true });
    await accounts.updateOne({ _id: 'b' }, { $unset: { reinserted: '' } });
  });

  await t.test('two transactions writing the same document conflict', async (t) => {
    const s1 = session();
    const s2 = session();
    s1.startTransaction();
    s2.startTransaction();
    await accounts.updateOne({ _id: 'a' }, { $inc: { balance: 1 } }, { session: s1 });
    const err = await failure(accounts.updateOne({ _id: 'a' }, { $inc: { balance: 1 } }, { session: s2 }));
    t.equal(err.code, 112);
    t.equal(err.codeName, 'WriteConflict');
    t.ok(err.hasErrorLabel('TransientTransactionError'));
    const afterConflict = await failure(s2.commitTransaction());
    t.equal(afterConflict.code, 251, 'the conflicting transaction was aborted');
    await s1.commitTransaction();
    t.equal((await accounts.findOne({ _id: 'a' }))?.balance, 71);
  });

  await t.test('withTransaction retries after a write conflict', async (t) => {
    const holder = session();
    holder.startTransaction();
    await accounts.updateOne({ _id: 'b' }, { $inc: { balance: 1 } }, { session: holder });
    const s = session();
    let attempts = 0;
    await s.withTransaction(async () => {
      attempts++;
      try {
        await accounts.updateOne({ _id: 'b' }, { $inc: { balance: 10 } }, { session: s });
      } catch (err) {
        if (attempts === 1) await holder.commitTransaction();
        throw err;
      }
    });
    t.equal(attempts, 2);
    t.equal((await accounts.findOne({ _id: 'b' }))?.balance, 41);
  });

  await t.test('a transaction reads from its snapshot and conflicts with later commits', async (t) => {
    const iso = db.collection<TestDoc>('iso');
    await iso.insertOne({ _id: 1, v: 'old' });
    const s = session();
    s.startTransaction();
    t.equal((await iso.findOne({ _id: 1 }, { session: s }))?.v, 'old');
    await iso.updateOne({ _id: 1 }, { $set: { v: 'new' } });
    await iso.insertOne({ _id: 2, v: 'outside' });
    t.equal((await iso.findOne({ _id: 1 }, { session: s }))?.v, 'old', 'snapshot read');
    t.equal(await iso.countDocuments({}, { session: s }), 1, 'later insert invisible');
    const err = await failure(iso.updateOne({ _id: 1 }, { $set: { v: 'txn' } }, { session: s }));
    t.equal(err.code, 112, 'writing a document changed since the snapshot conflicts');
    await s.abortTransaction().catch(() => undefined);
  });

  await t.test('unique index violations inside transactions', async (t) => {
    const uniq = db.collection<TestDoc>('uniq');
    await uniq.createIndex({ k: 1 }, { unique: true });
    await uniq.insertOne({ k: 'committed' });
    const s = session();
    s.startTransaction();
    const dupCommitted = await failure(uniq.insertOne({ k: 'committed' }, { session: s }));
    t.equal(dupCommitted.code, 11000);
    await s.abortTransaction().catch(() => undefined);

    s.startTransaction();
    await uniq.insertOne({ k: 'x' }, { session: s });
    const dupOwn = await failure(uniq.insertOne({ k: 'x' }, { session: s }));
    t.equal(dupOwn.code, 11000);
    await s.abortTransaction().catch(() => undefined);

    const s1 = session();
    const s2 = session();
    s1.startTransaction();
    s2.startTransaction();
    await uniq.insertOne({ k: 'race' }, { session: s1 });
    const racing = await failure(uniq.insertOne({ k: 'race' }, { session: s2 }));
    t.equal(racing.code, 112, 'the same new key in two transactions is a write conflict');
    await s1.commitTransaction();
    await s2.abortTransaction().catch(() => undefined);
    t.equal(await uniq.countDocuments({ k: 'race' }), 1);

    const swap = session();
    await uniq.insertMany([
      { _id: 'p', k: 'p1' },
      { _id: 'q', k: 'q1' },
    ]);
    await swap.withTransaction(async () => {
      await uniq.updateOne({ _id: 'p' }, { $set: { k: 'tmp' } }, { session: swap });
      await uniq.updateOne({ _id: 'q' }, { $set: { k: 'p1' } }, { session: swap });
      await uniq.updateOne({ _id: 'p' }, { $set: { k: 'q1' } }, { session: swap });
    });
    t.same(
      await uniq
        .find({ _id: { $in: ['p', 'q'] } })
        .sort({ _id: 1 })
        .map((d) => d.k)
        .toArray(),
      ['q1', 'p1'],
      'swapping unique values commits',
    );
  });

  await t.test('a plain write waits for the transaction holding the document', async (t) => {
    const s = session();
    s.startTransaction();
    await accounts.updateOne({ _id: 'a' }, { $inc: { balance: 100 } }, { session: s });
    let done = false;
    const plain = accounts.updateOne({ _id: 'a' }, { $inc: { balance: 1 } }).then((r) => {
      done = true;
      return r;
    });
    await sleep(300);
    t.notOk(done, 'blocked while the transaction is open');
    await s.commitTransaction();
    t.equal((await plain).modifiedCount, 1);
    t.equal((await accounts.findOne({ _id: 'a' }))?.balance, 172);
  });

  await t.test('retryable writes: a retried statement is not applied twice', async (t) => {
    const s = session();
    const command: Document = { insert: 'ledger', documents: [{ _id: 'once', n: 1 }], txnNumber: Long.fromNumber(500) };
    const first = await db.command(command, { session: s });
    t.equal(first.n, 1);
    const retried = await db.command(command, { session: s });
    t.equal(retried.n, 1);
    t.notOk(retried.writeErrors, 'no duplicate key error on retry');
    t.equal(await ledger.countDocuments({ _id: 'once' }), 1);
    const stale = await failure(db.command({ ...command, txnNumber: Long.fromNumber(499) }, { session: s }));
    t.equal(stale.code, 225, 'TransactionTooOld');
  });
});
