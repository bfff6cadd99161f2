/**
 * CORS and rate limits through the real app (authorization and audit on, tokens from the test identity provider):
 * a SMART browser app's preflight is answered without a token, its requests and even its refusals are readable
 * cross-origin, other origins get nothing; a client over its per-minute limit gets 429 with Retry-After and an
 * OperationOutcome while other clients go on, and an address sending bad credentials is slowed down on its own.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import Fastify, { type LightMyRequestResponse } from 'fastify';
import t from 'tap';
import { requireDeclarations } from '../../src/http/route-table.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { startSecuredApp } from '../helpers/auth.js';

stopMongoAtEnd(t);

const ALLOWED = 'https://app.example.org';
const OTHER = 'https://evil.example.org';

function header(response: LightMyRequestResponse, name: string): string {
  const value = response.headers[name];
  return Array.isArray(value) ? value.join(', ') : String(value ?? '');
}

function listed(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== '');
}

/**
 * With CORS_ORIGINS set, buildApp registers @fastify/cors, whose catch-all preflight route is `OPTIONS *`; the route
 * table (requireDeclarations) must accept it as public ('cors-preflight'). When it does not, its onRoute hook throws
 * inside the plugin: an uncaught exception, and buildApp never resolves. Probed here on a bare Fastify instance, so
 * that the CORS tests below are skipped (and this file still finishes) instead of crashing the process.
 */
function corsRouteRefusal(): string | undefined {
  const probe = Fastify({ logger: false });
  requireDeclarations(probe);
  try {
    probe.options('*', async () => undefined);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    void probe.close();
  }
}
const corsBlocked = corsRouteRefusal();
const skipCors = corsBlocked === undefined ? false : 'the app cannot start with CORS origins (see the failure above)';

t.test('the app starts with CORS origins configured (the route table accepts the CORS preflight route)', async (t) => {
  t.equal(corsBlocked, undefined, "requireDeclarations accepts @fastify/cors's `OPTIONS *` route");
});

t.test('CORS: preflight without a token, readable answers for the allowed origin only', { skip: skipCors }, async (t) => {
  const { app, bearer } = await startSecuredApp(t, { exposure: { corsOrigins: [ALLOWED], rateLimitPerMinute: 0 } });

  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/Patient',
    headers: {
      origin: ALLOWED,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type, if-match',
    },
  });
  t.equal(preflight.statusCode, 204, 'the preflight is answered without a token');
  t.equal(header(preflight, 'access-control-allow-origin'), ALLOWED);
  const allowedHeaders = listed(header(preflight, 'access-control-allow-headers'));
  for (const name of ['authorization', 'content-type', 'if-match', 'prefer']) t.ok(allowedHeaders.includes(name), `${name} may be sent`);
  const allowedMethods = listed(header(preflight, 'access-control-allow-methods'));
  for (const method of ['get', 'post', 'put', 'patch', 'delete']) t.ok(allowedMethods.includes(method), `${method} is allowed`);
  t.equal(header(preflight, 'access-control-max-age'), '600');
  t.notOk(preflight.headers['www-authenticate'], 'no challenge: the preflight never met authentication');
  t.equal(preflight.body, '');

  const preflightOther = await app.inject({
    method: 'OPTIONS',
    url: '/Patient',
    headers: { origin: OTHER, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
  });
  t.notOk(preflightOther.headers['access-control-allow-origin'], 'a disallowed origin gets no Access-Control-Allow-Origin');
  t.notOk(preflightOther.headers['access-control-allow-credentials']);

  const token = await bearer('system/Patient.rs');
  const read = await app.inject({ method: 'GET', url: '/Patient', headers: { origin: ALLOWED, authorization: token } });
  t.equal(read.statusCode, 200);
  t.equal(header(read, 'access-control-allow-origin'), ALLOWED, 'the answer is readable by the allowed origin');
  t.match(header(read, 'vary'), /origin/i, 'caches keep answers per origin');
  const exposed = listed(header(read, 'access-control-expose-headers'));
  for (const name of ['location', 'etag', 'www-authenticate', 'retry-after']) t.ok(exposed.includes(name), `${name} is exposed`);

  const unauthenticated = await app.inject({ method: 'GET', url: '/Patient', headers: { origin: ALLOWED } });
  t.equal(unauthenticated.statusCode, 401);
  t.equal(header(unauthenticated, 'access-control-allow-origin'), ALLOWED, 'a browser app can read the 401 and its challenge');
  t.match(header(unauthenticated, 'www-authenticate'), /^Bearer realm=/);

  const readOther = await app.inject({ method: 'GET', url: '/Patient', headers: { origin: OTHER, authorization: token } });
  t.equal(readOther.statusCode, 200, 'the server answers (CORS is enforced by browsers)…');
  t.notOk(readOther.headers['access-control-allow-origin'], '…but without Access-Control-Allow-Origin for a disallowed origin');

  const noOrigin = await app.inject({ method: 'GET', url: '/Patient', headers: { authorization: token } });
  t.notOk(noOrigin.headers['access-control-allow-origin'], 'no Origin, no CORS headers');

  // The public discovery documents are readable cross-origin too: a SMART app reads them before it has a token.
  const smart = await app.inject({ method: 'GET', url: '/.well-known/smart-configuration', headers: { origin: ALLOWED } });
  t.equal(smart.statusCode, 200);
  t.equal(header(smart, 'access-control-allow-origin'), ALLOWED);
});

