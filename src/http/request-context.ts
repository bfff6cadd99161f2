/**
 * The FhirContext of one request: the server's context with the request's own access policy, audit trail and
 * stop signal. Route handlers hand this, never the server-wide context, to the interactions: the
 * server-wide one carries NO_ACCESS, so a handler that forgot fails closed instead of serving unrestricted data.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CLIENT_GONE, SHUTTING_DOWN, type FhirContext } from '../fhir/context.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborted when the client closes its connection before the response is complete, or the server stops it. */
    stopSignal: AbortSignal | undefined;
  }
}

export function requestContext(base: FhirContext, request: FastifyRequest): FhirContext {
  return { ...base, access: request.access, audit: request.audit, signal: request.stopSignal };
}

/** The requests being answered, so that a shutdown can stop those that outlive its grace period. */
export interface InFlightRequests {
  /** How many requests are being answered now. */
  readonly count: number;
  /** Aborts every request in flight with SHUTTING_DOWN: each stops at its next step and answers 503. */
  stopAll(): void;
}

/**
 * Gives every request a signal that fires when its remaining work should not be done: its client has gone (the
 * response closed before it finished), or the server is shutting down (stopAll). A batch of searches or an
 * include round then stops instead of working for nobody; the interactions check ctx.signal between steps.
 */
export function trackRequests(app: FastifyInstance): InFlightRequests {
  const inFlight = new Set<AbortController>();
  app.decorateRequest('stopSignal', undefined);
  app.addHook('onRequest', (request, reply, done) => {
    const controller = new AbortController();
    request.stopSignal = controller.signal;
    inFlight.add(controller);
    reply.raw.once('close', () => {
      inFlight.delete(controller);
      if (!reply.raw.writableFinished) controller.abort(CLIENT_GONE);
    });
    done();
  });
  return {
    get count() {
      return inFlight.size;
    },
    stopAll() {
      for (const controller of inFlight) controller.abort(SHUTTING_DOWN);
    },
  };
}
