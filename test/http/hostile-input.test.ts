/**
 * Input a hostile or unlucky client sends, each case one that once answered 500, an answer that was not an
 * OperationOutcome, or work without bound: every one must now be a clear 4xx OperationOutcome, with nothing
 * written, and the server serving the next request.
 */
import { connect, type Socket } from 'node:net';
import type { Bundle } from '@medplum/fhirtypes';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { JSON_HEADERS, create } from '../fhir/search/helpers.js';
import { DEFAULT_SEARCH_SETTINGS } from '../../src/fhir/search/search.js';

stopMongoAtEnd(t);

function assertOutcome(t: Test, res: LightMyRequestResponse, status: number, code: string | RegExp, diagnostics?: RegExp): void {
  t.equal(res.statusCode, status, `${status}: ${res.body.slice(0, 300)}`);
  t.match(res.headers['content-type'], /^application\/fhir\+json/);
  const outcome = res.json() as { resourceType: string; issue: Array<{ code: string; diagnostics?: string }> };
  t.equal(outcome.resourceType, 'OperationOutcome');
  t.match(outcome.issue[0].code, code);
  if (diagnostics) t.match(outcome.issue[0].diagnostics, diagnostics);
}

async function patientCount(app: FastifyInstance): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/Patient?_summary=count' });
  return (res.json() as Bundle).total ?? -1;
}

/** Sends raw bytes on a new connection and returns everything the server sent until it closed. */
function rawExchange(port: number, request: string | ((socket: Socket) => void), timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => (typeof request === 'string' ? socket.write(request) : request(socket)));
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; received: ${received.slice(0, 200)}`));
    }, timeoutMs);
    socket.on('data', (chunk) => (received += chunk.toString()));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.on('error', () => undefined);
  });
}

function rawBody(response: string): { status: number; body: unknown } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
  const text = response.slice(response.indexOf('\r\n\r\n') + 4);
  return { status, body: text ? JSON.parse(text) : undefined };
}

t.test('an empty _type list is a 400, in every form it comes', async (t) => {
  const { app } = await startTestApp(t);
  for (const url of ['/?_type=,', '/?_type=%2C', '/?_type=,,&_sort=_lastUpdated', '/?_type=,&subject.name=x', '/?_type=%20,%20']) {
    assertOutcome(t, await app.inject({ method: 'GET', url }), 400, 'invalid', /_type=.* names no resource type/);
  }
  const form = await app.inject({
    method: 'POST',
    url: '/_search',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: '_type=,',
  });
  assertOutcome(t, form, 400, 'invalid', /names no resource type/);
});

t.test('Object.prototype names as lookup keys are ordinary unknown values', async (t) => {
  const { app } = await startTestApp(t);
  const names = ['toString', 'constructor', '__proto__', 'valueOf', 'hasOwnProperty', 'isPrototypeOf'];
  for (const name of names) {
    assertOutcome(
      t,
      await app.inject({ method: 'GET', url: `/metadata?_format=${name}` }),
      406,
      'not-supported',
      new RegExp(`_format=${name}`),
    );
    assertOutcome(t, await app.inject({ method: 'GET', url: '/Patient', headers: { accept: name } }), 406, 'not-supported');
    // In search: as a parameter, a modifier, a _sort, _summary, _total, _elements or _include value.
    // _elements may name elements the type does not have (they are simply not there): not an error.
    const elements = await app.inject({ method: 'GET', url: `/Patient?_elements=${name}` });
    t.equal(elements.statusCode, 200);
    for (const url of [
      `/Patient?${name}=x`,
      `/Patient?name:${name}=x`,
      `/Patient?_sort=${name}`,
      `/Patient?_summary=${name}`,
      `/Patient?_total=${name}`,
      `/Encounter?_include=Encounter:${name}`,
      `/Patient?_has:${name}:patient:name=x`,
      `/Encounter?subject:${name}.name=x`,
      `/Patient?birthdate=${name}2000`,
    ]) {
      const res = await app.inject({ method: 'GET', url, headers: { prefer: 'handling=strict' } });
      t.ok(res.statusCode >= 400 && res.statusCode < 500, `${url}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      t.equal(res.json().resourceType, 'OperationOutcome', url);
    }
  }
  const bundle = { resourceType: 'Bundle', type: 'batch', entry: names.map((name) => ({ request: { method: name, url: 'Patient' } })) };
  const batch = await app.inject({ method: 'POST', url: '/', headers: JSON_HEADERS, payload: bundle });
  t.equal(batch.statusCode, 200, 'a batch answers per entry');
  for (const entry of (batch.json() as Bundle).entry ?? []) t.match(entry.response?.status, /^400/);
});

