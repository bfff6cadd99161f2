/**
 * The real app with the real ledger for end-to-end tests: a local Hedera network (the real @hashgraph/sdk talks
 * to it over gRPC), a fresh MongoDB database, the anchoring runtime and buildApp with the ledger routes.
 */
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { buildApp, type AppConfig } from '../../../src/app.js';
import { startLocalHedera, type LocalHedera, type LocalHederaOptions } from '../../../src/dev/hedera/index.js';
import type { LedgerLogger } from '../../../src/ledger/anchor-worker.js';
import {
  SdkHederaLedger,
  type HederaLedger,
  type PreparedTransaction,
  type ReceiptOutcome,
  type SubmitOutcome,
} from '../../../src/ledger/hedera-client.js';
import { LedgerRuntime, localLedgerEndpoint, type LedgerRuntimeOptions } from '../../../src/ledger/ledger-runtime.js';
import { connectMongo, type MongoConnection } from '../../../src/store/mongo.js';
import { ResourceStore } from '../../../src/store/resource-store.js';
import { TEST_CONFIG, testValidator } from '../../helpers/app.js';
import { testMongo, uniqueDbName } from '../../helpers/mongo.js';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: object;
}

export function collectingLogger(lines: LogLine[]): LedgerLogger {
  const push = (level: LogLine['level']) => (fields: object, message: string) => {
    lines.push({ level, message, fields });
  };
  return { debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}

export interface LedgerTestApp {
  app: FastifyInstance;
  runtime: LedgerRuntime;
  net: LocalHedera;
  store: ResourceStore;
  connection: MongoConnection;
  logs: LogLine[];
}

/** Everything a test may change about the runtime; config fields one by one. */
export type RuntimeOverrides = Omit<Partial<LedgerRuntimeOptions>, 'config'> & { config?: Partial<LedgerRuntimeOptions['config']> };

export const LEDGER_TEST_CONFIG = { topicId: undefined, batchMaxLeaves: 10000, batchIntervalMs: 100, leaseTtlMs: 5000, retryMaxMs: 500 };

/** A local network for one test, closed at its end. */
export async function startTestNetwork(t: Test, options: LocalHederaOptions = {}): Promise<LocalHedera> {
  const net = await startLocalHedera({ log: () => {}, ...options });
  t.teardown(() => net.close());
  return net;
}

export function runtimeFor(
  net: LocalHedera,
  connection: MongoConnection,
  logs: LogLine[],
  overrides: RuntimeOverrides = {},
): LedgerRuntime {
  return new LedgerRuntime({
    db: connection.db,
    endpoint: localLedgerEndpoint(net),
    baseUrl: TEST_CONFIG.baseUrl,
    software: 'fhir-ledger-server',
    log: collectingLogger(logs),
    grpcDeadlineMs: 2000,
    requestTimeoutMs: 5000,
    retryMinMs: 50,
    ...overrides,
    config: { ...LEDGER_TEST_CONFIG, ...overrides.config },
  });
}

/**
 * App + ledger on a fresh database; `net` may be shared or restarted by the test. Worker not started.
 * `appConfig` changes the app's configuration (TEST_CONFIG otherwise), e.g. `{ audit: { enabled: true, ... } }`
 * to run with the audit trail on.
 */
export async function startLedgerApp(
  t: Test,
  net: LocalHedera,
  overrides: RuntimeOverrides = {},
  dbName = uniqueDbName('ledger'),
  appConfig: Partial<AppConfig> = {},
): Promise<LedgerTestApp> {
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, dbName);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const logs: LogLine[] = [];
  const runtime = runtimeFor(net, connection, logs, overrides);
  await runtime.init();
  const app = await buildApp(
    { ...TEST_CONFIG, ...appConfig },
    { store, validator: await testValidator(), logger: false, ledger: runtime.service },
  );
  await app.ready();
  t.teardown(async () => {
    await runtime.stop();
    await app.close();
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
  });
  return { app, runtime, net, store, connection, logs };
}

/** The real SDK client for a local network, as the runtime builds it. */
export function sdkLedgerFor(net: LocalHedera): SdkHederaLedger {
  return new SdkHederaLedger({
    network: 'local',
    operatorId: net.operatorId,
    operatorKey: net.operatorKey,
    grpcEndpoint: net.grpcEndpoint,
    nodeAccountId: net.nodeAccountId,
    grpcDeadlineMs: 2000,
    requestTimeoutMs: 5000,
  });
}

