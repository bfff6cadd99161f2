/**
 * maxTimeMS: a query that runs longer than its maxTimeMS stops with MaxTimeMSExpired (code 50), as mongod's does,
 * and the server goes on answering; a query within its time, or without one, runs to the end.
 */
import t from 'tap';
import { MongoServerError } from 'mongodb';
import { forEachBackend, type TestDoc } from './backends.js';

await forEachBackend(t, async (t, { db }) => {
  await t.test('a scan that outlives its maxTimeMS stops with MaxTimeMSExpired', async (t) => {
    const c = db.collection<TestDoc>('slow');
    await c.insertMany(Array.from({ length: 20_000 }, (_, i) => ({ _id: i, name: `name-${i}-${'x'.repeat(50)}` })));
    // Fifty unanchored regular expressions per document: a full scan costs far more than 1 ms.
    const costly = { $or: Array.from({ length: 50 }, (_, i) => ({ name: { $regex: `q${i}.*z$` } })) };
    const error = await c
      .find(costly, { maxTimeMS: 1 })
      .toArray()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    t.ok(error instanceof MongoServerError, `an error: ${String(error)}`);
    t.equal((error as MongoServerError).code, 50);
    t.equal((error as MongoServerError).codeName, 'MaxTimeMSExpired');
    const counted = await c.countDocuments(costly, { maxTimeMS: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.equal((counted as MongoServerError | undefined)?.code, 50, 'count honours it too');
    t.equal((await c.find({ _id: 5 }, { maxTimeMS: 1000 }).toArray()).length, 1, 'a quick query within its time runs');
    t.equal(await c.countDocuments(costly), 0, 'without maxTimeMS the scan runs to the end');
    const invalid = await db.command({ find: 'slow', filter: {}, maxTimeMS: -1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.equal((invalid as MongoServerError | undefined)?.code, 2, 'a negative maxTimeMS is BadValue');
  });
});
