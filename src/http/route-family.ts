/**
 * Registers the handlers of one URL and answers 405 Method Not Allowed, with an Allow header, for the methods
 * the URL does not support. Fastify alone would answer 404, which tells a client the resource does not exist.
 */
import type { FastifyInstance, HTTPMethods, RouteHandlerMethod, RouteShorthandOptions } from 'fastify';
import { errors } from '../fhir/outcome.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
type Method = (typeof METHODS)[number];

export type RouteFamily = Partial<Record<Method, RouteHandlerMethod | { options: RouteShorthandOptions; handler: RouteHandlerMethod }>>;

export function registerRouteFamily(fastify: FastifyInstance, url: string, family: RouteFamily): void {
  const allowed = METHODS.filter((method) => family[method] !== undefined);
  for (const method of allowed) {
    const entry = family[method]!;
    const { options, handler } = typeof entry === 'function' ? { options: {}, handler: entry } : entry;
    fastify.route({ ...options, method, url, handler });
  }
  const others: HTTPMethods[] = METHODS.filter((method) => family[method] === undefined);
  if (others.length === 0) return;
  const allow = allowed.includes('GET') ? ['GET', 'HEAD', ...allowed.filter((m) => m !== 'GET')] : allowed;
  fastify.route({
    method: others,
    url,
    handler: async (request) => {
      throw errors.methodNotAllowed(request.method, request.url.split('?')[0], allow);
    },
  });
}
