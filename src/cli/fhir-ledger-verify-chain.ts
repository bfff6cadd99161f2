#!/usr/bin/env node
/** The fhir-ledger-verify-chain bin: see ./verify-chain-command.ts. */
import { EXIT } from './exit-codes.js';
import { runVerifyChain } from './verify-chain-command.js';

runVerifyChain(process.argv.slice(2), process.stdout, process.stderr).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`fhir-ledger-verify-chain: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = EXIT.INTERNAL_ERROR;
  },
);
