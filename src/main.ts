/**
 * Entry point: read the configuration, bring up MongoDB (configured, a real mongod, or the embedded server),
 * bring up the ledger (a configured Hedera network, or the project's LOCAL network when no operator is
 * configured), listen, start the anchoring worker, and shut down cleanly on SIGINT/SIGTERM (drain in-flight
 * requests, stop the worker, then close the ledger and MongoDB).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { DEV_CLIENT_ID } from './auth/clients.js';
import { ConfigError, loadConfig, type ServerConfig } from './config.js';
import { startLocalHedera, type LocalHedera } from './dev/hedera/index.js';
import { provideMongo } from './dev/provide-mongo.js';
import type { LedgerLogger } from './ledger/anchor-worker.js';
import { LedgerRuntime, localLedgerEndpoint, type LedgerEndpoint } from './ledger/ledger-runtime.js';
import { LOCAL_NETWORK_LABEL } from './ledger/network.js';
import { SOFTWARE } from './software.js';
import { gracefulShutdown } from './shutdown.js';
import { openStoreAndValidator } from './wiring.js';

/** Exit code of the LEDGER_TEST_CRASH_AFTER_SUBMIT hook, so a test can tell the crash from other exits. */
const TEST_CRASH_EXIT_CODE = 86;

/**
 * Where the ledger is: the configured public network, or — with no operator configured — the project's local
 * Hedera-compatible network, started here with its state under DATA_DIR/local-hedera. The log says which,
 * plainly, because proofs from the local network prove nothing about Hedera.
 */
async function provideLedgerEndpoint(
  config: ServerConfig,
  log: (level: number, message: string) => void,
): Promise<{ endpoint: LedgerEndpoint; local?: LocalHedera }> {
  const ledger = config.ledger;
  if (ledger.network !== 'local') {
    log(30, `Ledger: Hedera ${ledger.network}, operator ${ledger.operatorId}, mirror node ${ledger.mirrorUrl}`);
    return {
      endpoint: { network: ledger.network, operatorId: ledger.operatorId!, operatorKey: ledger.operatorKey!, mirrorUrl: ledger.mirrorUrl! },
    };
  }
  const dataDir = join(config.dataDir, 'local-hedera');
  const local = await startLocalHedera({
    dataDir,
    mirrorPort: config.ledger.localMirrorPort,
    // Its per-transaction lines are debug detail; its start and stop lines say what it is.
    log: (message) => log(/LOCAL ledger|cut \d+ bytes/.test(message) ? 30 : 20, `local-hedera: ${message}`),
  }).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    throw new ConfigError([
      `LOCAL_LEDGER_MIRROR_PORT=${config.ledger.localMirrorPort} is in use (another server, or the local ledger running ` +
        'alone on this DATA_DIR?): stop it, or choose another port (0 = any free port, but then proof packages name a ' +
        'mirror URL that changes at every start)',
    ]);
  });
  log(
    40,
    `Ledger: no HEDERA_OPERATOR_ID/HEDERA_OPERATOR_KEY configured, so versions are anchored on the project's LOCAL ` +
      `Hedera-compatible network, NOT on Hedera (state in ${dataDir}, mirror REST ${local.mirrorUrl}). ` +
      `Proofs say "network": "${LOCAL_NETWORK_LABEL}". Configure HEDERA_NETWORK, HEDERA_OPERATOR_ID and HEDERA_OPERATOR_KEY for testnet or mainnet.`,
  );
  return {
    local,
    endpoint: localLedgerEndpoint(local),
  };
}

/** The scopes of the development client: everything, the audit trail included. */
const DEV_CLIENT_SCOPES = ['system/*.cruds', 'system/AuditEvent.rs'];

/**
 * Says how to get in. On loopback the development client gets a fresh secret, printed once (on stdout, not in the
 * structured log); elsewhere a development client left from a loopback run is revoked, so a secret that went to a
 * terminal never opens a server others can reach.
 */
