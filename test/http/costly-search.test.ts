/**
 * The costliest searches the limits allow, against a few thousand patients:
 * - every query they run carries SEARCH_TIMEOUT_MS as maxTimeMS, and one that runs out of time is a 400
 *   too-costly OperationOutcome (on its own and as a batch entry), never a 5xx or a hang;
 * - with the embedded MongoDB in a process of its own (as `npm start` runs it), /healthz keeps answering within
 *   1 s while such a search runs: the database's scan slows that search, not the server.
 */
import type { Bundle } from '@medplum/fhirtypes';
import t from 'tap';
import { loadPopulation } from '../../bench/load-population.js';
import { buildApp } from '../../src/app.js';
import { startEmbeddedMongoProcess } from '../../src/dev/mongo-process.js';
import { DEFAULT_SEARCH_SETTINGS } from '../../src/fhir/search/search.js';
import { connectMongo } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { BASE, JSON_HEADERS } from '../fhir/search/helpers.js';
import { TEST_CONFIG, stopMongoAtEnd, testValidator } from '../helpers/app.js';
import { testMongo, uniqueDbName } from '../helpers/mongo.js';

stopMongoAtEnd(t);

// Several servers and populations in child processes: on a busy 2-core machine this file needs more than the
// suite's 180 s per file (a harness limit, not a speed assertion).
t.setTimeout(420_000);

const PATIENTS = 3000;
const { maxValues } = DEFAULT_SEARCH_SETTINGS.limits;
/** As many unanchored substring values as one search may carry: a scan of every name, maxValues regexes each. */
const WORST_CONTAINS = `/Patient?name:contains=${Array.from({ length: maxValues - 1 }, (_, i) => `zq${i}x`).join(',')}&_total=accurate`;
const WORST_PHONETIC = `/Patient?phonetic=${Array.from({ length: maxValues }, (_, i) => `Zq${i}`).join(',')}`;

t.test('a search that outruns SEARCH_TIMEOUT_MS is stopped by the database and answered 400 too-costly', async (t) => {
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, uniqueDbName());
  t.teardown(async () => {
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
  });
  // A time limit of 1 ms: any scan of the population outlives it.
  const store = new ResourceStore(connection.db, connection.supportsTransactions, 1);
  await store.ensureIndexes();
  await loadPopulation({ store, baseUrl: BASE, seed: 11, from: 0, to: PATIENTS });
  const app = await buildApp(TEST_CONFIG, { store, validator: await testValidator(), logger: false });
  t.teardown(() => app.close());

  for (const url of [WORST_CONTAINS, WORST_PHONETIC]) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 400, res.body.slice(0, 300));
    t.match(res.json(), {
      resourceType: 'OperationOutcome',
      issue: [{ code: 'too-costly', diagnostics: /ran out of time \(SEARCH_TIMEOUT_MS\)/ }],
    });
  }
  const batch = await app.inject({
    method: 'POST',
    url: '/',
    headers: JSON_HEADERS,
    payload: {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [{ request: { method: 'GET', url: WORST_CONTAINS.slice(1) } }, { request: { method: 'GET', url: 'metadata' } }],
    },
  });
  t.equal(batch.statusCode, 200);
  const entries = (batch.json() as Bundle).entry ?? [];
  t.match(entries[0]?.response?.status, /^400/);
  t.match(entries[0]?.response?.outcome, { issue: [{ code: 'too-costly' }] });
  // Reads by id are not scans: they run.
  t.equal((await app.inject({ method: 'GET', url: '/Patient/pat-1' })).statusCode, 200);
});

t.test('/healthz answers within 1 s while the costliest allowed searches run (embedded MongoDB in its own process)', async (t) => {
  const mongo = await startEmbeddedMongoProcess({ log: () => undefined });
  t.teardown(() => mongo.stop());
  const connection = await connectMongo(mongo.uri, 'costly');
  t.teardown(() => connection.close());
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  await loadPopulation({ store, baseUrl: BASE, seed: 12, from: 0, to: PATIENTS });
  const app = await buildApp(TEST_CONFIG, { store, validator: await testValidator(), logger: false });
  t.teardown(() => app.close());
  const address = await app.listen({ port: 0, host: '127.0.0.1' });

  let searching = true;
  const searches = (async () => {
    const results: Array<{ status: number; ms: number }> = [];
    try {
      for (let round = 0; round < 3; round++) {
        for (const url of [WORST_CONTAINS, WORST_PHONETIC]) {
          const started = Date.now();
          const res = await fetch(`${address}${url}`);
          await res.arrayBuffer();
          results.push({ status: res.status, ms: Date.now() - started });
        }
      }
    } finally {
      searching = false;
    }
    return results;
  })();
  const probes: number[] = [];
  while (searching) {
    const started = Date.now();
    const res = await fetch(`${address}/healthz`);
    await res.arrayBuffer();
    probes.push(Date.now() - started);
    t.equal(res.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const results = await searches;
  const slowestSearch = Math.max(...results.map((r) => r.ms));
  const slowestProbe = Math.max(...probes);
  t.comment(
    `searches: ${results.map((r) => `${r.status} in ${r.ms} ms`).join(', ')}; /healthz: ${probes.length} probes, slowest ${slowestProbe} ms`,
  );
  for (const result of results) t.ok(result.status === 200 || result.status === 400, `a search answered ${result.status}`);
  t.ok(probes.length >= 3, 'probes ran while the searches did');
  t.ok(slowestProbe < 1000, `/healthz answered within 1 s throughout (slowest ${slowestProbe} ms; slowest search ${slowestSearch} ms)`);
});
