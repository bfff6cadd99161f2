#!/usr/bin/env node
/** The fhir-ledger-verify bin: see ./verify-command.ts. */
import { EXIT } from './exit-codes.js';
import { runVerify } from './verify-command.js';

runVerify(process.argv.slice(2), process.stdout, process.stderr).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`fhir-ledger-verify: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = EXIT.INTERNAL_ERROR;
  },
);
