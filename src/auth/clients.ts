/**
 * The OAuth clients of the server's own authorization server (SMART Backend Services), kept in MongoDB through
 * src/store/oauth-store.ts.
 *
 * A registered client authenticates with private_key_jwt: it signs a short-lived assertion (RS384 or ES384) with
 * a private key whose public half it registered here, inline (`jwks`) or by URL (`jwks_uri`). The one exception is
 * the development client `dev-client`, which uses client_secret_basic with a secret made fresh at every
 * ensureDevClient() call and stored only as a scrypt hash.
 *
 * Revocation is a status change, read by the token endpoint on every token request, and by the resource server
 * through isActive(), answered from a cache no older than two seconds.
 */
import { createPublicKey, randomBytes, randomUUID, scrypt, timingSafeEqual, type JsonWebKey } from 'node:crypto';
import type { JWK } from 'jose';
import type { ClientAuthMethod, ClientDocument, ClientStatus, OAuthStore, PublicJwks } from '../store/oauth-store.js';

/** Algorithms a client may sign its assertion with: the two SMART requires servers to support. */
export const CLIENT_ASSERTION_ALGS = ['RS384', 'ES384'] as const;

export const DEV_CLIENT_ID = 'dev-client';

/** How long isActive() may answer from memory. */
export const ACTIVE_CACHE_MS = 2_000;

/** A registration that cannot be accepted (bad key set, URL or scopes); the message says why. */
export class ClientRegistrationError extends Error {
  override readonly name = 'ClientRegistrationError';
}

export interface ClientRegistration {
  name: string;
  scopes: string[];
  /** The client's public keys, inline. Exactly one of jwks and jwksUri. */
  jwks?: unknown;
  /** Where the client publishes its public keys (http or https). */
  jwksUri?: string;
}

/** A client as the registry shows it: everything but the secret hash. */
export interface ClientInfo {
  clientId: string;
  name: string;
  scopes: string[];
  authMethod: ClientAuthMethod;
  jwks?: PublicJwks;
  jwksUri?: string;
  status: ClientStatus;
  createdAt: Date;
  revokedAt?: Date;
}

// ---- validation ------------------------------------------------------------------------------------------------

/** RFC 6749 scope-token characters: %x21 / %x23-5B / %x5D-7E (no spaces, quotes or backslashes). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export function validateScopes(scopes: unknown): string[] {
  if (!Array.isArray(scopes) || scopes.length === 0) throw new ClientRegistrationError('at least one scope is required');
  const valid: string[] = [];
  for (const scope of scopes) {
    if (typeof scope !== 'string' || scope.length === 0) throw new ClientRegistrationError('scopes must be non-empty strings');
    if (!SCOPE_TOKEN.test(scope)) {
      throw new ClientRegistrationError(`scope ${JSON.stringify(scope)} is not a valid scope token (no spaces, quotes or backslashes)`);
    }
    if (!valid.includes(scope)) valid.push(scope);
  }
  return valid;
}

/** Members that only private (or secret) keys have: RFC 7518 section 6. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const MIN_RSA_BITS = 2048;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Why this public key cannot verify an RS384 or ES384 assertion, or undefined when it can. */
function unsuitability(key: Record<string, unknown>): string | undefined {
  if (key.use !== undefined && key.use !== 'sig') return `"use" is ${JSON.stringify(key.use)}, not "sig"`;
  if (key.key_ops !== undefined && !(Array.isArray(key.key_ops) && key.key_ops.includes('verify')))
    return '"key_ops" does not include "verify"';
  if (key.kty === 'RSA') {
    if (key.alg !== undefined && key.alg !== 'RS384') return `"alg" is ${JSON.stringify(key.alg)}, not RS384`;
    const bits = typeof key.n === 'string' ? Buffer.from(key.n, 'base64url').length * 8 : 0;
    if (bits < MIN_RSA_BITS) return `an RSA modulus of ${bits} bits is shorter than ${MIN_RSA_BITS}`;
    return undefined;
  }
  if (key.kty === 'EC') {
    if (key.crv !== 'P-384') return `curve ${JSON.stringify(key.crv)} is not P-384 (ES384)`;
    if (key.alg !== undefined && key.alg !== 'ES384') return `"alg" is ${JSON.stringify(key.alg)}, not ES384`;
    return undefined;
  }
  return `key type ${JSON.stringify(key.kty)} is neither RSA nor EC`;
}

