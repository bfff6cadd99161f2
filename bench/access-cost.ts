/**
 * What authorization and audit cost: the same creates, reads and searches against two apps on one database, one
 * with neither (AUTH_MODE=off, AUDIT_ENABLED=false) and one with both (SMART tokens verified with the issuer's keys,
 * an AuditEvent for every request: committed with each create, buffered for reads and searches), interleaved
 * round by round (off, on, on, off, ...) so that a noisy machine drifts both sides alike. Throughput is compared
 * as a ratio within the run, never across runs.
 *
 * The token is reused by every request, as a client does for its token's lifetime (the verifier then checks the
 * signature once and its cache answers after); one row also sends a new token with every request, the worst case.
 * The anchoring worker is not running here (as in the rest of `npm run bench:population`): AuditEvents add leaves to the
 * ledger batches later, which `npm run bench:ledger` measures.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { buildApp } from '../src/app.js';
import { AccessTokenVerifier } from '../src/auth/access-tokens.js';
import type { OpenedAuth } from '../src/auth/index.js';
import { withoutAccessControl, type ServerConfig } from '../src/config.js';
import type { ResourceValidator } from '../src/fhir/validation/index.js';
import type { ResourceStore } from '../src/store/resource-store.js';
import { measure, type Measurement } from './measure.js';
import { childCpuMs } from './mongo-process.js';
import { generatePatient, mulberry32, patientId } from './population.js';

const FHIR_JSON = 'application/fhir+json';
const ISSUER = 'https://idp.bench.example/realms/hospital';

export interface AccessCostOptions {
  store: ResourceStore;
  /** The database the store uses, for the audit worker thread's own connection (as the server runs it). */
  database: { mongoUri: string; dbName: string };
  /** The MongoDB child process, whose CPU time counts too (undefined: a server given by URI, not measured). */
  mongoPid: number | undefined;
  validator: ResourceValidator;
  baseUrl: string;
  seed: number;
  patients: number;
  requests: number;
  concurrency: number;
  maxSeconds: number;
  rounds: number;
  /** Numbers of new patients start here (beyond the population and the main bench's creates). */
  firstNewPatient: number;
  log: (message: string) => void;
}

export interface AccessCostRow {
  operation: string;
  /** Throughput per round, without and with authorization and audit. */
  off: number[];
  on: number[];
  /**
   * CPU time per request (ms) per round: this process (server and HTTP client, every thread) plus the MongoDB
   * child. Steadier than throughput on a shared machine, and what the cost is on a busy one.
   */
  cpuOff: number[];
  cpuOn: number[];
}

