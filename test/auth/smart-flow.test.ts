/**
 * The whole SMART flow through real sockets: the full app (authorization on, its own authorization server, an
 * external identity provider trusted through OpenID discovery, audit on) listening on 127.0.0.1, driven by
 * third-party libraries where a well-behaved client is wanted:
 *   - openid-client (discovery, private_key_jwt with RS384 and ES384, client_credentials) gets tokens from our token
 *     endpoint over the socket; plain fetch then uses them on the FHIR API;
 *   - oauth2-mock-server plays the hospital's identity provider: its tokens are verified through the JWKS found by
 *     discovery of its issuer;
 *   - fhir-kit-client reads and searches with a bearer token, and sees the 401 without one.
 * Revocation (through the fhir-clients CLI function) and the development client (client_secret_basic, as the README's
 * curl quick start) go through the same sockets.
 */
import type { AuditEvent, Bundle, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { Client, type FhirResource } from 'fhir-kit-client';
import * as oidc from 'openid-client';
import { freePort } from '../helpers/ports.js';
import t, { type Test } from 'tap';
import { runClients } from '../../src/cli/clients-command.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { SECURED_CONFIG, startSecuredApp } from '../helpers/auth.js';
import { testMongo } from '../helpers/mongo.js';
import { startIdentityProvider } from './token-helpers.js';
import { clientKeys, privateKeyJwtClient, type ClientKeys } from './oauth-helpers.js';

// Teardowns run last-registered first: MongoDB stops after the app and the identity provider.
stopMongoAtEnd(t);

// ---- the outside world: an identity provider, and the app listening on a known port --------------------------

const idp = await startIdentityProvider('ES256');
t.teardown(() => idp.stop());

const port = await freePort();
const baseUrl = `http://127.0.0.1:${port}`;
const logLines: string[] = [];
const secured = await startSecuredApp(
  t,
  {
    baseUrl,
    auth: {
      ...SECURED_CONFIG.auth,
      audience: baseUrl,
      // No JWKS URL: the verifier finds it through the issuer's OpenID discovery document.
      externalIssuer: { issuer: idp.url, jwksUrl: undefined },
      server: { enabled: true, tokenTtlSeconds: 300, devClient: false },
    },
  },
  { logger: { level: 'trace', stream: { write: (line: string) => void logLines.push(line) } } },
);
const { app } = secured;
await app.listen({ port, host: '127.0.0.1' });
const authServer = app.auth?.server;
if (!authServer) throw new Error('the app did not open its own authorization server');
const tokenEndpoint = `${baseUrl}/auth/token`;

/** Every token, assertion and secret the tests handle: none may reach the log. */
const secrets: string[] = [];

// ---- helpers ---------------------------------------------------------------------------------------------------

/**
 * openid-client configured by discovery of our issuer (http on loopback needs allowInsecureRequests), with
 * private_key_jwt whose assertion aud is the token endpoint, as SMART Backend Services says. Every assertion it
 * sends is remembered (secrets) through a fetch wrapper.
 */
async function smartClient(clientId: string, keys: ClientKeys): Promise<oidc.Configuration> {
  const config = await privateKeyJwtClient(`${baseUrl}/auth`, tokenEndpoint, clientId, keys);
  config[oidc.customFetch] = (url, options) => {
    if (options.body instanceof URLSearchParams) {
      const assertion = options.body.get('client_assertion');
      if (assertion) secrets.push(assertion);
    }
    return fetch(url, options as RequestInit);
  };
  return config;
}

async function tokenFor(config: oidc.Configuration, scope: string): Promise<string> {
  const tokens = await oidc.clientCredentialsGrant(config, { scope });
  secrets.push(tokens.access_token);
  return tokens.access_token;
}

interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** A request to the FHIR API over the socket, with a bearer token (or none). */
async function api<T = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown): Promise<Answer<T>> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      accept: 'application/fhir+json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/fhir+json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : undefined) as T };
}

function diagnostics(t: Test, body: unknown): string {
  const outcome = body as OperationOutcome;
  t.equal(outcome?.resourceType, 'OperationOutcome', 'the refusal is an OperationOutcome');
  return (outcome?.issue ?? []).map((i) => i.diagnostics ?? '').join(' | ');
}

