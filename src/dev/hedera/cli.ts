/**
 * Runs the local Hedera-compatible network until interrupted.
 *
 *   npm run build && node dist/src/dev/hedera/cli.js --data-dir data/hedera --grpc-port 50211 --mirror-port 5551
 */
import { parseArgs } from 'node:util';
import { startLocalHedera } from './index.js';

const USAGE = `Usage: cli.js [--host 127.0.0.1] [--grpc-port 0] [--mirror-port 0] [--data-dir DIR] [--consensus-delay-ms 0]

Starts a LOCAL ledger that speaks Hedera's consensus-node gRPC API and mirror-node REST API.
It is not Hedera: nothing submitted to it is anchored on Hedera mainnet or testnet.
Without --data-dir the ledger lives in memory and a new operator key is made each start.`;

function port(value: string | undefined, name: string): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${name} must be a port number (0 = any free port)`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      'grpc-port': { type: 'string' },
      'mirror-port': { type: 'string' },
      'data-dir': { type: 'string' },
      'consensus-delay-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const delay = Number(values['consensus-delay-ms'] ?? '0');
  if (!Number.isInteger(delay) || delay < 0) throw new Error('--consensus-delay-ms must be a non-negative integer');

  const net = await startLocalHedera({
    host: values.host ?? '127.0.0.1',
    grpcPort: port(values['grpc-port'], 'grpc-port'),
    mirrorPort: port(values['mirror-port'], 'mirror-port'),
    dataDir: values['data-dir'],
    consensusDelayMs: delay,
  });

  process.stdout.write(
    [
      '',
      'LOCAL Hedera-compatible ledger: this is NOT Hedera. Nothing here is anchored on mainnet or testnet.',
      '',
      `  gRPC endpoint     ${net.grpcEndpoint}`,
      `  node account      ${net.nodeAccountId}`,
      `  mirror REST       ${net.mirrorUrl}/api/v1`,
      `  operator id       ${net.operatorId}`,
      `  operator key      ${net.operatorKey}`,
      `  state             ${values['data-dir'] ? `persisted in ${values['data-dir']}` : 'in memory (lost on exit)'}`,
      '',
      'SDK client:',
      `  Client.forNetwork({ '${net.grpcEndpoint}': '${net.nodeAccountId}' }, { scheduleNetworkUpdate: false })`,
      `    .setOperator('${net.operatorId}', PrivateKey.fromStringDer('<operator key>'))`,
      '',
      'Ctrl-C to stop.',
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${signal}: stopping the local ledger\n`);
    net.close().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n\n${USAGE}\n`);
  process.exit(1);
});