t.test('a NUL character in a string search value is searched for, not a 500', async (t) => {
  const { app } = await startTestApp(t);
  for (const url of ['/Patient?name=a%00b', '/Patient?address=%00', '/Patient?name:contains=x%00', '/Patient?family:exact=a%00']) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 200, url);
    t.equal(res.json().resourceType, 'Bundle');
  }
});

t.test('a string that is not well-formed Unicode (a lone surrogate) is refused before anything sees it', async (t) => {
  const { app } = await startTestApp(t);
  const lone = [
    '{"resourceType":"Patient","name":[{"family":"Sur\\ud800gate"}]}',
    '{"resourceType":"Patient","name":[{"family":"low \\uDC00 first"}]}',
    '{"resourceType":"Patient","name":[{"family":"ends high \\uD83D"}]}',
    '{"resourceType":"Patient","name":[{"family":"x","\\ud800":"key"}]}',
  ];
  for (const payload of lone) {
    assertOutcome(
      t,
      await app.inject({ method: 'POST', url: '/Patient', headers: JSON_HEADERS, payload }),
      400,
      'invalid',
      /not well-formed Unicode/,
    );
  }
  const existing = await create(app, { resourceType: 'Patient', name: [{ family: 'Before' }] });
  const put = `{"resourceType":"Patient","id":"${existing.id}","name":[{"family":"\\ud800"}]}`;
  assertOutcome(
    t,
    await app.inject({ method: 'PUT', url: `/Patient/${existing.id}`, headers: JSON_HEADERS, payload: put }),
    400,
    'invalid',
  );
  const patch = await app.inject({
    method: 'PATCH',
    url: `/Patient/${existing.id}`,
    headers: { 'content-type': 'application/json-patch+json' },
    payload: '[{"op":"replace","path":"/name/0/family","value":"\\udfff"}]',
  });
  assertOutcome(t, patch, 400, 'invalid');
  const transaction = `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","name":[{"family":"\\ud800"}]},"request":{"method":"POST","url":"Patient"}}]}`;
  assertOutcome(t, await app.inject({ method: 'POST', url: '/', headers: JSON_HEADERS, payload: transaction }), 400, 'invalid');
  // A JSON Patch carried base64-encoded in a Bundle's Binary is parsed the same way.
  const data = Buffer.from('[{"op":"replace","path":"/name/0/family","value":"\\ud800"}]').toString('base64');
  const binaryPatch = {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [
      {
        resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data },
        request: { method: 'PATCH', url: `Patient/${existing.id}` },
      },
    ],
  };
  const batch = await app.inject({ method: 'POST', url: '/', headers: JSON_HEADERS, payload: binaryPatch });
  t.match((batch.json() as Bundle).entry?.[0].response?.status, /^400/);
  t.equal(await patientCount(app), 1, 'nothing new was written');
  const read = await app.inject({ method: 'GET', url: `/Patient/${existing.id}` });
  t.equal(read.json().meta.versionId, '1', 'the resource is unchanged');
  // A surrogate PAIR is a character like any other.
  const emoji = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: JSON_HEADERS,
    payload: '{"resourceType":"Patient","name":[{"family":"Smile \\ud83d\\ude00"}]}',
  });
  t.equal(emoji.statusCode, 201);
  t.equal(emoji.json().name[0].family, 'Smile 😀');
});

t.test("a resource whose stored document would pass MongoDB's 16 MiB limit is a 413 before anything is written", async (t) => {
  const { app } = await startTestApp(t, { bodyLimit: 64 * 1024 * 1024 });
  // Each string is within FHIR's 1 MB limit, but a name is stored with its search index values (several copies).
  const big = (letter: string) => ({ family: letter.repeat(700_000), given: [letter.toUpperCase().repeat(700_000)] });
  const tooLarge = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: JSON_HEADERS,
    payload: { resourceType: 'Patient', name: [big('a'), big('b')] },
  });
  assertOutcome(t, tooLarge, 413, 'too-costly', /would be stored as .* MiB .* over the limit of .* MiB .* nothing was written/);
  t.equal(await patientCount(app), 0);

  const created = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: JSON_HEADERS,
    payload: { resourceType: 'Patient', name: [big('c')] },
  });
  t.equal(created.statusCode, 201, 'one such name fits');
  const id = created.json().id as string;
  const grow = await app.inject({
    method: 'PATCH',
    url: `/Patient/${id}`,
    headers: { 'content-type': 'application/json-patch+json' },
    payload: [{ op: 'add', path: '/name/-', value: big('d') }],
  });
  assertOutcome(t, grow, 413, 'too-costly', /over the limit/);
  const history = await app.inject({ method: 'GET', url: `/Patient/${id}/_history` });
  t.equal((history.json() as Bundle).entry?.length, 1, 'no second version');
});

