/**
 * The exposure plugin on small Fastify apps shaped like the server's: the error plugin first, then exposure, then an
 * authentication hook in onRequest, then routes. No sockets, no MongoDB.
 */
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyRequest, type LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { FhirError, issue } from '../../src/fhir/outcome.js';
import errorPlugin from '../../src/http/errors.js';
import exposurePlugin, {
  CORS_ALLOWED_HEADERS,
  CORS_EXPOSED_HEADERS,
  CORS_METHODS,
  addressKey,
  checkCorsOrigins,
  type ExposureOptions,
} from '../../src/http/exposure.js';

const ALLOWED = 'https://app.example.org';
const SECRET = 'password=hunter2 at /srv/fhir/src/store/resource-store.ts:42';

interface TestApp {
  app: FastifyInstance;
  /** How many requests reached the authentication hook. */
  authCalls: () => number;
}

/** A stand-in for the app's authentication: "Bearer bad" is refused, "Bearer <client>" authenticates <client>. */
const principals = new WeakMap<FastifyRequest, string>();

async function buildTestApp(t: Test, options: Partial<ExposureOptions> = {}): Promise<TestApp> {
  const app = Fastify({ logger: false });
  await app.register(errorPlugin, { resourceTypes: ['Patient'], basePath: '', bodyLimit: 1_000_000 });
  await app.register(exposurePlugin, {
    corsOrigins: [ALLOWED],
    rateLimitPerMinute: 0,
    rateLimitKey: (request) => principals.get(request) ?? addressKey(request),
    ...options,
  });
  let authCalls = 0;
  app.addHook('onRequest', async (request) => {
    authCalls++;
    const authorization = request.headers.authorization;
    if (authorization === undefined) return; // anonymous: keyed by address
    const token = authorization.replace(/^Bearer /, '');
    if (token === 'malformed') {
      throw new FhirError(400, issue('error', 'invalid', 'Authorization: malformed'), {
        'www-authenticate': 'Bearer error="invalid_request"',
      });
    }
    if (token === 'bad') {
      throw new FhirError(401, issue('error', 'login', 'The access token is not valid'), {
        'www-authenticate': 'Bearer error="invalid_token"',
      });
    }
    principals.set(request, `client:${token}`);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => ({ status: 'ready' }));
  app.get('/Patient/:id', async (request, reply) => {
    const etag = 'W/"3"';
    reply.header('etag', etag).header('last-modified', 'Tue, 01 Dec 2026 10:00:00 GMT');
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type('application/fhir+json; charset=utf-8').send({ resourceType: 'Patient', id: 'p1' });
  });
  app.post('/Patient', async (request, reply) => {
    reply.code(201).type('application/fhir+json; charset=utf-8').send(request.body);
  });
  app.get('/metadata', async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=60').type('application/fhir+json; charset=utf-8');
    return { resourceType: 'CapabilityStatement' };
  });
  app.get('/export/Patient.ndjson', async (_request, reply) => {
    reply.type('application/fhir+ndjson');
    return reply.send(Readable.from(['{"resourceType":"Patient","id":"a"}\n', '{"resourceType":"Patient","id":"b"}\n']));
  });
  app.get('/boom', async () => {
    throw new Error(`database exploded: ${SECRET}`);
  });
  app.get('/boom-503', async () => {
    throw Object.assign(new Error(`upstream said ${SECRET}`), { statusCode: 503 });
  });
  app.get('/boom-sync', () => {
    throw new TypeError(`Cannot read properties of undefined (reading '${SECRET}')`);
  });
  app.get('/boom-non-error', async () => {
    throw { message: SECRET, stack: SECRET };
  });
  app.get('/boom-404', async () => {
    throw Object.assign(new Error(`upstream GET https://mirror.internal:5551/x said ${SECRET}`), { statusCode: 404 });
  });

  await app.ready();
  t.teardown(() => app.close());
  return { app, authCalls: () => authCalls };
}

