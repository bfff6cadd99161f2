/**
 * Access token verification: tokens from an outside identity provider (oauth2-mock-server on 127.0.0.1, keys by JWKS
 * URL or by OpenID discovery) and from this server's own authorization server (in-process keys, revocation); every
 * way a token or an Authorization header can be wrong; key rotation; the issuer being unreachable (503, not 401 or
 * 500); the verification cache; and the WWW-Authenticate header.
 */
import { SignJWT } from 'jose';
import t, { type Test } from 'tap';
import {
  AccessTokenVerifier,
  InvalidTokenError,
  IssuerUnavailableError,
  wwwAuthenticate,
  type AccessTokenVerifierOptions,
  type TrustedIssuer,
} from '../../src/auth/access-tokens.js';
import {
  AUDIENCE,
  base64urlJson,
  closedPort,
  keySet,
  localKey,
  signLocal,
  startIdentityProvider,
  type MockIdentityProvider,
} from './token-helpers.js';

const SKEW = 30;
const OWN_ISSUER = 'https://fhir.example.org/auth';

let idp: MockIdentityProvider;
t.before(async () => {
  idp = await startIdentityProvider('RS256');
});
t.teardown(async () => {
  await idp.stop();
});

function remote(extra: Partial<AccessTokenVerifierOptions> = {}, issuers?: TrustedIssuer[]): AccessTokenVerifier {
  return new AccessTokenVerifier({
    issuers: issuers ?? [{ issuer: idp.url, keys: { kind: 'remote', jwksUrl: idp.jwksUrl }, own: false }],
    audience: AUDIENCE,
    clockSkewSeconds: SKEW,
    fetchTimeoutMs: 2000,
    ...extra,
  });
}

/** Asserts verify() refuses with InvalidTokenError; returns it. */
async function refused(
  t: Test,
  verifier: AccessTokenVerifier,
  authorization: string | undefined,
  expected: { error?: 'invalid_request' | 'invalid_token'; missing?: boolean; description?: RegExp },
): Promise<InvalidTokenError> {
  try {
    await verifier.verify(authorization);
  } catch (error) {
    if (!(error instanceof InvalidTokenError)) {
      t.fail(`expected InvalidTokenError, got ${String(error)}`);
      throw error;
    }
    if (expected.error !== undefined) t.equal(error.error, expected.error, `error code ${expected.error}`);
    t.equal(error.missing, expected.missing ?? false, 'missing');
    if (expected.description !== undefined) t.match(error.description, expected.description);
    if (authorization !== undefined && authorization.length > 20) {
      const token = authorization.split(' ').pop() ?? '';
      if (token.length > 20) t.notOk(error.description.includes(token) || error.message.includes(token), 'the token is not echoed');
    }
    return error;
  }
  t.fail('expected verify() to refuse');
  throw new Error('accepted');
}

async function unavailable(t: Test, verifier: AccessTokenVerifier, authorization: string): Promise<IssuerUnavailableError> {
  try {
    await verifier.verify(authorization);
  } catch (error) {
    t.type(error, IssuerUnavailableError);
    if (error instanceof IssuerUnavailableError) {
      t.equal(error.status, 503);
      t.ok(error.retryAfterSeconds > 0);
      return error;
    }
    throw error;
  }
  t.fail('expected IssuerUnavailableError');
  throw new Error('accepted');
}

t.test('identity provider by JWKS URL: a good token becomes a Principal', async (t) => {
  const verifier = remote();
  const token = await idp.token({
    claims: {
      sub: 'user-1',
      client_id: 'app-1',
      azp: 'other',
      scope: 'launch/patient patient/*.rs openid',
      fhirUser: 'Practitioner/9',
      patient: 'p-123',
      jti: 'jti-1',
    },
  });
  const principal = await verifier.verify(`Bearer ${token}`);
  t.same(principal, {
    clientId: 'app-1',
    subject: 'user-1',
    fhirUser: 'Practitioner/9',
    patient: 'p-123',
    scopes: ['launch/patient', 'patient/*.rs', 'openid'],
    issuer: idp.url,
    tokenId: 'jti-1',
    expiresAt: principal.expiresAt,
    ownIssuer: false,
  });
  t.ok(principal.expiresAt > Date.now() / 1000 + 3000, 'exp from the token');
  // the scheme is case-insensitive
  t.equal((await verifier.verify(`bearer ${token}`)).subject, 'user-1');
  t.equal((await verifier.verify(`BEARER ${token}`)).subject, 'user-1');
});

