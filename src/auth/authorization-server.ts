/**
 * The server's own OAuth 2 authorization server, for SMART Backend Services (system-to-system, no user):
 * the client_credentials grant, clients authenticated with private_key_jwt (RS384 or ES384 assertions, keys
 * registered inline or by jwks_uri), access tokens as JWTs (RFC 9068) for the FHIR base URL.
 *
 * It is panva's certified `oidc-provider` (a Koa application) configured down to that one flow; this module
 * supplies what the library leaves to a deployment:
 *   - the adapter: clients from MongoDB (src/auth/clients.ts), replay records (jti) in MongoDB so a replay is
 *     caught across restarts and across servers sharing the database (and atomically, with a unique key);
 *   - the signing key: generated on first start (ES384) and kept in MongoDB (`oauth_keys`);
 *   - SMART's limits oidc-provider does not enforce by itself: an assertion may live at most 5 minutes; a token
 *     request must name its scopes, each one the client was registered for;
 *   - mounting under the FHIR base (`[base]/auth`) behind fastify, with URLs derived from the issuer, never from
 *     request headers;
 *   - logging through the server's logger; nothing it logs carries a token, an assertion or a secret.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { format } from 'node:util';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK } from 'jose';
import type { Db } from 'mongodb';
import type { Adapter, AdapterPayload, Client as OidcClient, Configuration, KoaContextWithOIDC, ResourceServer } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type * as OidcProviderModule from 'oidc-provider';
import { OAuthStore, type ClientDocument, type SigningKeyDocument } from '../store/oauth-store.js';
import { CLIENT_ASSERTION_ALGS, ClientRegistry, verifySecret } from './clients.js';
import { parseScopes, scopeCovers } from '../fhir/access/scopes.js';

type OidcModule = typeof OidcProviderModule;

/** pino-compatible: (fields, message). */
export interface AuthLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface AuthorizationServerOptions {
  db: Db;
  /** `${FHIR base URL}/auth`, e.g. http://127.0.0.1:8080/auth or https://host/fhir/auth (public URL). */
  issuer: string;
  /** The `aud` of every access token: the FHIR base URL. */
  audience: string;
  tokenTtlSeconds: number;
  /** Tolerance for the assertion's exp, nbf and iat (the 5-minute lifetime limit allows at most 60 s of it). */
  clockSkewSeconds: number;
  log: AuthLogger;
  /**
   * Let jwks_uri be fetched from loopback and private-network addresses. Off by default: oidc-provider refuses
   * them to prevent server-side request forgery; turn on for tests, or for clients inside the hospital network.
   */
  allowPrivateJwksUris?: boolean;
}

/** SMART: the assertion's exp no more than five minutes in the future. */
export const MAX_ASSERTION_LIFETIME_SECONDS = 300;
/** The part of the clock skew allowance that may extend that limit. */
const MAX_LIFETIME_SKEW_SECONDS = 60;
/**
 * How the access tokens are signed: one of SMART's two algorithms; a P-384 key is made in milliseconds at first start
 * (an RSA key of comparable strength takes seconds) and its signatures are short. Verification is slower than
 * RSA's, but the resource server verifies each token once and then caches the result.
 */
export const ACCESS_TOKEN_ALG = 'ES384';
/** Client metadata that carries the scopes a client was registered for. */
const SMART_SCOPES = 'smart_scopes';

/**
 * The provider endpoints that are served, with their methods (OPTIONS is CORS preflight); anything else under the
 * mount point (oidc-provider always has an authorization endpoint, for instance) is not found.
 */
const ENDPOINTS = new Map<string, readonly string[]>([
  ['/token', ['POST', 'OPTIONS']],
  ['/jwks', ['GET', 'OPTIONS']],
  ['/.well-known/openid-configuration', ['GET', 'OPTIONS']],
  ['/.well-known/oauth-authorization-server', ['GET', 'OPTIONS']],
]);

/** Discovery members about flows this server does not offer (authorization endpoint, ID tokens, claims). */
const DISCOVERY_OMITTED = [
  'authorization_endpoint',
  'authorization_response_iss_parameter_supported',
  'claims_parameter_supported',
  'claims_supported',
  'code_challenge_methods_supported',
  'id_token_signing_alg_values_supported',
  'request_uri_parameter_supported',
  'response_modes_supported',
  'subject_types_supported',
];

