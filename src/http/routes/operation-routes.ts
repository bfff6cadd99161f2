/**
 * Operations on the FHIR base that answer synchronously: Patient/$everything (instance and type level).
 * Handlers turn the request into name=value pairs and hand them to fhir/operations; no FHIR rules live here.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Capabilities } from '../../fhir/capability-statement.js';
import type { FhirContext } from '../../fhir/context.js';
import { patientEverything } from '../../fhir/operations/everything.js';
import { parametersBody } from '../../fhir/operations/parameters.js';
import type { SearchSettings } from '../../fhir/search/search.js';
import { registerRouteFamily } from '../route-family.js';
import { queryParams } from './search-routes.js';

/** Prefer: handling=strict (RFC 7240 as FHIR uses it); lenient otherwise. */
export function strictHandling(request: FastifyRequest): boolean {
  const header = request.headers.prefer;
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  return /(?:^|[,;\s])handling\s*=\s*"?strict"?/i.test(value);
}

export function registerOperationRoutes(fastify: FastifyInstance, ctx: FhirContext, capabilities: Capabilities, settings: SearchSettings): void {
  if (!ctx.resourceTypes.includes('Patient')) return;
  // GET with a query string, or POST with a Parameters body (and possibly a query string too).
  const params = (request: FastifyRequest): Array<[string, string]> =>
    request.method === 'POST' ? [...queryParams(request), ...parametersBody(request.body, '$everything')] : queryParams(request);
  const instance = async (request: FastifyRequest) => {
    const { id } = request.params as { id: string };
    return patientEverything(ctx, settings, { patientId: id, params: params(request), strict: strictHandling(request) });
  };
  const all = async (request: FastifyRequest) => patientEverything(ctx, settings, { params: params(request), strict: strictHandling(request) });
  registerRouteFamily(fastify, '/Patient/:id/$everything', { GET: instance, POST: instance });
  registerRouteFamily(fastify, '/Patient/$everything', { GET: all, POST: all });
  capabilities.addOperation(
    'Patient',
    'everything',
    'http://hl7.org/fhir/OperationDefinition/Patient-everything',
    'GET or POST Patient/[id]/$everything and Patient/$everything (all patients): the patient(s) and their Patient compartment ' +
      '(Encounter, MedicationRequest by subject); _since, _type, _count, paged by next links. start/end are not supported.',
  );
}
