/**
 * SIGTERM under load, as a user runs the server (`npm start`: embedded MongoDB in its own process): requests in
 * flight finish, one that outlives the grace period is stopped with 503s, nothing answers 500, the process exits
 * 0 within the grace period plus a few seconds, and its database process goes with it. A second signal exits at
 * once.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle } from '@medplum/fhirtypes';
import t, { type Test } from 'tap';
import { spawnTs, waitForExit, waitForOutput } from './helpers/spawn-ts.js';

// Several servers and populations in child processes: on a busy 2-core machine this file needs more than the
// suite's 180 s per file (a harness limit, not a speed assertion).
t.setTimeout(420_000);

const GRACE_MS = 2000;
/** Many substring values: each search scans every name with each of them. */
const COSTLY_VALUES = Array.from({ length: 150 }, (_, i) => `zq${i}`).join(',');

async function startServer(t: Test): Promise<{ child: ReturnType<typeof spawnTs>; base: string; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fhir-shutdown-'));
  t.teardown(async () => {
    // The database process may still be writing its state after the server is gone: let it finish first.
    const pid = Number((await readFile(join(dataDir, 'embedded-mongo', 'mongod.lock'), 'utf8').catch(() => '')).trim());
    const deadline = Date.now() + 20_000;
    while (pid && alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    await rm(dataDir, { recursive: true, force: true, maxRetries: 5 });
  });
  const child = spawnTs('src/main.ts', [], {
    PORT: '0',
    DATA_DIR: dataDir,
    MONGOD_START_TIMEOUT_MS: '0',
    AUTH_MODE: 'off',
    LEDGER_ENABLED: 'false',
    SHUTDOWN_GRACE_MS: String(GRACE_MS),
    // Room for a batch that outlives the grace period however fast the searches get.
    BUNDLE_MAX_SEARCHES: '2000',
    LOG_LEVEL: 'info',
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const listening = await waitForOutput(child, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 90_000);
  return { child, base: listening[1]!, dataDir };
}

/** Whether a process exists (signal 0). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('SIGTERM under load: in-flight requests finish or get 503, exit 0 within the grace period', async (t) => {
  const { child, base, dataDir } = await startServer(t);
  const json = { 'content-type': 'application/fhir+json' };
  const seeded = await fetch(`${base}/`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({
      resourceType: 'Bundle',
      type: 'batch',
      entry: Array.from({ length: 1000 }, (_, i) => ({
        resource: { resourceType: 'Patient', name: [{ family: `Term${i}`, given: [`Given${i}`] }] },
        request: { method: 'POST', url: 'Patient' },
      })),
    }),
  });
  t.equal(seeded.status, 200);
  const mongoPid = Number((await readFile(join(dataDir, 'embedded-mongo', 'mongod.lock'), 'utf8')).trim());
  t.ok(alive(mongoPid), 'the embedded MongoDB runs in a process of its own');

  // A batch long enough to outlive the grace period: many searches that each scan every name (100 of them took
  // 2-3 s once the engine cached plans and compiled filters once; 2,000 take several times the grace period).
  const slowBatch = fetch(`${base}/`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({
      resourceType: 'Bundle',
      type: 'batch',
      entry: Array.from({ length: 2000 }, (_, i) => ({
        request: { method: 'GET', url: `Patient?name:contains=${COSTLY_VALUES}${i}&_total=accurate` },
      })),
    }),
  }).then(async (res) => ({ status: res.status, body: (await res.json()) as Bundle }));
  // Steady traffic from several clients until the server stops answering.
  const statuses: number[] = [];
  let refused = 0;
  const client = async (n: number): Promise<void> => {
    for (let i = 0; ; i++) {
      try {
        const res =
          i % 2 === 0
            ? await fetch(`${base}/Patient?name=Term${i % 30}`)
            : await fetch(`${base}/Patient`, {
                method: 'POST',
                headers: json,
                body: JSON.stringify({ resourceType: 'Patient', name: [{ family: `Load${n}-${i}` }] }),
              });
        await res.arrayBuffer();
        statuses.push(res.status);
      } catch {
        refused++;
        return;
      }
    }
  };
  const clients = Promise.all(Array.from({ length: 4 }, (_, n) => client(n)));
  await new Promise((resolve) => setTimeout(resolve, 500));

  const signalled = Date.now();
  child.kill('SIGTERM');
  const code = await waitForExit(child, GRACE_MS + 15_000);
  const tookMs = Date.now() - signalled;
  await clients;
  const batch = await slowBatch.catch((error: unknown) => ({
    status: 0,
    body: { resourceType: 'Bundle', type: 'batch-response', entry: [] } as Bundle,
    error,
  }));

  t.equal(code, 0, 'exit code 0');
  t.ok(tookMs < GRACE_MS + 8000, `exited ${tookMs} ms after SIGTERM (grace ${GRACE_MS} ms)`);
  t.ok(statuses.length > 0, `${statuses.length} requests answered during the test, ${refused} clients refused at the end`);
  t.same(
    statuses.filter((s) => s >= 500 && s !== 503),
    [],
    'no 5xx other than 503 while shutting down',
  );
  t.equal(batch.status, 200, 'the long batch was answered');
  const entryStatuses = (batch.body.entry ?? []).map((e) => e.response?.status ?? '');
  t.equal(entryStatuses.length, 2000, 'with an entry for each request');
  t.ok(
    entryStatuses.some((s) => s.startsWith('503')),
    `the entries not run within the grace period say 503 (${entryStatuses.filter((s) => s.startsWith('200')).length} ran)`,
  );
  t.ok(
    entryStatuses.every((s) => s.startsWith('200') || s.startsWith('503')),
    'every entry either ran or says 503',
  );
  // The database process ends with the server.
  const deadline = Date.now() + 15_000;
  while (alive(mongoPid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  t.notOk(alive(mongoPid), 'the embedded MongoDB process has exited too');
});

t.test('a second signal exits at once', async (t) => {
  const { child, base } = await startServer(t);
  // A request that keeps the first shutdown waiting for the whole grace period.
  const pending = fetch(`${base}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify({
      resourceType: 'Bundle',
      type: 'batch',
      entry: Array.from({ length: 100 }, () => ({ request: { method: 'GET', url: 'Patient?name:contains=x&_total=accurate' } })),
    }),
  }).catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 100));
  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const signalled = Date.now();
  child.kill('SIGTERM');
  const code = await waitForExit(child, 10_000);
  t.ok(Date.now() - signalled < 3000, 'exited promptly on the second signal');
  t.ok(code === 0 || code === 1, `exit code ${code}`);
  await pending;
});