t.test('client id from azp, then cid; scp as an array or a string; aud as an array', async (t) => {
  const verifier = remote();
  const azp = await verifier.verify(
    `Bearer ${await idp.token({ claims: { azp: 'app-azp', cid: 'x', scp: ['patient/Patient.r', 'openid', 7] } })}`,
  );
  t.equal(azp.clientId, 'app-azp');
  t.same(azp.scopes, ['patient/Patient.r', 'openid'], 'scp array, non-strings dropped');
  const cid = await verifier.verify(
    `Bearer ${await idp.token({ claims: { cid: 'app-cid', scp: 'user/*.rs system/*.rs', aud: ['api://other', AUDIENCE] } })}`,
  );
  t.equal(cid.clientId, 'app-cid');
  t.same(cid.scopes, ['user/*.rs', 'system/*.rs']);
  const none = await verifier.verify(`Bearer ${await idp.token({ claims: { aud: `${AUDIENCE}/` } })}`);
  t.equal(none.clientId, undefined);
  t.same(none.scopes, []);
  t.equal(none.patient, undefined);
  t.equal(none.tokenId, undefined);
  const nonString = await verifier.verify(`Bearer ${await idp.token({ claims: { patient: 123, fhirUser: { x: 1 }, client_id: 5 } })}`);
  t.equal(nonString.patient, undefined, 'a non-string patient claim is ignored');
  t.equal(nonString.fhirUser, undefined);
  t.equal(nonString.clientId, undefined);
});

t.test('typ header: at+jwt, application/at+jwt, JWT accepted, others refused', async (t) => {
  const verifier = remote();
  for (const typ of ['at+jwt', 'application/at+jwt', 'JWT', 'AT+JWT', 'jwt']) {
    await verifier.verify(`Bearer ${await idp.token({ header: { typ } })}`);
    t.pass(typ);
  }
  for (const typ of ['id_token+jwt', 'dpop+jwt', 'application/jwt', '']) {
    await refused(t, verifier, `Bearer ${await idp.token({ header: { typ } })}`, { error: 'invalid_token', description: /typ/ });
  }
  await refused(t, verifier, `Bearer ${await idp.token({ header: { typ: 5 } })}`, { error: 'invalid_token', description: /typ/ });
});

t.test('identity provider by OpenID discovery', async (t) => {
  const idp2 = await startIdentityProvider();
  t.teardown(() => idp2.stop());
  const verifier = remote({}, [{ issuer: idp2.url, keys: { kind: 'discovery' }, own: false }]);
  const principal = await verifier.verify(`Bearer ${await idp2.token({ claims: { sub: 'd-1' } })}`);
  t.equal(principal.subject, 'd-1');
  t.same(idp2.requests, ['/.well-known/openid-configuration', '/jwks']);
  await verifier.verify(`Bearer ${await idp2.token({ claims: { sub: 'd-2' } })}`);
  t.equal(idp2.requests.length, 2, 'discovery and keys are cached');
});

t.test('discovery: unreachable issuer is 503, and the next request retries', async (t) => {
  const idp2 = await startIdentityProvider();
  t.teardown(() => idp2.stop());
  const verifier = remote({}, [{ issuer: idp2.url, keys: { kind: 'discovery' }, own: false }]);
  const token = await idp2.token();
  idp2.mode = 'fail';
  const error = await unavailable(t, verifier, `Bearer ${token}`);
  t.equal(error.issuer, idp2.url);
  t.match(error.description, /could not be discovered/);
  idp2.mode = 'ok';
  t.equal((await verifier.verify(`Bearer ${token}`)).issuer, idp2.url);
});

