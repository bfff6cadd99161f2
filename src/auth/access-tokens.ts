/**
 * Access token verification for the resource server (the FHIR API): a Bearer JWT from a trusted issuer becomes a
 * Principal, or the request is refused with an RFC 6750 error the HTTP layer can put in WWW-Authenticate.
 *
 * Trusted issuers are this server's own authorization server (keys held in-process, read through a function because
 * they rotate) and optionally the hospital's identity provider (keys from its JWKS URL, or from the jwks_uri of its
 * OpenID discovery document). The key source is chosen by the token's `iss` before anything is verified, so a token
 * from an unknown issuer costs no network call. All cryptography is jose's: createRemoteJWKSet (fetching, caching,
 * refetch on an unknown kid with a cooldown), createLocalJWKSet, jwtVerify (signature, alg allowlist, iss, aud, exp,
 * nbf, crit, RSA key size).
 *
 * What this module checks itself, before or after jose:
 * - the Authorization header's syntax (scheme, exactly one token, b64token characters, length, three JWS parts);
 * - the header's `alg` against an asymmetric allowlist, refusing `none` and HS* with a description saying so (jose
 *   refuses them too, through the `algorithms` option; the explicit check gives a clear answer and never relies on
 *   the library's error text);
 * - `typ`, when present: at+jwt, application/at+jwt or JWT (jose compares against a single value only);
 * - `iss` among the trusted issuers, `iat` not in the future (jose checks iat only with maxTokenAge);
 * - for our own tokens, that the client is still active (revocation), on every call, cached or not.
 *
 * Successful verifications are cached by the SHA-256 of the token (bounded, least recently used out first) until the
 * token expires, but at most jwksCacheMaxAgeMs after the check: a key withdrawn from an issuer's JWKS stops being
 * accepted within that time either way (jose keeps a fetched JWKS that long too). Expiry is checked against the
 * clock on every call.
 *
 * The token itself is never logged, echoed in a description, or attached to an error.
 */
import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyOptions,
} from 'jose';
import type { Principal } from '../fhir/access/principal.js';

// ---------------------------------------------------------------------------------------------------------------
// Public API

export type IssuerKeys =
  /** Our own authorization server: the function is called whenever keys are needed, so rotation needs no restart. */
  | { kind: 'local'; jwks: () => JSONWebKeySet }
  /** An identity provider's JWKS URL. */
  | { kind: 'remote'; jwksUrl: string }
  /** GET {issuer}/.well-known/openid-configuration, then its jwks_uri (the document is cached). */
  | { kind: 'discovery' };

export interface TrustedIssuer {
  /** The exact `iss` of its tokens. */
  issuer: string;
  keys: IssuerKeys;
  /** True for this server's own authorization server: its clients can be revoked (isClientActive). */
  own: boolean;
}

export interface AccessTokenVerifierOptions {
  issuers: TrustedIssuer[];
  /**
   * The FHIR base URL; the token's aud (a string or an array) must contain it. Written with or without a trailing
   * slash, both spellings are accepted.
   */
  audience: string;
  /** Tolerance for exp, nbf and iat. */
  clockSkewSeconds: number;
  /** For our own tokens: is the client still active (revocation). Called per request; cheap (cached by the caller). */
  isClientActive?: (clientId: string) => Promise<boolean>;
  /** JWKS / discovery fetch timeout, default 5000. */
  fetchTimeoutMs?: number;
  /**
   * After a remote JWKS was fetched, an unknown kid triggers no new fetch for this long (jose's cooldown), default
   * 30000. Bounds how often a stream of tokens with made-up kids can make us call the identity provider.
   */
  jwksCooldownMs?: number;
  /** A fetched JWKS is used this long before it is fetched again, default 600000; also the longest a verification stays cached. */
  jwksCacheMaxAgeMs?: number;
  /** Most verified tokens remembered, default 10000. 0 turns the cache off. */
  cacheMaxEntries?: number;
  /** Milliseconds since the epoch (tests); default Date.now. */
  now?: () => number;
}

