/**
 * Hostile credentials, generated: a seeded stream of Authorization headers (garbage, JWT-shaped garbage, real
 * signatures over hostile headers and claims), scope claims of every shape inside validly signed tokens, and
 * X-Request-Id values. Whatever arrives, the answer is a 4xx OperationOutcome or a 2xx, never a 5xx, and nothing
 * is written. Bounded: a fixed number of requests from a fixed seed (reproducible; change SEED to explore).
 */
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import t from 'tap';
import { stopMongoAtEnd } from '../helpers/app.js';
import { startSecuredApp, TEST_AUDIENCE, TEST_ISSUER } from '../helpers/auth.js';
import { mulberry32 } from '../../bench/population.js';

stopMongoAtEnd(t);

const SEED = 20261206;
const ROUNDS = 400;

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

t.test('generated credentials never cause a 5xx', async (t) => {
  const s = await startSecuredApp(t);
  const random = mulberry32(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const text = (max: number, alphabet = 'abcXYZ019-_.~+/=:;,"\\ \t{}[]%\u00e9\u0000\u202e') =>
    Array.from({ length: Math.floor(random() * max) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
  const { privateKey } = await generateKeyPair('ES256');
  const foreignJwk = await exportJWK((await generateKeyPair('ES256')).publicKey);
  const weird: unknown[] = [
    null,
    0,
    -1,
    1e308,
    true,
    'none',
    'HS256',
    'RS256',
    '',
    '../../etc/passwd',
    ['ES256'],
    { alg: 'x' },
    'x'.repeat(5000),
  ];

  const headers: Array<() => Promise<string>> = [
    async () => text(60),
    async () => `Bearer ${text(80, 'abcdefABCDEF0123456789-_.')}`,
    async () => `Bearer ${b64(pick(weird))}.${b64(pick(weird))}.${text(40, 'abc_-')}`,
    async () =>
      `Bearer ${b64({ alg: pick(weird), kid: pick(weird), typ: pick(weird), jku: 'http://127.0.0.1:1/jwks', crit: pick([undefined, ['exp'], 'b64']) })}.` +
      `${b64({ iss: TEST_ISSUER, aud: TEST_AUDIENCE, exp: pick(weird), scope: pick(weird) })}.`,
    async () => `${pick(['bearer', 'BEARER', 'Bearer  ', 'Basic', 'Bearer\t'])} ${text(30)}`,
    async () => {
      // A real signature by a key nobody trusts, over hostile header fields.
      const protectedHeader = { alg: 'ES256', kid: String(pick(weird)), jwk: foreignJwk } as never;
      return `Bearer ${await new SignJWT({ scope: String(pick(weird)) }).setProtectedHeader(protectedHeader).setIssuer(TEST_ISSUER).setAudience(TEST_AUDIENCE).setExpirationTime('5m').sign(privateKey)}`;
    },
    async () => `Bearer ${(await s.issuer.token({ scope: 'system/*.rs' })).slice(0, Math.floor(random() * 300))}`,
  ];
  const urls = ['/Patient', '/Patient/x', '/Patient?name=a', '/_history', '/AuditEvent', '/$export', '/Patient/x/$everything'];
  const versionsBefore = await s.store.versions.countDocuments({ type: { $ne: 'AuditEvent' } });

  let fiveHundreds = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const authorization = await pick(headers)();
    const requestId = random() < 0.5 ? text(200) : undefined;
    let res;
    try {
      res = await s.app.inject({
        method: pick(['GET', 'POST', 'DELETE']) as 'GET',
        url: pick(urls),
        headers: {
          authorization,
          ...(requestId !== undefined ? { 'x-request-id': requestId } : {}),
          'content-type': 'application/fhir+json',
        },
        payload: '{"resourceType":"Patient"}',
      });
    } catch {
      // A header value Node itself refuses to send (control characters): nothing reached the server.
      continue;
    }
    if (res.statusCode >= 500) {
      fiveHundreds++;
      t.fail(`5xx for Authorization ${JSON.stringify(authorization.slice(0, 120))}`, {
        status: res.statusCode,
        body: res.body.slice(0, 300),
      });
    }
    if (res.statusCode >= 400) t.equal(res.json().resourceType, 'OperationOutcome', `round ${i}: an OperationOutcome`);
    const id = String(res.headers['x-request-id']);
    t.ok(/^[A-Za-z0-9._:-]{1,128}$/.test(id), `round ${i}: the request id is a plausible id, whatever was sent`);
  }
  t.equal(fiveHundreds, 0, 'no 5xx');

  // Scope claims of every shape in tokens that verify: refused (403) or served (200), never a 5xx.
  const scopes: unknown[] = [
    '',
    ' ',
    'patient/Patient.xyz',
    'system/*.rs?',
    'system/Patient.rs?=x',
    'user/Patient.rs?name=%zz',
    `system/${'A'.repeat(2000)}.rs`,
    ['system/Patient.rs', 7, null],
    { scope: 'x' },
    42,
    'launch/patient openid fhirUser',
    'system/Patient.cruds?_sort=name',
    'patient/*.rs',
  ];
  for (const scope of scopes) {
    const token = await s.issuer.token({ scope: scope as string, ...(random() < 0.5 ? { patient: text(20) } : {}) });
    const res = await s.app.inject({ url: '/Patient?name=a', headers: { authorization: `Bearer ${token}` } });
    t.ok(res.statusCode === 200 || res.statusCode === 403, `scope ${JSON.stringify(scope).slice(0, 60)}: ${res.statusCode}`);
  }
  t.equal(await s.store.versions.countDocuments({ type: { $ne: 'AuditEvent' } }), versionsBefore, 'nothing was written');
});
