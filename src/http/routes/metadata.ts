/**
 * GET [base]/metadata: the CapabilityStatement, rendered from what the server registered (capabilities
 * interaction), and GET [base]/.well-known/smart-configuration: how to get a token (SMART App Launch 2.x). Both
 * are public: a client reads them before it has a token.
 */
import type { FastifyInstance } from 'fastify';
import type { Capabilities, SoftwareInfo } from '../../fhir/capability-statement.js';
import { routeFamily } from '../route-table.js';

export interface MetadataRoutesOptions {
  capabilities: Capabilities;
  software: SoftwareInfo;
  /** The SMART configuration document; undefined when authorization is off. */
  smartConfiguration: (() => object) | undefined;
}

export default async function metadataRoutes(fastify: FastifyInstance, options: MetadataRoutesOptions): Promise<void> {
  routeFamily(fastify, undefined, '/metadata', {
    GET: {
      declare: { interaction: 'capabilities', requires: 'public' },
      handler: async () => options.capabilities.toCapabilityStatement(options.software),
    },
  });
  const smart = options.smartConfiguration;
  if (smart) {
    routeFamily(fastify, undefined, '/.well-known/smart-configuration', {
      GET: {
        declare: { interaction: 'capabilities', requires: 'public' },
        handler: async (_request, reply) => reply.type('application/json; charset=utf-8').send(smart()),
      },
    });
  }
}
