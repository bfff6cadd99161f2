/**
 * The server's own authorization server (SMART Backend Services) over a real socket, driven by a third-party OAuth
 * client library (openid-client) where a well-behaved client is wanted, and by hand-made requests for the attacks.
 */
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, UnsecuredJWT, type JWTPayload } from 'jose';
import { MongoClient } from 'mongodb';
import * as oidc from 'openid-client';
import t from 'tap';
import { ClientRegistry } from '../../src/auth/clients.js';
import { OAuthStore } from '../../src/store/oauth-store.js';
import { stopTestMongo, testMongo, uniqueDbName } from '../helpers/mongo.js';
import {
  assertion,
  assertionGrant,
  BASE_PATH,
  clientKeys,
  hostJwks,
  openSocket,
  privateKeyJwtClient,
  startAuthServer,
  tokenRequest,
  type ClientKeys,
  type RunningAuthServer,
} from './oauth-helpers.js';

const TTL = 300;
const mongo = await testMongo();
const mongoClient = new MongoClient(mongo.uri);
await mongoClient.connect();
t.teardown(async () => {
  await mongoClient.close();
  await stopTestMongo();
});

const socket = await openSocket();
t.teardown(() => socket.close());
const db = mongoClient.db(uniqueDbName('oauth'));
const running = await startAuthServer(socket, db, { tokenTtlSeconds: TTL });
t.teardown(() => running.close());
const { auth } = running;

/** Everything secret the tests handle: none of it may appear in the server's log. */
const secrets: string[] = [];

const [rsaKeys, ecKeys] = await Promise.all([clientKeys('RS384'), clientKeys('ES384')]);
const rsaClient = await auth.clients.register({
  name: 'RSA backend',
  scopes: ['system/Patient.rs', 'system/Encounter.rs'],
  jwks: rsaKeys.jwks,
});
const ecClient = await auth.clients.register({
  name: 'EC backend',
  scopes: ['system/*.cruds', 'system/Observation.rs?category=laboratory', 'system/Patient.read'],
  jwks: ecKeys.jwks,
});

/** openid-client, configured by discovery, authenticating with private_key_jwt (aud = the token endpoint, as SMART says). */
async function smartClient(clientId: string, keys: ClientKeys, server: RunningAuthServer = running): Promise<oidc.Configuration> {
  return privateKeyJwtClient(server.auth.issuer, server.auth.tokenEndpoint, clientId, keys);
}

/** Verifies an access token with jose against the JWKS fetched over http from the jwks endpoint. */
async function verifyAccessToken(token: string, server: RunningAuthServer = running): Promise<JWTPayload> {
  const jwks = createRemoteJWKSet(new URL(server.auth.jwksUri));
  const { payload } = await jwtVerify(token, jwks, {
    issuer: server.auth.issuer,
    audience: server.base,
    typ: 'at+jwt',
    algorithms: ['ES384'],
  });
  return payload;
}