/** Why a request's credentials are refused: RFC 6750 §3.1. Its description is safe to show the client. */
export class InvalidTokenError extends Error {
  override readonly name = 'InvalidTokenError';
  /**
   * The RFC 6750 error code. When `missing` is true there is no code to send (RFC 6750 §3.1: a request without Bearer
   * credentials gets a bare challenge); the field then says invalid_request and wwwAuthenticate leaves it out.
   */
  readonly error: 'invalid_request' | 'invalid_token';
  /** Safe to show to the client: never contains the token. */
  readonly description: string;
  /** No Bearer credentials at all: no Authorization header, or another scheme (Basic …). */
  readonly missing: boolean;

  constructor(error: 'invalid_request' | 'invalid_token', description: string, missing = false) {
    super(description);
    this.error = error;
    this.description = description;
    this.missing = missing;
  }

  /** The HTTP status RFC 6750 §3.1 asks for: 400 for a malformed request, 401 otherwise. */
  get status(): 400 | 401 {
    return this.error === 'invalid_request' && !this.missing ? 400 : 401;
  }
}

/**
 * The token may well be valid, but its issuer's keys cannot be obtained (JWKS or discovery unreachable, timed out,
 * not 200, not a key set), or our own revocation check failed. Not the client's fault: answer 503 with Retry-After,
 * not 401 (a 401 invalid_token would make a well-behaved client throw away a good token and re-authenticate,
 * hammering the identity provider that is already in trouble).
 */
export class IssuerUnavailableError extends Error {
  override readonly name = 'IssuerUnavailableError';
  readonly status = 503;
  /** A suggestion for the Retry-After header. */
  readonly retryAfterSeconds: number;
  /** Safe to show to the client. */
  readonly description: string;
  /** The trusted issuer concerned (configuration, not token content). */
  readonly issuer: string;

  constructor(issuer: string, description: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(description, options?.cause === undefined ? undefined : { cause: options.cause });
    this.issuer = issuer;
    this.description = description;
    this.retryAfterSeconds = options?.retryAfterSeconds ?? 10;
  }
}

/** Asymmetric JWS algorithms accepted; everything else (none, HS*) is refused. */
export const ALLOWED_ALGORITHMS: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

/** Longest Authorization header value considered (Node's default limit for all headers together is 16 KB). */
export const MAX_AUTHORIZATION_LENGTH = 16_384;

// ---------------------------------------------------------------------------------------------------------------
// WWW-Authenticate

/**
 * The WWW-Authenticate header value for a 401 (or 400) (RFC 6750 §3), e.g.
 * `Bearer realm="fhir", error="invalid_token", error_description="the token has expired"`. Without an error, or for
 * missing credentials, only the realm (RFC 6750 §3.1: no error information when none was attempted).
 *
 * The realm is a quoted-string (RFC 7235/7230): `"` and `\` are backslash-escaped, control characters dropped. The
 * description is stricter (RFC 6750 §3: only %x20-21 / %x23-5B / %x5D-7E, so no quoting is possible): `"` becomes
 * `'`, `\` becomes `/`, anything else outside that set becomes `?`, and it is cut to 200 characters.
 */
export function wwwAuthenticate(realm: string, error?: InvalidTokenError): string {
  let value = `Bearer realm="${quoteRealm(realm)}"`;
  if (error !== undefined && !error.missing) {
    value += `, error="${error.error}", error_description="${sanitizeDescription(error.description)}"`;
  }
  return value;
}

function quoteRealm(realm: string): string {
  let out = '';
  for (const ch of realm) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (code < 0x20 || code === 0x7f) continue;
    else if (code > 0x7e) out += '?';
    else out += ch;
  }
  return out;
}

