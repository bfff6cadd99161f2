// A ledger outage never fails a FHIR request: with the local network stopped, writes succeed and stay pending,
// the worker retries with backoff, and once the network is back (same data directory) the backlog drains.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startLocalHedera } from '../../src/dev/hedera/index.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { createPatient, param, startLedgerApp, waitAnchored } from './helpers/ledger-app.js';

t.test('writes succeed while the network is down; the backlog drains when it returns', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'ledger-outage-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  let net = await startLocalHedera({ dataDir, log: () => {} });
  t.teardown(() => net.close());
  const grpcPort = Number(net.grpcEndpoint.split(':')[1]);
  const mirrorPort = Number(new URL(net.mirrorUrl).port);
  const { app, runtime, connection, logs } = await startLedgerApp(t, net, { config: { batchMaxLeaves: 8 } });
  runtime.start();
  await createPatient(app, 'BeforeOutage');
  await waitAnchored(connection, 10_000);
  const anchoredBefore = 1; // batch 1: the version written before the outage

  const before = (await connection.db.collection('resource_versions').findOne({}, { projection: { id: 1 } }))!.id as string;
  await net.close();
  const unverifiable = await app.inject({ method: 'GET', url: `/Patient/${before}/_history/1/$verify` });
  t.equal(unverifiable.statusCode, 503, '$verify cannot say anything while the mirror node is away');
  t.match(unverifiable.json().issue[0].diagnostics, /cannot be verified now.*checks that need no ledger passed/);
  const ids: string[] = [];
  const started = Date.now();
  for (let i = 0; i < 20; i++) ids.push((await createPatient(app, `DuringOutage${i}`)).id);
  t.ok(Date.now() - started < 10_000, 'writes are not slowed down by the outage');
  const pending = await app.inject({ method: 'GET', url: `/Patient/${ids[0]}/_history/1/$verify` });
  t.equal(param(pending.json(), 'status')?.valueCode, 'pending', 'pending while the ledger is away');
  // Let the worker fail a few times.
  for (let i = 0; i < 100 && !logs.some((l) => l.level === 'warn' && /unreachable/.test(l.message)); i++)
    await new Promise((r) => setTimeout(r, 100));
  t.ok(
    logs.some((l) => l.level === 'warn' && /unreachable/.test(l.message)),
    'the outage is logged as a warning, with retries',
  );
  t.equal(runtime.worker.stats.batchesAnchored, anchoredBefore, 'nothing anchored during the outage');

  net = await startLocalHedera({ dataDir, grpcPort, mirrorPort, log: () => {} });
  await waitAnchored(connection, 30_000);
  const batches = connection.db.collection<{ _id: number; size: number; state: string }>('ledger_batches');
  const drained = await batches.find({ _id: { $gt: anchoredBefore } }).toArray();
  t.ok(drained.length >= 3 && drained.every((b) => b.size <= 8), 'the backlog drained in batches of at most 8');
  t.equal(
    drained.reduce((n, b) => n + b.size, 0),
    20,
    'all 20 versions written during the outage',
  );
  const after = await app.inject({ method: 'GET', url: `/Patient/${ids[19]}/_history/1/$verify` });
  t.equal(param(after.json(), 'status')?.valueCode, 'anchored');
  t.notOk(
    logs.some((l) => l.level === 'error'),
    'an outage is not an error',
  );
});

stopMongoAtEnd(t);