const newPatient = (family: string): Patient => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Ada'] }],
  gender: 'female',
  birthDate: '1970-01-01',
});

// Made before the first subtest: tap ends the file's test when no subtest is pending at a top-level await.
const rsaKeys = await clientKeys('RS384');
const ecKeys = await clientKeys('ES384');

// ---- the tests -------------------------------------------------------------------------------------------------

t.test('discovery: smart-configuration and the CapabilityStatement point to the token endpoint, without a token', async (t) => {
  const smart = await api<Record<string, unknown>>('GET', '/.well-known/smart-configuration');
  t.equal(smart.status, 200);
  t.match(smart.body, {
    issuer: `${baseUrl}/auth`,
    token_endpoint: tokenEndpoint,
    jwks_uri: `${baseUrl}/auth/jwks`,
  });
  t.ok((smart.body.token_endpoint_auth_methods_supported as string[]).includes('private_key_jwt'), 'private_key_jwt');
  t.same(
    ['RS384', 'ES384'].filter((alg) => (smart.body.token_endpoint_auth_signing_alg_values_supported as string[]).includes(alg)),
    ['RS384', 'ES384'],
    'RS384 and ES384',
  );
  t.ok((smart.body.grant_types_supported as string[]).includes('client_credentials'), 'client_credentials');
  t.ok((smart.body.capabilities as string[]).includes('client-confidential-asymmetric'));

  const metadata = await api<{ rest: Array<{ security?: Record<string, unknown> }> }>('GET', '/metadata');
  t.equal(metadata.status, 200);
  const security = metadata.body.rest[0]!.security as {
    service: Array<{ coding: Array<{ system: string; code: string }> }>;
    extension: Array<{ url: string; extension: Array<{ url: string; valueUri: string }> }>;
  };
  t.match(security.service[0]!.coding[0], {
    system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
    code: 'SMART-on-FHIR',
  });
  const oauthUris = security.extension.find((e) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
  t.same(oauthUris?.extension.find((e) => e.url === 'token')?.valueUri, tokenEndpoint, 'oauth-uris holds the token endpoint');

  // openid-client's own discovery of the issuer agrees.
  const discovered = (
    await oidc.discovery(new URL(`${baseUrl}/auth`), 'any', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] })
  ).serverMetadata();
  t.equal(discovered.token_endpoint, tokenEndpoint);
  t.equal(discovered.issuer, `${baseUrl}/auth`);
});

let patientId = '';