export type EndpointMatch =
  { served: true } | { served: false; reason: 'not-found' } | { served: false; reason: 'method-not-allowed'; allow: readonly string[] };

/** SMART resource scopes, 1.0 and 2.0 forms: context/Type.permissions[?query]. */
const SMART_SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]*)\.(read|write|\*|c?r?u?d?s?)(\?\S+)?$/;

function isSmartScope(scope: string): boolean {
  const match = SMART_SCOPE.exec(scope);
  if (!match) return false;
  const permissions = match[3]!;
  if (permissions === '') return false;
  // A query narrows SMART 2 permissions only.
  return !(match[4] && ['read', 'write', '*'].includes(permissions));
}

let oidcModule: Promise<OidcModule> | undefined;

/**
 * oidc-provider prints notices straight to the console, one of them when it is first imported (its runtime check
 * wants Node 22+; it runs on the Node 20.19+ this project supports). They go to our logger instead.
 */
function loadOidcProvider(log: AuthLogger): Promise<OidcModule> {
  oidcModule ??= (async () => {
    const { warn, info } = console;
    console.warn = (...args: unknown[]) => log.warn({}, format(...args));
    console.info = (...args: unknown[]) => log.info({}, format(...args));
    try {
      return await import('oidc-provider');
    } finally {
      console.warn = warn;
      console.info = info;
    }
  })();
  return oidcModule;
}

function publicPart(jwk: JWK): JWK {
  const common = { kid: jwk.kid, alg: jwk.alg, use: jwk.use };
  if (jwk.kty === 'EC') return { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y, ...common };
  if (jwk.kty === 'RSA') return { kty: 'RSA', n: jwk.n, e: jwk.e, ...common };
  throw new Error(`unsupported signing key type ${jwk.kty}`);
}

/** The signing keys, newest first; the first start of a database makes one (and concurrent starts agree on it). */
async function signingKeys(store: OAuthStore): Promise<SigningKeyDocument[]> {
  const existing = await store.signingKeys();
  if (existing.length > 0) return existing;
  const { privateKey } = await generateKeyPair(ACCESS_TOKEN_ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  await store.insertSigningKey({
    _id: kid,
    generation: 1,
    alg: ACCESS_TOKEN_ALG,
    privateJwk: { ...jwk, kid, alg: ACCESS_TOKEN_ALG, use: 'sig' },
    createdAt: new Date(),
  });
  return store.signingKeys();
}

/** The oidc-provider view of a stored client; undefined for a revoked (or incomplete) one, which then does not exist. */
function providerMetadata(client: ClientDocument): AdapterPayload | undefined {
  if (client.status !== 'active') return undefined;
  const common: AdapterPayload = {
    client_id: client._id,
    client_name: client.name,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    [SMART_SCOPES]: client.scopes,
  };
  if (client.authMethod === 'client_secret_basic') {
    // oidc-provider wants a client_secret for this method; it gets the hash, and compareClientSecret is replaced.
    return client.secretHash
      ? { ...common, token_endpoint_auth_method: 'client_secret_basic', client_secret: client.secretHash }
      : undefined;
  }
  if (client.jwks) return { ...common, token_endpoint_auth_method: 'private_key_jwt', jwks: client.jwks };
  if (client.jwks_uri) return { ...common, token_endpoint_auth_method: 'private_key_jwt', jwks_uri: client.jwks_uri };
  return undefined;
}

/**
 * oidc-provider's storage, per model name. With the features enabled here only two are ever used: Client (read
 * from oauth_clients on every token request: no caching, so a revocation takes effect at once) and
 * ReplayDetection. The rest is kept generically, for completeness.
 */
class MongoAdapter implements Adapter {
  constructor(
    private readonly model: string,
    private readonly store: OAuthStore,
    private readonly clients: ClientRegistry,
    private readonly errors: OidcModule['errors'],
  ) {}

  async find(id: string): Promise<AdapterPayload | undefined> {
    if (this.model === 'Client') {
      const client = await this.clients.document(id);
      return client ? providerMetadata(client) : undefined;
    }
    if (this.model === 'ReplayDetection') return this.store.findReplay(id, new Date());
    return this.store.findModel(this.model, id, new Date());
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    if (this.model === 'Client') throw new Error('clients are registered through ClientRegistry, not the provider');
    const now = new Date();
    const expiresAt = expiresIn === undefined ? undefined : new Date(now.getTime() + expiresIn * 1000);
    if (this.model === 'ReplayDetection') {
      // oidc-provider looks first and saves after; two requests with one jti could both pass that look. The
      // insert is keyed, so only one of them can record it: the other is a replay.
      const recorded = await this.store.recordReplay(id, payload, expiresAt ?? new Date(now.getTime() + 3_600_000), now);
      if (!recorded) throw new this.errors.InvalidClientAuth('client assertion tokens must only be used once');
      return;
    }
    await this.store.upsertModel(this.model, id, payload, expiresAt);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.store.findModelBy(this.model, 'uid', uid, new Date());
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.store.findModelBy(this.model, 'userCode', userCode, new Date());
  }

  async consume(id: string): Promise<void> {
    await this.store.consumeModel(this.model, id, Math.floor(Date.now() / 1000));
  }

  async destroy(id: string): Promise<void> {
    await this.store.destroyModel(this.model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.store.destroyModelsByGrantId(grantId);
  }
}

/**
 * Why a request was refused, for the log: the error's detail and its causes (oidc-provider answers clients with a
 * generic "client authentication failed"). Library messages name claims, URLs and codes, never token contents.
 */
function refusalDetail(error: Error & { error_detail?: string; error_description?: string }): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 4; depth += 1) {
    const described = current as Error & { error_detail?: string; error_description?: string };
    const text =
      depth === 0
        ? (described.error_detail ?? described.error_description)
        : (described.error_description ?? described.error_detail ?? described.message);
    // Skip bare error codes (a wrapped error's message is its code: invalid_client_metadata).
    if (text && !/^[a-z_]+$/.test(text) && !parts.includes(text)) parts.push(text);
    current = current.cause;
  }
  return parts.join(': ');
}

