// The CLI prints how to reach the network, says it is local, serves the SDK, and stops on SIGTERM.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, PrivateKey, Status, TopicCreateTransaction } from '@hashgraph/sdk';

const CLI = new URL('../../../src/dev/hedera/cli.ts', import.meta.url).pathname;

function run(args: string[]): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exit };
}

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('cli serves a local ledger and says so', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'local-hedera-cli-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const { child, output, exit } = run(['--data-dir', dataDir, '--host', '127.0.0.1']);
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitFor(() => output().includes('Ctrl-C to stop.'), 60_000);
  const text = output();
  t.match(text, /LOCAL Hedera-compatible ledger: this is NOT Hedera/);
  const field = (name: string) => new RegExp(`^ {2}${name}\\s+(\\S+)$`, 'm').exec(text)?.[1];
  const endpoint = field('gRPC endpoint')!;
  const node = field('node account')!;
  t.match(endpoint, /^127\.0\.0\.1:\d+$/);
  t.equal(node, '0.0.3');
  t.equal(field('operator id'), '0.0.2');
  t.match(field('mirror REST'), /^http:\/\/127\.0\.0\.1:\d+\/api\/v1$/);

  const client = Client.forNetwork({ [endpoint]: node }, { scheduleNetworkUpdate: false })
    .setOperator(field('operator id')!, PrivateKey.fromStringDer(field('operator key')!))
    .setGrpcDeadline(2000);
  const receipt = await (await new TopicCreateTransaction().execute(client)).getReceipt(client);
  t.equal(receipt.status, Status.Success);
  client.close();

  child.kill('SIGTERM');
  t.equal(await exit, 0, 'clean exit on SIGTERM');
});

t.test('cli --help and bad arguments', async (t) => {
  const help = run(['--help']);
  t.equal(await help.exit, 0);
  t.match(help.output(), /not Hedera/);
  const bad = run(['--grpc-port', 'seventy']);
  t.equal(await bad.exit, 1);
  t.match(bad.output(), /--grpc-port must be a port number/);
});
