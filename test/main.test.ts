/**
 * The entry point as a user runs it: no MongoDB configured, no mongod binary, so the embedded server; it serves
 * /metadata, says which MongoDB it uses, and shuts down cleanly on SIGTERM. A bad variable stops it with a message.
 * With no Hedera operator, the local ledger's mirror keeps a fixed address (LOCAL_LEDGER_MIRROR_PORT), so a proof
 * package saved from the server verifies after the server is gone, against the local ledger run alone.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from './helpers/ports.js';
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

t.test(
  'the local ledger keeps one mirror address: a saved proof verifies after the server stops, against the ledger run alone',
  async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fhir-main-ledger-'));
    t.teardown(() => rm(dataDir, { recursive: true, force: true }));
    const mirrorPort = await freePort();
    const env = {
      PORT: '0',
      DATA_DIR: dataDir,
      MONGOD_START_TIMEOUT_MS: '0',
      LOG_LEVEL: 'info',
      AUTH_MODE: 'off',
      LOCAL_LEDGER_MIRROR_PORT: String(mirrorPort),
      LEDGER_BATCH_INTERVAL_MS: '100',
    };
    const server = spawnTs('src/main.ts', [], env);
    t.teardown(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
    const mirrorUrl = `http://127.0.0.1:${mirrorPort}`;
    await waitForOutput(server, new RegExp(`mirror REST ${mirrorUrl.replace(/\./g, '\\.')}`), 60_000);
    const listening = await waitForOutput(server, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 60_000);
    const base = listening[1];
    const created = await fetch(`${base}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Moreau' }] }),
    });
    t.equal(created.status, 201);
    const { id } = (await created.json()) as { id: string };
    let proof: { mirrorUrl?: string; versions?: Array<{ status: string }> } = {};
    for (let i = 0; i < 100 && proof.versions?.[0]?.status !== 'anchored'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      proof = (await (await fetch(`${base}/Patient/${id}/$proof`)).json()) as typeof proof;
    }
    t.equal(proof.versions?.[0]?.status, 'anchored');
    t.equal(proof.mirrorUrl, mirrorUrl, 'the package names the fixed address');
    const file = join(dataDir, 'proof.json');
    await writeFile(file, JSON.stringify(proof));

    server.kill('SIGTERM');
    t.equal(await waitForExit(server, 30_000), 0);
    const down = await fetch(`${mirrorUrl}/api/v1`).then(
      () => 'up',
      () => 'down',
    );
    t.equal(down, 'down', 'the mirror stopped with the server');

    // The README's command: the local ledger alone, on the server's ledger state and the same port.
    const ledger = spawnTs('src/dev/hedera/cli.ts', ['--data-dir', join(dataDir, 'local-hedera'), '--mirror-port', String(mirrorPort)], {});
    t.teardown(() => {
      if (ledger.exitCode === null) ledger.kill('SIGKILL');
    });
    await waitForOutput(ledger, /mirror REST/, 60_000);
    const verify = spawnTs('src/cli/fhir-ledger-verify.ts', [file], {});
    let output = '';
    verify.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    t.equal(await waitForExit(verify, 60_000), 0, output);
    t.match(output, /RESULT: VERIFIED/);
    t.match(output, /the mirror written in the package, i\.e\. supplied by the server being verified/);
    ledger.kill('SIGTERM');
    await waitForExit(ledger, 30_000);
  },
);