t.test('discovery: a document naming another issuer is refused (503: a configuration problem)', async (t) => {
  const idp2 = await startIdentityProvider();
  t.teardown(() => idp2.stop());
  const verifier = remote({}, [{ issuer: `${idp2.url}/`, keys: { kind: 'discovery' }, own: false }]);
  const token = await idp2.token({ claims: { iss: `${idp2.url}/` } });
  await unavailable(t, verifier, `Bearer ${token}`);
});

t.test('wrong audience', async (t) => {
  const verifier = remote();
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { aud: 'https://other.example.org/fhir' } })}`, {
    error: 'invalid_token',
    description: /not meant for this server/,
  });
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { aud: ['a', 'b'] } })}`, { description: /not meant for this server/ });
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { aud: undefined } })}`, { description: /no audience/ });
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { aud: `${AUDIENCE}/x` } })}`, { description: /not meant/ });
});

t.test('expiry: beyond the skew refused, within the skew accepted, exp required', async (t) => {
  const verifier = remote();
  await refused(t, verifier, `Bearer ${await idp.token({ expiresIn: -(SKEW + 30) })}`, {
    error: 'invalid_token',
    description: /expired/,
  });
  const withinSkew = await verifier.verify(`Bearer ${await idp.token({ expiresIn: -(SKEW - 20) })}`);
  t.ok(withinSkew.expiresAt < Date.now() / 1000, 'accepted although exp has passed');
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { exp: undefined } })}`, { description: /no expiry/ });
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { exp: 'tomorrow' } })}`, { description: /exp/ });
});

