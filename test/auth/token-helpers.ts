/**
 * Test issuers for access token tests: an outside identity provider (oauth2-mock-server's issuer and service behind
 * our own http server on 127.0.0.1, so that every request is counted and the server can be made to fail or hang),
 * and in-process keys standing in for this server's own authorization server.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JSONWebKeySet, type JWK, type JWTPayload } from 'jose';
import { OAuth2Issuer, OAuth2Service, type Header, type Payload } from 'oauth2-mock-server';

export const AUDIENCE = 'https://fhir.example.org/fhir';

export interface MockIdentityProvider {
  /** The issuer URL (iss of its tokens), http://127.0.0.1:<port>. */
  url: string;
  jwksUrl: string;
  issuer: OAuth2Issuer;
  /** Paths requested so far, in order. */
  requests: string[];
  /** ok: serve; fail: 503 to everything; hang: never answer. */
  mode: 'ok' | 'fail' | 'hang';
  /** A token signed by one of its keys (or `kid`), aud = AUDIENCE unless overridden; claims and header merged in. */
  token(options?: {
    claims?: Record<string, unknown>;
    header?: Record<string, unknown>;
    kid?: string;
    expiresIn?: number;
  }): Promise<string>;
  stop(): Promise<void>;
}

/** An identity provider with one signing key (ES256 is quick to generate; RSA keys take a while). */
export async function startIdentityProvider(alg: 'RS256' | 'ES256' = 'ES256'): Promise<MockIdentityProvider> {
  const issuer = new OAuth2Issuer();
  await issuer.keys.generate(alg);
  const service = new OAuth2Service(issuer);
  const hanging: Array<ServerResponse<IncomingMessage>> = [];
  const idp: MockIdentityProvider = {
    url: '',
    jwksUrl: '',
    issuer,
    requests: [],
    mode: 'ok',
    token: (options = {}) =>
      issuer.buildToken({
        ...(options.kid === undefined ? {} : { kid: options.kid }),
        ...(options.expiresIn === undefined ? {} : { expiresIn: options.expiresIn }),
        scopesOrTransform: (header: Header, payload: Payload) => {
          payload.aud = AUDIENCE;
          Object.assign(payload, options.claims ?? {});
          Object.assign(header, options.header ?? {});
        },
      }),
    stop: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    idp.requests.push(req.url ?? '');
    if (idp.mode === 'fail') {
      res.writeHead(503).end();
    } else if (idp.mode === 'hang') {
      hanging.push(res);
    } else {
      service.requestHandler(req, res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  idp.url = `http://127.0.0.1:${port}`;
  idp.jwksUrl = `${idp.url}/jwks`;
  issuer.url = idp.url;
  return idp;
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface LocalKey {
  kid: string;
  alg: 'ES256' | 'RS256';
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function localKey(kid: string, alg: 'ES256' | 'RS256' = 'ES256'): Promise<LocalKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export function keySet(...keys: LocalKey[]): JSONWebKeySet {
  return { keys: keys.map((k) => k.publicJwk) };
}

/** A JWT signed with a local key; `kid: false` leaves the kid out of the header. */
export async function signLocal(key: LocalKey, claims: JWTPayload, header: { kid?: string | false; typ?: string } = {}): Promise<string> {
  const kid = header.kid === false ? undefined : (header.kid ?? key.kid);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, ...(kid === undefined ? {} : { kid }), ...(header.typ === undefined ? {} : { typ: header.typ }) })
    .sign(key.privateKey);
}

export function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