t.test('CORS with a rate limit: preflights do not use the limit up, and a browser app can read its 429', { skip: skipCors }, async (t) => {
  const { app, bearer } = await startSecuredApp(t, { exposure: { corsOrigins: [ALLOWED], rateLimitPerMinute: 2 } });
  const token = await bearer('system/Patient.rs', { client_id: 'browser-app' });
  for (let i = 0; i < 4; i++) {
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/Patient',
      headers: { origin: ALLOWED, 'access-control-request-method': 'GET' },
    });
    t.equal(preflight.statusCode, 204, `preflight ${i + 1}`);
  }
  const statuses: number[] = [];
  let throttled: LightMyRequestResponse | undefined;
  for (let i = 0; i < 3; i++) {
    const response = await app.inject({ method: 'GET', url: '/Patient', headers: { origin: ALLOWED, authorization: token } });
    statuses.push(response.statusCode);
    if (response.statusCode === 429) throttled = response;
  }
  t.same(statuses, [200, 200, 429], 'the preflights used none of the 2 requests a minute');
  t.equal(header(throttled!, 'access-control-allow-origin'), ALLOWED, 'the 429 carries Access-Control-Allow-Origin');
  t.ok(listed(header(throttled!, 'access-control-expose-headers')).includes('retry-after'), 'and exposes Retry-After');
});

t.test('rate limit: the 6th request of a client gets 429 with Retry-After; another client still gets through', async (t) => {
  const { app, bearer } = await startSecuredApp(t, { exposure: { corsOrigins: [], rateLimitPerMinute: 5 } });
  const clientA = await bearer('system/Patient.rs', { client_id: 'client-a' });
  const clientB = await bearer('system/Patient.rs', { client_id: 'client-b' });
  const get = (authorization: string, remoteAddress = '127.0.0.1') =>
    app.inject({ method: 'GET', url: '/Patient', headers: { authorization }, remoteAddress });

  const remaining: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const response = await get(clientA);
    t.equal(response.statusCode, 200, `request ${i} of client A`);
    remaining.push(header(response, 'x-ratelimit-remaining'));
  }
  t.same(remaining, ['4', '3', '2', '1', '0'], 'X-RateLimit-Remaining counts down');

  const sixth = await get(clientA);
  t.equal(sixth.statusCode, 429, 'the 6th request of client A is throttled');
  const retryAfter = Number(header(sixth, 'retry-after'));
  t.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `Retry-After: ${retryAfter} seconds`);
  t.match(header(sixth, 'content-type'), /^application\/fhir\+json/);
  const outcome = sixth.json() as OperationOutcome;
  t.match(outcome, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled' }] });
  t.match(outcome.issue?.[0]?.diagnostics, /the limit is 5 requests per minute for this client; retry in \d+ seconds/);

  t.equal((await get(clientA, '10.1.2.3')).statusCode, 429, 'client A from another address: still throttled (the key is the client)');
  t.equal((await get(clientB)).statusCode, 200, 'client B, same address, still gets through');
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'health checks are never limited');
});

t.test('rate limit: an address sending bad credentials is refused before verification, others are not', async (t) => {
  const { app, bearer } = await startSecuredApp(t, { exposure: { corsOrigins: [], rateLimitPerMinute: 5 } });
  const attacker = '192.0.2.66';
  const statuses: number[] = [];
  for (let i = 0; i < 7; i++) {
    const response = await app.inject({
      method: 'GET',
      url: '/Patient',
      headers: { authorization: 'Bearer not-a-jwt' },
      remoteAddress: attacker,
    });
    statuses.push(response.statusCode);
    if (response.statusCode === 429) {
      t.match(response.json(), {
        resourceType: 'OperationOutcome',
        issue: [{ code: 'throttled', diagnostics: /without valid credentials from this address/ }],
      });
      t.ok(Number(header(response, 'retry-after')) > 0, 'with Retry-After');
    }
  }
  t.same(statuses, [401, 401, 401, 401, 401, 429, 429], 'five refusals, then 429');
  const good = await bearer('system/Patient.rs', { client_id: 'neighbour' });
  t.equal(
    (await app.inject({ method: 'GET', url: '/Patient', headers: { authorization: good }, remoteAddress: '192.0.2.67' })).statusCode,
    200,
    'another address with a good token is unaffected',
  );
  t.equal(
    (await app.inject({ method: 'GET', url: '/Patient', headers: { authorization: good }, remoteAddress: attacker })).statusCode,
    429,
    'a good token from the throttled address waits too (refused before authentication)',
  );
});