t.test('nbf in the future, iat in the future', async (t) => {
  const verifier = remote();
  const now = Math.floor(Date.now() / 1000);
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { nbf: now + SKEW + 60 } })}`, {
    error: 'invalid_token',
    description: /not valid yet/,
  });
  t.ok(await verifier.verify(`Bearer ${await idp.token({ claims: { nbf: now + SKEW - 20 } })}`), 'nbf within the skew');
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { iat: now + SKEW + 60 } })}`, { description: /issued in the future/ });
  t.ok(await verifier.verify(`Bearer ${await idp.token({ claims: { iat: now + SKEW - 20 } })}`), 'iat within the skew');
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { iat: 'yesterday' } })}`, { description: /iat/ });
});

t.test('unknown issuer: refused without any network call', async (t) => {
  const idp2 = await startIdentityProvider();
  t.teardown(() => idp2.stop());
  // trusts idp2 only; the tokens come from idp (signed by idp's key) or claim another issuer
  const verifier = remote({}, [{ issuer: idp2.url, keys: { kind: 'remote', jwksUrl: idp2.jwksUrl }, own: false }]);
  const before = idp.requests.length;
  await refused(t, verifier, `Bearer ${await idp.token()}`, {
    error: 'invalid_token',
    description: /not issued by an issuer this server trusts/,
  });
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { iss: 'https://evil.example.org' } })}`, { description: /trusts/ });
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { iss: undefined } })}`, { description: /no issuer/ });
  await refused(t, verifier, `Bearer ${await idp.token({ claims: { iss: 42 } })}`, { description: /no issuer/ });
  t.equal(idp.requests.length, before, 'no request to the token issuer');
  t.same(idp2.requests, [], 'no request to the trusted issuer either');
  const discovery = remote({}, [{ issuer: idp2.url, keys: { kind: 'discovery' }, own: false }]);
  await refused(t, discovery, `Bearer ${await idp.token()}`, { description: /trusts/ });
  t.same(idp2.requests, [], 'nor a discovery request');
});

t.test('alg none is refused explicitly', async (t) => {
  const verifier = remote();
  const now = Math.floor(Date.now() / 1000);
  const payload = base64urlJson({ iss: idp.url, aud: AUDIENCE, exp: now + 300, sub: 'attacker' });
  for (const header of [{ alg: 'none' }, { alg: 'none', typ: 'JWT' }, { alg: 'NONE' }, { alg: 'None' }]) {
    await refused(t, verifier, `Bearer ${base64urlJson(header)}.${payload}.`, {
      error: 'invalid_token',
      description: /unsigned tokens \(alg none\) are not accepted/,
    });
  }
  // with a (meaningless) signature part as well
  await refused(t, verifier, `Bearer ${base64urlJson({ alg: 'none' })}.${payload}.c2ln`, { description: /alg none/ });
  await refused(t, verifier, `Bearer ${base64urlJson({ typ: 'JWT' })}.${payload}.c2ln`, { description: /names no signature algorithm/ });
  await refused(t, verifier, `Bearer ${base64urlJson({ alg: 'RS1' })}.${payload}.c2ln`, { description: /RS1 is not accepted/ });
  await refused(t, verifier, `Bearer ${base64urlJson({ alg: 'RS256\r\nX: y' })}.${payload}.c2ln`, {
    description: /algorithm is not accepted/,
  });
});

t.test('HS256 (symmetric) tokens are refused explicitly, whatever the secret', async (t) => {
  const verifier = remote();
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: idp.url, aud: AUDIENCE, exp: now + 300, sub: 'attacker' };
  for (const alg of ['HS256', 'HS384', 'HS512']) {
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg })
      .sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long!!'));
    await refused(t, verifier, `Bearer ${token}`, {
      error: 'invalid_token',
      description: new RegExp(`symmetric signatures \\(${alg}\\) are not accepted`),
    });
  }
  // the classic confusion: HMAC keyed with the issuer's public key (as JSON) — still refused by alg
  const jwk = JSON.stringify(idp.issuer.keys.toJSON()[0]);
  const confused = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(jwk));
  await refused(t, verifier, `Bearer ${confused}`, { description: /symmetric/ });
});

t.test('a token signed with a key that is not in the JWKS', async (t) => {
  const verifier = remote({ jwksCooldownMs: 0 });
  const realKid = idp.issuer.keys.toJSON()[0]!.kid;
  const rogue = await localKey(realKid, 'RS256');
  const claims = { iss: idp.url, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 };
  // same kid as the real key, different key: the signature fails
  await refused(t, verifier, `Bearer ${await signLocal(rogue, claims)}`, {
    error: 'invalid_token',
    description: /signature does not verify/,
  });
  // an unknown kid: jose refetches the JWKS (cooldown 0), still no such key
  const unknown = await localKey('unknown-kid', 'RS256');
  await refused(t, verifier, `Bearer ${await signLocal(unknown, claims)}`, { description: /no key of the issuer matches/ });
  // no kid at all, one RSA key in the set: tried, fails
  await refused(t, verifier, `Bearer ${await signLocal(rogue, claims, { kid: false })}`, { description: /signature does not verify/ });
  // a tampered payload under a genuine signature
  const good = await idp.token({ claims: { sub: 'alice' } });
  const [h, , s] = good.split('.');
  const forged = `${h}.${base64urlJson({ iss: idp.url, aud: AUDIENCE, exp: claims.exp, sub: 'mallory' })}.${s}`;
  await refused(t, verifier, `Bearer ${forged}`, { description: /signature does not verify/ });
});

t.test('malformed Authorization headers', async (t) => {
  const verifier = remote();
  const before = idp.requests.length;
  const good = await idp.token();
  await refused(t, verifier, undefined, { missing: true });
  await refused(t, verifier, '', { missing: true });
  await refused(t, verifier, '   ', { missing: true });
  await refused(t, verifier, 'Basic xyz', { missing: true, description: /Bearer scheme/ });
  await refused(t, verifier, 'Basic dXNlcjpwYXNz', { missing: true });
  await refused(t, verifier, `Token ${good}`, { missing: true });
  await refused(t, verifier, good, { missing: true, description: /Bearer scheme/ });
  await refused(t, verifier, 'Bearer', { error: 'invalid_request', description: /needs a token/ });
  await refused(t, verifier, 'Bearer    ', { error: 'invalid_request' });
  await refused(t, verifier, `Bearer ${good} ${good}`, { error: 'invalid_request', description: /exactly one/ });
  await refused(t, verifier, `Bearer ${good},${good}`, { error: 'invalid_request', description: /exactly one/ });
  await refused(t, verifier, `Bearer ${good}\tx`, { error: 'invalid_request', description: /exactly one/ });
  await refused(t, verifier, 'Bearer a.b', { error: 'invalid_token', description: /compact form/ });
  await refused(t, verifier, 'Bearer a.b.c.d.e', { error: 'invalid_token', description: /compact form/ });
  await refused(t, verifier, 'Bearer abc', { error: 'invalid_token', description: /compact form/ });
  await refused(t, verifier, 'Bearer !!!.$$$.%%%', { error: 'invalid_request', description: /characters/ });
  await refused(t, verifier, 'Bearer é.b.c', { error: 'invalid_request' });
  await refused(t, verifier, 'Bearer a+b.c/d.e', { error: 'invalid_token', description: /compact form/ });
  await refused(t, verifier, 'Bearer a.b.c', { error: 'invalid_token', description: /header is not base64url-encoded JSON/ });
  await refused(t, verifier, `Bearer ${base64urlJson({ alg: 'RS256' })}.bm90IGpzb24.c2ln`, {
    error: 'invalid_token',
    description: /payload/,
  });
  await refused(t, verifier, `Bearer ${base64urlJson({ alg: 'RS256' })}.${base64urlJson([1, 2])}.c2ln`, { description: /payload/ });
  await refused(t, verifier, `Bearer ${base64urlJson('x')}.${base64urlJson({})}.c2ln`, { description: /header/ });
  const huge = await refused(t, verifier, `Bearer ${'a'.repeat(100_000)}`, { error: 'invalid_request', description: /longer than/ });
  t.equal(huge.status, 400);
  await refused(t, verifier, `Bearer ${'a.'.repeat(50_000)}a`, { error: 'invalid_request' });
  t.equal(idp.requests.length, before, 'no malformed token reached the network');
});

t.test('status codes follow RFC 6750', async (t) => {
  t.equal(new InvalidTokenError('invalid_token', 'x').status, 401);
  t.equal(new InvalidTokenError('invalid_request', 'x').status, 400);
  t.equal(new InvalidTokenError('invalid_request', 'x', true).status, 401);
});

t.test('key rotation: a token signed with a new key verifies once jose refetches the JWKS', async (t) => {
  const idp2 = await startIdentityProvider();
  t.teardown(() => idp2.stop());
  const issuers: TrustedIssuer[] = [{ issuer: idp2.url, keys: { kind: 'remote', jwksUrl: idp2.jwksUrl }, own: false }];
  const rotating = remote({ jwksCooldownMs: 0 }, issuers);
  const cooling = remote({}, issuers); // default cooldown: 30 s
  await rotating.verify(`Bearer ${await idp2.token()}`);
  await cooling.verify(`Bearer ${await idp2.token()}`);
  const jwksFetches = () => idp2.requests.filter((p) => p === '/jwks').length;
  t.equal(jwksFetches(), 2);

  const newKey = await idp2.issuer.keys.generate('RS256', { kid: 'rotated-1' });
  const token = await idp2.token({ kid: newKey.kid, claims: { sub: 'after-rotation' } });
  t.equal((await rotating.verify(`Bearer ${token}`)).subject, 'after-rotation');
  t.equal(jwksFetches(), 3, 'one refetch');
  // within jose's cooldown the new kid is not fetched again: refused for now, no request
  await refused(t, cooling, `Bearer ${token}`, { error: 'invalid_token', description: /no key of the issuer matches/ });
  t.equal(jwksFetches(), 3, 'the cooldown holds back the refetch');
});

t.test('JWKS unreachable, failing or slow: IssuerUnavailableError (503), never a 500 or a 401', async (t) => {
  const port = await closedPort();
  const down = new AccessTokenVerifier({
    issuers: [{ issuer: idp.url, keys: { kind: 'remote', jwksUrl: `http://127.0.0.1:${port}/jwks` }, own: false }],
    audience: AUDIENCE,
    clockSkewSeconds: SKEW,
  });
  const token = await idp.token();
  const error = await unavailable(t, down, `Bearer ${token}`);
  t.match(error.description, /could not be obtained/);
  t.notOk(error.description.includes(token));
  t.ok(error.cause !== undefined, 'the cause is kept for the log');

  const idp2 = await startIdentityProvider();
  t.teardown(() => idp2.stop());
  const failing = remote({ fetchTimeoutMs: 300 }, [{ issuer: idp2.url, keys: { kind: 'remote', jwksUrl: idp2.jwksUrl }, own: false }]);
  const token2 = await idp2.token();
  idp2.mode = 'fail';
  await unavailable(t, failing, `Bearer ${token2}`);
  idp2.mode = 'hang';
  const started = Date.now();
  await unavailable(t, failing, `Bearer ${token2}`);
  t.ok(Date.now() - started < 2000, 'the fetch timeout bounds the wait');
  idp2.mode = 'ok';
  t.ok(await failing.verify(`Bearer ${token2}`), 'recovers once the issuer answers');
});