t.test('backend clients (RS384 and ES384) get tokens with openid-client and use them on the FHIR API', async (t) => {
  const writer = await authServer.clients.register({
    name: 'writer (RS384)',
    scopes: ['system/Patient.cruds', 'system/Encounter.rs'],
    jwks: rsaKeys.jwks,
  });
  const reader = await authServer.clients.register({ name: 'reader (ES384)', scopes: ['system/Patient.rs'], jwks: ecKeys.jwks });

  // system/Patient.cruds: create, then read back.
  const writerToken = await tokenFor(await smartClient(writer.clientId, rsaKeys), 'system/Patient.cruds');
  const created = await api<Patient>('POST', '/Patient', writerToken, newPatient('Lovelace'));
  t.equal(created.status, 201, 'created with system/Patient.cruds');
  patientId = created.body.id!;
  t.ok(patientId);
  t.match(created.headers.get('location'), new RegExp(`/Patient/${patientId}/_history/1$`));
  const readBack = await api<Patient>('GET', `/Patient/${patientId}`, writerToken);
  t.equal(readBack.status, 200);
  t.same(readBack.body.name, [{ family: 'Lovelace', given: ['Ada'] }]);

  // system/Patient.rs: read and search, but no create.
  const readerConfig = await smartClient(reader.clientId, ecKeys);
  const readerToken = await tokenFor(readerConfig, 'system/Patient.rs');
  t.equal((await api('GET', `/Patient/${patientId}`, readerToken)).status, 200, 'read with system/Patient.rs');
  const search = await api<Bundle>('GET', `/Patient?_id=${patientId}`, readerToken);
  t.equal(search.status, 200);
  t.equal(search.body.entry?.length, 1, 'search with system/Patient.rs');
  const refused = await api('POST', '/Patient', readerToken, newPatient('Nope'));
  t.equal(refused.status, 403, 'create with system/Patient.rs is forbidden');
  t.match(diagnostics(t, refused.body), /create on Patient needs a scope such as system\/Patient\.c/, 'the 403 names the scope it needs');
  t.match(diagnostics(t, refused.body), /the token grants system\/Patient\.rs/, 'and what the token has');
  t.match(refused.headers.get('www-authenticate'), /error="insufficient_scope"/);

  // Less than registered: system/Patient.r reads but does not search.
  const narrowTokens = await oidc.clientCredentialsGrant(readerConfig, { scope: 'system/Patient.r' });
  secrets.push(narrowTokens.access_token);
  t.equal(narrowTokens.scope, 'system/Patient.r', 'the narrower scope is granted as asked');
  t.equal((await api('GET', `/Patient/${patientId}`, narrowTokens.access_token)).status, 200, 'read with the narrower scope');
  const noSearch = await api('GET', `/Patient?_id=${patientId}`, narrowTokens.access_token);
  t.equal(noSearch.status, 403, 'search needs s, which the narrower token lacks');
  t.match(diagnostics(t, noSearch.body), /search on Patient/);

  // More than registered: the token endpoint refuses, and openid-client reports the OAuth error.
  const wider = await oidc.clientCredentialsGrant(readerConfig, { scope: 'system/Patient.cruds' }).then(
    () => undefined,
    (error: unknown) => error,
  );
  t.ok(wider instanceof oidc.ResponseBodyError, 'openid-client sees an OAuth error response');
  t.equal((wider as oidc.ResponseBodyError).error, 'invalid_scope');
  t.equal((wider as oidc.ResponseBodyError).status, 400);
});

t.test('a token from the external identity provider is accepted through its JWKS found by discovery', async (t) => {
  // A second patient, outside the launch context of the identity provider's token.
  const seeder = await authServer.clients.register({ name: 'seeder', scopes: ['system/Patient.c'], jwks: rsaKeys.jwks });
  const seederToken = await tokenFor(await smartClient(seeder.clientId, rsaKeys), 'system/Patient.c');
  const otherPatient = await api<Patient>('POST', '/Patient', seederToken, newPatient('Elsewhere'));
  t.equal(otherPatient.status, 201);

  const external = (claims: Record<string, unknown>, issuer = idp) =>
    issuer.issuer.buildToken({
      scopesOrTransform: (_header, payload) => {
        Object.assign(payload, {
          aud: baseUrl,
          scope: 'launch/patient patient/Patient.rs openid fhirUser',
          client_id: 'ehr-app',
          patient: patientId,
          fhirUser: `${baseUrl}/Practitioner/pr-1`,
          ...claims,
        });
      },
    });
  const requestsBefore = idp.requests.length;
  const token = await external({});
  secrets.push(token);
  const read = await api<Patient>('GET', `/Patient/${patientId}`, token);
  t.equal(read.status, 200, 'the identity provider token reads the patient of its launch context');
  t.equal(read.body.id, patientId);
  const fetched = idp.requests.slice(requestsBefore);
  t.ok(fetched.includes('/.well-known/openid-configuration'), 'the issuer was discovered');
  t.ok(fetched.includes('/jwks'), 'and its JWKS fetched from the jwks_uri it published');

  const outside = await api('GET', `/Patient/${otherPatient.body.id}`, token);
  t.equal(outside.status, 403, "another patient is outside the token's compartment");
  t.match(diagnostics(t, outside.body), new RegExp(`compartment of Patient/${patientId}`));

  const wrongAudience = await external({ aud: 'https://other-fhir.example.org/fhir' });
  secrets.push(wrongAudience);
  const refusedAud = await api('GET', `/Patient/${patientId}`, wrongAudience);
  t.equal(refusedAud.status, 401, 'a token for another audience is refused');
  t.match(
    refusedAud.headers.get('www-authenticate'),
    /^Bearer realm="[^"]+", error="invalid_token", error_description="the token is not meant for this server \(aud\)"$/,
  );
  t.match(diagnostics(t, refusedAud.body), /aud/);

  // An identity provider we do not trust: same claims, its own issuer URL and keys.
  const stranger = await startIdentityProvider('ES256');
  t.teardown(() => stranger.stop());
  const strangerToken = await external({}, stranger);
  secrets.push(strangerToken);
  const refusedIss = await api('GET', `/Patient/${patientId}`, strangerToken);
  t.equal(refusedIss.status, 401, 'a token from an issuer we do not trust is refused');
  t.match(
    refusedIss.headers.get('www-authenticate'),
    /error="invalid_token", error_description="the token was not issued by an issuer this server trusts"/,
  );
  t.same(stranger.requests, [], 'the untrusted issuer was not contacted');

  // The stranger's key under the trusted issuer's name: no key of the trusted issuer verifies it.
  const forged = await stranger.issuer.buildToken({
    scopesOrTransform: (_header, payload) => {
      Object.assign(payload, { iss: idp.url, aud: baseUrl, scope: 'patient/Patient.rs', patient: patientId });
    },
  });
  secrets.push(forged);
  const refusedForged = await api('GET', `/Patient/${patientId}`, forged);
  t.equal(refusedForged.status, 401, 'a token signed with a key the trusted issuer does not publish is refused');
  t.match(refusedForged.headers.get('www-authenticate'), /error="invalid_token"/);
});