function sanitizeDescription(description: string): string {
  let out = '';
  for (const ch of description) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += "'";
    else if (ch === '\\') out += '/';
    else if (code < 0x20 || code > 0x7e) out += '?';
    else out += ch;
    if (out.length >= 200) break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The verifier

/** What a trusted issuer's keys look like to jwtVerify. */
type GetKey = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

interface IssuerState {
  config: TrustedIssuer;
  getKey: GetKey;
}

interface CacheEntry {
  principal: Principal;
  /** The verification is reused until this instant (ms): the earlier of expiry (+ skew) and jwksCacheMaxAgeMs. */
  reuseUntil: number;
}

const DISCOVERY_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const ACCEPTED_TYP = new Set(['at+jwt', 'application/at+jwt', 'jwt']);

export class AccessTokenVerifier {
  readonly #issuers = new Map<string, IssuerState>();
  readonly #audiences: string[];
  readonly #skew: number;
  readonly #isClientActive: ((clientId: string) => Promise<boolean>) | undefined;
  readonly #now: () => number;
  readonly #fetchTimeoutMs: number;
  readonly #cooldownMs: number;
  readonly #jwksMaxAgeMs: number;
  readonly #cacheMax: number;
  /** sha256(token) -> verified principal; Map order is recency (a hit moves the entry to the end). */
  readonly #cache = new Map<string, CacheEntry>();

  constructor(options: AccessTokenVerifierOptions) {
    this.#skew = options.clockSkewSeconds;
    this.#isClientActive = options.isClientActive;
    this.#now = options.now ?? Date.now;
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 5000;
    this.#cooldownMs = options.jwksCooldownMs ?? 30_000;
    this.#jwksMaxAgeMs = options.jwksCacheMaxAgeMs ?? 600_000;
    this.#cacheMax = options.cacheMaxEntries ?? 10_000;
    const audience = options.audience.replace(/\/+$/, '');
    this.#audiences = [audience, `${audience}/`];
    for (const issuer of options.issuers) {
      if (this.#issuers.has(issuer.issuer)) throw new TypeError(`issuer ${issuer.issuer} is configured twice`);
      this.#issuers.set(issuer.issuer, { config: issuer, getKey: this.#keySource(issuer) });
    }
  }

  /** The Authorization header's value -> the caller; throws InvalidTokenError or IssuerUnavailableError. */
  async verify(authorization: string | undefined): Promise<Principal> {
    const token = bearerToken(authorization);
    const cacheKey = this.#cacheMax > 0 ? createHash('sha256').update(token).digest('base64url') : '';
    const cached = this.#cacheMax > 0 ? this.#cache.get(cacheKey) : undefined;
    if (cached !== undefined) {
      const nowMs = this.#now();
      this.#cache.delete(cacheKey);
      if (cached.principal.expiresAt <= nowMs / 1000 - this.#skew) {
        throw new InvalidTokenError('invalid_token', 'the token has expired');
      }
      if (nowMs < cached.reuseUntil) {
        this.#cache.set(cacheKey, cached);
        await this.#checkClient(cached.principal);
        return { ...cached.principal, scopes: [...cached.principal.scopes] };
      }
      // Too old to reuse (keys may have been withdrawn since): verify again below.
    }
    const principal = await this.#verifyUncached(token);
    await this.#checkClient(principal);
    if (this.#cacheMax > 0) this.#remember(cacheKey, principal);
    return { ...principal, scopes: [...principal.scopes] };
  }

  /** How many verified tokens are remembered (tests, metrics). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  async #verifyUncached(token: string): Promise<Principal> {
    if (!COMPACT_JWS.test(token)) {
      throw new InvalidTokenError('invalid_token', 'the token is not a JWT in compact form (three base64url parts)');
    }
    let header: JWSHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new InvalidTokenError('invalid_token', 'the token is not a JWT: its header is not base64url-encoded JSON');
    }
    checkAlgorithm(header.alg);
    if (header.typ !== undefined) {
      if (typeof header.typ !== 'string' || !ACCEPTED_TYP.has(header.typ.toLowerCase())) {
        throw new InvalidTokenError('invalid_token', 'the token is not an access token: its typ must be at+jwt or JWT');
      }
    }
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch {
      throw new InvalidTokenError('invalid_token', 'the token is not a JWT: its payload is not a base64url-encoded JSON object');
    }
    if (typeof claims.iss !== 'string' || claims.iss === '') {
      throw new InvalidTokenError('invalid_token', 'the token names no issuer (iss)');
    }
    const issuer = this.#issuers.get(claims.iss);
    if (issuer === undefined) {
      // Refused before any key is looked up: an unknown issuer costs no network call.
      throw new InvalidTokenError('invalid_token', 'the token was not issued by an issuer this server trusts');
    }

    const nowMs = this.#now();
    const options: JWTVerifyOptions = {
      algorithms: [...ALLOWED_ALGORITHMS],
      issuer: issuer.config.issuer,
      audience: this.#audiences,
      clockTolerance: this.#skew,
      currentDate: new Date(nowMs),
      requiredClaims: ['exp'],
    };
    let payload: JWTPayload;
    try {
      payload = await verifyWithKeys(token, issuer.getKey, options);
    } catch (error) {
      throw describeVerificationFailure(error);
    }
    if (typeof payload.iat === 'number' && payload.iat > nowMs / 1000 + this.#skew) {
      throw new InvalidTokenError('invalid_token', 'the token was issued in the future (iat)');
    }
    return principalFrom(payload, issuer.config);
  }

  async #checkClient(principal: Principal): Promise<void> {
    if (!principal.ownIssuer || this.#isClientActive === undefined) return;
    if (principal.clientId === undefined) {
      throw new InvalidTokenError('invalid_token', 'the token names no client (client_id)');
    }
    let active: boolean;
    try {
      active = await this.#isClientActive(principal.clientId);
    } catch (cause) {
      throw new IssuerUnavailableError(principal.issuer, 'the client registry could not be consulted', { cause });
    }
    if (!active) {
      throw new InvalidTokenError('invalid_token', `the client ${principal.clientId} has been revoked`);
    }
  }

  #remember(cacheKey: string, principal: Principal): void {
    const nowMs = this.#now();
    const reuseUntil = Math.min((principal.expiresAt + this.#skew) * 1000, nowMs + this.#jwksMaxAgeMs);
    if (!(reuseUntil > nowMs)) return;
    this.#cache.delete(cacheKey);
    while (this.#cache.size >= this.#cacheMax) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
    this.#cache.set(cacheKey, { principal, reuseUntil });
  }

  #keySource(issuer: TrustedIssuer): GetKey {
    const keys = issuer.keys;
    let source: GetKey;
    switch (keys.kind) {
      case 'local':
        source = localKeys(keys.jwks);
        break;
      case 'remote':
        source = this.#remoteKeys(new URL(keys.jwksUrl));
        break;
      case 'discovery':
        source = this.#discoveredKeys(issuer.issuer);
        break;
    }
    // Anything that goes wrong while obtaining keys, other than "no key for this token", is the issuer's (or our
    // key store's) trouble, not the token's.
    return async (header, token) => {
      try {
        return await source(header, token);
      } catch (error) {
        if (
          error instanceof errors.JWKSNoMatchingKey ||
          error instanceof errors.JWKSMultipleMatchingKeys ||
          error instanceof errors.JOSENotSupported ||
          error instanceof IssuerUnavailableError
        ) {
          throw error;
        }
        throw new IssuerUnavailableError(issuer.issuer, "the keys of the token's issuer could not be obtained", { cause: error });
      }
    };
  }

  #remoteKeys(url: URL): GetKey {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`JWKS URL must be http(s): ${url.href}`);
    return createRemoteJWKSet(url, {
      timeoutDuration: this.#fetchTimeoutMs,
      cooldownDuration: this.#cooldownMs,
      cacheMaxAge: this.#jwksMaxAgeMs,
    });
  }

  /** Discovery once (shared by concurrent callers), re-done after a day; a failure is retried by the next request. */
  #discoveredKeys(issuer: string): GetKey {
    let current: { keys: GetKey; jwksUri: string; at: number } | undefined;
    let pending: Promise<GetKey> | undefined;
    const discover = (): Promise<GetKey> => {
      pending ??= (async () => {
        try {
          const jwksUri = await discoverJwksUri(issuer, this.#fetchTimeoutMs);
          const keys = current?.jwksUri === jwksUri ? current.keys : this.#remoteKeys(new URL(jwksUri));
          current = { keys, jwksUri, at: Date.now() };
          return keys;
        } catch (cause) {
          if (current !== undefined) return current.keys; // a refresh failed: keep what worked
          throw new IssuerUnavailableError(issuer, "the token's issuer could not be discovered (OpenID configuration)", { cause });
        } finally {
          pending = undefined;
        }
      })();
      return pending;
    };
    return async (header, token) => {
      const keys = current !== undefined && Date.now() - current.at < DISCOVERY_MAX_AGE_MS ? current.keys : await discover();
      return keys(header, token);
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pieces

/** The single Bearer token in an Authorization header value, or the RFC 6750 reason why there is none. */
function bearerToken(authorization: string | undefined): string {
  if (authorization === undefined || authorization.trim() === '') {
    throw new InvalidTokenError('invalid_request', 'an access token is required (Authorization: Bearer <token>)', true);
  }
  if (authorization.length > MAX_AUTHORIZATION_LENGTH) {
    throw new InvalidTokenError('invalid_request', `the Authorization header is longer than ${MAX_AUTHORIZATION_LENGTH} characters`);
  }
  const value = authorization.trim();
  const space = value.indexOf(' ');
  const scheme = space === -1 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') {
    // Another scheme is an unsupported authentication method: RFC 6750 §3.1 treats it as no credentials at all.
    throw new InvalidTokenError('invalid_request', 'the Authorization header must use the Bearer scheme', true);
  }
  const rest = space === -1 ? '' : value.slice(space + 1).replace(/^ +/, '');
  if (rest === '') throw new InvalidTokenError('invalid_request', 'the Bearer scheme needs a token');
  if (/\s/.test(rest) || rest.includes(',')) {
    throw new InvalidTokenError('invalid_request', 'the Authorization header must hold exactly one Bearer token');
  }
  if (!BEARER_TOKEN.test(rest)) {
    throw new InvalidTokenError('invalid_request', 'the Bearer token holds characters a token cannot contain');
  }
  return rest;
}

function checkAlgorithm(alg: unknown): void {
  if (typeof alg !== 'string' || alg === '') {
    throw new InvalidTokenError('invalid_token', 'the token header names no signature algorithm (alg)');
  }
  if (alg.toLowerCase() === 'none') {
    throw new InvalidTokenError('invalid_token', 'unsigned tokens (alg none) are not accepted');
  }
  if (/^HS\d+$/i.test(alg)) {
    throw new InvalidTokenError(
      'invalid_token',
      `symmetric signatures (${alg.toUpperCase()}) are not accepted: tokens must be signed with an asymmetric key`,
    );
  }
  if (!ALLOWED_ALGORITHMS.includes(alg)) {
    const shown = /^[A-Za-z0-9+-]{1,16}$/.test(alg) ? ` ${alg}` : '';
    throw new InvalidTokenError('invalid_token', `the signature algorithm${shown} is not accepted (${ALLOWED_ALGORITHMS.join(', ')})`);
  }
}

/** Keys held in-process. The set is re-read on every lookup; jose's key set is rebuilt only when the object changes. */
function localKeys(jwks: () => JSONWebKeySet): GetKey {
  let lastSet: JSONWebKeySet | undefined;
  let lastKeys: GetKey | undefined;
  return async (header, token) => {
    const set = jwks();
    if (lastKeys === undefined || set !== lastSet) {
      lastKeys = createLocalJWKSet(set);
      lastSet = set;
    }
    return lastKeys(header, token);
  };
}

async function discoverJwksUri(issuer: string, timeoutMs: number): Promise<string> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const response = await fetch(url, {
    redirect: 'manual',
    signal: AbortSignal.timeout(timeoutMs),
    headers: { accept: 'application/json' },
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new Error(`${url} answered ${response.status}, expected 200`);
  }
  const document: unknown = await response.json();
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new Error(`${url} is not a JSON object`);
  }
  const { issuer: declared, jwks_uri: jwksUri } = document as { issuer?: unknown; jwks_uri?: unknown };
  // OpenID Connect Discovery §4.3: the document's issuer must be exactly the issuer it was fetched for.
  if (declared !== issuer) throw new Error(`${url} declares another issuer`);
  if (typeof jwksUri !== 'string') throw new Error(`${url} has no jwks_uri`);
  const parsed = new URL(jwksUri);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error(`${url}: jwks_uri is not http(s)`);
  if (new URL(issuer).protocol === 'https:' && parsed.protocol !== 'https:') {
    throw new Error(`${url}: jwks_uri must use https like the issuer`);
  }
  return parsed.href;
}

/**
 * jwtVerify with the issuer's keys. When several keys fit a token without a kid, jose hands them over and each is
 * tried in turn (its documented pattern): a signature that fails with one key may succeed with the next.
 */
async function verifyWithKeys(token: string, getKey: GetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, getKey, options)).payload;
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
    let lastFailure: unknown = error;
    for await (const key of error) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
        lastFailure = inner;
      }
    }
    throw lastFailure;
  }
}