t.test('a JWKS that is not a key set is an availability problem too', async (t) => {
  const idp2 = await startIdentityProvider();
  t.teardown(() => idp2.stop());
  const verifier = remote({}, [
    { issuer: idp2.url, keys: { kind: 'remote', jwksUrl: `${idp2.url}/.well-known/openid-configuration` }, own: false },
  ]);
  await unavailable(t, verifier, `Bearer ${await idp2.token()}`);
});

t.test('own issuer: local keys, revocation on every call, cache', async (t) => {
  const key1 = await localKey('own-1');
  let clock = 1_800_000_000_000;
  let jwksCalls = 0;
  let set = keySet(key1);
  const active = new Map<string, boolean>([['backend-1', true]]);
  const activeCalls: string[] = [];
  const verifier = new AccessTokenVerifier({
    issuers: [
      {
        issuer: OWN_ISSUER,
        keys: {
          kind: 'local',
          jwks: () => {
            jwksCalls++;
            return set;
          },
        },
        own: true,
      },
      { issuer: idp.url, keys: { kind: 'remote', jwksUrl: idp.jwksUrl }, own: false },
    ],
    audience: `${AUDIENCE}/`,
    clockSkewSeconds: SKEW,
    now: () => clock,
    isClientActive: async (clientId) => {
      activeCalls.push(clientId);
      return active.get(clientId) ?? false;
    },
  });
  const nowS = () => Math.floor(clock / 1000);
  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: OWN_ISSUER,
    aud: AUDIENCE,
    sub: 'backend-1',
    client_id: 'backend-1',
    scope: 'system/*.rs',
    iat: nowS(),
    exp: nowS() + 300,
    jti: 'j-1',
    ...extra,
  });

  const token = await signLocal(key1, claims(), { typ: 'at+jwt' });
  const first = await verifier.verify(`Bearer ${token}`);
  t.same(first, {
    clientId: 'backend-1',
    subject: 'backend-1',
    fhirUser: undefined,
    patient: undefined,
    scopes: ['system/*.rs'],
    issuer: OWN_ISSUER,
    tokenId: 'j-1',
    expiresAt: nowS() + 300,
    ownIssuer: true,
  });
  t.equal(jwksCalls, 1);
  t.same(activeCalls, ['backend-1']);

  // the cache: no signature check (no key lookup) the second time, but the revocation check runs again
  first.scopes.push('tampered');
  const second = await verifier.verify(`Bearer ${token}`);
  t.same(second.scopes, ['system/*.rs'], 'callers cannot change what the cache holds');
  t.equal(jwksCalls, 1, 'a cached verification needs no key');
  t.same(activeCalls, ['backend-1', 'backend-1'], 'revocation is checked on every call');
  t.equal(verifier.cacheSize, 1);

  // revoked: refused at once, even though the verification is cached
  active.set('backend-1', false);
  await refused(t, verifier, `Bearer ${token}`, { error: 'invalid_token', description: /the client backend-1 has been revoked/ });
  t.equal(jwksCalls, 1);
  active.set('backend-1', true);

  // expiry is checked against the clock on every call, cached or not
  clock += (300 + SKEW - 5) * 1000;
  t.ok(await verifier.verify(`Bearer ${token}`), 'still within exp + skew');
  clock += 10_000;
  await refused(t, verifier, `Bearer ${token}`, { error: 'invalid_token', description: /expired/ });
  t.equal(jwksCalls, 1, 'refused from the cache, no key lookup');
  t.equal(verifier.cacheSize, 0, 'the expired entry is dropped');
  await refused(t, verifier, `Bearer ${token}`, { description: /expired/ });
  t.equal(jwksCalls, 2, 'verified afresh (and refused by jose) once dropped');

  // key rotation in our own store: the function is read on every uncached verification
  const key2 = await localKey('own-2');
  set = keySet(key1, key2);
  t.ok(await verifier.verify(`Bearer ${await signLocal(key2, claims())}`));
  set = keySet(key2);
  await refused(t, verifier, `Bearer ${await signLocal(key1, claims({ jti: 'j-2' }))}`, { description: /no key of the issuer matches/ });

  // an unknown client, a token without a client, a failing registry
  await refused(t, verifier, `Bearer ${await signLocal(key2, claims({ client_id: 'stranger' }))}`, {
    description: /stranger has been revoked/,
  });
  await refused(t, verifier, `Bearer ${await signLocal(key2, claims({ client_id: undefined }))}`, { description: /names no client/ });

  // tokens from the outside issuer never consult the client registry
  activeCalls.length = 0;
  const outside = await new AccessTokenVerifier({
    issuers: [{ issuer: idp.url, keys: { kind: 'remote', jwksUrl: idp.jwksUrl }, own: false }],
    audience: AUDIENCE,
    clockSkewSeconds: SKEW,
    isClientActive: async () => {
      activeCalls.push('called');
      return false;
    },
  }).verify(`Bearer ${await idp.token({ claims: { client_id: 'backend-1' } })}`);
  t.equal(outside.ownIssuer, false);
  t.same(activeCalls, []);
});

