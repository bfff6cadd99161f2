#!/usr/bin/env node
/** The fhir-clients bin: see ./clients-command.ts. */
import { CLIENTS_EXIT, runClients } from './clients-command.js';

runClients(process.argv.slice(2), process.env, process.stdout, process.stderr).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`fhir-clients: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = CLIENTS_EXIT.FAILURE;
  },
);
