/**
 * fhir-import: loads NDJSON files and transaction/batch Bundles into this server, over HTTP (--url) or straight
 * into its MongoDB through the server's own app in-process (--mongodb). See README "Importing data".
 *
 * Arguments are parsed with Node's util.parseArgs: it is built in (no dependency), strict about unknown options,
 * and enough for a flat option list. The progress bar is cli-progress (as in reindex.ts): small, long maintained,
 * and it prints plain periodic lines when stderr is not a terminal.
 */
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { ConfigError, loadConfig } from '../../config.js';
import type { ResourceValidator } from '../../fhir/validation/index.js';
import { IMPORT_EXIT, type Output } from '../exit-codes.js';
import { importBundleFile } from './bundle-import.js';
import { sendDeferred } from './deferred.js';
import { CapabilitiesError, readCapabilities } from './capabilities.js';
import { Checkpoint, CheckpointError } from './checkpoint.js';
import type { ImportContext } from './context.js';
import { readFileSync } from 'node:fs';
import { collectInputs, InputError, type Input } from './inputs.js';
import { importNdjson } from './ndjson-import.js';
import { formatReport, ImportReport, type ImportReportJson } from './report.js';
import { HttpTarget, InProcessTarget, TargetUnreachableError, type ImportTarget } from './target.js';

export const USAGE = `Usage: fhir-import [options] <file or directory>...

Loads FHIR data into this server: NDJSON files (*.ndjson, *.jsonl: one resource per line, e.g. Bulk Data
output) and transaction or batch Bundles (*.json, e.g. Synthea). A directory stands for its *.ndjson, *.jsonl
and *.json files.

Target (one of):
  --url URL             a running server's FHIR base, e.g. http://localhost:8080; with authorization on, an
                        access token with write scopes in FHIR_ACCESS_TOKEN (or --token-file FILE)
  --mongodb URI         straight into the server's MongoDB (default: MONGODB_URI), through the server's own
                        validation, indexing and ledger anchoring, in this process; also reads MONGODB_DB,
                        BASE_URL, REFERENCE_POLICY and REQUIRED_PROFILES like the server
  --db NAME             database name with --mongodb (default: MONGODB_DB, else the server's default)
  --token-file FILE     a file holding the access token for --url (default: FHIR_ACCESS_TOKEN)

Options:
  --batch-size N        resources per batch Bundle and per checkpoint (default 200, 1-10000)
  --concurrency N       batches in flight at once (default 4, 1-64)
  --checkpoint FILE     resumption state (default <first input>.import-state.json, or in --state-dir)
  --state-dir DIR       where the default checkpoint file goes
  --restart             ignore the checkpoint and start over (PUTs with ids are idempotent)
  --report FILE         also write the report as JSON
  --quiet               no progress bar
  --help                this text

NDJSON resources with an id are sent as PUT [type]/[id] (they keep their ids; re-sending is harmless), without
one as POST [type]. Types the server does not host are skipped and counted. Bundles are narrowed to the hosted
types, references to dropped entries rewritten (see README), and sent as POST [base].
Re-running the same command resumes where the checkpoint says; Ctrl-C stops after the batches in flight.

Exit codes: 0 all imported, 1 some rejected (see the report), 2 usage error, 3 target unreachable,
130 interrupted (run again to resume).
`;

export interface ImportStreams {
  stdout: Output;
  stderr: Output & { isTTY?: boolean };
}

export interface ImportOptions {
  /** Aborting stops after the chunks in flight (the bin wires it to SIGINT). */
  signal?: AbortSignal;
  /** --mongodb mode: a validator already built (tests share one per process). */
  validator?: ResourceValidator;
  /** After each acknowledged chunk or Bundle. */
  afterChunk?: () => void;
}

export interface ImportResult {
  code: number;
  report?: ImportReportJson;
}

function positiveInteger(value: string, name: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InputError(`--${name} ${value} must be an integer from 1 to ${max}`);
  return n;
}