t.test('own issuer: a failing client registry is 503, not a refusal', async (t) => {
  const key = await localKey('own-x');
  const verifier = new AccessTokenVerifier({
    issuers: [{ issuer: OWN_ISSUER, keys: { kind: 'local', jwks: () => keySet(key) }, own: true }],
    audience: AUDIENCE,
    clockSkewSeconds: SKEW,
    isClientActive: async () => {
      throw new Error('database down');
    },
  });
  const now = Math.floor(Date.now() / 1000);
  await unavailable(t, verifier, `Bearer ${await signLocal(key, { iss: OWN_ISSUER, aud: AUDIENCE, exp: now + 60, client_id: 'c' })}`);
});

t.test('several keys match a token without kid: each is tried', async (t) => {
  const a = await localKey('a');
  const b = await localKey('b');
  const verifier = new AccessTokenVerifier({
    issuers: [{ issuer: OWN_ISSUER, keys: { kind: 'local', jwks: () => keySet(a, b) }, own: false }],
    audience: AUDIENCE,
    clockSkewSeconds: SKEW,
  });
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: OWN_ISSUER, aud: AUDIENCE, exp: now + 60, sub: 's' };
  t.equal((await verifier.verify(`Bearer ${await signLocal(b, claims, { kid: false })}`)).subject, 's');
  const c = await localKey('c');
  await refused(t, verifier, `Bearer ${await signLocal(c, claims, { kid: false })}`, { description: /signature does not verify/ });
  // and a claim failure after a good signature is reported as such
  await refused(t, verifier, `Bearer ${await signLocal(a, { ...claims, aud: 'x' }, { kid: false })}`, {
    description: /not meant for this server/,
  });
});

