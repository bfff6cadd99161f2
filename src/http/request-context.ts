/**
 * The FhirContext of one request: the server's context with the request's own access policy, audit trail and
 * client-gone signal. Route handlers hand this, never the server-wide context, to the interactions: the
 * server-wide one carries NO_ACCESS, so a handler that forgot fails closed instead of serving unrestricted data.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FhirContext } from '../fhir/context.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborted when the client closes its connection before the response is complete. */
    clientGone: AbortSignal | undefined;
  }
}

export function requestContext(base: FhirContext, request: FastifyRequest): FhirContext {
  return { ...base, access: request.access, audit: request.audit, signal: request.clientGone };
}

/**
 * Gives every request a signal that fires when its client goes away before the answer is complete: the response
 * closes without having finished. A batch of searches or an include round then stops instead of working for
 * nobody (the interactions check ctx.signal between steps).
 */
export function trackClientConnections(app: FastifyInstance): void {
  app.decorateRequest('clientGone', undefined);
  app.addHook('onRequest', (request, reply, done) => {
    const controller = new AbortController();
    request.clientGone = controller.signal;
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort();
    });
    done();
  });
}
