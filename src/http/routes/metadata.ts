/** GET [base]/metadata: the CapabilityStatement, rendered from what the server registered (capabilities interaction). */
import type { FastifyInstance } from 'fastify';
import type { Capabilities, SoftwareInfo } from '../../fhir/capability-statement.js';
import { registerRouteFamily } from '../route-family.js';

export function registerMetadataRoute(fastify: FastifyInstance, capabilities: Capabilities, software: SoftwareInfo): void {
  registerRouteFamily(fastify, '/metadata', {
    GET: async () => capabilities.toCapabilityStatement(software),
  });
}
