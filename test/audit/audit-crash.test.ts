/**
 * The bound on what a crash can lose from the audit trail, with the real server (src/main.ts in a child process,
 * on the embedded MongoDB under one DATA_DIR, AUTH_MODE=off on loopback, AUDIT_FLUSH_INTERVAL_MS=100).
 *
 * THE BOUND: AuditEvents of writes are committed in the same MongoDB transaction as the write, so a crash loses
 * none of them. AuditEvents of everything else (reads, searches, operations, refused and failed requests) are
 * buffered in memory and written at least every AUDIT_FLUSH_INTERVAL_MS (sooner when 1000 are waiting). A crash
 * (SIGKILL, power loss) can therefore lose the events recorded during the last flush interval, plus the batch
 * being written at that moment if its insert had not been acknowledged; nothing older. A graceful shutdown
 * (SIGTERM/SIGINT) writes everything buffered before it exits.
 *
 * What this test proves:
 * 1. N reads, then a wait of one flush interval plus a margin (1 s), then SIGKILL: after a restart on the same
 *    DATA_DIR every one of the N read AuditEvents is there (searched through the API).
 * 2. N reads immediately followed by SIGTERM (no wait): after a restart all N are there.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import t, { type Test } from 'tap';
import { spawnTs, waitForExit, waitForOutput } from '../helpers/spawn-ts.js';

const FLUSH_INTERVAL_MS = 100;
const MARGIN_MS = 1000;
const N = 25;

interface Server {
  child: ChildProcess;
  base: string;
  /** The X-Request-Id the server gave its first request (one without an X-Request-Id header). */
  firstRequestId: string | null;
}

async function startServer(t: Test, dataDir: string): Promise<Server> {
  const child = spawnTs('src/main.ts', [], {
    PORT: '0',
    DATA_DIR: dataDir,
    MONGOD_START_TIMEOUT_MS: '0',
    LOG_LEVEL: 'info',
    REFERENCE_POLICY: 'lenient',
    AUTH_MODE: 'off',
    AUDIT_FLUSH_INTERVAL_MS: String(FLUSH_INTERVAL_MS),
    // The subject is the audit buffer, not the ledger: no local network to start (events stay pending anchors).
    LEDGER_ENABLED: 'false',
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const base = (await waitForOutput(child, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 90_000))[1]!;
  const first = await fetch(`${base}/Patient?_count=1`);
  await first.arrayBuffer();
  return { child, base, firstRequestId: first.headers.get('x-request-id') };
}

async function createPatient(base: string): Promise<string> {
  const res = await fetch(`${base}/Patient`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify({
      resourceType: 'Patient',
      name: [{ family: 'Crash', given: ['Audit'] }],
      gender: 'female',
      birthDate: '1980-01-02',
    }),
  });
  if (res.status !== 201) throw new Error(`create: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/** N reads of the patient, each with its own X-Request-Id (the ids the AuditEvents will carry). */
async function reads(base: string, patientId: string, label: string, n = N): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const rid = `${label}-${i}-${randomUUID()}`;
    const res = await fetch(`${base}/Patient/${patientId}`, { headers: { 'x-request-id': rid } });
    if (res.status !== 200) throw new Error(`read: ${res.status}`);
    if (res.headers.get('x-request-id') !== rid) throw new Error('the server did not keep the X-Request-Id');
    await res.arrayBuffer();
    ids.push(rid);
  }
  return ids;
}

/** The request ids of the AuditEvents found for `rids`, through the API (entity:identifier = the X-Request-Id). */
async function recordedRequestIds(base: string, rids: string[]): Promise<string[]> {
  const found: string[] = [];
  for (let i = 0; i < rids.length; i += 20) {
    const chunk = rids.slice(i, i + 20);
    const res = await fetch(`${base}/AuditEvent?entity:identifier=${chunk.map(encodeURIComponent).join(',')}&_count=100`);
    if (res.status !== 200) throw new Error(`AuditEvent search: ${res.status} ${await res.text()}`);
    const bundle = (await res.json()) as Bundle<AuditEvent>;
    for (const entry of bundle.entry ?? []) {
      for (const entity of entry.resource?.entity ?? []) {
        const value = entity.what?.identifier?.value;
        if (value && chunk.includes(value)) found.push(value);
      }
    }
  }
  return found.sort();
}

t.test('the audit trail loses nothing older than one flush interval on a crash, and nothing on a graceful stop', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'audit-crash-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));

  // 1. Reads, a wait of one flush interval plus a margin, then a crash.
  const first = await startServer(t, dataDir);
  const patientId = await createPatient(first.base);
  const settled = await reads(first.base, patientId, 'before-kill');
  await new Promise((r) => setTimeout(r, FLUSH_INTERVAL_MS + MARGIN_MS));
  // Reads in the very last moment before the crash: these MAY be lost (they are inside the bound); counted only.
  const lastMoment = await reads(first.base, patientId, 'last-moment', 5);
  first.child.kill('SIGKILL');
  await waitForExit(first.child, 30_000);
  t.equal(first.child.signalCode, 'SIGKILL', 'the server was killed, not stopped');

  const second = await startServer(t, dataDir);
  const afterKill = await recordedRequestIds(second.base, settled);
  t.same(afterKill, [...settled].sort(), `all ${N} read AuditEvents older than the flush interval survived the crash`);
  const lastSurvivors = await recordedRequestIds(second.base, lastMoment);
  t.comment(
    `${lastSurvivors.length} of ${lastMoment.length} AuditEvents recorded just before the SIGKILL survived (inside the bound: may be lost)`,
  );
  const createEvents = (await (await fetch(`${second.base}/AuditEvent?entity=Patient/${patientId}&subtype=create`)).json()) as Bundle;
  t.equal(createEvents.entry?.length, 1, "the create's AuditEvent (committed with the write) is there");
  t.not(second.firstRequestId, first.firstRequestId, 'a server-generated X-Request-Id is not reused after a restart');

  // 2. Reads, then a graceful stop right away.
  const beforeStop = await reads(second.base, patientId, 'before-term');
  second.child.kill('SIGTERM');
  t.equal(await waitForExit(second.child, 30_000), 0, 'clean shutdown');

  const third = await startServer(t, dataDir);
  const afterStop = await recordedRequestIds(third.base, beforeStop);
  t.same(afterStop, [...beforeStop].sort(), `all ${N} read AuditEvents written at shutdown, without waiting for a flush`);
  t.same(await recordedRequestIds(third.base, settled), [...settled].sort(), 'and the earlier ones are still there');
  third.child.kill('SIGTERM');
  t.equal(await waitForExit(third.child, 30_000), 0);
});
