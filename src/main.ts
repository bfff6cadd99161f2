/**
 * Entry point: read the configuration, bring up MongoDB (configured, a real mongod, or the embedded server),
 * listen, and shut down cleanly on SIGINT/SIGTERM (drain in-flight requests, then close MongoDB).
 */
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { provideMongo } from './dev/provide-mongo.js';
import { connectMongo } from './store/mongo.js';
import { ResourceStore } from './store/resource-store.js';
import { createResourceValidator } from './fhir/validation/index.js';
import { PROJECT_ROOT } from './software.js';

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.mongodbUri) await mkdir(config.dataDir, { recursive: true });

  const bootLog = (message: string): void => {
    if (config.logLevel !== 'silent') console.log(JSON.stringify({ level: 30, time: Date.now(), msg: message }));
  };
  const mongo = await provideMongo({
    uri: config.mongodbUri,
    dataDir: config.dataDir,
    mongodTimeoutMs: config.mongodStartTimeoutMs,
    allowDownload: true,
    log: bootLog,
  });
  const connection = await connectMongo(mongo.uri, config.mongodbDb);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();

  const validator = await createResourceValidator({
    profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)),
    requiredProfiles: config.requiredProfiles,
    log: (message) => bootLog(`validation: ${message}`),
  });
  const app = await buildApp(config, { store, validator });
  app.log.info(
    { mongodb: mongo.kind, transactions: connection.supportsTransactions },
    `MongoDB in use: ${mongo.description}`,
  );

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'shutting down: draining in-flight requests');
    try {
      await app.close();
      await connection.close();
      await mongo.stop();
      process.exit(0);
    } catch (error) {
      app.log.error({ err: error }, 'error during shutdown');
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  await app.listen({ port: config.port, host: config.host });
  app.log.info(`FHIR base: ${config.baseUrl} (CapabilityStatement at ${config.baseUrl}/metadata)`);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  console.error('The server could not start:', error);
  process.exit(1);
});
