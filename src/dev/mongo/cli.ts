/**
 * Command-line entry point:
 *   node dist/src/dev/mongo/cli.js --port 27017 --host 127.0.0.1 --data-dir ./data/mongo
 * Prints the connection string and runs until SIGINT/SIGTERM, or (--exit-with-parent) until its stdin closes:
 * the FHIR server starts it that way (src/dev/mongo-process.ts), so it ends when the server ends, however.
 */
import { parseArgs } from 'node:util';
import { startEmbeddedMongo } from './index.js';

const USAGE = 'usage: cli.js [--host 127.0.0.1] [--port 27017] [--data-dir DIR] [--cache-mb 64] [--quiet] [--exit-with-parent]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '27017' },
      'data-dir': { type: 'string' },
      'cache-mb': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      'exit-with-parent': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port}\n${USAGE}`);
  const cacheMb = values['cache-mb'] === undefined ? undefined : Number(values['cache-mb']);
  if (cacheMb !== undefined && (!Number.isFinite(cacheMb) || cacheMb < 0))
    throw new Error(`invalid --cache-mb ${values['cache-mb']}\n${USAGE}`);
  const log = values.quiet ? undefined : (msg: string) => console.error(`[embedded-mongo] ${msg}`);
  const server = await startEmbeddedMongo({ host: values.host, port, dataDir: values['data-dir'], cacheMb, log });
  console.log(server.uri);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log?.(`received ${signal}, shutting down`);
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  if (values['exit-with-parent']) {
    // The parent holds the other end of stdin: end of file means it has gone (exited, crashed, killed).
    process.stdin.on('end', () => stop('end of stdin (the parent process ended)'));
    process.stdin.on('error', () => stop('stdin error (the parent process ended)'));
    process.stdin.resume();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