function headerList(value: string | string[] | number | undefined): string[] {
  return String(value ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

function assertOutcome(t: Test, res: LightMyRequestResponse, status: number, code: string): string {
  t.equal(res.statusCode, status);
  t.match(res.headers['content-type'], /^application\/fhir\+json/);
  const outcome = res.json() as { resourceType: string; issue: Array<{ code: string; diagnostics?: string }> };
  t.equal(outcome.resourceType, 'OperationOutcome');
  t.equal(outcome.issue[0].code, code);
  return outcome.issue[0].diagnostics ?? '';
}

function assertSecurityHeaders(t: Test, res: LightMyRequestResponse, what: string): void {
  const h = res.headers;
  t.equal(h['content-security-policy'], "default-src 'none';frame-ancestors 'none'", `${what}: CSP`);
  t.equal(h['x-content-type-options'], 'nosniff', `${what}: nosniff`);
  t.equal(h['referrer-policy'], 'no-referrer', `${what}: Referrer-Policy`);
  t.equal(h['strict-transport-security'], 'max-age=31536000', `${what}: HSTS`);
  t.equal(h['x-frame-options'], 'DENY', `${what}: X-Frame-Options`);
  t.equal(h['cross-origin-resource-policy'], 'same-origin', `${what}: CORP`);
  t.notOk(h['x-powered-by'], `${what}: no X-Powered-By`);
  t.ok(h['cache-control'], `${what}: Cache-Control`);
}

t.test('CORS preflight from an allowed origin: 204 with the allowed methods and headers, no authentication', async (t) => {
  const { app, authCalls } = await buildTestApp(t);
  const res = await app.inject({
    method: 'OPTIONS',
    url: '/Patient/p1',
    headers: { origin: ALLOWED, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization, if-match' },
  });
  t.equal(res.statusCode, 204);
  t.equal(res.headers['access-control-allow-origin'], ALLOWED);
  t.same(
    headerList(res.headers['access-control-allow-methods']),
    CORS_METHODS.map((m) => m.toLowerCase()),
  );
  t.same(
    headerList(res.headers['access-control-allow-headers']),
    CORS_ALLOWED_HEADERS.map((h) => h.toLowerCase()),
  );
  t.same(
    headerList(res.headers['access-control-expose-headers']),
    CORS_EXPOSED_HEADERS.map((h) => h.toLowerCase()),
  );
  t.equal(res.headers['access-control-max-age'], '600');
  t.notOk(res.headers['access-control-allow-credentials'], 'no credentials: tokens travel in Authorization');
  t.match(String(res.headers.vary), /Origin/i);
  t.equal(res.headers['content-length'], '0');
  t.equal(authCalls(), 0, 'the preflight was answered before the authentication hook');
  assertSecurityHeaders(t, res, 'preflight');

  // A preflight that would fail authentication (no Authorization can be sent on a preflight) is still answered.
  const plain = await app.inject({ method: 'OPTIONS', url: '/Patient', headers: { origin: ALLOWED } });
  t.equal(plain.statusCode, 204, 'an OPTIONS that is not a full preflight gets 204, not a text/plain 400');
});

t.test('CORS on actual requests: the allowed origin can read responses, including errors', async (t) => {
  const { app } = await buildTestApp(t);
  let res = await app.inject({ url: '/Patient/p1', headers: { origin: ALLOWED, authorization: 'Bearer app' } });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['access-control-allow-origin'], ALLOWED);
  t.same(
    headerList(res.headers['access-control-expose-headers']),
    CORS_EXPOSED_HEADERS.map((h) => h.toLowerCase()),
  );
  t.match(String(res.headers.vary), /Origin/i, 'Vary: Origin since the answer depends on it');

  res = await app.inject({ url: '/Patient/p1', headers: { origin: ALLOWED, authorization: 'Bearer bad' } });
  assertOutcome(t, res, 401, 'login');
  t.equal(res.headers['access-control-allow-origin'], ALLOWED, 'a 401 is readable by the app (it must re-authorize)');

  res = await app.inject({ url: '/Nothing', headers: { origin: ALLOWED } });
  assertOutcome(t, res, 404, 'not-found');
  t.equal(res.headers['access-control-allow-origin'], ALLOWED);
});

t.test('a disallowed origin gets no Access-Control-Allow-Origin (origins are never reflected)', async (t) => {
  const { app } = await buildTestApp(t);
  for (const origin of ['https://evil.example.com', 'https://app.example.org.evil.example.com', 'null', 'http://app.example.org']) {
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/Patient/p1',
      headers: { origin, 'access-control-request-method': 'GET' },
    });
    t.notOk(preflight.headers['access-control-allow-origin'], `preflight from ${origin}`);
    const res = await app.inject({ url: '/Patient/p1', headers: { origin } });
    t.equal(res.statusCode, 200, 'the server still answers (CORS is enforced by the browser)');
    t.notOk(res.headers['access-control-allow-origin'], `request from ${origin}`);
    t.notOk(res.headers['access-control-allow-credentials']);
  }
});

