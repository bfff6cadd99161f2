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
import { requestContext } from '../request-context.js';
import { routeFamily, type RouteSpec } from '../route-table.js';
import { ID_PARAMS } from '../schemas.js';
import { queryParams } from './search-routes.js';

/** Prefer: handling=strict (RFC 7240 as FHIR uses it); lenient otherwise. */
export function strictHandling(request: FastifyRequest): boolean {
  const header = request.headers.prefer;
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  return /(?:^|[,;\s])handling\s*=\s*"?strict"?/i.test(value);
}

export interface OperationRoutesOptions {
  ctx: FhirContext;
  capabilities: Capabilities;
  search: SearchSettings;
}

export default async function operationRoutes(fastify: FastifyInstance, options: OperationRoutesOptions): Promise<void> {
  const { ctx: base, capabilities, search: settings } = options;
  if (!base.resourceTypes.includes('Patient')) return;
  // GET with a query string, or POST with a Parameters body (and possibly a query string too).
  const params = (request: FastifyRequest): Array<[string, string]> =>
    request.method === 'POST' ? [...queryParams(request), ...parametersBody(request.body, '$everything')] : queryParams(request);
  const instance: RouteSpec = {
    declare: { interaction: 'operation', operation: 'everything', type: 'Patient', requires: { anyOf: ['r'] } },
    schema: { params: ID_PARAMS },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      return patientEverything(requestContext(base, request), settings, {
        patientId: id,
        params: params(request),
        strict: strictHandling(request),
      });
    },
  };
  const all: RouteSpec = {
    declare: { interaction: 'operation', operation: 'everything', type: 'Patient', requires: { anyOf: ['r'] } },
    handler: async (request) =>
      patientEverything(requestContext(base, request), settings, { params: params(request), strict: strictHandling(request) }),
  };
  routeFamily(fastify, capabilities, '/Patient/:id/$everything', { GET: instance, POST: instance });
  routeFamily(fastify, capabilities, '/Patient/$everything', { GET: all, POST: all });
  capabilities.addOperation(
    'Patient',
    'everything',
    'http://hl7.org/fhir/OperationDefinition/Patient-everything',
    'GET or POST Patient/[id]/$everything and Patient/$everything (all patients): the patient(s) and their Patient compartment ' +
      '(Encounter, MedicationRequest by subject); _since, _type, _count, paged by next links. start/end are not supported.',
  );
}
