/**
 * fhir-clients register | list | revoke
 *
 * Manages the OAuth clients of the server's own authorization server (SMART Backend Services) straight in its
 * MongoDB, through the same ClientRegistry the server uses: a client registered here can ask for tokens at once, and
 * a revoked one is refused by the token endpoint at once and by the FHIR API within seconds.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import {
  ClientRegistrationError,
  ClientRegistry,
  validateClientJwks,
  validateJwksUri,
  validateScopes,
  type ClientInfo,
} from '../auth/clients.js';
import { OAuthStore } from '../store/oauth-store.js';
import type { Output } from './exit-codes.js';

/** Exit codes of fhir-clients. */
export const CLIENTS_EXIT = {
  OK: 0,
  /** Anything else that went wrong: an unknown client id, a MongoDB error other than unreachability. */
  FAILURE: 1,
  /** Bad arguments, an unreadable or unacceptable JWKS file, invalid scopes or jwks_uri. */
  USAGE: 2,
  /** MongoDB could not be reached. */
  UNREACHABLE: 3,
} as const;

export const CLIENTS_USAGE = `Usage:
  fhir-clients register --name NAME --scope "system/Patient.rs system/Encounter.rs" (--jwks FILE | --jwks-uri URL)
  fhir-clients list [--json]
  fhir-clients revoke CLIENT_ID

Manages the SMART Backend Services clients of the FHIR server's own authorization server (private_key_jwt with
RS384 or ES384). register prints the new client id; give the client its id and the token endpoint
([FHIR base]/auth/token). The JWKS file holds the client's PUBLIC key(s) only.

  --name NAME        what the client is (register)
  --scope SCOPES     the scopes it may be granted, space-separated; may be repeated (register)
  --jwks FILE        its public keys, a JSON Web Key Set file (register)
  --jwks-uri URL     where it publishes its public keys, http(s) (register)
  --json             list as JSON instead of a table
  --mongodb URI      MongoDB connection string (default: MONGODB_URI)
  --db NAME          database name (default: MONGODB_DB, else fhir)
  -h, --help         this text

Exit codes: 0 done, 1 failure (e.g. unknown client), 2 usage error, 3 MongoDB unreachable.`;

export interface ClientsCommandOptions {
  /** How long to look for a MongoDB server before giving up (default 10 s). */
  serverSelectionTimeoutMs?: number;
}

class UsageError extends Error {}

type Command =
  | { kind: 'register'; name: string; scopes: string[]; jwks?: unknown; jwksUri?: string }
  | { kind: 'list'; json: boolean }
  | { kind: 'revoke'; clientId: string };

function redact(uri: string): string {
  return uri.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
}

async function parseCommand(argv: string[]): Promise<{ command: Command; mongodb?: string; db?: string } | 'help'> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      name: { type: 'string' },
      scope: { type: 'string', multiple: true },
      jwks: { type: 'string' },
      'jwks-uri': { type: 'string' },
      json: { type: 'boolean' },
      mongodb: { type: 'string' },
      db: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return 'help';
  const [verb, ...rest] = positionals;
  const connection = { mongodb: values.mongodb, db: values.db };
  const only = (allowed: string[]): void => {
    const given = (['name', 'scope', 'jwks', 'jwks-uri', 'json'] as const).filter(
      (option) => values[option] !== undefined && !allowed.includes(option),
    );
    if (given.length > 0) throw new UsageError(`${verb} takes no ${given.map((option) => `--${option}`).join(', ')}`);
  };
  switch (verb) {
    case 'register': {
      only(['name', 'scope', 'jwks', 'jwks-uri']);
      if (rest.length > 0) throw new UsageError(`register takes no arguments besides options (got ${rest.join(' ')})`);
      if (!values.name?.trim()) throw new UsageError('register needs --name');
      const scopes = validateScopes((values.scope ?? []).flatMap((value) => value.split(/\s+/)).filter((scope) => scope.length > 0));
      if ((values.jwks === undefined) === (values['jwks-uri'] === undefined))
        throw new UsageError('register needs exactly one of --jwks FILE or --jwks-uri URL');
      if (values['jwks-uri'] !== undefined) {
        return {
          command: { kind: 'register', name: values.name.trim(), scopes, jwksUri: validateJwksUri(values['jwks-uri']) },
          ...connection,
        };
      }
      let text: string;
      try {
        text = await readFile(values.jwks!, 'utf8');
      } catch (error) {
        throw new UsageError(`cannot read ${values.jwks}: ${(error as Error).message}`);
      }
      let jwks: unknown;
      try {
        jwks = JSON.parse(text) as unknown;
      } catch (error) {
        throw new UsageError(`${values.jwks} is not JSON: ${(error as Error).message}`);
      }
      return { command: { kind: 'register', name: values.name.trim(), scopes, jwks: validateClientJwks(jwks) }, ...connection };
    }
    case 'list':
      only(['json']);
      if (rest.length > 0) throw new UsageError(`list takes no arguments (got ${rest.join(' ')})`);
      return { command: { kind: 'list', json: values.json === true }, ...connection };
    case 'revoke':
      only([]);
      if (rest.length !== 1 || !rest[0]) throw new UsageError('revoke needs exactly one CLIENT_ID');
      return { command: { kind: 'revoke', clientId: rest[0] }, ...connection };
    case undefined:
      throw new UsageError('give a command: register, list or revoke');
    default:
      throw new UsageError(`unknown command ${JSON.stringify(verb)}: register, list or revoke`);
  }
}

