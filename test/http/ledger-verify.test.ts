// End to end through the HTTP API: writes are anchored on the local network by the real SDK within the batch
// window, and $verify recomputes the commitment, folds the audit path and compares with the mirror node.
import t from 'tap';
import { stopMongoAtEnd } from '../helpers/app.js';
import {
  createPatient,
  param,
  params,
  startLedgerApp,
  startTestNetwork,
  updatePatient,
  waitAnchored,
} from '../ledger/helpers/ledger-app.js';

t.test('writes are anchored within the batch window and $verify says so, recomputed', async (t) => {
  const net = await startTestNetwork(t);
  const { app, runtime, connection, logs } = await startLedgerApp(t, net);
  const a = await createPatient(app, 'Alpha');
  const b = await createPatient(app, 'Beta');
  await updatePatient(app, a.id, 'Alpha2');

  // Before the worker runs: pending, with the local checks done.
  const early = await app.inject({ method: 'GET', url: `/Patient/${a.id}/_history/1/$verify` });
  t.equal(early.statusCode, 200);
  t.equal(param(early.json(), 'status')?.valueCode, 'pending');

  runtime.start();
  const started = Date.now();
  await waitAnchored(connection, 10_000);
  t.ok(Date.now() - started < 10_000, 'anchored within the bounded wait');
  const batches = await connection.db.collection('ledger_batches').find().toArray();
  t.equal(batches.length, 1, 'one batch for the three versions');
  t.equal(batches[0]?.size, 3);
  t.equal(runtime.worker.stats.submissions, 1, 'one HCS message');

  const res = await app.inject({ method: 'GET', url: `/Patient/${a.id}/_history/2/$verify` });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.equal(param(body, 'status')?.valueCode, 'anchored');
  t.equal(param(body, 'network')?.valueString, 'local (not Hedera)');
  t.equal(param(body, 'root')?.valueString, param(body, 'publishedRoot')?.valueString, 'folded root = published root');
  t.match(param(body, 'consensusTimestamp')?.valueString, /^\d+\.\d{9}$/);
  t.match(param(body, 'consensusTime')?.valueInstant, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  t.equal(param(body, 'sequenceNumber')?.valueInteger, 1);
  t.equal(param(body, 'treeSize')?.valueInteger, 3);
  t.equal(param(body, 'hashscan'), undefined, 'no HashScan link for the local network');
  t.ok(
    params(body, 'check').every((c) => c.part?.find((p) => p.name === 'ok')?.valueBoolean === true),
    'every check passed',
  );
  t.equal(param(body, 'history')?.part?.[0]?.valueCode, 'complete');

  const other = await app.inject({ method: 'GET', url: `/Patient/${b.id}/_history/1/$verify` });
  t.equal(param(other.json(), 'status')?.valueCode, 'anchored');
  const missing = await app.inject({ method: 'GET', url: `/Patient/${b.id}/_history/9/$verify` });
  t.equal(missing.statusCode, 404);
  t.notOk(
    logs.some((l) => l.level === 'error'),
    'no errors logged',
  );
});

stopMongoAtEnd(t);
