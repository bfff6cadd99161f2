/**
 * The `[base]/.well-known/smart-configuration` document (SMART App Launch 2.x, "Conformance") for an
 * authorization server that offers SMART Backend Services only: client_credentials, authenticated with
 * private_key_jwt (client-confidential-asymmetric).
 *
 * Required by the spec: token_endpoint, grant_types_supported, capabilities, code_challenge_methods_supported (S256,
 * never plain). Backend Services and the asymmetric client profile add token_endpoint_auth_methods_supported (with
 * private_key_jwt), token_endpoint_auth_signing_alg_values_supported (RS384, ES384) and scopes_supported. issuer and
 * jwks_uri are required only with sso-openid-connect; they are given anyway, since resource servers and clients use
 * them to verify this server's access tokens. authorization_endpoint is absent: there is no user-facing launch.
 */

export interface SmartConfigurationInput {
  issuer: string;
  tokenEndpoint: string;
  jwksUri: string;
  /** Scopes a client may be registered for (SMART lists are examples, not an exhaustive grammar). */
  scopesSupported: readonly string[];
  /** Defaults to the two algorithms SMART requires: RS384 and ES384. */
  signingAlgs?: readonly string[];
}

export interface SmartConfiguration {
  issuer: string;
  jwks_uri: string;
  token_endpoint: string;
  token_endpoint_auth_methods_supported: string[];
  token_endpoint_auth_signing_alg_values_supported: string[];
  grant_types_supported: string[];
  scopes_supported: string[];
  response_types_supported: string[];
  code_challenge_methods_supported: string[];
  capabilities: string[];
}

export function smartConfiguration(input: SmartConfigurationInput): SmartConfiguration {
  return {
    issuer: input.issuer,
    jwks_uri: input.jwksUri,
    token_endpoint: input.tokenEndpoint,
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: [...(input.signingAlgs ?? ['RS384', 'ES384'])],
    grant_types_supported: ['client_credentials'],
    scopes_supported: [...input.scopesSupported],
    // No authorization endpoint, so no response types.
    response_types_supported: [],
    // REQUIRED by SMART 2.x even without an authorization endpoint; S256 is the only method it allows.
    code_challenge_methods_supported: ['S256'],
    capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
  };
}