/** A HederaLedger that forwards everything to a real one: test doubles override only what they change. */
export class ForwardingLedger implements HederaLedger {
  constructor(protected readonly real: HederaLedger) {}
  get networkLabel(): string {
    return this.real.networkLabel;
  }
  get operatorId(): string {
    return this.real.operatorId;
  }
  prepareTopicCreate(memo: string): Promise<PreparedTransaction> {
    return this.real.prepareTopicCreate(memo);
  }
  prepareMessage(topicId: string, message: Buffer): Promise<PreparedTransaction> {
    return this.real.prepareMessage(topicId, message);
  }
  submit(signedBytes: Buffer): Promise<SubmitOutcome> {
    return this.real.submit(signedBytes);
  }
  receipt(transactionId: string, wait: boolean): Promise<ReceiptOutcome> {
    return this.real.receipt(transactionId, wait);
  }
  consensusTimestamp(transactionId: string): Promise<string> {
    return this.real.consensusTimestamp(transactionId);
  }
  close(): void {
    this.real.close();
  }
}

/**
 * The real SDK client with a hook before each submission of a batch message (not the topic's creation): it may
 * look at the database as it is just before the batch goes out, or throw (the submission then never happens, as
 * when the process dies right before it).
 */
export class HookedLedger extends ForwardingLedger {
  beforeSubmit: (() => Promise<void>) | null = null;
  /** The signed bytes of every batch message prepared, to tell them from the topic's creation. */
  private readonly messages = new Set<string>();
  override async prepareMessage(topicId: string, message: Buffer): Promise<PreparedTransaction> {
    const prepared = await super.prepareMessage(topicId, message);
    this.messages.add(prepared.signedBytes.toString('hex'));
    return prepared;
  }
  override async submit(signedBytes: Buffer): Promise<SubmitOutcome> {
    if (this.messages.has(signedBytes.toString('hex'))) await this.beforeSubmit?.();
    return super.submit(signedBytes);
  }
}

export const patient = (family: string) => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Test'] }],
  gender: 'female',
  birthDate: '1980-01-02',
});

export async function createPatient(app: FastifyInstance, family: string): Promise<{ id: string; versionId: string }> {
  const res = await app.inject({
    method: 'POST',
    url: '/Patient',
    payload: patient(family),
    headers: { 'content-type': 'application/fhir+json' },
  });
  if (res.statusCode !== 201) throw new Error(`create: ${res.statusCode} ${res.body}`);
  const body = res.json() as { id: string; meta: { versionId: string } };
  return { id: body.id, versionId: body.meta.versionId };
}

export async function updatePatient(app: FastifyInstance, id: string, family: string): Promise<string> {
  const res = await app.inject({
    method: 'PUT',
    url: `/Patient/${id}`,
    payload: { ...patient(family), id },
    headers: { 'content-type': 'application/fhir+json' },
  });
  if (res.statusCode !== 200) throw new Error(`update: ${res.statusCode} ${res.body}`);
  return (res.json() as { meta: { versionId: string } }).meta.versionId;
}

/**
 * Polls until every version in the database is anchored, or fails after timeoutMs (bounded): none is pending, and
 * no batch is short of 'anchored' (a version's own anchor only says pending or claimed; its batch says anchored).
 */
export async function waitAnchored(connection: MongoConnection, timeoutMs: number): Promise<void> {
  const versions = connection.db.collection('resource_versions');
  const batches = connection.db.collection('ledger_batches');
  const open = async (): Promise<number> =>
    (await versions.countDocuments({ 'anchor.state': 'pending' })) + (await batches.countDocuments({ state: { $ne: 'anchored' } }));
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    if ((await open()) === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const pending = await versions.find({ 'anchor.state': 'pending' }, { projection: { _id: 1 } }).toArray();
  const unfinished = await batches.find({ state: { $ne: 'anchored' } }, { projection: { _id: 1, state: 1 } }).toArray();
  throw new Error(
    `not anchored after ${timeoutMs} ms: pending ${JSON.stringify(pending.slice(0, 5))}, batches ${JSON.stringify(unfinished)}`,
  );
}

export interface ParameterLike {
  name: string;
  valueCode?: string;
  valueString?: string;
  valueInteger?: number;
  valueUri?: string;
  valueInstant?: string;
  valueBoolean?: boolean;
  part?: ParameterLike[];
}

export function param(body: { parameter?: ParameterLike[] }, name: string): ParameterLike | undefined {
  return body.parameter?.find((p) => p.name === name);
}

export function params(body: { parameter?: ParameterLike[] }, name: string): ParameterLike[] {
  return body.parameter?.filter((p) => p.name === name) ?? [];
}
