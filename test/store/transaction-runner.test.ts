/**
 * The bounded transaction runner under transaction Bundles: commits on success, aborts on failure (nothing
 * written), retries transient and caller-chosen errors, and gives up after maxAttempts.
 */
import { MongoError } from 'mongodb';
import t from 'tap';
import { connectMongo } from '../../src/store/mongo.js';
import { ResourceStore, VersionConflictError } from '../../src/store/resource-store.js';
import { TransactionRetriesExhaustedError, isTransientTransactionError, runInTransaction } from '../../src/store/transaction-runner.js';
import { stopTestMongo, testMongo, uniqueDbName } from '../helpers/mongo.js';

t.teardown(stopTestMongo);

t.test('runInTransaction', async (t) => {
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, uniqueDbName());
  t.teardown(async () => {
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
  });
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  t.ok(store.supportsTransactions, 'the test MongoDB has transactions');
  const things = connection.db.collection<{ _id: string }>('things');
  await things.insertOne({ _id: 'seed' });

  const result = await runInTransaction(
    store,
    async (session) => {
      await things.insertOne({ _id: 'a' }, { session });
      return 'done';
    },
    { maxAttempts: 3 },
  );
  t.equal(result, 'done');
  t.equal(await things.countDocuments({ _id: 'a' }), 1, 'committed');

  await t.rejects(
    runInTransaction(
      store,
      async (session) => {
        await things.insertOne({ _id: 'b' }, { session });
        throw new Error('entry failed');
      },
      { maxAttempts: 3 },
    ),
    /entry failed/,
  );
  t.equal(await things.countDocuments({ _id: 'b' }), 0, 'aborted: nothing written');

  let attempts = 0;
  const exhausted = await runInTransaction(
    store,
    async (session) => {
      attempts++;
      await things.insertOne({ _id: `c${attempts}` }, { session });
      throw new VersionConflictError('Patient', 'x', 2);
    },
    { maxAttempts: 4, retryable: (e) => e instanceof VersionConflictError },
  ).catch((e: unknown) => e);
  t.ok(exhausted instanceof TransactionRetriesExhaustedError);
  t.equal(attempts, 4, 'bounded: exactly maxAttempts');
  t.equal(await things.countDocuments({ _id: /^c/ }), 0, 'no attempt left anything behind');

  let transientAttempts = 0;
  await runInTransaction(
    store,
    async () => {
      transientAttempts++;
      if (transientAttempts < 3) {
        const error = new MongoError('write conflict');
        error.addErrorLabel('TransientTransactionError');
        throw error;
      }
    },
    { maxAttempts: 5 },
  );
  t.equal(transientAttempts, 3, 'TransientTransactionError retries the whole transaction');
  const wrapped = new Error('entry', { cause: Object.assign(new MongoError('x'), {}) });
  t.notOk(isTransientTransactionError(wrapped));
});
