/**
 * Who is calling: what a verified access token says about its holder. Built by src/auth from the token's
 * claims (whoever issued it: this server's authorization server or the hospital's identity provider), read by the
 * access policy (what may they do) and by the audit trail (who did it). Never holds the token itself.
 */
export interface Principal {
  /** The OAuth client that presented the token (client_id, azp or cid claim). */
  clientId: string | undefined;
  /** The token's subject (sub): the user, or the client itself for client_credentials tokens. */
  subject: string | undefined;
  /** SMART fhirUser claim: the user's FHIR resource, e.g. Practitioner/123 or an absolute URL. */
  fhirUser: string | undefined;
  /** SMART launch context: the id of the patient the token's patient/ scopes are confined to. */
  patient: string | undefined;
  /** The granted scopes, as the token lists them. */
  scopes: string[];
  /** The token's issuer (iss). */
  issuer: string;
  /** The token's id (jti), for correlating audit records with the issuer's logs; undefined when it has none. */
  tokenId: string | undefined;
  /** Expiry, seconds since the epoch. */
  expiresAt: number;
  /** True for tokens issued by this server's own authorization server. */
  ownIssuer: boolean;
}
