/**
 * Every kind of bad credential, through the HTTP API of the full app (authorization on with its own authorization
 * server and an external identity provider played by oauth2-mock-server, audit on): each is answered with a clear
 * 4xx, never a 500; the FHIR API answers with an OperationOutcome and the WWW-Authenticate challenge RFC 6750 asks
 * for, the token endpoint with an OAuth error. No response and no log line (captured at trace level) carries the
 * token or the assertion, and no response carries a stack trace.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { LightMyRequestResponse } from 'fastify';
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair } from 'jose';
import t, { type Test } from 'tap';
import { stopMongoAtEnd } from '../helpers/app.js';
import { SECURED_CONFIG, TEST_AUDIENCE, startSecuredApp } from '../helpers/auth.js';
import { ASSERTION_TYPE, assertion, clientKeys } from './oauth-helpers.js';
import { startIdentityProvider } from './token-helpers.js';

stopMongoAtEnd(t);

const idp = await startIdentityProvider('ES256');
t.teardown(() => idp.stop());

const logLines: string[] = [];
const secured = await startSecuredApp(
  t,
  {
    auth: {
      ...SECURED_CONFIG.auth,
      externalIssuer: { issuer: idp.url, jwksUrl: idp.jwksUrl },
      server: { enabled: true, tokenTtlSeconds: 300, devClient: false },
    },
  },
  { logger: { level: 'trace', stream: { write: (line: string) => void logLines.push(line) } } },
);
const { app } = secured;
const authServer = app.auth!.server!;
const REALM = TEST_AUDIENCE;
const TOKEN_ENDPOINT = `${TEST_AUDIENCE}/auth/token`;
const idpKid = idp.issuer.keys.toJSON()[0]!.kid;

/** Every credential sent: none may come back in a response or appear in the log. */
const secrets: string[] = [];
/** Every response body, checked at the end for secrets. */
const bodies: string[] = [];

const now = () => Math.floor(Date.now() / 1000);

/** A token of the trusted identity provider, its claims adjusted (aud = the FHIR base unless overridden). */
async function idpToken(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const token = await idp.issuer.buildToken({
    scopesOrTransform: (h, payload) => {
      Object.assign(payload, { aud: TEST_AUDIENCE, client_id: 'ehr-app', sub: 'user-1', scope: 'system/Patient.rs', ...claims });
      for (const [name, value] of Object.entries(claims)) if (value === undefined) delete payload[name];
      Object.assign(h, header);
    },
  });
  secrets.push(token);
  return token;
}

