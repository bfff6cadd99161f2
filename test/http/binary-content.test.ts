/**
 * Binary's raw content (R4 http.html#binary): a create or update whose Content-Type is not FHIR stores the body as the
 * Binary's content; a read or vread whose Accept prefers a non-FHIR type answers with the bytes in the Binary's own
 * media type. Over a real socket (fetch, as a browser or a document system sends bytes) and through inject; with the
 * version headers, conditional reads, the security headers that keep stored HTML from running, the security context
 * header, the limits, and the access control and audit trail of the ordinary interactions.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { AuditEvent, Binary, Bundle, OperationOutcome } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { startSecuredApp } from '../helpers/auth.js';

stopMongoAtEnd(t);

// The eight-byte PNG signature and a little more: bytes that are not UTF-8 and would not survive as text.
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(2048)]);

t.test('raw content in and out', async (t) => {
  const { app } = await startTestApp(t, { bodyLimit: 64 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  let id = '';
  await t.test('POST /Binary with image/png stores the bytes', async (t) => {
    const res = await fetch(`${base}/Binary`, {
      method: 'POST',
      headers: { 'content-type': 'image/png', accept: 'application/fhir+json', 'x-security-context': 'Patient/p-1' },
      body: PNG,
    });
    t.equal(res.status, 201);
    const binary = (await res.json()) as Binary;
    id = binary.id!;
    t.equal(binary.resourceType, 'Binary');
    t.equal(binary.contentType, 'image/png');
    t.equal(binary.data, PNG.toString('base64'), 'the bytes, base64-encoded');
    t.same(binary.securityContext, { reference: 'Patient/p-1' }, 'X-Security-Context');
    t.match(res.headers.get('location'), new RegExp(`/Binary/${id}/_history/1$`));
    t.equal(res.headers.get('etag'), 'W/"1"');
  });

  await t.test('GET with a non-FHIR Accept answers with the bytes', async (t) => {
    const res = await fetch(`${base}/Binary/${id}`, { headers: { accept: 'image/png' } });
    t.equal(res.status, 200);
    t.equal(res.headers.get('content-type'), 'image/png');
    t.ok(Buffer.from(await res.arrayBuffer()).equals(PNG), 'the same bytes');
    t.equal(res.headers.get('etag'), 'W/"1"');
    t.ok(res.headers.get('last-modified'));
    t.match(res.headers.get('content-security-policy'), /sandbox/, 'stored content never runs as the API origin');
    t.equal(res.headers.get('x-content-type-options'), 'nosniff');

    const browser = await fetch(`${base}/Binary/${id}`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    t.equal(browser.headers.get('content-type'), 'image/png', "a browser's Accept gets the content, in its own type");
    await browser.arrayBuffer();

    for (const accept of ['application/fhir+json', 'application/json', '*/*', 'application/fhir+json;q=0.9, image/png;q=0.1']) {
      const resource = await fetch(`${base}/Binary/${id}`, { headers: { accept } });
      t.match(resource.headers.get('content-type'), /json/, `Accept: ${accept} -> the resource`);
      t.equal(((await resource.json()) as Binary).data, PNG.toString('base64'));
    }
    const formatted = await fetch(`${base}/Binary/${id}?_format=json`, { headers: { accept: 'image/png' } });
    t.equal(((await formatted.json()) as Binary).resourceType, 'Binary', '_format wins over Accept');
    const plain = await fetch(`${base}/Binary/${id}`);
    t.equal(((await plain.json()) as Binary).resourceType, 'Binary', 'no Accept: the resource');

    const cached = await fetch(`${base}/Binary/${id}`, { headers: { accept: 'image/png', 'if-none-match': 'W/"1"' } });
    t.equal(cached.status, 304, 'conditional read');
    const head = await fetch(`${base}/Binary/${id}`, { method: 'HEAD', headers: { accept: 'image/png' } });
    t.equal(head.status, 200);
    t.equal(head.headers.get('content-type'), 'image/png');
  });

  await t.test('PUT with raw content makes a new version; vread reads either', async (t) => {
    const text = 'Discharge letter\nline two\n';
    const res = await fetch(`${base}/Binary/${id}`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain;  charset=UTF-8', accept: 'application/fhir+json' },
      body: text,
    });
    t.equal(res.status, 200);
    const binary = (await res.json()) as Binary;
    t.equal(binary.meta?.versionId, '2');
    t.equal(binary.contentType, 'text/plain; charset=UTF-8', 'the media type with its parameters, spacing normalised');
    t.notOk(binary.securityContext, 'no header, no security context');

    const current = await fetch(`${base}/Binary/${id}`, { headers: { accept: 'text/plain' } });
    t.equal(await current.text(), text);
    t.equal(current.headers.get('content-type'), 'text/plain; charset=UTF-8');
    const first = await fetch(`${base}/Binary/${id}/_history/1`, { headers: { accept: 'image/png' } });
    t.ok(Buffer.from(await first.arrayBuffer()).equals(PNG), 'vread of version 1: the image');

    const created = await fetch(`${base}/Binary/letter-7`, {
      method: 'PUT',
      headers: { 'content-type': 'application/pdf' },
      body: '%PDF-1.7',
    });
    t.equal(created.status, 201, 'update as create, with the id of the URL');
    t.equal(((await created.json()) as Binary).id, 'letter-7');
  });

  await t.test('stored HTML is served sandboxed; an empty body is an empty Binary', async (t) => {
    const html = '<script>fetch("/Patient")</script>';
    const stored = (await (
      await fetch(`${base}/Binary`, { method: 'POST', headers: { 'content-type': 'text/html' }, body: html })
    ).json()) as Binary;
    const res = await fetch(`${base}/Binary/${stored.id}`, { headers: { accept: 'text/html' } });
    t.equal(await res.text(), html);
    t.match(res.headers.get('content-security-policy'), /sandbox; default-src 'none'/);

    const empty = await fetch(`${base}/Binary`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' } });
    t.equal(empty.status, 201);
    const binary = (await empty.json()) as Binary;
    t.equal(binary.contentType, 'application/octet-stream');
    t.notOk(binary.data);
    const read = await fetch(`${base}/Binary/${binary.id}`, { headers: { accept: 'application/octet-stream' } });
    t.equal(read.status, 200);
    t.equal((await read.arrayBuffer()).byteLength, 0);
  });

  await t.test('what stays refused', async (t) => {
    const outcome = async (res: Response): Promise<string> => ((await res.json()) as OperationOutcome).issue?.[0]?.diagnostics ?? '';
    const patient = await fetch(`${base}/Patient`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: PNG });
    t.equal(patient.status, 415, 'raw content is for Binary only');
    t.match(await outcome(patient), /application\/fhir\+json/);
    const validate = await fetch(`${base}/Binary/$validate`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: PNG });
    t.equal(validate.status, 415, 'nor $validate');
    t.match(await outcome(validate), /POST \/Binary and PUT \/Binary\/\[id\]/);
    const xml = await fetch(`${base}/Binary`, { method: 'POST', headers: { 'content-type': 'application/fhir+xml' }, body: '<Binary/>' });
    t.equal(xml.status, 400, 'FHIR XML is read as a Binary resource, not taken for content');
    t.match(await outcome(xml), /not in the FHIR namespace/);
    const large = await fetch(`${base}/Binary`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: randomBytes(65 * 1024) });
    t.equal(large.status, 413, 'the body limit holds');
    t.equal(((await large.json()) as OperationOutcome).resourceType, 'OperationOutcome');
    const missing = await fetch(`${base}/Binary/nope`, { headers: { accept: 'image/png' } });
    t.equal(missing.status, 404);
    t.equal(((await missing.json()) as OperationOutcome).resourceType, 'OperationOutcome', 'errors stay OperationOutcomes');
    const patientRead = await fetch(`${base}/Patient/nope`, { headers: { accept: 'image/png' } });
    t.equal(patientRead.status, 406, 'other types do not answer in a non-FHIR type');
    const searched = (await (await fetch(`${base}/Binary?_id=${id}`)).json()) as Bundle;
    t.equal(searched.entry?.[0]?.resource?.resourceType, 'Binary', 'search returns the resource');
  });
});