/** Checks the target options and returns how to open the target; nothing is contacted yet. */
function chooseTarget(
  values: { url?: string; mongodb?: string; db?: string; 'token-file'?: string },
  env: NodeJS.ProcessEnv,
  validator?: ResourceValidator,
): () => Promise<ImportTarget> {
  if (values.url !== undefined && values.mongodb !== undefined) throw new InputError('give either --url or --mongodb, not both');
  if (values.url !== undefined) {
    let url: URL;
    try {
      url = new URL(values.url);
    } catch {
      throw new InputError(`--url ${values.url} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError(`--url ${values.url} must be http(s)`);
    const base = values.url;
    let token = env.FHIR_ACCESS_TOKEN?.trim() || undefined;
    if (values['token-file'] !== undefined) {
      try {
        token = readFileSync(values['token-file'], 'utf8').trim();
      } catch (error) {
        throw new InputError(`--token-file ${values['token-file']} cannot be read: ${(error as Error).message}`);
      }
    }
    return async () => new HttpTarget(base, token);
  }
  const uri = values.mongodb ?? env.MONGODB_URI;
  if (!uri) throw new InputError('give a target: --url of a running server, or --mongodb (or MONGODB_URI) of its database');
  let config;
  try {
    config = loadConfig({ ...env, MONGODB_URI: uri, MONGODB_DB: values.db ?? env.MONGODB_DB });
  } catch (error) {
    if (error instanceof ConfigError) throw new InputError(error.message);
    throw error;
  }
  const serverConfig = config;
  return () => InProcessTarget.open(uri, serverConfig, validator);
}

export async function runImport(
  argv: string[],
  env: NodeJS.ProcessEnv,
  streams: ImportStreams,
  options: ImportOptions = {},
): Promise<ImportResult> {
  const fail = (message: string, code: number): ImportResult => {
    streams.stderr.write(`fhir-import: ${message}\n`);
    return { code };
  };

  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        mongodb: { type: 'string' },
        db: { type: 'string' },
        'token-file': { type: 'string' },
        'batch-size': { type: 'string', default: '200' },
        concurrency: { type: 'string', default: '4' },
        checkpoint: { type: 'string' },
        'state-dir': { type: 'string' },
        restart: { type: 'boolean', default: false },
        report: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    return fail(`${(error as Error).message}\n\n${USAGE}`, IMPORT_EXIT.USAGE);
  }
  if (values.help) {
    streams.stdout.write(USAGE);
    return { code: IMPORT_EXIT.OK };
  }

  let inputs: Input[];
  let batchSize: number;
  let concurrency: number;
  let checkpoint: Checkpoint;
  let openTarget: () => Promise<ImportTarget>;
  try {
    openTarget = chooseTarget(values, env, options.validator);
    if (positionals.length === 0) throw new InputError('name at least one NDJSON file, Bundle file or directory');
    batchSize = positiveInteger(values['batch-size'], 'batch-size', 10_000);
    concurrency = positiveInteger(values.concurrency, 'concurrency', 64);
    inputs = await collectInputs(positionals);
    const checkpointPath =
      values.checkpoint ??
      (values['state-dir'] !== undefined
        ? join(values['state-dir'], `${basename(positionals[0])}.import-state.json`)
        : `${positionals[0].replace(/\/+$/, '')}.import-state.json`);
    checkpoint = await Checkpoint.load(checkpointPath, values.restart);
    await checkpoint.ensureWritable();
  } catch (error) {
    if (error instanceof InputError || error instanceof CheckpointError) return fail(error.message, IMPORT_EXIT.USAGE);
    throw error;
  }

  let target: ImportTarget;
  try {
    target = await openTarget();
  } catch (error) {
    if (error instanceof TargetUnreachableError) return fail(`target unreachable: ${error.message}`, IMPORT_EXIT.UNREACHABLE);
    throw error;
  }

  const report = new ImportReport(target.description);
  const total = inputs.reduce((sum, input) => sum + input.size, 0);
  const bar = values.quiet
    ? undefined
    : new cliProgress.SingleBar(
        {
          stream: streams.stderr as NodeJS.WritableStream,
          format: 'import [{bar}] {percentage}% | {done} of {all} MB | ETA {eta_formatted}',
          noTTYOutput: true,
          notTTYSchedule: 5000,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
  const megabytes = (bytes: number): string => (bytes / 1e6).toFixed(1);
  let done = 0;
  bar?.start(total, 0, { done: megabytes(0), all: megabytes(total) });

  let code: number = IMPORT_EXIT.OK;
  let completed = false;
  try {
    const capabilities = await readCapabilities(target);
    const context: ImportContext = {
      target,
      capabilities,
      report,
      checkpoint,
      batchSize,
      concurrency,
      signal: options.signal,
      advance: (bytes) => {
        done += bytes;
        bar?.update(done, { done: megabytes(done), all: megabytes(total) });
      },
      afterChunk: options.afterChunk,
      displayName: (file) => inputs.find((i) => i.path === file)?.name ?? file,
      deferred: [],
      awaitingDeferred: new Map(),
    };
    completed = true;
    for (const input of inputs) {
      if (options.signal?.aborted) {
        completed = false;
        break;
      }
      if (input.kind === 'ndjson') completed = await importNdjson(context, input.path, input.size);
      else await importBundleFile(context, input.path, input.size, input.fromDirectory);
      if (!completed) break;
    }
    if (completed) {
      const { resolvedFiles } = await sendDeferred(context);
      if (options.signal?.aborted) completed = false;
      for (const file of resolvedFiles) {
        const end = context.awaitingDeferred.get(file);
        if (end) await checkpoint.record(file, { size: end.size, offset: end.size, line: end.line, done: true });
      }
    }
    if (!completed) code = IMPORT_EXIT.INTERRUPTED;
    else if (report.rejectedCount > 0) code = IMPORT_EXIT.REJECTED;
  } catch (error) {
    bar?.stop();
    if (error instanceof TargetUnreachableError) {
      streams.stderr.write(`fhir-import: target unreachable: ${error.message}; the checkpoint keeps what was done\n`);
      code = IMPORT_EXIT.UNREACHABLE;
    } else if (error instanceof CapabilitiesError) {
      streams.stderr.write(`fhir-import: ${error.message}\n`);
      code = IMPORT_EXIT.USAGE;
    } else {
      throw error;
    }
  } finally {
    bar?.stop();
    await target.close();
  }

  const json = report.toJSON(completed);
  streams.stdout.write(formatReport(json));
  if (values.report !== undefined) await writeFile(values.report, `${JSON.stringify(json, null, 2)}\n`);
  return { code, report: json };
}