/** The same claims, signed here with a key the identity provider does not publish. */
async function foreignToken(kid: string, claims: Record<string, unknown> = {}): Promise<string> {
  const { privateKey } = await generateKeyPair('ES256');
  const token = await new SignJWT({ aud: TEST_AUDIENCE, client_id: 'ehr-app', scope: 'system/Patient.rs', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuer(idp.url)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);
  secrets.push(token);
  return token;
}

const STACK_TRACE = /\n\s+at |\bat [\w.<>]+ \(|\.ts:\d+:\d+|node:internal|node_modules/;

function checkNoLeak(t: Test, response: LightMyRequestResponse, ...credentials: string[]): void {
  bodies.push(response.body);
  const everything = `${response.body}\n${JSON.stringify(response.headers)}`;
  for (const credential of credentials) t.notOk(everything.includes(credential), 'the credential is not echoed');
  t.notMatch(response.body, STACK_TRACE, 'no stack trace');
}

interface Expected {
  status: 400 | 401 | 403;
  /** The WWW-Authenticate value: exact string, or a pattern. */
  challenge: string | RegExp;
  /** What the diagnostics must say. */
  says: RegExp;
}

/** GET /Patient with this Authorization header value (undefined: none), checked against what is expected. */
async function refused(
  t: Test,
  authorization: string | undefined,
  expected: Expected,
  credential?: string,
): Promise<LightMyRequestResponse> {
  const response = await app.inject({
    method: 'GET',
    url: '/Patient',
    headers: authorization === undefined ? {} : { authorization },
  });
  t.equal(response.statusCode, expected.status, `answered ${expected.status}`);
  t.match(response.headers['content-type'], /^application\/fhir\+json/);
  const outcome = response.json() as OperationOutcome;
  t.equal(outcome.resourceType, 'OperationOutcome');
  t.match(outcome.issue?.[0]?.diagnostics, expected.says, 'the diagnostics say why');
  const challenge = response.headers['www-authenticate'];
  if (typeof expected.challenge === 'string') t.equal(challenge, expected.challenge, 'WWW-Authenticate');
  else t.match(challenge, expected.challenge, 'WWW-Authenticate');
  checkNoLeak(t, response, ...(credential === undefined ? [] : [credential]));
  return response;
}

const invalidToken = (description: RegExp): Expected => ({
  status: 401,
  challenge: new RegExp(`^Bearer realm="${REALM}", error="invalid_token", error_description="${description.source}"$`),
  says: description,
});
const invalidRequest = (description: RegExp): Expected => ({
  status: 400,
  challenge: new RegExp(`^Bearer realm="${REALM}", error="invalid_request", error_description="${description.source}"$`),
  says: description,
});

t.test('a good token works (so the refusals below are about the credential)', async (t) => {
  const response = await app.inject({ method: 'GET', url: '/Patient', headers: { authorization: `Bearer ${await idpToken()}` } });
  t.equal(response.statusCode, 200);
  t.equal(response.json().resourceType, 'Bundle');
});

t.test('missing or malformed Authorization headers', async (t) => {
  const bare = `Bearer realm="${REALM}"`;
  await refused(t, undefined, { status: 401, challenge: bare, says: /an access token is required/ });
  await refused(t, '', { status: 401, challenge: bare, says: /an access token is required/ });
  await refused(t, 'Basic xyz', { status: 401, challenge: bare, says: /must use the Bearer scheme/ }, 'xyz');
  await refused(t, 'Bearer', invalidRequest(/the Bearer scheme needs a token/));
  await refused(t, 'Bearer    ', invalidRequest(/the Bearer scheme needs a token/));
  const [one, two] = [await idpToken(), await idpToken()];
  await refused(t, `Bearer ${one} ${two}`, invalidRequest(/the Authorization header must hold exactly one Bearer token/), one);
  await refused(t, `Bearer ${one}, Bearer ${two}`, invalidRequest(/the Authorization header must hold exactly one Bearer token/), two);
  await refused(t, 'Bearer {"alg":"none"}', invalidRequest(/the Bearer token holds characters a token cannot contain/));
  await refused(
    t,
    'Bearer not-a-jwt-at-all',
    invalidToken(/the token is not a JWT in compact form \(three base64url parts\)/),
    'not-a-jwt-at-all',
  );
  const fourParts = `${one}.AAAA`;
  await refused(t, `Bearer ${fourParts}`, invalidToken(/the token is not a JWT in compact form \(three base64url parts\)/), fourParts);
  await refused(t, 'Bearer aGVsbG8.d29ybGQ.c2ln', invalidToken(/the token is not a JWT: its header is not base64url-encoded JSON/));
});

t.test('a 20 KB Authorization header', async (t) => {
  const huge = `Bearer ${'A'.repeat(20 * 1024)}`;
  await refused(t, huge, invalidRequest(/the Authorization header is longer than 16384 characters/), huge.slice(7, 1000));

  // Over a socket Node's HTTP parser stops it first (16 KB for all headers): still an OperationOutcome, not a 500.
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const response = await fetch(`${address}/Patient`, { headers: { authorization: huge } });
  t.equal(response.status, 431);
  t.match(response.headers.get('content-type'), /^application\/fhir\+json/);
  const text = await response.text();
  t.match(JSON.parse(text), {
    resourceType: 'OperationOutcome',
    issue: [{ code: 'too-costly', diagnostics: 'Request headers are too large' }],
  });
  t.notMatch(text, STACK_TRACE);
  t.notOk(text.includes('AAAAAAAAAA'));
});

t.test('signatures: alg none, HS256, a key the issuer does not publish, an unknown kid', async (t) => {
  const none = new UnsecuredJWT({ aud: TEST_AUDIENCE, scope: 'system/Patient.rs', client_id: 'ehr-app' })
    .setIssuer(idp.url)
    .setIssuedAt()
    .setExpirationTime('5m')
    .encode();
  secrets.push(none);
  await refused(t, `Bearer ${none}`, invalidToken(/unsigned tokens \(alg none\) are not accepted/), none);

  const hs256 = await new SignJWT({ aud: TEST_AUDIENCE, scope: 'system/Patient.rs', client_id: 'ehr-app' })
    .setProtectedHeader({ alg: 'HS256', kid: idpKid })
    .setIssuer(idp.url)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode('some shared secret that is long enough for HS256'));
  secrets.push(hs256);
  await refused(
    t,
    `Bearer ${hs256}`,
    invalidToken(/symmetric signatures \(HS256\) are not accepted: tokens must be signed with an asymmetric key/),
    hs256,
  );

  // The algorithm confusion attack: HS256 keyed with the issuer's public key.
  const publicJwk = idp.issuer.keys.toJSON()[0]!;
  const confused = await new SignJWT({ aud: TEST_AUDIENCE, scope: 'system/Patient.rs' })
    .setProtectedHeader({ alg: 'HS256', kid: idpKid })
    .setIssuer(idp.url)
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(JSON.stringify(publicJwk)));
  secrets.push(confused);
  await refused(
    t,
    `Bearer ${confused}`,
    invalidToken(/symmetric signatures \(HS256\) are not accepted: tokens must be signed with an asymmetric key/),
    confused,
  );

  const wrongKey = await foreignToken(idpKid);
  await refused(t, `Bearer ${wrongKey}`, invalidToken(/the token signature does not verify/), wrongKey);

  const unknownKid = await foreignToken('a-kid-nobody-published');
  await refused(t, `Bearer ${unknownKid}`, invalidToken(/no key of the issuer matches the token \(unknown kid\)/), unknownKid);

  // Keys offered by the token itself: an embedded jwk, a jku URL. Neither is used, and the URL is never fetched.
  const attacker = await generateKeyPair('ES256', { extractable: true });
  const attackerJwk = await exportJWK(attacker.publicKey);
  let jkuRequests = 0;
  const jkuHost = createServer((_request, response) => {
    jkuRequests++;
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ keys: [{ ...attackerJwk, kid: idpKid, alg: 'ES256' }] }));
  });
  await new Promise<void>((resolve) => jkuHost.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => jkuHost.close(() => resolve())));
  for (const offered of [
    { jwk: attackerJwk },
    { jku: `http://127.0.0.1:${(jkuHost.address() as AddressInfo).port}/jwks` },
    { x5u: 'http://127.0.0.1:1/cert.pem' },
  ]) {
    const selfSigned = await new SignJWT({ aud: TEST_AUDIENCE, scope: 'system/Patient.rs', client_id: 'ehr-app' })
      .setProtectedHeader({ alg: 'ES256', kid: idpKid, ...offered })
      .setIssuer(idp.url)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(attacker.privateKey);
    secrets.push(selfSigned);
    await refused(t, `Bearer ${selfSigned}`, invalidToken(/the token signature does not verify/), selfSigned);
  }
  t.equal(jkuRequests, 0, 'the jku URL was not fetched');

  // A valid signature over a payload changed afterwards.
  const [header, , signature] = (await idpToken()).split('.');
  const tampered = `${header}.${Buffer.from(JSON.stringify({ iss: idp.url, aud: TEST_AUDIENCE, scope: 'system/*.cruds', exp: now() + 300 })).toString('base64url')}.${signature}`;
  secrets.push(tampered);
  await refused(t, `Bearer ${tampered}`, invalidToken(/the token signature does not verify/), tampered);
});

