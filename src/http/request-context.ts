/**
 * The FhirContext of one request: the server's context with the request's own access policy and audit trail.
 * Route handlers hand this, never the server-wide context, to the interactions: the server-wide one carries
 * NO_ACCESS, so a handler that forgot fails closed instead of serving unrestricted data.
 */
import type { FastifyRequest } from 'fastify';
import type { FhirContext } from '../fhir/context.js';

export function requestContext(base: FhirContext, request: FastifyRequest): FhirContext {
  return { ...base, access: request.access, audit: request.audit };
}
