/**
 * The single place where a request meets authorization and audit. For every route of the route table:
 *
 * 1. opens the request's audit trail (so that a refused request is recorded too),
 * 2. verifies the Bearer token (401 with WWW-Authenticate when it is missing or invalid; 503 when the issuer's keys
 *    cannot be fetched),
 * 3. builds the request's AccessPolicy from the token's scopes and patient context, and refuses with 403 what the
 *    route's declaration requires and the token does not grant,
 * 4. when the answer is ready (onSend, before it leaves), records the interaction's AuditEvent unless the
 *    interaction committed it with its write.
 *
 * What a request may see inside a route (which patients, which types of a Bundle or a system search) is decided by
 * the interactions through the same policy (request.access), which reaches them in the FhirContext.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { InvalidTokenError, IssuerUnavailableError, wwwAuthenticate } from '../auth/access-tokens.js';
import { NO_ACCESS, UNRESTRICTED_ACCESS, type AccessPolicy } from '../fhir/access/access-policy.js';
import type { Principal } from '../fhir/access/principal.js';
import { AuditTrail, type AccessContext, type AuditSink } from '../fhir/audit/audit-trail.js';
import { FhirError, issue } from '../fhir/outcome.js';
import type { FhirRouteDeclaration } from './route-table.js';

export interface TokenVerifier {
  verify(authorization: string | undefined): Promise<Principal>;
}

export interface AccessOptions {
  /** 'off' (AUTH_MODE=off, loopback only): every request may do everything; still audited. */
  mode: 'smart' | 'off';
  verifier: TokenVerifier | undefined;
  /** The realm of WWW-Authenticate challenges: the FHIR base URL. */
  realm: string;
  policyFor: (principal: Principal) => AccessPolicy;
  /** Where AuditEvents go; undefined when auditing is off. */
  audit: { sink: AuditSink; server: AccessContext['server']; now: () => Date } | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** What this request may read and write (NO_ACCESS until the access hook decides). */
    access: AccessPolicy;
    /** The verified caller, when the route asked for a token. */
    principal: Principal | undefined;
    /** The audit record of this request's interaction. */
    audit: AuditTrail | undefined;
    /** The reason a failed request gives its client (set by the error handler), for its AuditEvent. */
    failure: string | undefined;
  }
}

function declarationOf(request: FastifyRequest): FhirRouteDeclaration | undefined {
  return (request.routeOptions.config as { fhir?: FhirRouteDeclaration } | undefined)?.fhir;
}

function unauthorized(realm: string, error: InvalidTokenError): FhirError {
  return new FhirError(error.status, issue('error', error.status === 400 ? 'invalid' : 'login', `Authorization: ${error.description}`), {
    'www-authenticate': wwwAuthenticate(realm, error),
  });
}

async function accessPlugin(fastify: FastifyInstance, options: AccessOptions): Promise<void> {
  // Fastify decorates with primitives or null only; every request starts with NO_ACCESS in the hook below.
  fastify.decorateRequest('access', null as unknown as AccessPolicy);
  fastify.decorateRequest('principal', undefined);
  fastify.decorateRequest('audit', undefined);
  fastify.decorateRequest('failure', undefined);

  fastify.addHook('onRequest', async (request) => {
    request.access = NO_ACCESS;
    const declaration = declarationOf(request);
    if (!declaration) return;
    // Public routes (the CapabilityStatement, SMART discovery) serve no resources: nothing to authorize or audit.
    if (declaration.requires === 'public') return;
    if (options.audit) {
      const access: AccessContext = {
        principal: undefined,
        authorizationOff: options.mode === 'off',
        clientAddress: request.ip,
        requestId: request.id,
        request: `${request.method} ${request.url.split('?')[0]}`,
        server: options.audit.server,
        now: options.audit.now,
      };
      request.audit = new AuditTrail(options.audit.sink, access, declaration.interaction, declaration.operation);
    }
    if (options.mode === 'off') {
      request.access = UNRESTRICTED_ACCESS;
      return;
    }
    let principal: Principal;
    try {
      principal = await options.verifier!.verify(request.headers.authorization);
    } catch (error) {
      if (error instanceof InvalidTokenError) throw unauthorized(options.realm, error);
      if (error instanceof IssuerUnavailableError) {
        throw new FhirError(503, issue('error', 'transient', error.description), { 'retry-after': String(error.retryAfterSeconds) });
      }
      throw error;
    }
    request.principal = principal;
    if (request.audit) request.audit.access.principal = principal;
    const policy = options.policyFor(principal);
    request.access = policy;
    const required = declaration.requires;
    if (required !== 'token' && declaration.type !== undefined) {
      const type = declaration.type;
      if (!required.anyOf.some((permission) => policy.allows(permission, type))) {
        try {
          policy.require(required.anyOf[0], type);
        } catch (error) {
          if (error instanceof FhirError) {
            throw new FhirError(403, error.outcome.issue ?? [], {
              'www-authenticate': `Bearer realm="${options.realm.replace(/["\\]/g, '')}", error="insufficient_scope"`,
            });
          }
          throw error;
        }
      }
    }
  });

  fastify.addHook('onSend', async (request, reply, payload) => {
    const trail = request.audit;
    if (!trail) return payload;
    // Once: if recording fails, the error answer passes through this hook again.
    request.audit = undefined;
    await trail.finish(reply.statusCode, request.failure);
    return payload;
  });
}

export default fp(accessPlugin, { name: 'fhir-access' });