t.test('revocation: the token endpoint refuses at once, the FHIR API within 3 seconds', async (t) => {
  const keys = await clientKeys('ES384');
  const { clientId } = await authServer.clients.register({ name: 'to be revoked', scopes: ['system/Patient.rs'], jwks: keys.jwks });
  const config = await smartClient(clientId, keys);
  const token = await tokenFor(config, 'system/Patient.rs');
  // Used once: the verification and the client's status are now cached by the server.
  t.equal((await api('GET', `/Patient/${patientId}`, token)).status, 200);

  const out: string[] = [];
  const err: string[] = [];
  const mongo = await testMongo();
  const revokedAt = Date.now();
  const code = await runClients(
    ['revoke', clientId, '--mongodb', mongo.uri, '--db', secured.connection.db.databaseName],
    {},
    { write: (s: string) => out.push(s) },
    { write: (s: string) => err.push(s) },
  );
  t.equal(code, 0, err.join(''));
  t.match(out.join(''), new RegExp(`revoked ${clientId}`));

  const again = await oidc.clientCredentialsGrant(config, { scope: 'system/Patient.rs' }).then(
    () => undefined,
    (error: unknown) => error,
  );
  t.ok(again instanceof oidc.ResponseBodyError, 'the token endpoint refuses a new token');
  t.equal((again as oidc.ResponseBodyError).error, 'invalid_client');
  t.ok(Date.now() - revokedAt < 3_000, 'at once');

  let last: Answer | undefined;
  for (let attempt = 0; attempt < 60 && Date.now() - revokedAt < 3_000; attempt++) {
    last = await api('GET', `/Patient/${patientId}`, token);
    if (last.status !== 200) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const elapsed = Date.now() - revokedAt;
  t.equal(last?.status, 401, `the FHIR API refuses the revoked client's token (after ${elapsed} ms)`);
  t.ok(elapsed < 3_000, 'within 3 seconds');
  t.match(
    last?.headers.get('www-authenticate'),
    new RegExp(`error="invalid_token", error_description="the client ${clientId} has been revoked"`),
  );
});

t.test('the development client: client_secret_basic with plain fetch, as curl would', async (t) => {
  const dev = await authServer.clients.ensureDevClient(['system/*.rs']);
  secrets.push(dev.clientSecret);
  const response = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${dev.clientId}:${dev.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials&scope=system%2F*.rs',
  });
  t.equal(response.status, 200);
  t.equal(response.headers.get('cache-control'), 'no-store');
  const tokens = (await response.json()) as { access_token: string; token_type: string; expires_in: number; scope: string };
  secrets.push(tokens.access_token);
  t.equal(tokens.token_type, 'Bearer');
  t.equal(tokens.expires_in, 300);
  t.equal(tokens.scope, 'system/*.rs');

  const search = await api<Bundle>('GET', `/Patient?_id=${patientId}`, tokens.access_token);
  t.equal(search.status, 200, 'the dev token searches');
  t.equal(search.body.entry?.length, 1);
  t.equal((await api('POST', '/Patient', tokens.access_token, newPatient('Dev'))).status, 403, 'but it cannot write');

  const wrong = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${dev.clientId}:wrong`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials&scope=system%2F*.rs',
  });
  t.equal(wrong.status, 401);
  t.equal(((await wrong.json()) as { error: string }).error, 'invalid_client');
});

t.test('fhir-kit-client with a bearer token reads and searches; without one it sees 401', async (t) => {
  const keys = await clientKeys('RS384');
  const { clientId } = await authServer.clients.register({ name: 'fhir-kit', scopes: ['system/Patient.rs'], jwks: keys.jwks });
  const token = await tokenFor(await smartClient(clientId, keys), 'system/Patient.rs');

  const client = new Client({ baseUrl, bearerToken: token });
  const read = (await client.read({ resourceType: 'Patient', id: patientId })) as Patient;
  t.equal(read.id, patientId);
  t.equal(read.name?.[0]?.family, 'Lovelace');
  const bundle = (await client.search({ resourceType: 'Patient', searchParams: { family: 'Lovelace' } })) as unknown as Bundle<Patient>;
  t.equal(bundle.type, 'searchset');
  t.same(
    bundle.entry?.map((e) => e.resource?.id),
    [patientId],
  );
  t.equal(((await client.capabilityStatement()) as FhirResource).resourceType, 'CapabilityStatement');

  const anonymous = new Client({ baseUrl });
  t.equal(
    ((await anonymous.capabilityStatement()) as FhirResource).resourceType,
    'CapabilityStatement',
    'the CapabilityStatement is public',
  );
  const failure = await anonymous.read({ resourceType: 'Patient', id: patientId }).then(
    () => undefined,
    (error: unknown) => error as { response?: { status?: number; data?: unknown } },
  );
  t.equal(failure?.response?.status, 401, 'without a token the client sees 401');
  const data = failure?.response?.data;
  t.match(typeof data === 'string' ? JSON.parse(data) : data, { resourceType: 'OperationOutcome', issue: [{ code: 'login' }] });
});

t.test('the audit trail, read with a system/AuditEvent.rs token, names the clients; nothing secret reached the log', async (t) => {
  await secured.flushAudit();
  const keys = await clientKeys('ES384');
  const { clientId } = await authServer.clients.register({ name: 'auditor', scopes: ['system/AuditEvent.rs'], jwks: keys.jwks });
  const token = await tokenFor(await smartClient(clientId, keys), 'system/AuditEvent.rs');
  const page = await api<Bundle<AuditEvent>>('GET', '/AuditEvent?_count=500', token);
  t.equal(page.status, 200);
  const events = (page.body.entry ?? []).map((e) => e.resource!);
  t.ok(events.length > 10, `${events.length} AuditEvents`);
  const clientsNamed = new Set(
    events.flatMap((e) => e.agent.map((a) => a.who?.identifier?.value).filter((v): v is string => v !== undefined)),
  );
  t.ok(clientsNamed.has('ehr-app'), "the identity provider's client is named");
  t.ok(clientsNamed.has('dev-client'), 'the development client is named');
  const refusedExternal = events.filter(
    (e) => e.outcome !== '0' && e.agent.some((a) => /no valid access token/.test(a.who?.display ?? '')),
  );
  t.ok(refusedExternal.length > 0, 'refused requests are audited too');
  t.notOk(JSON.stringify(events).includes('eyJ'), 'no JWT is stored in an AuditEvent');

  t.ok(logLines.length > 0, `${logLines.length} log lines captured`);
  const logged = logLines.join('');
  const leaked = secrets.filter((secret) => logged.includes(secret));
  t.same(leaked.length, 0, `none of ${secrets.length} tokens, assertions and secrets is in the log`);
  t.ok(secrets.length >= 10);
});
