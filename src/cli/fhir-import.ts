#!/usr/bin/env node
/** The fhir-import bin: see ./import/command.ts and README "Importing data". */
import { IMPORT_EXIT } from './exit-codes.js';
import { runImport } from './import/command.js';

const controller = new AbortController();
process.on('SIGINT', () => {
  if (controller.signal.aborted) process.exit(IMPORT_EXIT.INTERRUPTED);
  process.stderr.write('\nfhir-import: stopping after the batches in flight (Ctrl-C again to quit at once; the checkpoint is kept)\n');
  controller.abort();
});

runImport(process.argv.slice(2), process.env, { stdout: process.stdout, stderr: process.stderr }, { signal: controller.signal }).then(
  ({ code }) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`fhir-import: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = IMPORT_EXIT.INTERNAL_ERROR;
  },
);
