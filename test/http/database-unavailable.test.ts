/**
 * When the database does not answer (gone, or too busy to answer the driver in time), a request gets 503 with an
 * OperationOutcome and Retry-After, not a 500: the request was not at fault and may succeed again shortly. (The
 * first 1M-resource run of `npm run bench` met this as a 500: the embedded engine, busy with a huge sort, missed
 * the driver's heartbeat.)
 */
import t from 'tap';
import { MongoClient } from 'mongodb';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { buildApp } from '../../src/app.js';
import { startEmbeddedMongo } from '../../src/dev/mongo/index.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { TEST_CONFIG, testValidator } from '../helpers/app.js';

t.test('a database that stopped answering: 503 transient with Retry-After, for reads, searches and writes', async (t) => {
  const mongo = await startEmbeddedMongo({ host: '127.0.0.1', port: 0 });
  const client = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000, socketTimeoutMS: 2000 });
  await client.connect();
  const store = new ResourceStore(client.db('unavailable'), false);
  await store.ensureIndexes();
  const app = await buildApp(TEST_CONFIG, { store, validator: await testValidator(), logger: false });
  t.teardown(async () => {
    await app.close();
    await client.close().catch(() => undefined);
  });
  const created = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: { 'content-type': 'application/fhir+json' },
    payload: { resourceType: 'Patient' },
  });
  t.equal(created.statusCode, 201, 'answers while the database is there');

  await mongo.close();
  for (const request of [
    { method: 'GET' as const, url: `/Patient/${(created.json() as { id: string }).id}` },
    { method: 'GET' as const, url: '/Patient?family=Smith' },
    {
      method: 'POST' as const,
      url: '/Patient',
      headers: { 'content-type': 'application/fhir+json' },
      payload: { resourceType: 'Patient' },
    },
  ]) {
    const res = await app.inject(request);
    t.equal(res.statusCode, 503, `${request.method} ${request.url}: 503`);
    const outcome = res.json() as OperationOutcome;
    t.equal(outcome.resourceType, 'OperationOutcome');
    t.equal(outcome.issue?.[0]?.code, 'transient');
    t.equal(res.headers['retry-after'], '5');
    t.notMatch(res.body, /Mongo|127\.0\.0\.1|stack/i, 'no internals in the answer');
  }
});