async function announceAccess(config: ServerConfig, app: FastifyInstance): Promise<void> {
  if (config.auth.mode === 'off') {
    app.log.warn('AUTH_MODE=off: no authorization, every request may read and write everything (allowed on loopback only)');
    return;
  }
  const server = app.auth?.server;
  if (!server) {
    app.log.info({ issuer: config.auth.externalIssuer?.issuer }, 'Authorization: access tokens from the configured identity provider');
    return;
  }
  if (!config.auth.server.devClient) {
    if (await server.clients.revoke(DEV_CLIENT_ID).catch(() => undefined))
      app.log.warn('the development client of an earlier loopback run was revoked');
    app.log.info({ tokenEndpoint: server.tokenEndpoint }, 'Authorization: SMART Backend Services clients registered with fhir-clients');
    return;
  }
  const { clientId, clientSecret } = await server.clients.ensureDevClient(DEV_CLIENT_SCOPES);
  console.log(
    [
      '',
      `Development client (loopback only; a new secret at every start): client_id=${clientId} client_secret=${clientSecret}`,
      `  TOKEN=$(curl -s -u ${clientId}:${clientSecret} -d grant_type=client_credentials -d 'scope=system/*.cruds' ${server.tokenEndpoint} | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`,
      `  curl -H "Authorization: Bearer $TOKEN" ${config.baseUrl}/Patient`,
      '',
    ].join('\n'),
  );
}

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.mongodbUri) await mkdir(config.dataDir, { recursive: true });

  const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
  const levelLog = (level: number, message: string): void => {
    if (level >= LEVELS[config.logLevel]!) console.log(JSON.stringify({ level, time: Date.now(), msg: message }));
  };
  const bootLog = (message: string): void => levelLog(30, message);
  const mongo = await provideMongo({
    uri: config.mongodbUri,
    dataDir: config.dataDir,
    mongodTimeoutMs: config.mongodStartTimeoutMs,
    allowDownload: true,
    embeddedInChildProcess: true,
    log: bootLog,
  });
  const { connection, store, validator } = await openStoreAndValidator(mongo.uri, config, bootLog);
  let local: LocalHedera | undefined;
  let ledger: LedgerRuntime | undefined;
  // The worker logs through the app's logger, which exists only once the app is built.
  let ledgerLogger: LedgerLogger | undefined;
  const ledgerLog: LedgerLogger = {
    debug: (fields, message) => ledgerLogger?.debug(fields, message),
    info: (fields, message) => ledgerLogger?.info(fields, message),
    warn: (fields, message) => ledgerLogger?.warn(fields, message),
    error: (fields, message) => ledgerLogger?.error(fields, message),
  };
  if (config.ledger.enabled) {
    const provided = await provideLedgerEndpoint(config, levelLog);
    local = provided.local;
    ledger = new LedgerRuntime({
      db: connection.db,
      config: config.ledger,
      endpoint: provided.endpoint,
      baseUrl: config.baseUrl,
      software: SOFTWARE.name,
      log: ledgerLog,
      afterSubmit: config.ledger.testCrashAfterSubmit
        ? (batch) => {
            console.log(
              JSON.stringify({
                level: 50,
                time: Date.now(),
                msg: `LEDGER_TEST_CRASH_AFTER_SUBMIT: exiting after submitting batch ${batch}`,
              }),
            );
            process.exit(TEST_CRASH_EXIT_CODE);
          }
        : undefined,
    });
    await ledger.init();
  } else {
    bootLog('Ledger: LEDGER_ENABLED=false, nothing is anchored; new versions keep pending anchors until it is enabled');
  }

  const app = await buildApp(config, {
    store,
    validator,
    ledger: ledger?.service,
    // Export files live beside the other local state; the jobs themselves are in MongoDB.
    bulkExport: { dir: join(config.dataDir, 'exports') },
    // AuditEvents of reads and searches are built and written by a worker thread, beside the request path.
    auditWorker: { mongoUri: mongo.uri, dbName: config.mongodbDb },
  });
  ledgerLogger = app.log;
  app.log.info({ mongodb: mongo.kind, transactions: connection.supportsTransactions }, `MongoDB in use: ${mongo.description}`);

  const stop = gracefulShutdown({
    app,
    graceMs: config.shutdownGraceMs,
    stopBackground: async () => {
      await ledger?.stop();
      await local?.close();
    },
    closeDatabase: async () => {
      await connection.close();
      await mongo.stop();
    },
    log: app.log,
    exit: (code) => process.exit(code),
  });
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  await app.listen({ port: config.port, host: config.host });
  app.log.info(`FHIR base: ${config.baseUrl} (CapabilityStatement at ${config.baseUrl}/metadata)`);
  await announceAccess(config, app);
  ledger?.start();
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  console.error('The server could not start:', error);
  process.exit(1);
});