function requestedScopes(ctx: KoaContextWithOIDC): string[] {
  const scope = ctx.oidc.params?.scope;
  return typeof scope === 'string' ? scope.split(' ').filter((value) => value.length > 0) : [];
}

export class AuthorizationServer {
  readonly issuer: string;
  readonly audience: string;
  readonly tokenEndpoint: string;
  readonly jwksUri: string;
  readonly tokenTtlSeconds: number;
  /** The algorithms accepted for client assertions (advertise them in smart-configuration). */
  readonly clientAssertionAlgs: readonly string[] = CLIENT_ASSERTION_ALGS;
  private readonly mountPath: string;
  private readonly issuerUrl: URL;
  private readonly callback: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  private closed = false;

  private constructor(
    readonly provider: Provider,
    readonly clients: ClientRegistry,
    private readonly jwks: { keys: JWK[] },
    options: AuthorizationServerOptions,
  ) {
    this.issuer = provider.issuer;
    this.audience = options.audience;
    this.tokenTtlSeconds = options.tokenTtlSeconds;
    this.issuerUrl = new URL(this.issuer);
    this.mountPath = this.issuerUrl.pathname.replace(/\/$/, '');
    this.tokenEndpoint = provider.urlFor('token');
    this.jwksUri = provider.urlFor('jwks');
    this.callback = provider.callback();
  }

