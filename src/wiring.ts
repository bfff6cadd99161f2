/**
 * The dependencies buildApp needs that hold state — the MongoDB connection with its ResourceStore, and the
 * validator with the project's profiles — opened the same way by the server (main.ts) and by tools that run the
 * app in-process (the import CLI's --mongodb mode), so both validate, index and store exactly alike.
 */
import { fileURLToPath } from 'node:url';
import type { ServerConfig } from './config.js';
import { createResourceValidator, type ResourceValidator } from './fhir/validation/index.js';
import { PROJECT_ROOT } from './software.js';
import { connectMongo, type MongoConnection } from './store/mongo.js';
import { ResourceStore } from './store/resource-store.js';

export interface StoreAndValidator {
  connection: MongoConnection;
  store: ResourceStore;
  validator: ResourceValidator;
}

export async function openStoreAndValidator(
  uri: string,
  config: Pick<ServerConfig, 'mongodbDb' | 'requiredProfiles'> & { search?: Pick<ServerConfig['search'], 'timeoutMs'> },
  log: (message: string) => void,
  /** An already built validator (tests build one per process: loading the R4 definitions takes seconds). */
  validator?: ResourceValidator,
): Promise<StoreAndValidator> {
  const connection = await connectMongo(uri, config.mongodbDb);
  try {
    const store = new ResourceStore(connection.db, connection.supportsTransactions, config.search?.timeoutMs);
    await store.ensureIndexes();
    return {
      connection,
      store,
      validator:
        validator ??
        (await createResourceValidator({
          profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)),
          requiredProfiles: config.requiredProfiles,
          log: (message) => log(`validation: ${message}`),
        })),
    };
  } catch (error) {
    await connection.close().catch(() => undefined);
    throw error;
  }
}