t.test('the cache is bounded, and a verification is not reused beyond the JWKS cache age', async (t) => {
  const key = await localKey('k');
  let clock = 1_800_000_000_000;
  let jwksCalls = 0;
  const verifier = new AccessTokenVerifier({
    issuers: [
      {
        issuer: OWN_ISSUER,
        keys: {
          kind: 'local',
          jwks: () => {
            jwksCalls++;
            return keySet(key);
          },
        },
        own: false,
      },
    ],
    audience: AUDIENCE,
    clockSkewSeconds: SKEW,
    cacheMaxEntries: 2,
    jwksCacheMaxAgeMs: 60_000,
    now: () => clock,
  });
  const s = Math.floor(clock / 1000);
  const tokens = await Promise.all(['1', '2', '3'].map((jti) => signLocal(key, { iss: OWN_ISSUER, aud: AUDIENCE, exp: s + 3600, jti })));
  for (const token of tokens) await verifier.verify(`Bearer ${token}`);
  t.equal(verifier.cacheSize, 2);
  t.equal(jwksCalls, 3);
  await verifier.verify(`Bearer ${tokens[2]}`);
  await verifier.verify(`Bearer ${tokens[1]}`);
  t.equal(jwksCalls, 3, 'the two most recent are cached');
  await verifier.verify(`Bearer ${tokens[0]}`);
  t.equal(jwksCalls, 4, 'the oldest was evicted');
  clock += 61_000;
  await verifier.verify(`Bearer ${tokens[0]}`);
  t.equal(jwksCalls, 5, 'verified again after jwksCacheMaxAgeMs');

  const off = new AccessTokenVerifier({
    issuers: [{ issuer: OWN_ISSUER, keys: { kind: 'local', jwks: () => keySet(key) }, own: false }],
    audience: AUDIENCE,
    clockSkewSeconds: SKEW,
    cacheMaxEntries: 0,
    now: () => clock,
  });
  await off.verify(`Bearer ${tokens[0]}`);
  t.equal(off.cacheSize, 0, 'cacheMaxEntries 0 turns the cache off');
});