t.test('claims: expired, not yet valid, issued in the future, wrong audience, wrong issuer', async (t) => {
  const expired = await idpToken({ iat: now() - 3600, nbf: now() - 3600, exp: now() - 120 });
  await refused(t, `Bearer ${expired}`, invalidToken(/the token has expired/), expired);

  const notYet = await idpToken({ nbf: now() + 600 });
  await refused(t, `Bearer ${notYet}`, invalidToken(/the token is not valid yet \(nbf\)/), notYet);

  const withinSkew = await idpToken({ nbf: now() + 10 });
  t.equal(
    (await app.inject({ method: 'GET', url: '/Patient', headers: { authorization: `Bearer ${withinSkew}` } })).statusCode,
    200,
    'an nbf within the clock skew is accepted',
  );

  const future = await idpToken({ iat: now() + 600, nbf: undefined, exp: now() + 1200 });
  await refused(t, `Bearer ${future}`, invalidToken(/the token was issued in the future \(iat\)/), future);

  const noExp = await idpToken({ exp: undefined });
  await refused(t, `Bearer ${noExp}`, invalidToken(/the token has no expiry \(exp\)/), noExp);

  const wrongAud = await idpToken({ aud: 'https://other.example.org/fhir' });
  await refused(t, `Bearer ${wrongAud}`, invalidToken(/the token is not meant for this server \(aud\)/), wrongAud);

  const wrongIss = await idpToken({ iss: 'https://evil.example.org' });
  await refused(t, `Bearer ${wrongIss}`, invalidToken(/the token was not issued by an issuer this server trusts/), wrongIss);

  // The own authorization server's name on a token it did not sign.
  const ownName = await idpToken({ iss: authServer.issuer });
  await refused(t, `Bearer ${ownName}`, invalidToken(/no key of the issuer matches the token \(unknown kid\)/), ownName);
});

