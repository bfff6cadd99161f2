/**
 * Liveness and readiness, outside the FHIR base: /healthz says the process answers; /readyz says MongoDB answers,
 * so an orchestrator stops routing to an instance that lost its database instead of letting FHIR calls fail.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Db } from 'mongodb';
import { errors } from '../fhir/outcome.js';

async function healthPlugin(fastify: FastifyInstance, options: { db: Db }): Promise<void> {
  fastify.get('/healthz', { config: { public: 'health' } }, async () => ({ status: 'ok' }));
  fastify.get('/readyz', { config: { public: 'health' } }, async (request) => {
    try {
      await options.db.command({ ping: 1 }, { timeoutMS: 2000 });
      return { status: 'ready', mongodb: 'ok' };
    } catch (error) {
      request.log.warn({ err: error }, 'readiness check: MongoDB did not answer');
      throw errors.unavailable('MongoDB does not answer');
    }
  });
}

export default fp(healthPlugin, { name: 'health' });