t.test('errors the router raises are OperationOutcomes too', async (t) => {
  const { app } = await startTestApp(t);
  assertOutcome(t, await app.inject({ method: 'GET', url: `/Patient/${'a'.repeat(250)}` }), 414, 'too-costly', /path segment/);
  assertOutcome(t, await app.inject({ method: 'GET', url: `/Patient/${'a'.repeat(101)}` }), 404, 'not-found');
  assertOutcome(t, await app.inject({ method: 'GET', url: '/Patient/%/$everything' }), 400, 'invalid', /percent-encoding/);
  assertOutcome(t, await app.inject({ method: 'GET', url: '/Patient/%zz' }), 400, 'invalid', /percent-encoding/);

  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const noHost = rawBody(await rawExchange(port, 'GET /metadata HTTP/1.1\r\nConnection: close\r\n\r\n'));
  t.equal(noHost.status, 400);
  t.match(noHost.body, { resourceType: 'OperationOutcome', issue: [{ diagnostics: /Host header/ }] });
  const http10 = rawBody(await rawExchange(port, 'GET /metadata HTTP/1.0\r\n\r\n'));
  t.equal(http10.status, 200, 'HTTP/1.0 has no Host requirement');
  const garbage = rawBody(await rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n'));
  t.equal(garbage.status, 400);
  t.match(garbage.body, { resourceType: 'OperationOutcome' });
  // A request line over the header size limit: 431 with an OperationOutcome, and for HEAD no body at all (a client
  // reads a body after a HEAD answer as garbage on the connection).
  const longUrl = `/Patient?name=${'x'.repeat(20_000)}`;
  const longGet = rawBody(await rawExchange(port, `GET ${longUrl} HTTP/1.1\r\nHost: x\r\n\r\n`));
  t.equal(longGet.status, 431);
  t.match(longGet.body, { resourceType: 'OperationOutcome', issue: [{ code: 'too-costly' }] });
  const longHead = await rawExchange(port, `HEAD ${longUrl} HTTP/1.1\r\nHost: x\r\n\r\n`);
  t.match(longHead, /^HTTP\/1\.1 431 /);
  t.equal(longHead.slice(longHead.indexOf('\r\n\r\n') + 4), '', 'no body after a HEAD answer');
});

t.test('every search has a bounded cost: limits on values, parameters, includes and chain depth', async (t) => {
  const { app } = await startTestApp(t);
  const values = (n: number) => Array.from({ length: n }, (_, i) => `v${i}`).join(',');
  const tooCostly = async (url: string, diagnostics: RegExp) => {
    for (const prefer of ['handling=lenient', 'handling=strict']) {
      assertOutcome(t, await app.inject({ method: 'GET', url, headers: { prefer } }), 400, 'too-costly', diagnostics);
    }
  };
  await tooCostly(`/Patient?phonetic=${values(2000)}`, /2000 values .* at most 200 .*SEARCH_MAX_VALUES/);
  await tooCostly(`/Patient?name:contains=${values(2000)}`, /SEARCH_MAX_VALUES/);
  await tooCostly(`/Patient?${Array.from({ length: 60 }, (_, i) => `name=v${i}`).join('&')}`, /60 parameters.*SEARCH_MAX_PARAMETERS/);
  await tooCostly(`/Encounter?${Array.from({ length: 11 }, () => '_include=Encounter:subject').join('&')}`, /SEARCH_MAX_INCLUDES/);
  await tooCostly(
    '/Encounter?subject:Patient.link:Patient.link:Patient.link:Patient.link:Patient.name=x',
    /chains are limited to 4 levels/,
  );
  await tooCostly(`/Encounter?${'_has:Encounter:part-of:'.repeat(5)}status=x`, /_has is limited to 4 levels/);
  t.equal(
    (await app.inject({ method: 'GET', url: `/Encounter?${'_has:Encounter:part-of:'.repeat(4)}status=x` })).statusCode,
    200,
    'four levels run',
  );
  await tooCostly(`/?_type=Patient&name=${values(300)}`, /SEARCH_MAX_VALUES/);
  const post = await app.inject({
    method: 'POST',
    url: '/Patient/_search',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: `name=${values(500)}`,
  });
  assertOutcome(t, post, 400, 'too-costly');
  // An escaped comma is part of a value, not a separator.
  const escaped = await app.inject({ method: 'GET', url: `/Patient?name=${'a\\,'.repeat(300)}` });
  t.equal(escaped.statusCode, 200);
  // At the limits, the search runs.
  t.equal((await app.inject({ method: 'GET', url: `/Patient?name=${values(DEFAULT_SEARCH_SETTINGS.limits.maxValues)}` })).statusCode, 200);
  // Limits are configurable.
  const { app: narrow } = await startTestApp(t, {
    search: { ...DEFAULT_SEARCH_SETTINGS, limits: { ...DEFAULT_SEARCH_SETTINGS.limits, maxValues: 3 } },
  });
  assertOutcome(t, await narrow.inject({ method: 'GET', url: '/Patient?name=a,b,c,d' }), 400, 'too-costly', /at most 3/);
  t.equal((await narrow.inject({ method: 'GET', url: '/Patient?name=a,b,c' })).statusCode, 200);

  // Searches inside a batch count as searches, and a Bundle may hold only so many.
  const searches = (n: number) => ({
    resourceType: 'Bundle',
    type: 'batch',
    entry: Array.from({ length: n }, (_, i) => ({ request: { method: 'GET', url: `Patient?name=n${i}` } })),
  });
  const many = await app.inject({ method: 'POST', url: '/', headers: JSON_HEADERS, payload: searches(101) });
  assertOutcome(t, many, 413, /too-costly|too-long/, /101 search and history entries; at most 100 .*BUNDLE_MAX_SEARCHES/);
  t.equal((await app.inject({ method: 'POST', url: '/', headers: JSON_HEADERS, payload: searches(100) })).statusCode, 200);
  const inBatch = await app.inject({
    method: 'POST',
    url: '/',
    headers: JSON_HEADERS,
    payload: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Patient?name=${values(500)}` } }] },
  });
  t.match((inBatch.json() as Bundle).entry?.[0].response?.status, /^400/);
});

t.test('a client that sends its body too slowly is cut off with 408', async (t) => {
  const { app } = await startTestApp(t, {
    http: { headersTimeoutMs: 1000, requestTimeoutMs: 1500, keepAliveTimeoutMs: 1000, maxConnections: 100 },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const started = Date.now();
  const response = await rawExchange(port, (socket) => {
    socket.write(
      'POST /Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{"resourceType":',
    );
    // ...and never the rest.
  });
  const elapsed = Date.now() - started;
  const { status, body } = rawBody(response);
  t.equal(status, 408, response.slice(0, 200));
  t.match(body, { resourceType: 'OperationOutcome', issue: [{ code: 'timeout' }] });
  t.ok(elapsed < 10_000, `cut off after ${elapsed} ms`);
  // Headers that never end are cut off too.
  const headers = rawBody(await rawExchange(port, 'GET /metadata HTTP/1.1\r\nHost: x\r\nX-Slow: '));
  t.equal(headers.status, 408);
  t.equal(await patientCount(app), 0);
});

t.test('connections beyond HTTP_MAX_CONNECTIONS are refused, the others keep being served', async (t) => {
  const { app } = await startTestApp(t, {
    http: { headersTimeoutMs: 5000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 10_000, maxConnections: 2 },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  const open = (): Promise<Socket> =>
    new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1', () => resolve(socket));
      socket.on('error', () => undefined);
    });
  const held = [await open(), await open()];
  t.teardown(() => held.forEach((socket) => socket.destroy()));
  // Let the server register both before the third arrives.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const refused = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 5000);
  t.equal(refused, '', 'the third connection is closed without an answer');
  held[0]!.destroy();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const served = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 5000);
  t.match(served, /^HTTP\/1\.1 200 /, 'once one closes, a new connection is served');
});

t.test('a batch whose client has gone stops running its entries', async (t) => {
  const { app, store } = await startTestApp(t);
  for (let i = 0; i < 20; i++) await create(app, { resourceType: 'Patient', name: [{ family: `Gone${i}` }] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  let socket: Socket | undefined;
  let searchesRun = 0;
  let gone: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => (gone = resolve));
  const currentOf = store.currentOf.bind(store);
  store.currentOf = ((types: string[]) => {
    searchesRun++;
    // The client hangs up while its third search runs.
    if (searchesRun === 3) socket?.destroy();
    return currentOf(types);
  }) as typeof store.currentOf;
  const body = JSON.stringify({
    resourceType: 'Bundle',
    type: 'batch',
    entry: Array.from({ length: 100 }, (_, i) => ({ request: { method: 'GET', url: `Patient?name:contains=Gone${i % 20}` } })),
  });
  socket = connect(port, '127.0.0.1', () =>
    socket!.write(
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    ),
  );
  socket.on('error', () => undefined);
  socket.on('close', () => gone());
  await closed;
  // Give the server time to finish whatever it would still do.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.ok(searchesRun < 20, `the batch stopped after ${searchesRun} of 100 searches`);
  // The server goes on serving.
  t.equal((await app.inject({ method: 'GET', url: '/Patient?name:contains=Gone1' })).statusCode, 200);
});