t.test('scopes: garbage grants nothing (403 saying so); a patient/ scope needs a patient', async (t) => {
  const forbidden = (says: RegExp): Expected => ({ status: 403, challenge: `Bearer realm="${REALM}", error="insufficient_scope"`, says });

  const badLetters = await idpToken({ scope: 'patient/Patient.xyz', patient: 'p1' });
  await refused(
    t,
    `Bearer ${badLetters}`,
    forbidden(
      /the token grants no resource scopes\. malformed scopes grant nothing: patient\/Patient\.xyz \(permissions must be read, write, \* or a subset of c r u d s in that order\)/,
    ),
    badLetters,
  );
  const numericType = await idpToken({ scope: 'system/12345.rs 67890' });
  await refused(
    t,
    `Bearer ${numericType}`,
    forbidden(/malformed scopes grant nothing: system\/12345\.rs \(the resource type is not a FHIR type name or \*\)/),
    numericType,
  );

  // A scope claim that is not a string at all: nothing is granted (the verifier keeps string scopes only).
  for (const scope of [12345, { 'system/Patient.rs': true }, ['system/Patient.cruds'].map(() => 7)]) {
    const token = await idpToken({ scope });
    await refused(
      t,
      `Bearer ${token}`,
      forbidden(/^Insufficient scope: search on Patient needs a scope such as system\/Patient\.s .*the token grants no resource scopes$/),
      token,
    );
  }

  const noPatient = await idpToken({ scope: 'patient/Patient.rs launch/patient' });
  await refused(
    t,
    `Bearer ${noPatient}`,
    forbidden(/patient\/ scopes \(patient\/Patient\.rs\) grant nothing without a patient in the token's launch context/),
    noPatient,
  );
});

t.test('the token endpoint: a replayed assertion, a garbage scope, an assertion living 10 minutes', async (t) => {
  const keys = await clientKeys('ES384');
  const { clientId } = await authServer.clients.register({ name: 'backend', scopes: ['system/Patient.rs'], jwks: keys.jwks });
  const grant = async (clientAssertion: string, scope: string) => {
    const response = await app.inject({
      method: 'POST',
      url: '/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      payload: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: clientAssertion,
        scope,
      }).toString(),
    });
    t.notMatch(response.body, STACK_TRACE, 'no stack trace');
    t.notOk(response.body.includes(clientAssertion), 'the assertion is not echoed');
    // A granted token is in its own answer, of course; refusals are checked against every secret at the end.
    if (response.statusCode === 200) secrets.push(String(response.json().access_token));
    else bodies.push(response.body);
    return response;
  };

  const signed = await assertion(keys, clientId, TOKEN_ENDPOINT, { jti: randomUUID() });
  secrets.push(signed);
  const first = await grant(signed, 'system/Patient.rs');
  t.equal(first.statusCode, 200, 'the first use is granted');
  const replay = await grant(signed, 'system/Patient.rs');
  t.equal(replay.statusCode, 401, 'a replay is refused');
  t.same(replay.json(), { error: 'invalid_client', error_description: 'client authentication failed' });
  t.equal(replay.headers['cache-control'], 'no-store');

  const sameJti = await assertion(keys, clientId, TOKEN_ENDPOINT, {
    jti: JSON.parse(Buffer.from(signed.split('.')[1]!, 'base64url').toString()).jti,
  });
  secrets.push(sameJti);
  t.equal((await grant(sameJti, 'system/Patient.rs')).json().error, 'invalid_client', 'a fresh assertion with a used jti is a replay too');

  for (const scope of ['system/Patient.xyz', 'garbage', '12345', 'system/Patient.rs?', 'system/Observation.rs']) {
    const fresh = await assertion(keys, clientId, TOKEN_ENDPOINT);
    secrets.push(fresh);
    const answer = await grant(fresh, scope);
    t.equal(answer.statusCode, 400, `scope ${JSON.stringify(scope)}: 400`);
    t.equal(answer.json().error, 'invalid_scope', `scope ${JSON.stringify(scope)}: invalid_scope`);
    t.match(answer.json().error_description, /is not a SMART scope|is not registered for this client/);
  }

  const tenMinutes = await assertion(keys, clientId, TOKEN_ENDPOINT, { expiresInSeconds: 600 });
  secrets.push(tenMinutes);
  const long = await grant(tenMinutes, 'system/Patient.rs');
  t.equal(long.statusCode, 401);
  t.equal(long.json().error, 'invalid_client');
  t.match(long.json().error_description, /at most 300 seconds \(5 minutes\) in the future/);

  const garbage = await grant('not.an.assertion', 'system/Patient.rs');
  t.equal(garbage.statusCode, 400, 'a client_assertion that is not a JWT');
  t.equal(garbage.json().error, 'invalid_request');

  const none = new UnsecuredJWT({})
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(TOKEN_ENDPOINT)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('2m')
    .encode();
  secrets.push(none);
  t.equal((await grant(none, 'system/Patient.rs')).json().error, 'invalid_client', 'an assertion with alg none');
});

