/**
 * Crash between a batch's submission and the recording of its receipt: the server (a child process running
 * src/main.ts on the embedded MongoDB and the local network, both under one DATA_DIR) exits right after
 * submitting batch 1 (LEDGER_TEST_CRASH_AFTER_SUBMIT). Restarted on the same DATA_DIR, it finds the batch by its
 * stored transaction id, records it as anchored, and carries on: no version is left unanchored, and the topic
 * (read from the mirror node) never shows one batch number with two different roots.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { decodeBatchMessage } from '../../src/ledger/batch-message.js';
import { spawnTs, waitForExit, waitForOutput } from '../helpers/spawn-ts.js';
import { patient, param, type ParameterLike } from './helpers/ledger-app.js';

const TEST_CRASH_EXIT_CODE = 86;

function startServer(dataDir: string, extra: NodeJS.ProcessEnv) {
  return spawnTs('src/main.ts', [], {
    PORT: '0',
    DATA_DIR: dataDir,
    MONGOD_START_TIMEOUT_MS: '0',
    LOG_LEVEL: 'info',
    LEDGER_BATCH_INTERVAL_MS: '1000',
    LEDGER_RETRY_MAX_MS: '1000',
    REFERENCE_POLICY: 'lenient',
    // The subject is the ledger, not access control: no token needed (the writes are still audited and anchored).
    AUTH_MODE: 'off',
    ...extra,
  });
}

async function create(base: string, family: string): Promise<string> {
  const res = await fetch(`${base}/Patient`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify(patient(family)),
  });
  if (res.status !== 201) throw new Error(`create: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function verify(base: string, id: string): Promise<{ parameter?: ParameterLike[] }> {
  return (await (await fetch(`${base}/Patient/${id}/_history/1/$verify`)).json()) as { parameter?: ParameterLike[] };
}

t.test('a crash after submitting leaves nothing unanchored and no batch number with two roots', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'ledger-crash-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));

  const first = startServer(dataDir, { LEDGER_TEST_CRASH_AFTER_SUBMIT: 'true' });
  t.teardown(() => {
    if (first.exitCode === null) first.kill('SIGKILL');
  });
  const localNote = waitForOutput(first, /LOCAL Hedera-compatible network, NOT on Hedera/, 60_000);
  const base1 = (await waitForOutput(first, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 90_000))[1]!;
  await localNote;
  // The batch may close (and the server exit) before all five creates on a slow machine: keep the ones that were
  // acknowledged; those are the versions that must come out anchored.
  const ids: string[] = [];
  for (let i = 0; i < 5 && first.exitCode === null; i++) {
    try {
      ids.push(await create(base1, `Crash${i}`));
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // fetch's TypeError: the connection closed, the server is gone
      break;
    }
  }
  t.ok(ids.length >= 1, `${ids.length} version(s) acknowledged before the crash`);
  const crashed = waitForOutput(first, /LEDGER_TEST_CRASH_AFTER_SUBMIT: exiting after submitting batch 1/, 30_000);
  t.equal(await waitForExit(first, 30_000), TEST_CRASH_EXIT_CODE, 'the worker exited right after submitting');
  await crashed.catch(() => undefined);

  const second = startServer(dataDir, {});
  t.teardown(() => {
    if (second.exitCode === null) second.kill('SIGKILL');
  });
  const base2 = (await waitForOutput(second, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 90_000))[1]!;
  // Written before the crash, anchored after it (bounded poll).
  let last: { parameter?: ParameterLike[] } = {};
  for (const id of ids) {
    for (let i = 0; i < 150; i++) {
      last = await verify(base2, id);
      if (param(last, 'status')?.valueCode === 'anchored') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    t.equal(param(last, 'status')?.valueCode, 'anchored', `Patient/${id} anchored after the restart`);
  }
  const firstVersion = await verify(base2, ids[0]!);
  t.equal(param(firstVersion, 'batch')?.valueInteger, 1, 'the first version is in batch 1, the one in flight at the crash');

  // And the server carries on with batch 2.
  const later = await create(base2, 'AfterRestart');
  for (let i = 0; i < 150; i++) {
    last = await verify(base2, later);
    if (param(last, 'status')?.valueCode === 'anchored') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(param(last, 'status')?.valueCode, 'anchored');

  // The topic, as the mirror node shows it: each batch number once, one root each, chained.
  const mirror = param(last, 'mirrorUrl')!.valueUri!;
  const topic = param(last, 'topic')!.valueString!;
  const page = (await (await fetch(`${mirror}/api/v1/topics/${topic}/messages?limit=100`)).json()) as {
    messages: Array<{ message: string }>;
  };
  const batches = page.messages.map((m) => decodeBatchMessage(Buffer.from(m.message, 'base64')));
  const roots = new Map<number, string>();
  for (const b of batches) {
    const root = b.root.toString('hex');
    t.ok(!roots.has(b.batchNumber) || roots.get(b.batchNumber) === root, `batch ${b.batchNumber}: one root`);
    roots.set(b.batchNumber, root);
  }
  const numbers = batches.map((b) => b.batchNumber);
  t.same(
    numbers,
    numbers.map((_, i) => i + 1),
    'batches 1, 2, ... each exactly once: batch 1 was found by its transaction id, not sent again',
  );
  t.ok(numbers.length >= 2, 'the batch in flight at the crash, and later ones');
  batches.forEach((b, i) => {
    if (i > 0)
      t.equal(
        b.previousRoot?.toString('hex'),
        batches[i - 1]!.root.toString('hex'),
        `batch ${b.batchNumber} chains to batch ${b.batchNumber - 1}`,
      );
  });

  second.kill('SIGTERM');
  t.equal(await waitForExit(second, 30_000), 0, 'clean shutdown with the ledger running');
});