t.test('corsOrigins [] means no CORS headers at all, and OPTIONS is an ordinary 404', async (t) => {
  const { app } = await buildTestApp(t, { corsOrigins: [] });
  const res = await app.inject({ url: '/Patient/p1', headers: { origin: ALLOWED } });
  t.equal(res.statusCode, 200);
  t.same(
    Object.keys(res.headers).filter((h) => h.startsWith('access-control-')),
    [],
  );
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/Patient/p1',
    headers: { origin: ALLOWED, 'access-control-request-method': 'GET' },
  });
  assertOutcome(t, preflight, 404, 'not-found');
  t.same(
    Object.keys(preflight.headers).filter((h) => h.startsWith('access-control-')),
    [],
  );
  assertSecurityHeaders(t, res, 'no CORS');
});

t.test("corsOrigins ['*'] allows any origin, without credentials", async (t) => {
  const { app } = await buildTestApp(t, { corsOrigins: ['*'] });
  const res = await app.inject({ url: '/Patient/p1', headers: { origin: 'https://anyone.example.net' } });
  t.equal(res.headers['access-control-allow-origin'], '*');
  t.notOk(res.headers['access-control-allow-credentials']);
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/Patient',
    headers: { origin: 'https://anyone.example.net', 'access-control-request-method': 'POST' },
  });
  t.equal(preflight.statusCode, 204);
  t.equal(preflight.headers['access-control-allow-origin'], '*');
});

t.test('misconfigured origins fail at registration', async (t) => {
  for (const bad of [
    ['https://app.example.org/'],
    ['HTTPS://App.example.org'],
    ['https://app.example.org:443'],
    ['null'],
    ['app.example.org'],
    ['*', ALLOWED],
    ['ftp://x.example'],
  ]) {
    t.throws(() => checkCorsOrigins(bad), `${JSON.stringify(bad)} is refused`);
  }
  t.doesNotThrow(() => checkCorsOrigins(['https://app.example.org', 'http://localhost:3000']));
  const app = Fastify({ logger: false });
  await app.register(errorPlugin, { resourceTypes: [], basePath: '', bodyLimit: 1000 });
  await t.rejects(async () => {
    await app.register(exposurePlugin, { corsOrigins: ['https://app.example.org/'], rateLimitPerMinute: 0, rateLimitKey: addressKey });
  }, /did you mean 'https:\/\/app\.example\.org'/);
  await app.close();
});