t.test('discovery: OpenID configuration under the issuer, SMART configuration at the FHIR base, JWKS', async (t) => {
  t.equal(auth.issuer, `${socket.origin}${BASE_PATH}/auth`);
  t.equal(auth.tokenEndpoint, `${auth.issuer}/token`);
  t.equal(auth.jwksUri, `${auth.issuer}/jwks`);

  const openid = (await (await fetch(`${auth.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  t.equal(openid.issuer, auth.issuer);
  t.equal(openid.token_endpoint, auth.tokenEndpoint);
  t.equal(openid.jwks_uri, auth.jwksUri);
  t.same(openid.grant_types_supported, ['client_credentials']);
  t.same(openid.token_endpoint_auth_methods_supported, ['private_key_jwt', 'client_secret_basic']);
  t.same(openid.token_endpoint_auth_signing_alg_values_supported, ['RS384', 'ES384']);
  t.notOk('authorization_endpoint' in openid, 'no authorization endpoint is advertised');
  t.notOk('registration_endpoint' in openid, 'no dynamic registration');

  const response = await fetch(`${running.base}/.well-known/smart-configuration`);
  t.equal(response.status, 200);
  const smart = (await response.json()) as Record<string, unknown>;
  t.match(smart, {
    issuer: auth.issuer,
    jwks_uri: auth.jwksUri,
    token_endpoint: auth.tokenEndpoint,
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    grant_types_supported: ['client_credentials'],
    code_challenge_methods_supported: ['S256'],
    capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
  });

  const jwks = (await (await fetch(auth.jwksUri)).json()) as { keys: Array<Record<string, unknown>> };
  t.equal(jwks.keys.length, 1);
  t.match(jwks.keys[0], { kty: 'EC', crv: 'P-384', alg: 'ES384', use: 'sig' });
  t.notOk('d' in jwks.keys[0]!, 'only the public key is published');
  t.same(auth.publicJwks(), jwks, 'publicJwks() is the set the endpoint serves');

  const unknown = await fetch(`${auth.issuer}/auth?response_type=code`);
  t.equal(unknown.status, 404, "oidc-provider's authorization endpoint is not reachable");
  t.equal(((await unknown.json()) as { error: string }).error, 'invalid_request');
  const wrongMethod = await fetch(auth.tokenEndpoint);
  t.equal(wrongMethod.status, 405);
  t.equal(wrongMethod.headers.get('allow'), 'POST, OPTIONS');
});

t.test('an RS384 client and an ES384 client get JWT access tokens through openid-client', async (t) => {
  for (const [clientId, keys, scope] of [
    [rsaClient.clientId, rsaKeys, 'system/Patient.rs'],
    [ecClient.clientId, ecKeys, 'system/Observation.rs?category=laboratory system/Patient.read'],
  ] as const) {
    const config = await smartClient(clientId, keys);
    const tokens = await oidc.clientCredentialsGrant(config, { scope });
    secrets.push(tokens.access_token);
    t.equal(tokens.token_type.toLowerCase(), 'bearer');
    t.equal(tokens.expires_in, TTL);
    t.equal(tokens.scope, scope);
    const claims = await verifyAccessToken(tokens.access_token);
    t.equal(claims.iss, auth.issuer, `${keys.alg}: iss`);
    t.equal(claims.aud, running.base, `${keys.alg}: aud is the FHIR base URL`);
    t.equal(claims.exp! - claims.iat!, TTL, `${keys.alg}: exp - iat is the token lifetime`);
    t.equal(claims.scope, scope);
    t.equal(claims.client_id, clientId);
    t.equal(claims.sub, clientId);
    t.match(claims.jti, /^\S{16,}$/);
    // The resource server verifies in-process with the same keys.
    await t.resolves(jwtVerify(tokens.access_token, createLocalJWKSet(auth.publicJwks()), { issuer: auth.issuer, audience: running.base }));
  }
});

t.test('a client may be granted any subset of its scopes; a repeated scope is granted once', async (t) => {
  const answer = await assertionGrant(
    auth.tokenEndpoint,
    await assertion(rsaKeys, rsaClient.clientId, auth.tokenEndpoint),
    'system/Encounter.rs system/Patient.rs system/Encounter.rs',
  );
  t.equal(answer.status, 200);
  t.equal(answer.body.scope, 'system/Encounter.rs system/Patient.rs');
  secrets.push(String(answer.body.access_token));
  t.equal((await verifyAccessToken(String(answer.body.access_token))).scope, 'system/Encounter.rs system/Patient.rs');
});

t.test('openid-client with its default assertion audience (the issuer) is accepted too', async (t) => {
  const config = await oidc.discovery(
    new URL(auth.issuer),
    ecClient.clientId,
    undefined,
    oidc.PrivateKeyJwt({ key: ecKeys.privateKey, kid: ecKeys.kid }),
    {
      execute: [oidc.allowInsecureRequests],
    },
  );
  const tokens = await oidc.clientCredentialsGrant(config, { scope: 'system/*.cruds' });
  secrets.push(tokens.access_token);
  t.equal((await verifyAccessToken(tokens.access_token)).scope, 'system/*.cruds');
});

t.test('a client registered by jwks_uri: its keys are fetched from the URL', async (t) => {
  const keys = await clientKeys('ES384');
  const host = await hostJwks([keys.publicJwk]);
  t.teardown(() => host.close());
  const { clientId } = await auth.clients.register({ name: 'jwks_uri backend', scopes: ['system/Patient.rs'], jwksUri: host.url });
  const tokens = await oidc.clientCredentialsGrant(await smartClient(clientId, keys), { scope: 'system/Patient.rs' });
  secrets.push(tokens.access_token);
  const claims = await verifyAccessToken(tokens.access_token);
  t.equal(claims.client_id, clientId);
  t.ok(host.requests >= 1, 'the key set was fetched');

  const stranger = await clientKeys('ES384');
  const refused = await assertionGrant(
    auth.tokenEndpoint,
    await assertion({ ...stranger, kid: keys.kid }, clientId, auth.tokenEndpoint),
    'system/Patient.rs',
  );
  t.equal(refused.status, 401, 'a key that is not in the published set is refused');
  t.equal(refused.body.error, 'invalid_client');
});

t.test('a replayed assertion (same jti) is refused', async (t) => {
  const signed = await assertion(ecKeys, ecClient.clientId, auth.tokenEndpoint);
  secrets.push(signed);
  const first = await assertionGrant(auth.tokenEndpoint, signed, 'system/*.cruds');
  t.equal(first.status, 200);
  secrets.push(String(first.body.access_token));
  const second = await assertionGrant(auth.tokenEndpoint, signed, 'system/*.cruds');
  t.equal(second.status, 401);
  t.same(second.body, { error: 'invalid_client', error_description: 'client authentication failed' });
  t.ok(
    running.log.lines.some((line) => (line.fields as { detail?: string }).detail === 'client assertion tokens must only be used once'),
    'the log says why',
  );

  // Two requests at once with one fresh assertion: one token at most.
  const racing = await assertion(ecKeys, ecClient.clientId, auth.tokenEndpoint);
  const answers = await Promise.all([1, 2, 3].map(() => assertionGrant(auth.tokenEndpoint, racing, 'system/*.cruds')));
  t.same(answers.map((answer) => answer.status).sort(), [200, 401, 401], 'concurrent replays: exactly one succeeds');
  for (const answer of answers) if (answer.body.access_token) secrets.push(String(answer.body.access_token));
});

t.test('an assertion living longer than 5 minutes is refused; 5 minutes is accepted', async (t) => {
  const long = await assertionGrant(
    auth.tokenEndpoint,
    await assertion(ecKeys, ecClient.clientId, auth.tokenEndpoint, { expiresInSeconds: 600 }),
    'system/*.cruds',
  );
  t.equal(long.status, 401);
  t.equal(long.body.error, 'invalid_client');
  t.match(long.body.error_description, /at most 300 seconds \(5 minutes\) in the future/);

  const fiveMinutes = await assertionGrant(
    auth.tokenEndpoint,
    await assertion(ecKeys, ecClient.clientId, auth.tokenEndpoint, { expiresInSeconds: 300 }),
    'system/*.cruds',
  );
  t.equal(fiveMinutes.status, 200);
  secrets.push(String(fiveMinutes.body.access_token));
});

t.test('an assertion signed with the wrong key, with alg none, or for another audience is refused', async (t) => {
  const impostor = await clientKeys('ES384');
  const wrongKey = await assertionGrant(
    auth.tokenEndpoint,
    await assertion({ ...impostor, kid: ecKeys.kid }, ecClient.clientId, auth.tokenEndpoint),
    'system/*.cruds',
  );
  t.equal(wrongKey.status, 401);
  t.equal(wrongKey.body.error, 'invalid_client');

  const rsaKeyForEcClient = await assertionGrant(
    auth.tokenEndpoint,
    await assertion(rsaKeys, ecClient.clientId, auth.tokenEndpoint),
    'system/*.cruds',
  );
  t.equal(rsaKeyForEcClient.body.error, 'invalid_client', "another client's key");

  const unsigned = new UnsecuredJWT({})
    .setIssuer(ecClient.clientId)
    .setSubject(ecClient.clientId)
    .setAudience(auth.tokenEndpoint)
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime('2m')
    .encode();
  const none = await assertionGrant(auth.tokenEndpoint, unsigned, 'system/*.cruds');
  t.equal(none.status, 401);
  t.equal(none.body.error, 'invalid_client', 'alg none');

  const elsewhere = await assertionGrant(
    auth.tokenEndpoint,
    await assertion(ecKeys, ecClient.clientId, 'https://other.example.org/token'),
    'system/*.cruds',
  );
  t.equal(elsewhere.status, 401);
  t.equal(elsewhere.body.error, 'invalid_client', 'aud must be the token endpoint (or the issuer)');

  const expired = await assertionGrant(
    auth.tokenEndpoint,
    await assertion(ecKeys, ecClient.clientId, auth.tokenEndpoint, { expiresInSeconds: -120 }),
    'system/*.cruds',
  );
  t.equal(expired.body.error, 'invalid_client', 'expired');

  const unknownClient = await assertionGrant(
    auth.tokenEndpoint,
    await assertion(ecKeys, 'no-such-client', auth.tokenEndpoint),
    'system/*.cruds',
  );
  t.equal(unknownClient.body.error, 'invalid_client', 'unknown client');
});

t.test('scopes: only registered ones; malformed and missing scope answer invalid_scope', async (t) => {
  const grant = async (scope?: string) =>
    assertionGrant(auth.tokenEndpoint, await assertion(rsaKeys, rsaClient.clientId, auth.tokenEndpoint), scope);

  const unregistered = await grant('system/Patient.rs system/Observation.rs');
  t.equal(unregistered.status, 400);
  t.equal(unregistered.body.error, 'invalid_scope');
  t.match(unregistered.body.error_description, /^scope "system\/Observation.rs" is not registered for this client/);

  const wider = await grant('system/Patient.cruds');
  t.equal(wider.body.error, 'invalid_scope', 'a wider form of a registered scope is not registered');

  const narrower = await grant('system/Patient.r');
  t.equal(narrower.status, 200, 'a narrower form of a registered scope is granted');
  t.equal(narrower.body.scope, 'system/Patient.r', 'and exactly what was asked');

  const garbage = await grant('system/Patient.xyz');
  t.equal(garbage.status, 400);
  t.equal(garbage.body.error, 'invalid_scope');
  t.match(garbage.body.error_description, /is not a SMART scope/);

  const badCharacters = await grant('system/"Patient".rs');
  t.equal(badCharacters.status, 400);
  t.same(
    badCharacters.body,
    { error: 'invalid_scope', error_description: 'scope contains invalid characters' },
    "oidc-provider's own check",
  );

  const missing = await grant(undefined);
  t.equal(missing.status, 400);
  t.equal(missing.body.error, 'invalid_scope');
  t.match(missing.body.error_description, /scope is required/);

  const otherResource = await tokenRequest(auth.tokenEndpoint, {
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await assertion(rsaKeys, rsaClient.clientId, auth.tokenEndpoint),
    scope: 'system/Patient.rs',
    resource: 'https://elsewhere.example.org/fhir',
  });
  t.equal(otherResource.body.error, 'invalid_target', 'the only resource is the FHIR base');

  const wrongGrant = await tokenRequest(auth.tokenEndpoint, {
    grant_type: 'authorization_code',
    code: 'x',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await assertion(rsaKeys, rsaClient.clientId, auth.tokenEndpoint),
  });
  t.equal(wrongGrant.body.error, 'unsupported_grant_type');
});

t.test('a revoked client is refused at the token endpoint at once, and isActive says so within 3 seconds', async (t) => {
  const keys = await clientKeys('ES384');
  const { clientId } = await auth.clients.register({ name: 'to be revoked', scopes: ['system/Patient.rs'], jwks: keys.jwks });
  const before = await assertionGrant(auth.tokenEndpoint, await assertion(keys, clientId, auth.tokenEndpoint), 'system/Patient.rs');
  t.equal(before.status, 200);
  secrets.push(String(before.body.access_token));
  t.equal(await auth.clients.isActive(clientId), true, 'active (and now cached)');

  // Revoked by another process (the CLI), through its own registry on the same database.
  const cli = new ClientRegistry(new OAuthStore(db));
  const revokedAt = Date.now();
  const revoked = await cli.revoke(clientId);
  t.equal(revoked?.status, 'revoked');

  const after = await assertionGrant(auth.tokenEndpoint, await assertion(keys, clientId, auth.tokenEndpoint), 'system/Patient.rs');
  t.equal(after.status, 401);
  t.equal(after.body.error, 'invalid_client');

  while (await auth.clients.isActive(clientId)) {
    if (Date.now() - revokedAt > 3_000) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.equal(await auth.clients.isActive(clientId), false);
  t.ok(Date.now() - revokedAt < 3_000, `isActive turned false after ${Date.now() - revokedAt} ms`);
  t.equal(await auth.clients.isActive('no-such-client'), false);
});

t.test('the development client uses client_secret_basic; registered clients cannot', async (t) => {
  const dev = await auth.clients.ensureDevClient(['system/*.rs']);
  secrets.push(dev.clientSecret);
  t.equal(dev.clientId, 'dev-client');
  const stored = await db.collection('oauth_clients').findOne({ _id: 'dev-client' as never });
  t.match(stored?.secretHash, /^scrypt\$/);
  t.notOk(JSON.stringify(stored).includes(dev.clientSecret), 'the secret itself is not stored');

  const config = await oidc.discovery(new URL(auth.issuer), dev.clientId, undefined, oidc.ClientSecretBasic(dev.clientSecret), {
    execute: [oidc.allowInsecureRequests],
  });
  const tokens = await oidc.clientCredentialsGrant(config, { scope: 'system/*.rs' });
  secrets.push(tokens.access_token);
  const claims = await verifyAccessToken(tokens.access_token);
  t.equal(claims.client_id, 'dev-client');
  t.equal(claims.scope, 'system/*.rs');

  const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
  const wrong = await tokenRequest(
    auth.tokenEndpoint,
    { grant_type: 'client_credentials', scope: 'system/*.rs' },
    basic('dev-client', 'not-the-secret'),
  );
  t.equal(wrong.status, 401);
  t.equal(wrong.body.error, 'invalid_client');

  const post = await tokenRequest(auth.tokenEndpoint, {
    grant_type: 'client_credentials',
    scope: 'system/*.rs',
    client_id: 'dev-client',
    client_secret: dev.clientSecret,
  });
  t.equal(post.body.error, 'invalid_client', 'client_secret_post is not accepted');

  const renewed = await auth.clients.ensureDevClient(['system/*.rs']);
  secrets.push(renewed.clientSecret);
  t.not(renewed.clientSecret, dev.clientSecret, 'a fresh secret each time');
  const old = await tokenRequest(
    auth.tokenEndpoint,
    { grant_type: 'client_credentials', scope: 'system/*.rs' },
    basic('dev-client', dev.clientSecret),
  );
  t.equal(old.body.error, 'invalid_client', 'the previous secret no longer works');
  const fresh = await tokenRequest(
    auth.tokenEndpoint,
    { grant_type: 'client_credentials', scope: 'system/*.rs' },
    basic('dev-client', renewed.clientSecret),
  );
  t.equal(fresh.status, 200);
  secrets.push(String(fresh.body.access_token));

  const registered = await tokenRequest(
    auth.tokenEndpoint,
    { grant_type: 'client_credentials', scope: 'system/Patient.rs' },
    basic(rsaClient.clientId, 'anything'),
  );
  t.equal(registered.status, 401);
  t.equal(registered.body.error, 'invalid_client', 'a private_key_jwt client cannot use client_secret_basic');
});

t.test('a loopback jwks_uri is refused unless private addresses are allowed (SSRF protection)', async (t) => {
  const keys = await clientKeys('ES384');
  const host = await hostJwks([keys.publicJwk]);
  t.teardown(() => host.close());
  const { AuthorizationServer } = await import('../../src/auth/authorization-server.js');
  const strict = await AuthorizationServer.open({
    db,
    issuer: auth.issuer,
    audience: running.base,
    tokenTtlSeconds: TTL,
    clockSkewSeconds: 30,
    log: running.log,
  });
  t.teardown(() => strict.close());
  const { clientId } = await strict.clients.register({ name: 'intranet', scopes: ['system/Patient.rs'], jwksUri: host.url });
  const strictSocket = await openSocket();
  t.teardown(() => strictSocket.close());
  // Answer directly through the provider (same issuer; the URL the request came in on does not matter).
  strictSocket.server.on(
    'request',
    (request, response) => void strict.handle(request, response, request.url!.slice(`${BASE_PATH}/auth`.length)),
  );
  const answer = await assertionGrant(
    `${strictSocket.origin}${BASE_PATH}/auth/token`,
    await assertion(keys, clientId, strict.tokenEndpoint),
    'system/Patient.rs',
  );
  t.equal(answer.status, 401);
  t.equal(answer.body.error, 'invalid_client');
  t.equal(host.requests, 0, 'the loopback address was not contacted');
  const refusal = running.log.lines.findLast((line) => line.message === 'token request refused');
  t.match((refusal?.fields as { detail?: string }).detail, /jwks|special-use/i, 'refused for the key set fetch');
});

t.test('the signing key and the replay records survive a restart on the same database', async (t) => {
  const restartDb = mongoClient.db(uniqueDbName('oauth_restart'));
  const restartSocket = await openSocket();
  t.teardown(() => restartSocket.close());
  const first = await startAuthServer(restartSocket, restartDb, { tokenTtlSeconds: TTL });
  const keys = await clientKeys('RS384');
  const { clientId } = await first.auth.clients.register({ name: 'restart', scopes: ['system/Patient.rs'], jwks: keys.jwks });
  const signed = await assertion(keys, clientId, first.auth.tokenEndpoint);
  const before = await assertionGrant(first.auth.tokenEndpoint, signed, 'system/Patient.rs');
  t.equal(before.status, 200);
  const token = String(before.body.access_token);
  const kidBefore = first.auth.publicJwks().keys[0]!.kid;
  await first.close();

  const second = await startAuthServer(restartSocket, restartDb, { tokenTtlSeconds: TTL });
  t.teardown(() => second.close());
  t.equal(second.auth.issuer, first.auth.issuer);
  t.equal(second.auth.publicJwks().keys[0]!.kid, kidBefore, 'the same key');
  t.equal(await restartDb.collection('oauth_keys').countDocuments(), 1, 'no second key was made');
  const claims = await verifyAccessToken(token, second);
  t.equal(claims.client_id, clientId, 'a token from before the restart verifies against the JWKS after it');

  const replay = await assertionGrant(second.auth.tokenEndpoint, signed, 'system/Patient.rs');
  t.equal(replay.status, 401, 'an assertion used before the restart is still refused after it');
  t.equal(replay.body.error, 'invalid_client');
});

t.test('nothing secret reaches the log', async (t) => {
  const logged = JSON.stringify(running.log.lines);
  const leaked = secrets.filter((secret) => logged.includes(secret));
  t.same(leaked, [], `none of ${secrets.length} tokens, assertions and secrets is in the log`);
  t.ok(running.log.lines.some((line) => line.message === 'access token issued'));
});