export interface AccessCostResult {
  rows: AccessCostRow[];
  auditEvents: number;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** A bench identity provider: one ES256 key the secured app trusts. */
export async function benchIssuer(audience: string): Promise<{ auth: OpenedAuth; token: (scope: string) => Promise<string> }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }] };
  const auth: OpenedAuth = {
    verifier: new AccessTokenVerifier({
      issuers: [{ issuer: ISSUER, keys: { kind: 'local', jwks: () => jwks }, own: false }],
      audience,
      clockSkewSeconds: 30,
    }),
    server: undefined,
    smartConfiguration: () => ({ issuer: ISSUER }),
    tokenEndpoint: undefined,
    close: async () => undefined,
  };
  const token = (scope: string) =>
    new SignJWT({ scope, client_id: 'bench-client', sub: 'bench-client', jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'bench', typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(privateKey);
  return { auth, token };
}

/** Authorization on (tokens of the bench issuer) and audit on, as the server runs by default. */
export function securedSettings(baseUrl: string): Pick<ServerConfig, 'auth' | 'audit' | 'exposure'> {
  return {
    auth: {
      mode: 'smart',
      audience: baseUrl,
      externalIssuer: undefined,
      clockSkewSeconds: 30,
      server: { enabled: false, tokenTtlSeconds: 300, devClient: false },
    },
    audit: { enabled: true, flushIntervalMs: 200, bufferMax: 5000 },
    exposure: { corsOrigins: [], rateLimitPerMinute: 0 },
  };
}

export async function measureAccessCost(options: AccessCostOptions): Promise<AccessCostResult> {
  const { store, validator, baseUrl, seed, patients, requests, concurrency } = options;
  const base = { basePath: '', baseUrl, bodyLimit: 64 * 1024 * 1024, logLevel: 'silent' as const, referencePolicy: 'strict' as const };
  const plain = await buildApp({ ...base, ...withoutAccessControl(baseUrl) }, { store, validator, logger: false });
  const issuer = await benchIssuer(baseUrl);
  const secured = await buildApp(
    { ...base, ...securedSettings(baseUrl) },
    { store, validator, logger: false, auth: issuer.auth, auditWorker: options.database },
  );
  const addresses = { off: await plain.listen({ port: 0, host: '127.0.0.1' }), on: await secured.listen({ port: 0, host: '127.0.0.1' }) };
  const token = `Bearer ${await issuer.token('system/*.cruds')}`;

  const call = async (
    side: 'off' | 'on',
    method: string,
    path: string,
    body: unknown,
    expected: number,
    authorization?: string,
  ): Promise<Response> => {
    const headers: Record<string, string> = { accept: FHIR_JSON };
    if (body !== undefined) headers['content-type'] = FHIR_JSON;
    if (side === 'on') headers.authorization = authorization ?? token;
    const res = await fetch(`${addresses[side]}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status !== expected) throw new Error(`${side} ${method} ${path}: ${res.status} ${(await res.text()).slice(0, 300)}`);
    await res.arrayBuffer();
    return res;
  };

  const pick = mulberry32(seed ^ 0x5bd1e995);
  const anyPatient = () => patientId(Math.floor(pick() * patients));
  let nextNew = options.firstNewPatient;
  const family = (i: number) => generatePatient(seed, i % patients).patient.name?.[0]?.family?.slice(0, 3) ?? 'Smi';
  const operations: Array<{ name: string; op: (side: 'off' | 'on', i: number) => Promise<void> }> = [
    {
      name: 'create Patient',
      op: async (side) => {
        const { id: _id, ...patient } = generatePatient(seed, nextNew++).patient;
        await call(side, 'POST', '/Patient', patient, 201);
      },
    },
    { name: 'read Patient', op: async (side) => void (await call(side, 'GET', `/Patient/${anyPatient()}`, undefined, 200)) },
    {
      name: 'search Patient?family=<3 letters>&_count=20',
      op: async (side, i) => void (await call(side, 'GET', `/Patient?family=${encodeURIComponent(family(i))}&_count=20`, undefined, 200)),
    },
    {
      name: 'search Encounter?subject=<patient>&_include=Encounter:subject',
      op: async (side) =>
        void (await call(side, 'GET', `/Encounter?subject=Patient/${anyPatient()}&_include=Encounter:subject`, undefined, 200)),
    },
  ];
  // The worst case for the verifier: a token it has never seen, every request (a signature check each time).
  const freshTokens: string[] = [];
  for (let i = 0; i < Math.min(requests, 2000); i++) freshTokens.push(`Bearer ${await issuer.token('system/*.cruds')}`);
  let fresh = 0;
  operations.push({
    name: 'read Patient, a new token every request',
    op: async (side) =>
      void (await call(side, 'GET', `/Patient/${anyPatient()}`, undefined, 200, freshTokens[fresh++ % freshTokens.length])),
  });

  const rows: AccessCostRow[] = operations.map((o) => ({ operation: o.name, off: [], on: [], cpuOff: [], cpuOn: [] }));
  try {
    // Warm both sides (JIT, caches, the secured side's first token verification).
    for (const side of ['off', 'on'] as const) {
      for (const { op } of operations) await measure('warm-up', 20, concurrency, (i) => op(side, i));
    }
    for (let round = 0; round < options.rounds; round++) {
      for (const [index, { name, op }] of operations.entries()) {
        const order: Array<'off' | 'on'> = (round + index) % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
        for (const side of order) {
          const cpuBefore = process.cpuUsage();
          const childBefore = childCpuMs(options.mongoPid);
          const m: Measurement = await measure(`${name} (${side})`, requests, concurrency, (i) => op(side, i), {
            maxSeconds: options.maxSeconds,
          });
          const cpu = process.cpuUsage(cpuBefore);
          const cpuMs = ((cpu.user + cpu.system) / 1000 + childCpuMs(options.mongoPid) - childBefore) / Math.max(1, m.count);
          rows[index][side].push(m.throughput);
          rows[index][side === 'off' ? 'cpuOff' : 'cpuOn'].push(cpuMs);
          options.log(
            `access cost, round ${round + 1}: ${m.name}: ${m.throughput.toFixed(0)}/s, p50 ${m.p50.toFixed(1)} ms, ${cpuMs.toFixed(2)} ms CPU per request`,
          );
        }
      }
    }
    await secured.auditRecorder?.flush();
    const auditEvents = await store.versions.countDocuments({ type: 'AuditEvent' });
    return { rows, auditEvents };
  } finally {
    await plain.close();
    await secured.close();
  }
}

/**
 * The report section: median throughput and CPU per request, off and on, and the cost of both together by each
 * (throughput lost; CPU added per request).
 */
export function accessCostTable(result: AccessCostResult): string {
  const lines = [
    '| operation | without auth and audit (/s) | with both (/s) | throughput cost | CPU per request, off / on (ms) | CPU cost | rounds (off / on, /s) |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const row of result.rows) {
    const off = median(row.off);
    const on = median(row.on);
    const cost = off > 0 ? (1 - on / off) * 100 : 0;
    const cpuOff = median(row.cpuOff);
    const cpuOn = median(row.cpuOn);
    const cpuCost = cpuOff > 0 ? (cpuOn / cpuOff - 1) * 100 : 0;
    const rounds = row.off.map((value, i) => `${value.toFixed(0)} / ${(row.on[i] ?? 0).toFixed(0)}`).join(', ');
    lines.push(
      `| ${row.operation.replace(/\|/g, '\\|')} | ${off.toFixed(0)} | ${on.toFixed(0)} | ${cost.toFixed(1)} % | ` +
        `${cpuOff.toFixed(2)} / ${cpuOn.toFixed(2)} | ${cpuCost.toFixed(1)} % | ${rounds} |`,
    );
  }
  return lines.join('\n');
}