/** A failure from jwtVerify as the client should hear it; availability problems pass through unchanged. */
function describeVerificationFailure(error: unknown): InvalidTokenError | IssuerUnavailableError {
  if (error instanceof InvalidTokenError || error instanceof IssuerUnavailableError) return error;
  const invalid = (description: string) => new InvalidTokenError('invalid_token', description);
  if (error instanceof errors.JWTExpired) return invalid('the token has expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'aud':
        return invalid(error.reason === 'missing' ? 'the token names no audience (aud)' : 'the token is not meant for this server (aud)');
      case 'exp':
        return invalid(error.reason === 'missing' ? 'the token has no expiry (exp)' : 'the token expiry (exp) is not a number');
      case 'nbf':
        return invalid(error.reason === 'invalid' ? 'the token nbf is not a number' : 'the token is not valid yet (nbf)');
      case 'iat':
        return invalid('the token iat is not a number');
      case 'iss':
        return invalid('the token was not issued by an issuer this server trusts');
      default:
        return invalid('a claim of the token is invalid');
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return invalid('the token signature does not verify');
  if (error instanceof errors.JWKSNoMatchingKey) return invalid('no key of the issuer matches the token (unknown kid)');
  if (error instanceof errors.JWKSMultipleMatchingKeys) return invalid('several keys of the issuer match the token and none verifies it');
  if (error instanceof errors.JOSEAlgNotAllowed) return invalid('the signature algorithm is not accepted');
  if (error instanceof errors.JOSENotSupported) return invalid('the token key type or algorithm is not supported');
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return invalid('the token is malformed');
  // jose rejects some keys with a TypeError (e.g. RSA keys under 2048 bits): still the token's (issuer's) fault.
  return invalid('the token could not be verified');
}

function principalFrom(payload: JWTPayload, issuer: TrustedIssuer): Principal {
  return {
    clientId: stringClaim(payload.client_id) ?? stringClaim(payload.azp) ?? stringClaim(payload.cid),
    subject: stringClaim(payload.sub),
    fhirUser: stringClaim(payload.fhirUser),
    patient: stringClaim(payload.patient),
    scopes: scopesFrom(payload),
    issuer: issuer.issuer,
    tokenId: stringClaim(payload.jti),
    expiresAt: payload.exp as number,
    ownIssuer: issuer.own,
  };
}

function stringClaim(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** `scope` (space-separated string, as RFC 9068 says) or `scp` (array or string, as some identity providers do). */
function scopesFrom(payload: JWTPayload): string[] {
  const raw = payload.scope !== undefined ? payload.scope : payload.scp;
  const items = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw : [];
  const scopes: string[] = [];
  for (const item of items) {
    if (typeof item !== 'string') continue;
    for (const scope of item.split(' ')) if (scope !== '') scopes.push(scope);
  }
  return scopes;
}
