/**
 * Where the time goes, for a CPU profile: N single creates over real HTTP (--what create), N reads of 2,000 loaded
 * patients (--what read), N searches `Patient?family=<name>&_count=20` over them (--what search), or the bulk
 * loader on N patients (--what load), against the embedded MongoDB started IN THIS process, so one profile shows the
 * FHIR server and the database together.
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/profile.js --what create --count 2000
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildApp } from '../src/app.js';
import { startEmbeddedMongo } from '../src/dev/mongo/index.js';
import { createResourceValidator } from '../src/fhir/validation/index.js';
import { PROJECT_ROOT } from '../src/software.js';
import { connectMongo } from '../src/store/mongo.js';
import { ResourceStore } from '../src/store/resource-store.js';
import { loadPopulation } from './load-population.js';
import { measure } from './measure.js';
import { FAMILY_NAMES, generatePatient, patientId } from './population.js';
import { benchIssuer, securedSettings } from './access-cost.js';
import { benchMongo, childCpuMs } from './mongo-process.js';
import { withoutAccessControl } from '../src/config.js';
import { startLocalHedera } from '../src/dev/hedera/index.js';
import { LedgerRuntime, localLedgerEndpoint } from '../src/ledger/ledger-runtime.js';

const { values } = parseArgs({
  options: {
    what: { type: 'string', default: 'create' },
    count: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    /** Authorization and audit on (a bench issuer's token on every request). */
    secured: { type: 'boolean', default: false },
    /** With --secured: 'auth' or 'audit' alone, or 'both' (default). */
    variant: { type: 'string', default: 'both' },
    /** MongoDB in a child process (as npm run bench runs it): the profile then shows the server alone. */
    'child-mongo': { type: 'boolean', default: false },
    /** The ledger on (the local Hedera network, every version anchored), as `npm run bench` runs. */
    ledger: { type: 'boolean', default: false },
  },
});

async function main(): Promise<void> {
  // MONGODB_URI: a server started apart (e.g. the embedded one under `node --cpu-prof`, to profile the database side).
  const configured = process.env.MONGODB_URI;
  const mongo: { uri: string; close: () => Promise<void>; pid?: number } = configured
    ? { uri: configured, close: async () => undefined }
    : values['child-mongo']
      ? await (async () => {
          const child = await benchMongo({ heapMb: 4096, log: () => {} });
          return { uri: child.uri, close: () => child.stop(), pid: child.pid };
        })()
      : await startEmbeddedMongo({ port: 0 });
  const connection = await connectMongo(mongo.uri, 'profile');
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const validator = await createResourceValidator({ profilesDir: fileURLToPath(new URL('profiles', PROJECT_ROOT)), log: () => {} });
  const baseUrl = 'http://127.0.0.1';
  const issuer = await benchIssuer(baseUrl);
  const net = values.ledger ? await startLocalHedera({ log: () => {} }) : undefined;
  const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  const runtime = net
    ? new LedgerRuntime({
        db: connection.db,
        config: { topicId: undefined, batchMaxLeaves: 10_000, batchIntervalMs: 1000, leaseTtlMs: 15_000, retryMaxMs: 5_000 },
        endpoint: localLedgerEndpoint(net),
        baseUrl,
        software: 'fhir-ledger-server',
        log: silent,
      })
    : undefined;
  await runtime?.init();
  runtime?.start();
  const app = await buildApp(
    {
      basePath: '',
      baseUrl,
      bodyLimit: 16 * 1024 * 1024,
      logLevel: 'silent',
      referencePolicy: 'strict',
      ...withoutAccessControl(baseUrl),
      ...(values.secured ? securedSettings(baseUrl) : {}),
      ...(values.secured && values.variant === 'auth' ? { audit: withoutAccessControl(baseUrl).audit } : {}),
      ...(values.secured && values.variant === 'audit' ? { auth: withoutAccessControl(baseUrl).auth } : {}),
    },
    {
      store,
      validator,
      logger: false,
      ...(values.secured ? { auth: issuer.auth, auditWorker: { mongoUri: mongo.uri, dbName: 'profile' } } : {}),
      ...(runtime ? { ledger: runtime.service } : {}),
    },
  );
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const authorization: Record<string, string> = values.secured ? { authorization: `Bearer ${await issuer.token('system/*.cruds')}` } : {};
  const onPopulation = values.what === 'read' || values.what === 'search';
  if (values.what === 'load' || onPopulation) {
    const load = await loadPopulation({ store, baseUrl, seed: 1, from: 0, to: onPopulation ? 2000 : Number(values.count) });
    console.log(JSON.stringify({ ...load, perSecond: load.resources / load.seconds }));
  }
  // The loaded population anchored before measuring, as `npm run bench` waits for it.
  while (runtime && (await connection.db.collection('resource_versions').countDocuments({ 'anchor.state': 'pending' }, { limit: 1 })) > 0) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const count = Number(values.count);
  // CPU time of this process (server and embedded MongoDB together) per request: steadier than wall time on a
  // shared machine.
  const cpuBefore = process.cpuUsage();
  const childBefore = childCpuMs(mongo.pid);
  const get = async (path: string): Promise<void> => {
    const res = await fetch(`${address}${path}`, { headers: { ...authorization } });
    if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  };
  const create = async (i: number): Promise<void> => {
    const { id: _id, ...patient } = generatePatient(1, i).patient;
    const res = await fetch(`${address}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', ...authorization },
      body: JSON.stringify(patient),
    });
    if (res.status !== 201) throw new Error(`${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  };
  const concurrency = Number(values.concurrency);
  const result =
    values.what === 'read'
      ? await measure('read Patient', count, concurrency, (i) => get(`/Patient/${patientId(i % 2000)}`))
      : values.what === 'search'
        ? await measure('search Patient?family=<name>&_count=20', count, concurrency, (i) =>
            get(`/Patient?family=${FAMILY_NAMES[i % FAMILY_NAMES.length]}&_count=20`),
          )
        : await measure('create Patient', values.what === 'create' ? count : 0, concurrency, create);
  const cpu = process.cpuUsage(cpuBefore);
  const childMs = childCpuMs(mongo.pid) - childBefore;
  console.log(
    JSON.stringify({
      ...result,
      cpuMsPerRequest: (cpu.user + cpu.system) / 1000 / Math.max(1, result.count),
      ...(mongo.pid ? { mongoCpuMsPerRequest: childMs / Math.max(1, result.count) } : {}),
    }),
  );
  await app.close();
  await runtime?.stop();
  await net?.close();
  await connection.close();
  await mongo.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