t.test('access control and audit apply to the raw form as to the resource', async (t) => {
  const secured = await startSecuredApp(t, { audit: { enabled: true, flushIntervalMs: 60_000, bufferMax: 5000 } });
  const { app } = secured;
  const writer = await secured.bearer('system/Binary.cru');
  const created = await app.inject({
    method: 'POST',
    url: '/Binary',
    headers: { authorization: writer, 'content-type': 'application/pdf' },
    payload: Buffer.from('%PDF-1.7 report'),
  });
  t.equal(created.statusCode, 201);
  const id = (created.json() as Binary).id!;

  const anonymous = await app.inject({ url: `/Binary/${id}`, headers: { accept: 'application/pdf' } });
  t.equal(anonymous.statusCode, 401, 'no token, no content');
  const otherType = await app.inject({
    url: `/Binary/${id}`,
    headers: { accept: 'application/pdf', authorization: await secured.bearer('system/Patient.r') },
  });
  t.equal(otherType.statusCode, 403, 'a token without Binary');
  const rawPost = await app.inject({
    method: 'POST',
    url: '/Binary',
    headers: { authorization: await secured.bearer('system/Binary.r'), 'content-type': 'application/pdf' },
    payload: Buffer.from('%PDF'),
  });
  t.equal(rawPost.statusCode, 403, 'a read-only token cannot store content');

  const read = await app.inject({ url: `/Binary/${id}`, headers: { accept: 'application/pdf', authorization: writer } });
  t.equal(read.statusCode, 200);
  t.equal(read.body, '%PDF-1.7 report');
  await secured.flushAudit();
  const auditor = await secured.bearer('system/AuditEvent.rs');
  const events = (
    await app.inject({ url: `/AuditEvent?entity=Binary/${id}&_count=50`, headers: { authorization: auditor } })
  ).json() as Bundle<AuditEvent>;
  const recorded = (events.entry ?? []).map((e) => `${e.resource?.subtype?.[0]?.code} ${e.resource?.outcome}`).sort();
  t.same(
    recorded,
    ['create 0', 'read 0', 'read 4', 'read 4'],
    'the raw create and read audited as create and read; the refused reads (401, 403) as failed reads',
  );
});