/**
 * A client's key set must hold public keys only (a private key here means the client's secret has leaked into our
 * database), at least one of them usable for RS384 or ES384, each a well-formed key.
 */
export function validateClientJwks(jwks: unknown): PublicJwks {
  if (!isRecord(jwks) || !Array.isArray(jwks.keys)) throw new ClientRegistrationError('the JWKS must be a JSON object with a "keys" array');
  if (jwks.keys.length === 0) throw new ClientRegistrationError('the JWKS has no keys');
  const reasons: string[] = [];
  let suitable = 0;
  jwks.keys.forEach((key: unknown, index: number) => {
    const label = `key ${index}${isRecord(key) && typeof key.kid === 'string' ? ` (kid ${JSON.stringify(key.kid)})` : ''}`;
    if (!isRecord(key)) throw new ClientRegistrationError(`${label} is not a JSON object`);
    const privateMembers = PRIVATE_MEMBERS.filter((member) => key[member] !== undefined);
    if (privateMembers.length > 0) {
      throw new ClientRegistrationError(
        `${label} contains private key material (${privateMembers.map((member) => `"${member}"`).join(', ')}): register the PUBLIC key only, and keep the private key with the client`,
      );
    }
    try {
      createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
    } catch (error) {
      throw new ClientRegistrationError(`${label} is not a valid public key: ${(error as Error).message}`);
    }
    const reason = unsuitability(key);
    if (reason) reasons.push(`${label}: ${reason}`);
    else suitable += 1;
  });
  if (suitable === 0) {
    throw new ClientRegistrationError(`the JWKS has no public key usable for RS384 or ES384 (${reasons.join('; ')})`);
  }
  return { keys: jwks.keys as JWK[] };
}

export function validateJwksUri(uri: unknown): string {
  if (typeof uri !== 'string') throw new ClientRegistrationError('jwks_uri must be a string');
  const url = URL.parse(uri);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:'))
    throw new ClientRegistrationError(`jwks_uri ${JSON.stringify(uri)} is not an http(s) URL`);
  if (url.username || url.password) throw new ClientRegistrationError('jwks_uri must not carry credentials');
  if (url.hash) throw new ClientRegistrationError('jwks_uri must not have a fragment');
  return url.href;
}

// ---- secrets ---------------------------------------------------------------------------------------------------

const SCRYPT = { N: 16_384, r: 8, p: 1, keyLength: 32 } as const;

function scryptAsync(secret: string, salt: Buffer, N: number, r: number, p: number, keyLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, keyLength, { N, r, p }, (error, derived) => (error ? reject(error) : resolve(derived)));
  });
}

/** `scrypt$N$r$p$salt$hash` (base64url), the only form in which a client secret is stored. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(secret, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keyLength);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

/** Constant-time comparison of a presented secret with a stored hash; false for anything malformed. */
export async function verifySecret(stored: string, secret: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64url');
  const N = Number(n);
  const R = Number(r);
  const P = Number(p);
  if (![N, R, P].every(Number.isSafeInteger) || expected.length === 0) return false;
  const actual = await scryptAsync(secret, Buffer.from(salt, 'base64url'), N, R, P, expected.length);
  return timingSafeEqual(actual, expected);
}

// ---- the registry ----------------------------------------------------------------------------------------------

function toInfo(document: ClientDocument): ClientInfo {
  return {
    clientId: document._id,
    name: document.name,
    scopes: [...document.scopes],
    authMethod: document.authMethod,
    ...(document.jwks ? { jwks: document.jwks } : {}),
    ...(document.jwks_uri ? { jwksUri: document.jwks_uri } : {}),
    status: document.status,
    createdAt: document.createdAt,
    ...(document.revokedAt ? { revokedAt: document.revokedAt } : {}),
  };
}

