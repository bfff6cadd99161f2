/**
 * Authentication as the app needs it, opened from the configuration: the server's own authorization server (when
 * enabled), the verifier that accepts its tokens and the identity provider's, and the SMART configuration
 * document that tells clients where to get a token. main.ts, the tests and the benchmark open it the same way.
 */
import type { Db } from 'mongodb';
import type { AuthConfig } from '../config.js';
import { AccessTokenVerifier, type TrustedIssuer } from './access-tokens.js';
import { AuthorizationServer, type AuthLogger } from './authorization-server.js';
import { smartConfiguration } from './smart-configuration.js';

/** Where the authorization server lives, relative to the FHIR base. */
export const AUTH_PATH = '/auth';

/** Examples of what clients may be registered for, listed in the SMART configuration. */
export const SCOPES_SUPPORTED = [
  'system/*.rs',
  'system/*.cruds',
  'system/Patient.rs',
  'system/Encounter.rs',
  'system/MedicationRequest.rs',
  'system/AuditEvent.rs',
  'system/Provenance.rs',
  'user/*.rs',
  'patient/*.rs',
] as const;

export interface OpenedAuth {
  verifier: AccessTokenVerifier;
  /** This server's own authorization server, when AUTH_SERVER_ENABLED. */
  server: AuthorizationServer | undefined;
  /** The /.well-known/smart-configuration document. */
  smartConfiguration: () => object;
  /** rest.security of the CapabilityStatement: the token endpoint clients should use. */
  tokenEndpoint: string | undefined;
  close(): Promise<void>;
}

interface DiscoveryDocument {
  issuer?: string;
  token_endpoint?: string;
  authorization_endpoint?: string;
  jwks_uri?: string;
}

/** The identity provider's discovery document, fetched once (best effort: it only feeds smart-configuration). */
async function discover(issuer: string, log: AuthLogger): Promise<DiscoveryDocument | undefined> {
  try {
    const response = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return (await response.json()) as DiscoveryDocument;
  } catch (error) {
    log.warn({ issuer, reason: (error as Error).message }, "auth: the identity provider's discovery document could not be read");
    return undefined;
  }
}

export async function openAuth(config: AuthConfig, baseUrl: string, db: Db, log: AuthLogger): Promise<OpenedAuth> {
  const issuers: TrustedIssuer[] = [];
  let server: AuthorizationServer | undefined;
  if (config.server.enabled) {
    server = await AuthorizationServer.open({
      db,
      issuer: `${baseUrl}${AUTH_PATH}`,
      audience: config.audience,
      tokenTtlSeconds: config.server.tokenTtlSeconds,
      clockSkewSeconds: config.clockSkewSeconds,
      log,
      allowPrivateJwksUris: config.server.allowPrivateJwksUris === true,
    });
    // The same object every time: the verifier rebuilds its key set only when the set it is given changes.
    const jwks = server.publicJwks();
    issuers.push({ issuer: server.issuer, keys: { kind: 'local', jwks: () => jwks }, own: true });
  }
  const external = config.externalIssuer;
  if (external) {
    issuers.push({
      issuer: external.issuer,
      keys: external.jwksUrl ? { kind: 'remote', jwksUrl: external.jwksUrl } : { kind: 'discovery' },
      own: false,
    });
  }
  const verifier = new AccessTokenVerifier({
    issuers,
    audience: config.audience,
    clockSkewSeconds: config.clockSkewSeconds,
    isClientActive: server ? (clientId) => server!.clients.isActive(clientId) : undefined,
  });

  let document: object;
  let tokenEndpoint: string | undefined;
  if (server) {
    tokenEndpoint = server.tokenEndpoint;
    document = smartConfiguration({
      issuer: server.issuer,
      tokenEndpoint: server.tokenEndpoint,
      jwksUri: server.jwksUri,
      scopesSupported: SCOPES_SUPPORTED,
    });
  } else {
    const discovered = await discover(external!.issuer, log);
    tokenEndpoint = discovered?.token_endpoint;
    document = {
      issuer: external!.issuer,
      jwks_uri: external!.jwksUrl ?? discovered?.jwks_uri,
      token_endpoint: discovered?.token_endpoint,
      ...(discovered?.authorization_endpoint ? { authorization_endpoint: discovered.authorization_endpoint } : {}),
      grant_types_supported: discovered?.authorization_endpoint ? ['authorization_code', 'client_credentials'] : ['client_credentials'],
      scopes_supported: [...SCOPES_SUPPORTED],
      code_challenge_methods_supported: ['S256'],
      capabilities: ['permission-v1', 'permission-v2', 'context-standalone-patient'],
    };
  }
  return {
    verifier,
    server,
    smartConfiguration: () => document,
    tokenEndpoint,
    close: async () => {
      await server?.close();
    },
  };
}
