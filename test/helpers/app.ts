/** Builds the real app on a fresh database for a test, and tears both down with the test. */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { buildApp, type AppConfig } from '../../src/app.js';
import { connectMongo, type MongoConnection } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { createResourceValidator, type ResourceValidator } from '../../src/fhir/validation/index.js';
import type { FhirContext } from '../../src/fhir/context.js';
import { clientResourceTypes, FEATURED_RESOURCE_TYPES } from '../../src/fhir/resource-types.js';
import { stopTestMongo, testMongo, uniqueDbName } from './mongo.js';
import { UNRESTRICTED_ACCESS } from '../../src/fhir/access/access-policy.js';
import { withoutAccessControl } from '../../src/config.js';

export interface TestApp {
  app: FastifyInstance;
  store: ResourceStore;
  connection: MongoConnection;
}

/** A server that hosts the featured types only (RESOURCE_TYPES=Patient,Encounter,MedicationRequest): how tests reach an unhosted type. */
export const FEATURED_ONLY: Partial<AppConfig> = { resourceTypes: [...FEATURED_RESOURCE_TYPES] };

export const TEST_CONFIG: AppConfig = {
  basePath: '',
  baseUrl: 'http://127.0.0.1:8080',
  bodyLimit: 1024 * 1024,
  logLevel: 'silent',
  referencePolicy: 'lenient',
  // Tests of other features run without authorization and audit; test/auth and test/audit turn them on.
  ...withoutAccessControl('http://127.0.0.1:8080'),
};

let validator: Promise<ResourceValidator> | undefined;

/** One validator per test process: loading the R4 definitions takes a moment. */
export function testValidator(): Promise<ResourceValidator> {
  validator ??= createResourceValidator({ profilesDir: fileURLToPath(new URL('../../profiles', import.meta.url)), log: () => {} });
  return validator;
}

export async function startTestApp(t: Test, overrides: Partial<AppConfig> = {}): Promise<TestApp> {
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, uniqueDbName());
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const app = await buildApp({ ...TEST_CONFIG, ...overrides }, { store, validator: await testValidator(), logger: false });
  await app.ready();
  t.teardown(async () => {
    await app.close();
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
  });
  return { app, store, connection };
}

/** Register once per test file, after the tests: stops the per-process MongoDB. */
export function stopMongoAtEnd(t: Test): void {
  t.teardown(stopTestMongo);
}

/** The FHIR context the app builds, for tests that call the FHIR layer directly (seeding, explain). */
export async function testContext(store: ResourceStore, baseUrl = TEST_CONFIG.baseUrl): Promise<FhirContext> {
  return {
    store,
    validator: await testValidator(),
    baseUrl,
    resourceTypes: clientResourceTypes(),
    referencePolicy: 'lenient',
    now: () => new Date(),
    newId: () => randomUUID(),
    access: UNRESTRICTED_ACCESS,
  };
}