t.test('a token endpoint token is refused where its scopes do not reach, and accepted where they do', async (t) => {
  const keys = await clientKeys('RS384');
  const { clientId } = await authServer.clients.register({ name: 'reader', scopes: ['system/Patient.rs'], jwks: keys.jwks });
  const signed = await assertion(keys, clientId, TOKEN_ENDPOINT);
  secrets.push(signed);
  const answer = await app.inject({
    method: 'POST',
    url: '/auth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: signed,
      scope: 'system/Patient.rs',
    }).toString(),
  });
  t.equal(answer.statusCode, 200);
  const token = String(answer.json().access_token);
  secrets.push(token);
  t.equal((await app.inject({ method: 'GET', url: '/Patient', headers: { authorization: `Bearer ${token}` } })).statusCode, 200);
  const encounter = await app.inject({ method: 'GET', url: '/Encounter', headers: { authorization: `Bearer ${token}` } });
  t.equal(encounter.statusCode, 403);
  t.equal(encounter.headers['www-authenticate'], `Bearer realm="${REALM}", error="insufficient_scope"`);
  t.match((encounter.json() as OperationOutcome).issue?.[0], {
    code: 'forbidden',
    diagnostics: /search on Encounter needs a scope such as system\/Encounter\.s .*the token grants system\/Patient\.rs/,
  });
  checkNoLeak(t, encounter, token);
});

t.test('nothing secret in any response or in the log; no 5xx was logged', async (t) => {
  await secured.flushAudit();
  t.ok(logLines.length > 20, `${logLines.length} log lines captured at trace level`);
  const logged = logLines.join('');
  const leakedToLog = secrets.filter((secret) => logged.includes(secret));
  t.same(leakedToLog.length, 0, `none of ${secrets.length} tokens and assertions is in the log`);
  const answered = bodies.join('\n');
  t.same(secrets.filter((secret) => answered.includes(secret)).length, 0, `none is in any of ${bodies.length} response bodies`);
  const levels = logLines.map((line) => (JSON.parse(line) as { level: number }).level);
  t.notOk(
    levels.some((level) => level >= 50),
    'no error was logged',
  );
  t.notOk(
    logLines.some((line) => /"statusCode":5\d\d/.test(line)),
    'no 5xx was answered',
  );
});
