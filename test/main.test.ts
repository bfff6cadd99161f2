/**
 * The entry point as a user runs it: no MongoDB configured, no mongod binary, so the embedded server; it serves
 * /metadata, says which MongoDB it uses, and shuts down cleanly on SIGTERM. A bad variable stops it with a message.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { spawnTs, waitForExit, waitForOutput } from './helpers/spawn-ts.js';

// Servers and CLIs in child processes: on a busy 2-core machine this file needs more than the suite's 180 s per
// file (a harness limit, not a speed assertion).
t.setTimeout(420_000);

t.test('starts on the embedded MongoDB, serves /metadata, stops on SIGTERM', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fhir-main-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const child = spawnTs('src/main.ts', [], {
    PORT: '0',
    DATA_DIR: dataDir,
    MONGOD_START_TIMEOUT_MS: '0',
    LOG_LEVEL: 'info',
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const used = await waitForOutput(child, /MongoDB in use: ([^"]+)/, 60_000);
  t.match(used[1], /EMBEDDED MongoDB-compatible server/, 'the log says plainly which MongoDB is in use');
  const listening = await waitForOutput(child, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 30_000);
  const res = await fetch(`${listening[1]}/metadata`);
  t.equal(res.status, 200);
  t.equal(((await res.json()) as { resourceType: string }).resourceType, 'CapabilityStatement');

  child.kill('SIGTERM');
  t.equal(await waitForExit(child, 30_000), 0, 'clean exit after draining');
});

t.test('an invalid variable stops the start with a message naming it', async (t) => {
  const child = spawnTs('src/main.ts', [], { PORT: 'http', LOG_LEVEL: 'silent' });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  t.equal(await waitForExit(child, 30_000), 2);
  t.match(stderr, /PORT="http" is invalid: it should be an integer from 0 to 65535/);
});