t.test('configuration errors are caught at construction', async (t) => {
  t.throws(() => remote({}, [{ issuer: 'x', keys: { kind: 'remote', jwksUrl: 'not a url' }, own: false }]));
  t.throws(() => remote({}, [{ issuer: 'x', keys: { kind: 'remote', jwksUrl: 'file:///etc/passwd' }, own: false }]));
  t.throws(() =>
    remote({}, [
      { issuer: 'x', keys: { kind: 'discovery' }, own: false },
      { issuer: 'x', keys: { kind: 'discovery' }, own: false },
    ]),
  );
});

t.test('wwwAuthenticate', async (t) => {
  t.equal(wwwAuthenticate('fhir'), 'Bearer realm="fhir"');
  t.equal(
    wwwAuthenticate('fhir', new InvalidTokenError('invalid_request', 'an access token is required', true)),
    'Bearer realm="fhir"',
    'missing: no error',
  );
  t.equal(
    wwwAuthenticate('fhir', new InvalidTokenError('invalid_token', 'the token has expired')),
    'Bearer realm="fhir", error="invalid_token", error_description="the token has expired"',
  );
  t.equal(
    wwwAuthenticate('fhir', new InvalidTokenError('invalid_request', 'the Bearer scheme needs a token')),
    'Bearer realm="fhir", error="invalid_request", error_description="the Bearer scheme needs a token"',
  );
  // RFC 6750: error_description holds no " or \ at all (they cannot be quoted there); control and non-ASCII go too
  t.equal(
    wwwAuthenticate('fhir', new InvalidTokenError('invalid_token', 'bad "alg" \\ here\r\nSet-Cookie: x=1 é')),
    'Bearer realm="fhir", error="invalid_token", error_description="bad \'alg\' / here??Set-Cookie: x=1 ?"',
  );
  // the realm is a quoted-string: " and \ escaped, control characters dropped
  t.equal(wwwAuthenticate('my "fhir" \\ realm\n'), 'Bearer realm="my \\"fhir\\" \\\\ realm"');
  const long = wwwAuthenticate('r', new InvalidTokenError('invalid_token', 'x'.repeat(1000)));
  t.ok(long.length < 300, 'the description is cut short');
  // every value is a valid header value for Node
  const { validateHeaderValue } = await import('node:http');
  t.doesNotThrow(() =>
    validateHeaderValue('www-authenticate', wwwAuthenticate('ré\u0000alm', new InvalidTokenError('invalid_token', '\u0000\u2028ü"'))),
  );
});
