#!/usr/bin/env node
/**
 * npm run reindex [-- --batch 500 --restart --quiet]
 *
 * Recomputes the search index values (`idx`) of every stored resource whose idxVersion is stale: after an
 * upgrade that changed search parameter definitions or the extractor, or after BASE_URL changed. It works on
 * the database the server uses (MONGODB_URI, MONGODB_DB, BASE_URL as for the server) while the server keeps
 * running, in _id order with a checkpoint after every batch: interrupt it (Ctrl-C stops after the current
 * batch) and run it again to resume. See src/fhir/search/reindex.ts for the guarantees.
 *
 * The progress bar is cli-progress: maintained for a decade, MIT, a single small dependency (string-width),
 * handles non-TTY output (periodic lines in CI logs) and ETA without any code of ours.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { ConfigError, loadConfig } from '../config.js';
import { reindex, type ReindexResult } from '../fhir/search/reindex.js';
import { connectMongo } from '../store/mongo.js';
import { ResourceStore } from '../store/resource-store.js';

export const REINDEX_EXIT = { OK: 0, INTERRUPTED: 1, USAGE: 2, FAILED: 70 } as const;

interface Streams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const USAGE = `Usage: npm run reindex -- [--batch N] [--restart] [--quiet]
  Recomputes search index values of resources indexed by an older definition set.
  Reads MONGODB_URI, MONGODB_DB and BASE_URL like the server.
  --batch N    heads per batch and checkpoint (default 500)
  --restart    ignore the saved checkpoint and start from the first resource
  --quiet      no progress bar
`;

export async function runReindex(
  argv: string[],
  env: NodeJS.ProcessEnv,
  streams: Streams,
  signal?: AbortSignal,
): Promise<{ code: number; result?: ReindexResult }> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        batch: { type: 'string', default: '500' },
        restart: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (error) {
    streams.stderr.write(`reindex: ${(error as Error).message}\n${USAGE}`);
    return { code: REINDEX_EXIT.USAGE };
  }
  if (args.help) {
    streams.stdout.write(USAGE);
    return { code: REINDEX_EXIT.OK };
  }
  const batchSize = Number(args.batch);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
    streams.stderr.write(`reindex: --batch ${args.batch} must be an integer from 1 to 100000\n`);
    return { code: REINDEX_EXIT.USAGE };
  }
  let config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      streams.stderr.write(`reindex: ${error.message}\n`);
      return { code: REINDEX_EXIT.USAGE };
    }
    throw error;
  }
  if (!config.mongodbUri) {
    streams.stderr.write('reindex: set MONGODB_URI (and MONGODB_DB) to the database the server uses\n');
    return { code: REINDEX_EXIT.USAGE };
  }

  const connection = await connectMongo(config.mongodbUri, config.mongodbDb);
  const bar = args.quiet
    ? undefined
    : new cliProgress.SingleBar(
        {
          stream: streams.stderr,
          format: 'reindex [{bar}] {percentage}% | {value}/{total} resources | ETA {eta_formatted}',
          noTTYOutput: true,
          notTTYSchedule: 5000,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
  try {
    const store = new ResourceStore(connection.db, connection.supportsTransactions);
    let started = false;
    const result = await reindex(store, config.baseUrl, {
      batchSize,
      restart: args.restart,
      signal,
      onProgress: (done, total) => {
        if (!bar) return;
        if (!started) {
          bar.start(total, done);
          started = true;
        } else bar.update(done, {});
        if (total !== bar.getTotal()) bar.setTotal(total);
      },
    });
    bar?.stop();
    const from = result.resumedFrom ? ` (resumed after ${result.resumedFrom})` : '';
    streams.stdout.write(
      `reindex ${result.completed ? 'done' : 'interrupted; run it again to resume'}${from}: ` +
        `${result.updated} updated, ${result.skipped} changed meanwhile (already current), idxVersion ${result.idxVersion}\n`,
    );
    return { code: result.completed ? REINDEX_EXIT.OK : REINDEX_EXIT.INTERRUPTED, result };
  } finally {
    bar?.stop();
    await connection.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nreindex: stopping after the current batch (its checkpoint is kept)\n');
    controller.abort();
  });
  runReindex(process.argv.slice(2), process.env, { stdout: process.stdout, stderr: process.stderr }, controller.signal).then(
    ({ code }) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`reindex: ${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = REINDEX_EXIT.FAILED;
    },
  );
}
