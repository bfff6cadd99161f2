/**
 * fhir-clients: register (inline JWKS file, jwks_uri), list, revoke through the command function against the test
 * MongoDB; usage errors (a private key in the JWKS file above all) and an unreachable MongoDB by their exit codes;
 * one run of the bin itself.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { MongoClient } from 'mongodb';
import t from 'tap';
import { ClientRegistry, type ClientInfo } from '../../src/auth/clients.js';
import { CLIENTS_EXIT, runClients } from '../../src/cli/clients-command.js';
import { OAuthStore } from '../../src/store/oauth-store.js';
import { stopTestMongo, testMongo, uniqueDbName } from '../helpers/mongo.js';
import { spawnTs, waitForExit } from '../helpers/spawn-ts.js';

const mongo = await testMongo();
const mongoClient = new MongoClient(mongo.uri);
await mongoClient.connect();
t.teardown(async () => {
  await mongoClient.close();
  await stopTestMongo();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function buffer(): { text: string; write(chunk: string): void } {
  return {
    text: '',
    write(chunk: string) {
      this.text += chunk;
    },
  };
}

async function cli(args: string[], env: Record<string, string | undefined>): Promise<Run> {
  const out = buffer();
  const err = buffer();
  const code = await runClients(args, env, out, err, { serverSelectionTimeoutMs: 1_000 });
  return { code, stdout: out.text, stderr: err.text };
}

const dir = t.testdir({});
const [rsa, ec, p256] = await Promise.all([
  generateKeyPair('RS384', { extractable: true }),
  generateKeyPair('ES384', { extractable: true }),
  generateKeyPair('ES256', { extractable: true }),
]);
const publicJwks = {
  keys: [
    { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS384' },
    { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES384' },
  ],
};
const jwksFile = join(dir, 'client.jwks.json');
await writeFile(jwksFile, JSON.stringify(publicJwks));
const privateFile = join(dir, 'private.jwks.json');
await writeFile(privateFile, JSON.stringify({ keys: [{ ...(await exportJWK(ec.privateKey)), kid: 'ec-1' }] }));
const p256File = join(dir, 'p256.jwks.json');
await writeFile(p256File, JSON.stringify({ keys: [await exportJWK(p256.publicKey)] }));
const notJsonFile = join(dir, 'broken.json');
await writeFile(notJsonFile, '{"keys": [');

t.test('register, list, revoke', async (t) => {
  const dbName = uniqueDbName('clients');
  const env = { MONGODB_URI: mongo.uri, MONGODB_DB: dbName };
  const registry = new ClientRegistry(new OAuthStore(mongoClient.db(dbName)));

  const inline = await cli(
    ['register', '--name', 'Lab system', '--scope', 'system/Patient.rs system/Encounter.rs', '--jwks', jwksFile],
    env,
  );
  t.equal(inline.code, CLIENTS_EXIT.OK, inline.stderr);
  const inlineId = inline.stdout.trim();
  t.match(inlineId, /^[0-9a-f-]{36}$/, 'the client id is printed, alone on stdout');
  const stored = await registry.get(inlineId);
  t.match(stored, {
    name: 'Lab system',
    scopes: ['system/Patient.rs', 'system/Encounter.rs'],
    authMethod: 'private_key_jwt',
    status: 'active',
  });
  t.same(stored?.jwks, publicJwks, 'the key set as given');

  const byUri = await cli(
    [
      'register',
      '--name',
      'Billing',
      '--scope',
      'system/Encounter.rs',
      '--scope',
      'system/Patient.read',
      '--jwks-uri',
      'https://billing.example.org/jwks.json',
      '--mongodb',
      mongo.uri,
      '--db',
      dbName,
    ],
    {},
  );
  t.equal(byUri.code, CLIENTS_EXIT.OK, 'options --mongodb and --db');
  const uriId = byUri.stdout.trim();
  t.match(await registry.get(uriId), {
    jwksUri: 'https://billing.example.org/jwks.json',
    scopes: ['system/Encounter.rs', 'system/Patient.read'],
  });

  const table = await cli(['list'], env);
  t.equal(table.code, CLIENTS_EXIT.OK);
  const lines = table.stdout.trimEnd().split('\n');
  t.match(lines[0], /^CLIENT ID\s+NAME\s+STATUS\s+CREATED\s+KEYS\s+SCOPES$/);
  t.equal(lines.length, 3);
  t.match(
    table.stdout,
    new RegExp(`${inlineId}\\s+Lab system\\s+active\\s+\\S+\\s+2 key\\(s\\) inline\\s+system/Patient.rs system/Encounter.rs`),
  );
  t.match(table.stdout, new RegExp(`${uriId}\\s+Billing\\s+active\\s+\\S+\\s+https://billing.example.org/jwks.json`));

  const revoked = await cli(['revoke', inlineId], env);
  t.equal(revoked.code, CLIENTS_EXIT.OK);
  t.match(revoked.stdout, `revoked ${inlineId}`);
  t.equal(await registry.isActive(inlineId), false);
  const again = await cli(['revoke', inlineId], env);
  t.equal(again.code, CLIENTS_EXIT.OK, 'revoking twice is harmless');
  t.match(again.stdout, 'already revoked');
  const unknown = await cli(['revoke', 'no-such-client'], env);
  t.equal(unknown.code, CLIENTS_EXIT.FAILURE);
  t.match(unknown.stderr, 'no client no-such-client');

  const json = await cli(['list', '--json'], env);
  t.equal(json.code, CLIENTS_EXIT.OK);
  const listed = JSON.parse(json.stdout) as Array<Omit<ClientInfo, 'createdAt' | 'revokedAt'> & { createdAt: string; revokedAt?: string }>;
  t.same(
    listed.map((client) => [client.clientId, client.status]),
    [
      [inlineId, 'revoked'],
      [uriId, 'active'],
    ],
  );
  t.ok(listed[0]!.revokedAt, 'revokedAt is listed');
  t.notOk(json.stdout.includes('secretHash'));

  const empty = await cli(['list'], { MONGODB_URI: mongo.uri, MONGODB_DB: uniqueDbName('empty') });
  t.equal(empty.stdout, 'no clients registered\n');
});

t.test('a private key in the JWKS file is refused with a clear message and exit 2, before touching MongoDB', async (t) => {
  const dbName = uniqueDbName('clients_private');
  const run = await cli(['register', '--name', 'Leaky', '--scope', 'system/Patient.rs', '--jwks', privateFile], {
    MONGODB_URI: mongo.uri,
    MONGODB_DB: dbName,
  });
  t.equal(run.code, CLIENTS_EXIT.USAGE);
  t.match(run.stderr, /key 0 \(kid "ec-1"\) contains private key material \("d"\): register the PUBLIC key only/);
  t.equal(run.stdout, '');
  t.same(await new ClientRegistry(new OAuthStore(mongoClient.db(dbName))).list(), [], 'nothing registered');
});

t.test('usage errors exit 2', async (t) => {
  const env = { MONGODB_URI: mongo.uri, MONGODB_DB: uniqueDbName('clients_usage') };
  const cases: Array<[string[], RegExp]> = [
    [[], /give a command/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['register', '--scope', 'system/Patient.rs', '--jwks', jwksFile], /needs --name/],
    [['register', '--name', 'x', '--jwks', jwksFile], /at least one scope is required/],
    [['register', '--name', 'x', '--scope', 'system/Patient.rs'], /exactly one of --jwks FILE or --jwks-uri URL/],
    [
      ['register', '--name', 'x', '--scope', 'system/Patient.rs', '--jwks', jwksFile, '--jwks-uri', 'https://a.example/jwks'],
      /exactly one of/,
    ],
    [['register', '--name', 'x', '--scope', 'system/Patient.rs', '--jwks-uri', 'ftp://a.example/jwks'], /is not an http\(s\) URL/],
    [['register', '--name', 'x', '--scope', 'system/"Patient".rs', '--jwks', jwksFile], /is not a valid scope token/],
    [['register', '--name', 'x', '--scope', 'system/Patient.rs', '--jwks', join(dir, 'missing.json')], /cannot read/],
    [['register', '--name', 'x', '--scope', 'system/Patient.rs', '--jwks', notJsonFile], /is not JSON/],
    [
      ['register', '--name', 'x', '--scope', 'system/Patient.rs', '--jwks', p256File],
      /no public key usable for RS384 or ES384 \(key 0: curve "P-256" is not P-384/,
    ],
    [['list', '--color'], /Unknown option '--color'/],
    [['list', '--name', 'x'], /list takes no --name/],
    [['revoke'], /exactly one CLIENT_ID/],
  ];
  for (const [args, message] of cases) {
    const run = await cli(args, env);
    t.equal(run.code, CLIENTS_EXIT.USAGE, args.join(' '));
    t.match(run.stderr, message, args.join(' '));
  }
  const noDatabase = await cli(['list'], {});
  t.equal(noDatabase.code, CLIENTS_EXIT.USAGE);
  t.match(noDatabase.stderr, /--mongodb URI \(or MONGODB_URI\)/);
  const help = await cli(['--help'], {});
  t.equal(help.code, CLIENTS_EXIT.OK);
  t.match(help.stdout, /^Usage:/);
});

t.test('an unreachable MongoDB exits 3', async (t) => {
  const run = await cli(['list'], { MONGODB_URI: 'mongodb://user:pw@127.0.0.1:1/?directConnection=true' });
  t.equal(run.code, CLIENTS_EXIT.UNREACHABLE);
  t.match(run.stderr, /MongoDB at mongodb:\/\/user:\*\*\*@127\.0\.0\.1:1\/.* is unreachable/);
  t.notOk(run.stderr.includes(':pw@'), 'the password is not printed');
});

t.test('the bin', async (t) => {
  const dbName = uniqueDbName('clients_bin');
  const child = spawnTs('src/cli/fhir-clients.ts', ['register', '--name', 'Bin', '--scope', 'system/Patient.rs', '--jwks', jwksFile], {
    MONGODB_URI: mongo.uri,
    MONGODB_DB: dbName,
  });
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  t.equal(await waitForExit(child, 60_000), 0);
  const clientId = stdout.trim();
  t.match(await new ClientRegistry(new OAuthStore(mongoClient.db(dbName))).get(clientId), { name: 'Bin', status: 'active' });
});