  static async open(options: AuthorizationServerOptions): Promise<AuthorizationServer> {
    const { db, audience, tokenTtlSeconds, clockSkewSeconds, log } = options;
    const issuer = options.issuer.replace(/\/+$/, '');
    const issuerUrl = URL.parse(issuer);
    if (!issuerUrl || !['http:', 'https:'].includes(issuerUrl.protocol) || issuerUrl.search || issuerUrl.hash) {
      throw new Error(`the issuer ${JSON.stringify(options.issuer)} must be an http(s) URL without query or fragment`);
    }
    if (!Number.isSafeInteger(tokenTtlSeconds) || tokenTtlSeconds <= 0) throw new Error('tokenTtlSeconds must be a positive integer');

    const { default: ProviderCtor, errors } = await loadOidcProvider(log);
    const store = new OAuthStore(db);
    await store.ensureIndexes();
    const clients = new ClientRegistry(store);
    const keys = await signingKeys(store);
    const lifetimeLimit = MAX_ASSERTION_LIFETIME_SECONDS + Math.min(Math.max(clockSkewSeconds, 0), MAX_LIFETIME_SKEW_SECONDS);

    const invalidScope = (description: string, scope?: string) => {
      const error = new errors.InvalidScope(description, scope ?? '');
      if (scope === undefined) Reflect.deleteProperty(error, 'scope');
      return error;
    };

    const configuration: Configuration = {
      adapter: (name: string) => new MongoAdapter(name, store, clients, errors),
      clients: [],
      jwks: { keys: keys.map((key) => key.privateJwk) },
      // The only grant: no authorization endpoint flows, no refresh tokens, no registration endpoint.
      responseTypes: [],
      scopes: [],
      claims: {},
      clientAuthMethods: ['private_key_jwt', 'client_secret_basic'],
      enabledJWA: {
        clientAuthSigningAlgValues: [...CLIENT_ASSERTION_ALGS],
        idTokenSigningAlgValues: [ACCESS_TOKEN_ALG],
      },
      clientDefaults: {
        grant_types: ['client_credentials'],
        response_types: [],
        token_endpoint_auth_method: 'private_key_jwt',
        id_token_signed_response_alg: ACCESS_TOKEN_ALG,
      },
      extraClientMetadata: { properties: [SMART_SCOPES] },
      clockTolerance: clockSkewSeconds,
      ttl: { ClientCredentials: tokenTtlSeconds },
      features: {
        clientCredentials: { enabled: true },
        devInteractions: { enabled: false },
        introspection: { enabled: false },
        revocation: { enabled: false },
        registration: { enabled: false },
        userinfo: { enabled: false },
        rpInitiatedLogout: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => audience,
          useGrantedResource: () => false,
          // Called at the token endpoint with the client: the place to decide the scopes of the token.
          getResourceServerInfo: (ctx, resourceIndicator, client): ResourceServer => {
            if (resourceIndicator !== audience) throw new errors.InvalidTarget(`the only resource is ${audience}`);
            const registered = new Set(Array.isArray(client[SMART_SCOPES]) ? (client[SMART_SCOPES] as string[]) : []);
            const registeredScopes = parseScopes([...registered]).resources;
            const scopes = requestedScopes(ctx);
            if (scopes.length === 0) {
              throw invalidScope('scope is required: ask for the system scopes this client is registered for, e.g. "system/Patient.rs"');
            }
            for (const scope of scopes) {
              if (registered.has(scope)) continue;
              if (!isSmartScope(scope)) throw invalidScope(`"${scope}" is not a SMART scope (such as system/Patient.rs)`, scope);
              // Less than registered is fine: system/Patient.r for a client registered with system/*.cruds.
              const [requested] = parseScopes(scope).resources;
              if (requested && registeredScopes.some((granted) => scopeCovers(granted, requested))) continue;
              throw invalidScope(`scope "${scope}" is not registered for this client (registered: ${[...registered].join(' ')})`, scope);
            }
            return {
              scope: [...new Set(scopes)].join(' '),
              audience,
              accessTokenTTL: tokenTtlSeconds,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: ACCESS_TOKEN_ALG } },
            };
          },
        },
      },
      // oidc-provider checks exp is present and not past, but sets no upper bound.
      assertJwtClientAuthClaimsAndHeader: (_ctx, claims) => {
        const exp = claims.exp;
        const now = Math.floor(Date.now() / 1000);
        if (typeof exp === 'number' && exp - now > lifetimeLimit) {
          const error = new errors.InvalidClientAuth(`assertion exp is ${exp - now} s ahead`);
          error.error_description = `client_assertion expires too late: exp may be at most ${MAX_ASSERTION_LIFETIME_SECONDS} seconds (5 minutes) in the future`;
          throw error;
        }
      },
      // Always JSON: there are no pages here, and OAuth clients read error and error_description.
      renderError: (ctx, out) => {
        ctx.type = 'application/json; charset=utf-8';
        ctx.body = out;
      },
      clientBasedCORS: () => false,
      fetch: (input, init) => {
        if (!options.allowPrivateJwksUris || !init) return fetch(input, init);
        // oidc-provider's dispatcher refuses loopback and private addresses.
        const { dispatcher: _dispatcher, ...rest } = init as RequestInit & { dispatcher?: unknown };
        return fetch(input, rest);
      },
      // Cookies are not used by client_credentials; keys only keep oidc-provider from signing with nothing.
      cookies: { keys: [randomBytes(32).toString('base64url')] },
    };

    const provider = new ProviderCtor(issuer, configuration);
    // The discovery document is OpenID Connect's, generated for every flow; leave out what is not offered here.
    provider.use(async (ctx, next) => {
      await next();
      if (
        ctx.method === 'GET' &&
        ctx.status === 200 &&
        ctx.path.startsWith('/.well-known/') &&
        typeof ctx.body === 'object' &&
        ctx.body !== null
      ) {
        const document = ctx.body as Record<string, unknown>;
        for (const member of DISCOVERY_OMITTED) Reflect.deleteProperty(document, member);
      }
    });
    // URLs come from the issuer: handle() sets the forwarded host and protocol from it, so behind a TLS-terminating
    // proxy the token endpoint (the assertion's aud) is the public https URL whatever the proxy forwards.
    provider.proxy = true;
    // client_secret_basic is for the development client only, whose secret is stored as a scrypt hash.
    provider.Client.prototype.compareClientSecret = function compareClientSecret(this: OidcClient, actual: string) {
      return typeof this.clientSecret === 'string' ? verifySecret(this.clientSecret, actual) : false;
    };

    provider.on('grant.success', (ctx) => log.info({ clientId: ctx.oidc.client?.clientId }, 'access token issued'));
    provider.on('grant.error', (ctx, error) =>
      log.info({ clientId: ctx.oidc.client?.clientId, error: error.error, detail: refusalDetail(error) }, 'token request refused'),
    );
    provider.on('server_error', (_ctx, error) =>
      log.error({ err: { message: error.message, name: error.name } }, 'authorization server error'),
    );
    provider.on('jwks.error', (_ctx, error) => log.warn({ error: error.message }, 'jwks endpoint error'));
    provider.on('discovery.error', (_ctx, error) => log.warn({ error: error.message }, 'discovery endpoint error'));
    // Koa's own 'error' event (its typings hide it): with a listener, Koa does not print errors to stderr itself.
    EventEmitter.prototype.on.call(provider, 'error', (error: Error) =>
      log.error({ err: { message: error.message, name: error.name } }, 'authorization server error'),
    );

    const jwks = { keys: keys.map((key) => publicPart(key.privateJwk)) };
    return new AuthorizationServer(provider, clients, jwks, { ...options, issuer });
  }

  /** The public keys that verify this server's access tokens (the same set the jwks endpoint serves). */
  publicJwks(): JSONWebKeySet {
    return { keys: this.jwks.keys.map((key) => ({ ...key })) };
  }

  /** Whether a request for `path` (relative to the mount point, without query) is one the provider answers. */
  endpoint(method: string, path: string): EndpointMatch {
    const methods = ENDPOINTS.get(path);
    if (!methods) return { served: false, reason: 'not-found' };
    if (!methods.includes(method)) return { served: false, reason: 'method-not-allowed', allow: methods };
    return { served: true };
  }

  /**
   * Answers a request whose URL relative to the mount point (`/token`, `/jwks?x`…) is `relativeUrl`. The request
   * body must not have been read. The caller checks endpoint() first; other paths get the provider's 404.
   */
  async handle(req: IncomingMessage, res: ServerResponse, relativeUrl: string): Promise<void> {
    if (this.closed) throw new Error('the authorization server is closed');
    const originalUrl = req.url;
    const raw = req as IncomingMessage & { originalUrl?: string };
    // oidc-provider builds its URLs from originalUrl minus url (the mount path) and from the forwarded host and
    // protocol: the issuer's, not whatever the request (or a proxy) says.
    raw.originalUrl = `${this.mountPath}${relativeUrl}`;
    req.url = relativeUrl;
    req.headers['x-forwarded-proto'] = this.issuerUrl.protocol.slice(0, -1);
    req.headers['x-forwarded-host'] = this.issuerUrl.host;
    try {
      await this.callback(req, res);
    } finally {
      req.url = originalUrl;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.provider.removeAllListeners();
  }
}
