/**
 * The FHIR essentials every later interaction stands on: CapabilityStatement, content negotiation, and errors as
 * OperationOutcome with the right status, while the server keeps serving.
 */
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import { buildApp } from '../../src/app.js';
import { FEATURED_ONLY, TEST_CONFIG, startTestApp, stopMongoAtEnd, testValidator } from '../helpers/app.js';

stopMongoAtEnd(t);

interface Outcome {
  resourceType: string;
  issue: Array<{ severity: string; code: string; diagnostics?: string }>;
}

function assertOutcome(t: Test, body: string, code: string, diagnostics?: RegExp): void {
  const outcome = JSON.parse(body) as Outcome;
  t.equal(outcome.resourceType, 'OperationOutcome');
  t.equal(outcome.issue[0].severity, 'error');
  t.equal(outcome.issue[0].code, code);
  if (diagnostics) t.match(outcome.issue[0].diagnostics, diagnostics);
}

t.test('GET /metadata answers a CapabilityStatement generated from what the server supports', async (t) => {
  const { app } = await startTestApp(t);
  const res = await app.inject({ method: 'GET', url: '/metadata' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/fhir\+json; charset=utf-8/);
  const statement = res.json();
  t.equal(statement.resourceType, 'CapabilityStatement');
  t.equal(statement.fhirVersion, '4.0.1');
  t.equal(statement.kind, 'instance');
  t.equal(statement.status, 'active');
  t.same(statement.format, ['application/fhir+json', 'json', 'application/fhir+xml', 'xml'], 'JSON and XML');
  t.equal(statement.implementation.url, 'http://127.0.0.1:8080');
  const resources = statement.rest[0].resource as Array<{ type: string; interaction?: unknown[]; operation?: Array<{ name: string }> }>;
  t.same(
    resources.slice(0, 3).map((r) => r.type),
    ['Patient', 'Encounter', 'MedicationRequest'],
    'the featured types first',
  );
  t.equal(resources.length, 146, 'every R4 resource type');
  const hosted = resources.filter((r) => r.interaction !== undefined);
  t.equal(hosted.length, 145, 'every type but Parameters is hosted');
  t.same(
    resources.filter((r) => r.interaction === undefined).map((r) => [r.type, r.operation?.map((o) => o.name)]),
    [['Parameters', ['validate']]],
    'Parameters is only validated',
  );
  const audit = resources.find((r) => r.type === 'AuditEvent') as { interaction: Array<{ code: string }> };
  t.same(
    audit.interaction.map((i) => i.code),
    ['read', 'vread', 'history-instance', 'history-type', 'search-type'],
    'the audit trail is read-only',
  );
  const restricted = (await startTestApp(t, FEATURED_ONLY)).app;
  const few = (await restricted.inject({ url: '/metadata' })).json().rest[0].resource as typeof resources;
  t.same(
    few.filter((r) => r.interaction !== undefined).map((r) => r.type),
    ['Patient', 'Encounter', 'MedicationRequest', 'AuditEvent'],
    'RESOURCE_TYPES restricts the hosted types (the audit trail is always there)',
  );
  t.ok(
    few.filter((r) => r.interaction === undefined).every((r) => r.operation?.length === 1 && r.operation[0]!.name === 'validate'),
    'the others with $validate and nothing else',
  );
  t.ok(res.headers['x-request-id'], 'every response carries a request id');
});

t.test('content negotiation: _format, Accept, _pretty', async (t) => {
  const { app } = await startTestApp(t);
  let res = await app.inject({ url: '/metadata', headers: { accept: 'application/json' } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/, 'application/json is honoured');

  res = await app.inject({ url: '/metadata', headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  t.equal(res.statusCode, 200, 'a browser gets JSON through */*');
  t.match(res.headers['content-type'], /^application\/fhir\+json/);

  res = await app.inject({ url: '/metadata?_format=json' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/fhir\+json/);

  res = await app.inject({ url: '/metadata?_format=application/fhir%2Bjson' });
  t.equal(res.statusCode, 200);

  res = await app.inject({ url: '/metadata?_format=xml' });
  t.equal(res.statusCode, 200, '_format=xml answers XML');
  t.match(res.headers['content-type'], /^application\/fhir\+xml/);
  t.match(res.body, /^<\?xml version="1.0" encoding="UTF-8"\?><CapabilityStatement xmlns="http:\/\/hl7.org\/fhir">/);
  t.match(res.body, /<format value="xml"\/>/, 'and lists xml among its formats');

  res = await app.inject({ url: '/metadata', headers: { accept: 'application/fhir+xml; fhirVersion=4.0' } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/fhir\+xml/);
  res = await app.inject({ url: '/metadata', headers: { accept: 'text/xml' } });
  t.match(res.headers['content-type'], /^text\/xml/, 'text/xml is echoed');

  res = await app.inject({ url: '/metadata', headers: { accept: 'application/fhir+xml; fhirVersion=3.0' } });
  t.equal(res.statusCode, 406, 'another FHIR version is not acceptable');
  assertOutcome(t, res.body, 'not-supported', /FHIR R4/);
  res = await app.inject({ url: '/metadata?_format=turtle' });
  t.equal(res.statusCode, 406);
  assertOutcome(t, res.body, 'not-supported', /_format=turtle is not supported/);

  res = await app.inject({ url: '/metadata', headers: { accept: 'application/fhir+json;q=0, text/plain' } });
  t.equal(res.statusCode, 406, 'q=0 means not acceptable');

  res = await app.inject({ url: '/metadata?_pretty=true' });
  t.match(res.body, /^\{\n {2}"resourceType": "CapabilityStatement"/, '_pretty indents');
  res = await app.inject({ url: '/metadata' });
  t.notMatch(res.body, /\n/, 'compact by default');
});

t.test('unknown routes and types are 404 OperationOutcomes', async (t) => {
  const { app } = await startTestApp(t, FEATURED_ONLY);
  let res = await app.inject({ url: '/Observation/123' });
  t.equal(res.statusCode, 404);
  assertOutcome(t, res.body, 'not-found', /Observation is not hosted by this server; \/metadata lists the hosted types/);
  res = await app.inject({ url: '/Nonsense/123' });
  t.equal(res.statusCode, 404);
  assertOutcome(t, res.body, 'not-found', /Nonsense is not hosted/);

  res = await app.inject({ url: '/no/such/thing' });
  t.equal(res.statusCode, 404);
  assertOutcome(t, res.body, 'not-found', /GET \/no\/such\/thing/);
  t.match(res.headers['content-type'], /application\/fhir\+json/);
});

t.test('a method the URL does not support is 405 with Allow', async (t) => {
  const { app } = await startTestApp(t);
  for (const method of ['PUT', 'DELETE', 'PATCH'] as const) {
    const res = await app.inject({ method, url: '/metadata' });
    t.equal(res.statusCode, 405, method);
    t.equal(res.headers.allow, 'GET, HEAD');
    assertOutcome(t, res.body, 'not-supported', new RegExp(`${method} is not allowed on /metadata`));
  }
});

t.test('bodies: 415 for a wrong Content-Type, 413 over BODY_LIMIT, 400 for malformed or hostile JSON', async (t) => {
  const { app } = await startTestApp(t, { bodyLimit: 2048 });
  const post = (payload: string, contentType = 'application/fhir+json') =>
    app.inject({ method: 'POST', url: '/metadata', payload, headers: { 'content-type': contentType } });

  let res = await post('<Patient/>', 'application/x-www-form-urlencoded');
  t.equal(res.statusCode, 415);
  assertOutcome(t, res.body, 'not-supported', /Content-Type application\/x-www-form-urlencoded is not supported/);

  res = await post('hello', 'text/plain');
  t.equal(res.statusCode, 415);

  res = await post(JSON.stringify({ resourceType: 'Patient', text: 'x'.repeat(4096) }));
  t.equal(res.statusCode, 413);
  assertOutcome(t, res.body, 'too-costly', /larger than the limit of 2048 bytes/);

  res = await post('{"resourceType": "Patient",');
  t.equal(res.statusCode, 400);
  assertOutcome(t, res.body, 'invalid', /not valid JSON/);

  res = await post('');
  t.equal(res.statusCode, 400);

  res = await post('{"resourceType":"Patient","__proto__":{"polluted":true}}');
  t.equal(res.statusCode, 400);
  assertOutcome(t, res.body, 'invalid', /forbidden key/);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');

  res = await post('{"a":{"constructor":{"prototype":{"polluted":true}}}}');
  t.equal(res.statusCode, 400);

  res = await post('['.repeat(500) + ']'.repeat(500));
  t.equal(res.statusCode, 400);
  assertOutcome(t, res.body, 'invalid', /nests deeper than 100 levels/);

  res = await post('{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"["}');
  t.equal(res.statusCode, 405, 'brackets inside strings do not count as nesting: the body parses and the route answers');

  res = await app.inject({ url: '/metadata' });
  t.equal(res.statusCode, 200, 'the server keeps serving after bad input');
});

t.test('a malformed HTTP request on a real socket gets a 400 and the server keeps serving', async (t) => {
  const { app } = await startTestApp(t);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect(address.port, '127.0.0.1', () => socket.write('GARBAGE \x00\x01 HTTP/9.9\r\n\r\n'));
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(5000, () => reject(new Error('no answer')));
  });
  t.match(raw, /^HTTP\/1\.1 400/);
  t.match(raw, /"resourceType":"OperationOutcome"/);
  const res = await fetch(`http://127.0.0.1:${address.port}/metadata`);
  t.equal(res.status, 200);
});

t.test('a configured base path moves the FHIR base; health stays at the root', async (t) => {
  const { app } = await startTestApp(t, { basePath: '/fhir', baseUrl: 'https://example.org/fhir' });
  let res = await app.inject({ url: '/fhir/metadata' });
  t.equal(res.statusCode, 200);
  t.equal(res.json().implementation.url, 'https://example.org/fhir');
  res = await app.inject({ url: '/metadata' });
  t.equal(res.statusCode, 404);
  res = await app.inject({ url: '/healthz' });
  t.equal(res.statusCode, 200);
});

t.test('/healthz and /readyz', async (t) => {
  const { app, connection } = await startTestApp(t);
  let res = await app.inject({ url: '/healthz' });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ok' });
  res = await app.inject({ url: '/readyz' });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ready', mongodb: 'ok' });

  await connection.close();
  res = await app.inject({ url: '/readyz' });
  t.equal(res.statusCode, 503, 'not ready when MongoDB does not answer');
  assertOutcome(t, res.body, 'transient', /MongoDB does not answer/);
  res = await app.inject({ url: '/healthz' });
  t.equal(res.statusCode, 200, 'but still alive');
});

t.test('a trailing slash reaches the same route', async (t) => {
  const { app } = await startTestApp(t);
  const res = await app.inject({ url: '/metadata/' });
  t.equal(res.statusCode, 200);
  t.equal(res.json().resourceType, 'CapabilityStatement');
});

t.test('behind a trusted proxy the client address is the forwarded one (TRUST_PROXY); otherwise the peer', async (t) => {
  const seen: string[] = [];
  for (const trustProxy of [undefined, '127.0.0.1']) {
    const { store } = await startTestApp(t);
    const app = await buildApp(
      { ...TEST_CONFIG, exposure: { corsOrigins: [], rateLimitPerMinute: 0, ...(trustProxy ? { trustProxy } : {}) } },
      { store, validator: await testValidator(), logger: false },
    );
    app.addHook('onRequest', async (request) => {
      seen.push(request.ip);
    });
    await app.ready();
    await app.inject({ url: '/metadata', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.7' } });
    await app.close();
  }
  t.same(seen, ['127.0.0.1', '203.0.113.7'], 'the peer without TRUST_PROXY, the forwarded address with it');
});