interface CachedStatus {
  active: Promise<boolean>;
  at: number;
}

const MAX_CACHED_STATUSES = 10_000;

export class ClientRegistry {
  private readonly statuses = new Map<string, CachedStatus>();

  constructor(
    private readonly store: OAuthStore,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Registers a private_key_jwt client; throws ClientRegistrationError when the registration is not acceptable. */
  async register(registration: ClientRegistration): Promise<{ clientId: string }> {
    const name = typeof registration.name === 'string' ? registration.name.trim() : '';
    if (!name) throw new ClientRegistrationError('a client name is required');
    const scopes = validateScopes(registration.scopes);
    const hasJwks = registration.jwks !== undefined;
    const hasUri = registration.jwksUri !== undefined;
    if (hasJwks === hasUri)
      throw new ClientRegistrationError('give exactly one of jwks (the public keys) or jwks_uri (where they are published)');
    const document: ClientDocument = {
      _id: randomUUID(),
      name,
      scopes,
      ...(hasJwks ? { jwks: validateClientJwks(registration.jwks) } : { jwks_uri: validateJwksUri(registration.jwksUri) }),
      authMethod: 'private_key_jwt',
      status: 'active',
      createdAt: new Date(this.clock()),
    };
    if (!(await this.store.insertClient(document))) throw new Error(`client id ${document._id} is already taken`);
    this.statuses.delete(document._id);
    return { clientId: document._id };
  }

  async list(): Promise<ClientInfo[]> {
    return (await this.store.listClients()).map(toInfo);
  }

  async get(clientId: string): Promise<ClientInfo | undefined> {
    const document = await this.store.findClient(clientId);
    return document ? toInfo(document) : undefined;
  }

  /** The stored document, secret hash included: for the token endpoint only. */
  async document(clientId: string): Promise<ClientDocument | null> {
    return this.store.findClient(clientId);
  }

  /** Revokes a client (idempotent); undefined when there is no such client. */
  async revoke(clientId: string): Promise<ClientInfo | undefined> {
    const document = await this.store.revokeClient(clientId, new Date(this.clock()));
    this.statuses.delete(clientId);
    return document ? toInfo(document) : undefined;
  }

  /**
   * Whether the client exists and is not revoked, from memory when the answer is less than ACTIVE_CACHE_MS old
   * (revocation by another process takes effect within that time); concurrent questions share one query.
   */
  isActive(clientId: string): Promise<boolean> {
    const now = this.clock();
    const cached = this.statuses.get(clientId);
    if (cached && now - cached.at < ACTIVE_CACHE_MS) return cached.active;
    if (this.statuses.size >= MAX_CACHED_STATUSES) this.statuses.clear();
    const active = this.store.clientStatus(clientId).then((status) => status === 'active');
    const entry: CachedStatus = { active, at: now };
    this.statuses.set(clientId, entry);
    active.catch(() => {
      if (this.statuses.get(clientId) === entry) this.statuses.delete(clientId);
    });
    return active;
  }

  /**
   * (Re)creates the development client with a fresh random secret (client_secret_basic) and these scopes; the
   * previous secret stops working. The secret is returned once and stored only as a hash.
   */
  async ensureDevClient(scopes: string[]): Promise<{ clientId: string; clientSecret: string }> {
    const validScopes = validateScopes(scopes);
    const clientSecret = randomBytes(32).toString('base64url');
    await this.store.replaceClient({
      _id: DEV_CLIENT_ID,
      name: 'Development client (client_secret_basic)',
      scopes: validScopes,
      authMethod: 'client_secret_basic',
      secretHash: await hashSecret(clientSecret),
      status: 'active',
      createdAt: new Date(this.clock()),
    });
    this.statuses.delete(DEV_CLIENT_ID);
    return { clientId: DEV_CLIENT_ID, clientSecret };
  }
}