function keysSummary(client: ClientInfo): string {
  if (client.jwksUri) return client.jwksUri;
  if (client.jwks) return `${client.jwks.keys.length} key(s) inline`;
  return client.authMethod === 'client_secret_basic' ? 'secret (development)' : '-';
}

function table(clients: ClientInfo[]): string {
  const header = ['CLIENT ID', 'NAME', 'STATUS', 'CREATED', 'KEYS', 'SCOPES'];
  const rows = clients.map((client) => [
    client.clientId,
    client.name,
    client.status === 'revoked' && client.revokedAt ? `revoked ${client.revokedAt.toISOString()}` : client.status,
    client.createdAt.toISOString(),
    keysSummary(client),
    client.scopes.join(' '),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function isUnreachable(error: unknown): boolean {
  const name = (error as Error).name;
  return /^Mongo(ServerSelection|Network|NetworkTimeout)Error$/.test(name);
}

export async function runClients(
  argv: string[],
  env: Record<string, string | undefined>,
  out: Output,
  err: Output,
  options: ClientsCommandOptions = {},
): Promise<number> {
  let parsed: Awaited<ReturnType<typeof parseCommand>>;
  try {
    parsed = await parseCommand(argv);
  } catch (error) {
    const message = (error as Error).message;
    const withUsage = !(error instanceof ClientRegistrationError);
    err.write(`fhir-clients: ${message}\n${withUsage ? `\n${CLIENTS_USAGE}\n` : ''}`);
    return CLIENTS_EXIT.USAGE;
  }
  if (parsed === 'help') {
    out.write(`${CLIENTS_USAGE}\n`);
    return CLIENTS_EXIT.OK;
  }

  const uri = parsed.mongodb ?? env.MONGODB_URI;
  if (!uri) {
    err.write('fhir-clients: give the database: --mongodb URI (or MONGODB_URI)\n');
    return CLIENTS_EXIT.USAGE;
  }
  const dbName = parsed.db ?? env.MONGODB_DB ?? 'fhir';

  let client: MongoClient;
  try {
    client = new MongoClient(uri, { serverSelectionTimeoutMS: options.serverSelectionTimeoutMs ?? 10_000, appName: 'fhir-clients' });
  } catch (error) {
    err.write(`fhir-clients: invalid --mongodb connection string: ${(error as Error).message}\n`);
    return CLIENTS_EXIT.USAGE;
  }
  try {
    await client.connect();
  } catch (error) {
    err.write(`fhir-clients: MongoDB at ${redact(uri)} is unreachable: ${(error as Error).message}\n`);
    await client.close().catch(() => {});
    return CLIENTS_EXIT.UNREACHABLE;
  }

  try {
    const registry = new ClientRegistry(new OAuthStore(client.db(dbName)));
    const command = parsed.command;
    switch (command.kind) {
      case 'register': {
        const { clientId } = await registry.register({
          name: command.name,
          scopes: command.scopes,
          ...(command.jwks === undefined ? {} : { jwks: command.jwks }),
          ...(command.jwksUri === undefined ? {} : { jwksUri: command.jwksUri }),
        });
        out.write(`${clientId}\n`);
        err.write(`fhir-clients: registered "${command.name}" (private_key_jwt) with scopes ${command.scopes.join(' ')}\n`);
        return CLIENTS_EXIT.OK;
      }
      case 'list': {
        const clients = await registry.list();
        if (command.json) out.write(`${JSON.stringify(clients, null, 2)}\n`);
        else out.write(clients.length === 0 ? 'no clients registered\n' : `${table(clients)}\n`);
        return CLIENTS_EXIT.OK;
      }
      case 'revoke': {
        const before = await registry.get(command.clientId);
        if (!before) {
          err.write(`fhir-clients: no client ${command.clientId}\n`);
          return CLIENTS_EXIT.FAILURE;
        }
        const after = await registry.revoke(command.clientId);
        if (before.status === 'revoked')
          out.write(`${command.clientId} was already revoked (${before.revokedAt?.toISOString() ?? 'earlier'})\n`);
        else
          out.write(
            `revoked ${command.clientId} (${after?.revokedAt?.toISOString() ?? 'now'}); the FHIR API refuses its tokens within seconds\n`,
          );
        return CLIENTS_EXIT.OK;
      }
    }
  } catch (error) {
    if (error instanceof ClientRegistrationError) {
      err.write(`fhir-clients: ${error.message}\n`);
      return CLIENTS_EXIT.USAGE;
    }
    if (isUnreachable(error)) {
      err.write(`fhir-clients: MongoDB at ${redact(uri)} is unreachable: ${(error as Error).message}\n`);
      return CLIENTS_EXIT.UNREACHABLE;
    }
    err.write(`fhir-clients: ${(error as Error).message}\n`);
    return CLIENTS_EXIT.FAILURE;
  } finally {
    await client.close().catch(() => {});
  }
}
