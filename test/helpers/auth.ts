/**
 * Apps with authorization and audit on, for tests: a test identity provider whose keys the app trusts (tokens of
 * any shape are minted in-process with jose), or the server's own authorization server. The app's AuditEvents are
 * written at once after each flush tick (50 ms), and `flushAudit` writes whatever is still buffered.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { SignJWT, exportJWK, generateKeyPair, type JWK, type JWTPayload } from 'jose';
import type { Test } from 'tap';
import { buildApp, type AppConfig, type AppDependencies } from '../../src/app.js';
import { AccessTokenVerifier } from '../../src/auth/access-tokens.js';
import type { OpenedAuth } from '../../src/auth/index.js';
import { connectMongo, type MongoConnection } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { TEST_CONFIG, testValidator } from './app.js';
import { testMongo, uniqueDbName } from './mongo.js';

export const TEST_ISSUER = 'https://idp.test.example/realms/hospital';
export const TEST_AUDIENCE = TEST_CONFIG.baseUrl;

/** Claims of a test token; `scope` is a space-separated SMART scope string. */
export interface TokenClaims extends JWTPayload {
  scope?: string;
  client_id?: string;
  patient?: string;
  fhirUser?: string;
}

export interface TestIssuer {
  issuer: string;
  jwks: { keys: JWK[] };
  /** A signed access token: defaults aud = TEST_AUDIENCE, iss = issuer, exp in 5 minutes, client_id 'test-client'. */
  token(claims: TokenClaims, options?: { expiresInSeconds?: number; audience?: string; issuer?: string }): Promise<string>;
}

let issuer: Promise<TestIssuer> | undefined;

/** One signing key per test process. */
export function testIssuer(): Promise<TestIssuer> {
  issuer ??= (async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' };
    return {
      issuer: TEST_ISSUER,
      jwks: { keys: [jwk] },
      token: async (claims, options = {}) => {
        const now = Math.floor(Date.now() / 1000);
        return new SignJWT({ client_id: 'test-client', sub: claims.client_id ?? 'test-client', jti: randomUUID(), ...claims })
          .setProtectedHeader({ alg: 'ES256', kid: 'test-key', typ: 'at+jwt' })
          .setIssuer(options.issuer ?? TEST_ISSUER)
          .setAudience(options.audience ?? TEST_AUDIENCE)
          .setIssuedAt(now)
          .setExpirationTime(now + (options.expiresInSeconds ?? 300))
          .sign(privateKey);
      },
    };
  })();
  return issuer;
}

/** Authentication that trusts the test issuer only (no authorization server of our own). */
export async function testIssuerAuth(): Promise<OpenedAuth> {
  const test = await testIssuer();
  return {
    verifier: new AccessTokenVerifier({
      issuers: [{ issuer: test.issuer, keys: { kind: 'local', jwks: () => test.jwks }, own: false }],
      audience: TEST_AUDIENCE,
      clockSkewSeconds: 30,
    }),
    server: undefined,
    smartConfiguration: () => ({ issuer: test.issuer, token_endpoint: `${test.issuer}/token`, capabilities: ['permission-v2'] }),
    tokenEndpoint: `${test.issuer}/token`,
    close: async () => undefined,
  };
}

/** Authorization on (test issuer), audit on, flushed every 50 ms. */
export const SECURED_CONFIG: AppConfig = {
  ...TEST_CONFIG,
  auth: {
    mode: 'smart',
    audience: TEST_AUDIENCE,
    externalIssuer: undefined,
    clockSkewSeconds: 30,
    server: { enabled: false, tokenTtlSeconds: 300, devClient: false },
  },
  audit: { enabled: true, flushIntervalMs: 50, bufferMax: 5000 },
  exposure: { corsOrigins: [], rateLimitPerMinute: 0 },
};

export interface SecuredApp {
  app: FastifyInstance;
  store: ResourceStore;
  connection: MongoConnection;
  issuer: TestIssuer;
  /** `Authorization` header value for a token with these scopes (and claims). */
  bearer(scope: string, claims?: TokenClaims): Promise<string>;
  /** Writes the buffered AuditEvents now. */
  flushAudit(): Promise<void>;
}

/** The app with authorization and audit on, on a fresh database; `deps` may replace the authentication. */
export async function startSecuredApp(
  t: Test,
  overrides: Partial<AppConfig> = {},
  deps: Partial<AppDependencies> = {},
): Promise<SecuredApp> {
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, uniqueDbName('secured'));
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const config = { ...SECURED_CONFIG, ...overrides };
  const auth = deps.auth ?? (config.auth.mode === 'smart' && !config.auth.server.enabled ? await testIssuerAuth() : undefined);
  const app = await buildApp(config, { store, validator: await testValidator(), logger: false, ...deps, ...(auth ? { auth } : {}) });
  await app.ready();
  t.teardown(async () => {
    await app.close();
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
  });
  const test = await testIssuer();
  return {
    app,
    store,
    connection,
    issuer: test,
    bearer: async (scope, claims = {}) => `Bearer ${await test.token({ scope, ...claims })}`,
    flushAudit: async () => {
      await app.auditRecorder?.flush();
    },
  };
}
