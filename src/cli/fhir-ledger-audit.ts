#!/usr/bin/env node
/** The fhir-ledger-audit bin: see ./ledger-audit-command.ts. */
import { EXIT } from './exit-codes.js';
import { runLedgerAudit } from './ledger-audit-command.js';

runLedgerAudit(process.argv.slice(2), process.stdout, process.stderr).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`fhir-ledger-audit: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = EXIT.INTERNAL_ERROR;
  },
);
