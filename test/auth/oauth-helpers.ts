/**
 * For the authorization server tests: the server behind a small fastify instance with only the OAuth routes, on a
 * real socket on 127.0.0.1 (the port is taken first, so the issuer URL is known before the routes are built, and a
 * second server can take over the same URL); client key pairs; hand-made client assertions; a tiny JWKS host.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { Db } from 'mongodb';
import * as oidc from 'openid-client';
import { AuthorizationServer, type AuthLogger } from '../../src/auth/authorization-server.js';
import { oauthRoutes } from '../../src/http/routes/oauth-routes.js';

export const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: object;
  message: string;
}

/** Collects what the authorization server logs, so tests can check that no secret ever appears in it. */
export function memoryLog(): AuthLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (fields: object, message: string): void => {
      lines.push({ level, fields, message });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** An HTTP server on 127.0.0.1 whose request handler can be replaced (a restarted app on the same URL). */
export interface Socket {
  server: Server;
  origin: string;
  close(): Promise<void>;
}

export async function openSocket(): Promise<Socket> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface RunningAuthServer {
  auth: AuthorizationServer;
  app: FastifyInstance;
  /** The FHIR base URL (the tokens' audience). */
  base: string;
  log: ReturnType<typeof memoryLog>;
  close(): Promise<void>;
}

export const BASE_PATH = '/fhir';

/** An authorization server for `db` answering on `socket` under /fhir/auth (replacing any app already there). */
export async function startAuthServer(
  socket: Socket,
  db: Db,
  options: { tokenTtlSeconds?: number; clockSkewSeconds?: number } = {},
): Promise<RunningAuthServer> {
  const base = `${socket.origin}${BASE_PATH}`;
  const log = memoryLog();
  const auth = await AuthorizationServer.open({
    db,
    issuer: `${base}/auth`,
    audience: base,
    tokenTtlSeconds: options.tokenTtlSeconds ?? 300,
    clockSkewSeconds: options.clockSkewSeconds ?? 30,
    log,
    allowPrivateJwksUris: true,
  });
  socket.server.removeAllListeners('request');
  const app = Fastify({
    logger: false,
    serverFactory: (handler) => {
      socket.server.on('request', handler);
      return socket.server;
    },
  });
  await app.register(oauthRoutes, {
    prefix: BASE_PATH,
    server: auth,
    smartConfiguration: { scopesSupported: ['system/*.rs', 'system/Patient.rs'] },
  });
  await app.ready();
  return {
    auth,
    app,
    base,
    log,
    close: async () => {
      socket.server.removeAllListeners('request');
      await auth.close();
    },
  };
}

export interface ClientKeys {
  alg: 'RS384' | 'ES384';
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** Public key set, as registered. */
  jwks: { keys: JWK[] };
}

export async function clientKeys(alg: 'RS384' | 'ES384'): Promise<ClientKeys> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`;
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicJwk, jwks: { keys: [publicJwk] } };
}

/** A client assertion made by hand (the cases a well-behaved library would not produce). */
export async function assertion(
  keys: ClientKeys,
  clientId: string,
  audience: string,
  options: { expiresInSeconds?: number; jti?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: keys.alg, kid: keys.kid, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setJti(options.jti ?? randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInSeconds ?? 120))
    .sign(keys.privateKey);
}

export interface TokenAnswer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

/** POSTs a form to the token endpoint. */
export async function tokenRequest(
  endpoint: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<TokenAnswer> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: response.headers };
}

/** client_credentials with a client assertion. */
export function assertionGrant(endpoint: string, clientAssertion: string, scope?: string): Promise<TokenAnswer> {
  return tokenRequest(endpoint, {
    grant_type: 'client_credentials',
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: clientAssertion,
    ...(scope === undefined ? {} : { scope }),
  });
}

/** A JWKS published over http on 127.0.0.1 (the jwks_uri of a client), counting the requests it gets. */
export interface JwksHost {
  url: string;
  keys: JWK[];
  requests: number;
  close(): Promise<void>;
}

export async function hostJwks(keys: JWK[]): Promise<JwksHost> {
  const host: JwksHost = { url: '', keys, requests: 0, close: async () => {} };
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    host.requests += 1;
    if (request.url !== '/.well-known/jwks.json') {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: host.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  host.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return host;
}

/**
 * openid-client (a third-party OAuth client) configured by discovery of `issuer` (http on loopback needs
 * allowInsecureRequests), authenticating with private_key_jwt whose assertion aud is the token endpoint, as SMART
 * Backend Services says.
 */
export async function privateKeyJwtClient(
  issuer: string,
  tokenEndpoint: string,
  clientId: string,
  keys: ClientKeys,
): Promise<oidc.Configuration> {
  return oidc.discovery(
    new URL(issuer),
    clientId,
    undefined,
    oidc.PrivateKeyJwt(
      { key: keys.privateKey, kid: keys.kid },
      {
        [oidc.modifyAssertion]: (_header, payload) => {
          payload.aud = tokenEndpoint;
        },
      },
    ),
    { execute: [oidc.allowInsecureRequests] },
  );
}