t.test('rate limit: N per minute per client, then 429 with Retry-After and an OperationOutcome', async (t) => {
  const { app } = await buildTestApp(t, { rateLimitPerMinute: 3 });
  const asA = { origin: ALLOWED, authorization: 'Bearer a' };
  for (let i = 1; i <= 3; i++) {
    const res = await app.inject({ url: '/Patient/p1', headers: asA });
    t.equal(res.statusCode, 200, `request ${i} of 3`);
    t.equal(res.headers['x-ratelimit-limit'], '3');
    t.equal(res.headers['x-ratelimit-remaining'], String(3 - i));
  }
  const res = await app.inject({ url: '/Patient/p1', headers: asA });
  const diagnostics = assertOutcome(t, res, 429, 'throttled');
  t.match(diagnostics, /3 requests per minute/);
  t.match(diagnostics, /retry in \d+ seconds/);
  const retryAfter = Number(res.headers['retry-after']);
  t.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After is a number of seconds (${res.headers['retry-after']})`);
  t.equal(res.headers['x-ratelimit-remaining'], '0');
  t.equal(res.headers['access-control-allow-origin'], ALLOWED, 'a browser app can read the 429 and its Retry-After');
  assertSecurityHeaders(t, res, '429');

  // Throttled before the body is parsed: invalid JSON gets 429, not 400.
  const post = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: { ...asA, 'content-type': 'application/json' },
    payload: '{not json',
  });
  t.equal(post.statusCode, 429, 'the limit runs before body parsing');

  // Another client has its own budget; so has an anonymous caller (keyed by address).
  const b = await app.inject({ url: '/Patient/p1', headers: { authorization: 'Bearer b' } });
  t.equal(b.statusCode, 200);
  t.equal(b.headers['x-ratelimit-remaining'], '2');
  const anonymous = await app.inject({ url: '/Patient/p1' });
  t.equal(anonymous.statusCode, 200);
  t.equal(anonymous.headers['x-ratelimit-remaining'], '2');
});

t.test('rate limit: unknown routes count; /healthz and /readyz are exempt; preflights are not counted', async (t) => {
  const { app } = await buildTestApp(t, { rateLimitPerMinute: 2 });
  for (let i = 0; i < 10; i++) {
    for (const url of ['/healthz', '/readyz']) {
      const res = await app.inject({ url, headers: { authorization: 'Bearer c' } });
      t.equal(res.statusCode, 200);
      t.notOk(res.headers['x-ratelimit-limit'], `${url} carries no rate-limit headers`);
    }
    const head = await app.inject({ method: 'HEAD', url: '/healthz', headers: { authorization: 'Bearer c' } });
    t.equal(head.statusCode, 200);
    await app.inject({
      method: 'OPTIONS',
      url: '/Patient',
      headers: { origin: ALLOWED, 'access-control-request-method': 'POST' },
    });
  }
  t.equal((await app.inject({ url: '/Nope', headers: { authorization: 'Bearer c' } })).statusCode, 404);
  t.equal((await app.inject({ url: '/Nope', headers: { authorization: 'Bearer c' } })).statusCode, 404);
  const res = await app.inject({ url: '/Nope', headers: { authorization: 'Bearer c' } });
  assertOutcome(t, res, 429, 'throttled');
});

t.test('failed authentication: per address, refused before the authentication hook runs', async (t) => {
  const { app, authCalls } = await buildTestApp(t, { rateLimitPerMinute: 100, failedAuthPerMinute: 2 });
  const bad = { authorization: 'Bearer bad' };
  t.equal((await app.inject({ url: '/Nothing', headers: { authorization: 'Bearer good' } })).statusCode, 404, 'not counted');
  t.equal((await app.inject({ url: '/Patient/p1', headers: bad })).statusCode, 401);
  t.equal((await app.inject({ url: '/Patient/p1', headers: { authorization: 'Bearer malformed' } })).statusCode, 400);
  const calls = authCalls();
  const res = await app.inject({ url: '/Patient/p1', headers: bad });
  const diagnostics = assertOutcome(t, res, 429, 'throttled');
  t.match(diagnostics, /without valid credentials/);
  t.ok(Number(res.headers['retry-after']) > 0, 'Retry-After');
  t.equal(authCalls(), calls, 'no token verification for a throttled address');
  assertSecurityHeaders(t, res, 'failed-auth 429');

  const sameAddress = await app.inject({ url: '/Patient/p1', headers: { authorization: 'Bearer good' } });
  t.equal(sameAddress.statusCode, 429, 'the address is throttled as a whole (the trade-off of a pre-auth check)');
  const otherAddress = await app.inject({ url: '/Patient/p1', headers: bad, remoteAddress: '10.1.2.3' });
  t.equal(otherAddress.statusCode, 401, 'another address has its own budget');
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'health checks are exempt');

  // IPv6 addresses are grouped by /64.
  for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2']) {
    t.equal((await app.inject({ url: '/Patient/p1', headers: bad, remoteAddress: address })).statusCode, 401);
  }
  t.equal((await app.inject({ url: '/Patient/p1', headers: bad, remoteAddress: '2001:db8:1:2::3' })).statusCode, 429);
});

t.test('rateLimitPerMinute 0: no limit, no rate-limit headers', async (t) => {
  const { app } = await buildTestApp(t, { rateLimitPerMinute: 0 });
  for (let i = 0; i < 20; i++) {
    const res = await app.inject({ url: '/Patient/p1', headers: { authorization: i % 2 ? 'Bearer bad' : 'Bearer a' } });
    t.equal(res.statusCode, i % 2 ? 401 : 200);
    t.notOk(res.headers['x-ratelimit-limit']);
  }
});

t.test('security headers on normal, error, streamed and 304 responses; Content-Type left alone', async (t) => {
  const { app } = await buildTestApp(t, { rateLimitPerMinute: 1000 });
  const ok = await app.inject({ url: '/Patient/p1' });
  t.equal(ok.statusCode, 200);
  t.equal(ok.headers['content-type'], 'application/fhir+json; charset=utf-8');
  assertSecurityHeaders(t, ok, '200');
  t.equal(ok.headers['cache-control'], 'no-store');

  const notFound = await app.inject({ url: '/Nothing/here' });
  assertOutcome(t, notFound, 404, 'not-found');
  assertSecurityHeaders(t, notFound, '404');
  t.equal(notFound.headers['cache-control'], 'no-store');

  const failed = await app.inject({ url: '/boom' });
  assertOutcome(t, failed, 500, 'exception');
  assertSecurityHeaders(t, failed, '500');

  const unauthorized = await app.inject({ url: '/Patient/p1', headers: { authorization: 'Bearer bad' } });
  assertOutcome(t, unauthorized, 401, 'login');
  assertSecurityHeaders(t, unauthorized, '401');
  t.equal(unauthorized.headers['www-authenticate'], 'Bearer error="invalid_token"');

  const stream = await app.inject({ url: '/export/Patient.ndjson' });
  t.equal(stream.statusCode, 200);
  t.equal(stream.headers['content-type'], 'application/fhir+ndjson');
  t.equal(stream.body, '{"resourceType":"Patient","id":"a"}\n{"resourceType":"Patient","id":"b"}\n');
  assertSecurityHeaders(t, stream, 'stream');

  const own = await app.inject({ url: '/metadata' });
  t.equal(own.headers['cache-control'], 'public, max-age=60', "a route's own Cache-Control is kept");
});

t.test('conditional read: If-None-Match still answers 304 with no-store', async (t) => {
  const { app } = await buildTestApp(t);
  const first = await app.inject({ url: '/Patient/p1', headers: { origin: ALLOWED } });
  t.equal(first.statusCode, 200);
  const etag = String(first.headers.etag);
  t.equal(etag, 'W/"3"');
  const second = await app.inject({ url: '/Patient/p1', headers: { origin: ALLOWED, 'if-none-match': etag } });
  t.equal(second.statusCode, 304);
  t.equal(second.body, '');
  t.equal(second.headers.etag, etag, 'the 304 repeats the ETag');
  t.equal(second.headers['cache-control'], 'no-store');
  t.equal(second.headers['access-control-allow-origin'], ALLOWED);
  assertSecurityHeaders(t, second, '304');
});

t.test('an unexpected error leaks no internals: no stack, no path, no message', async (t) => {
  const { app } = await buildTestApp(t);
  for (const url of ['/boom', '/boom-503', '/boom-sync', '/boom-non-error']) {
    const res = await app.inject({ url });
    const diagnostics = assertOutcome(t, res, 500, 'exception');
    t.equal(diagnostics, 'The server could not complete the request; the incident was logged', `${url}: generic`);
    t.same(Object.keys(res.json() as object).sort(), ['issue', 'resourceType'], `${url}: nothing but the outcome`);
    for (const leak of ['hunter2', 'password', '/srv/', '.ts', 'resource-store', 'exploded', 'upstream', 'TypeError', '    at ', 'stack']) {
      t.notOk(res.body.includes(leak), `${url}: the body does not contain ${JSON.stringify(leak)}`);
    }
    for (const [name, value] of Object.entries(res.headers)) {
      t.notOk(String(value).includes('hunter2'), `${url}: header ${name} carries no secret`);
    }
  }
  // A 4xx from something other than Fastify itself keeps its status, not its message (it may name internals).
  const notFound = await app.inject({ url: '/boom-404' });
  t.equal(notFound.statusCode, 404);
  for (const leak of ['hunter2', 'mirror.internal', 'upstream'])
    t.notOk(notFound.body.includes(leak), `a foreign 4xx does not pass on ${JSON.stringify(leak)}`);
  t.match(notFound.body, /The request could not be processed \(HTTP 404\)/);
});
