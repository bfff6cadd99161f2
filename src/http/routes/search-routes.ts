/**
 * Search over HTTP: GET [type]?..., POST [type]/_search (form body), GET [base]?_type=... and POST
 * [base]/_search (system level), GET Patient/[id]/[type] and Patient/[id]/* (Patient compartment), and the
 * conditional writes: POST [type] with If-None-Exist, PUT [type]?criteria, DELETE [type]?criteria.
 *
 * Handlers turn the request into name=value pairs (query string first, then a form body, in order, so repeated
 * parameters keep their meaning) and hand them to fhir/search; they hold no search rules of their own.
 */
import type { CapabilityStatementRestResourceSearchParam } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import type { Capabilities } from '../../fhir/capability-statement.js';
import type { FhirContext } from '../../fhir/context.js';
import { conditionalCreate, conditionalDelete, conditionalUpdate, parseCriteria } from '../../fhir/search/conditional.js';
import { searchRegistry } from '../../fhir/search/registry.js';
import { search, type SearchScope, type SearchSettings } from '../../fhir/search/search.js';
import { createResource } from '../../fhir/interactions/create.js';
import { errors } from '../../fhir/outcome.js';
import { requireCompartmentReadable } from '../../fhir/interactions/visibility.js';
import { requestContext } from '../request-context.js';
import { ifMatchOf, sendWriteResult } from '../respond.js';
import { fhirRoute, routeFamily } from '../route-table.js';
import { COMPARTMENT_PARAMS } from '../schemas.js';

const FORM = 'application/x-www-form-urlencoded';

/** The query string's parameters, in order, repeated ones kept. */
export function queryParams(request: FastifyRequest): Array<[string, string]> {
  const url = request.raw.url ?? request.url;
  const at = url.indexOf('?');
  return at < 0 ? [] : [...new URLSearchParams(url.slice(at + 1)).entries()];
}

function formParams(request: FastifyRequest): Array<[string, string]> {
  return typeof request.body === 'string' ? [...new URLSearchParams(request.body).entries()] : [];
}

/** Prefer: handling=strict (RFC 7240 as FHIR uses it); lenient otherwise. */
function strictHandling(request: FastifyRequest): boolean {
  const header = request.headers.prefer;
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  return /(?:^|[,;\s])handling\s*=\s*"?strict"?/i.test(value);
}

export interface SearchHandlers {
  /** GET [type] */
  search: (type: string) => RouteHandlerMethod;
  /** POST [type]: a create, conditional when If-None-Exist is given. */
  create: (type: string) => RouteHandlerMethod;
  /** PUT [type]?criteria */
  conditionalUpdate: (type: string) => RouteHandlerMethod;
  /** DELETE [type]?criteria */
  conditionalDelete: (type: string) => RouteHandlerMethod;
}

function runSearch(
  ctx: FhirContext,
  settings: SearchSettings,
  scope: SearchScope,
  request: FastifyRequest,
  params: Array<[string, string]>,
) {
  return search(ctx, settings, scope, { params, strict: strictHandling(request) });
}

/** Handlers for the shared /[type] URL, which resource-routes registers together with its other methods. */
export function searchHandlers(base: FhirContext, settings: SearchSettings): SearchHandlers {
  const ctx = (request: FastifyRequest): FhirContext => requestContext(base, request);
  return {
    search: (type) => async (request) => runSearch(ctx(request), settings, { types: [type], path: type }, request, queryParams(request)),
    create: (type) => async (request, reply) => {
      const header = request.headers['if-none-exist'];
      if (typeof header === 'string' && header.trim() !== '') {
        return sendWriteResult(
          request,
          reply,
          base.baseUrl,
          await conditionalCreate(ctx(request), type, request.body, parseCriteria(header.trim())),
        );
      }
      return sendWriteResult(request, reply, base.baseUrl, await createResource(ctx(request), type, request.body));
    },
    conditionalUpdate: (type) => async (request, reply) => {
      const criteria = queryParams(request);
      if (criteria.length === 0) throw errors.badRequest(`PUT ${type} needs an id (PUT ${type}/[id]) or search criteria (PUT ${type}?...)`);
      return sendWriteResult(
        request,
        reply,
        base.baseUrl,
        await conditionalUpdate(ctx(request), type, request.body, criteria, { ifMatch: ifMatchOf(request) }),
      );
    },
    conditionalDelete: (type) => async (request, reply: FastifyReply) => {
      const criteria = queryParams(request);
      if (criteria.length === 0)
        throw errors.badRequest(`DELETE ${type} needs an id (DELETE ${type}/[id]) or search criteria (DELETE ${type}?...)`);
      const result = await conditionalDelete(ctx(request), type, criteria, { ifMatch: ifMatchOf(request) });
      if (result?.changed) reply.header('etag', `W/"${result.version.versionId}"`);
      return reply.code(204).send();
    },
  };
}

/** The types of a system-level search: those named by _type, or (implied) every clinical type. */
function typesOf(value: string | undefined, hosted: readonly string[], named: readonly string[]): { types: string[]; implied: boolean } {
  if (value === undefined || value.trim() === '') return { types: [...hosted], implied: true };
  const types = [
    ...new Set(
      value
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
    ),
  ];
  if (types.length === 0)
    throw errors.badRequest(`_type=${value} names no resource type; name at least one, or leave _type out to search every type`, '_type');
  for (const type of types) {
    if (!hosted.includes(type) && !named.includes(type))
      throw errors.badRequest(`_type=${type}: this server hosts ${[...hosted, ...named].join(', ')}`);
  }
  const audit = types.filter((type) => named.includes(type));
  if (audit.length > 0 && audit.length < types.length) {
    throw errors.badRequest(
      `_type=${types.join(',')}: ${audit.join(', ')} is searched on its own (the audit trail is kept apart from the records); search it separately`,
      '_type',
    );
  }
  return { types, implied: false };
}

/** The searchParam list of a type for the CapabilityStatement: every registry parameter, with its documentation. */
function capabilitySearchParams(type: string): CapabilityStatementRestResourceSearchParam[] {
  return searchRegistry()
    .paramsOf(type)
    .map((def) => ({ name: def.code, definition: def.url, type: def.type, documentation: def.description }));
}

export interface SearchRoutesOptions {
  ctx: FhirContext;
  capabilities: Capabilities;
  settings: SearchSettings;
  /** Types searched only when named (the audit trail). */
  readOnlyTypes: readonly string[];
}

/**
 * Registers the search routes that have URLs of their own (the /[type] URL is shared with create and is
 * registered by resource-routes through searchHandlers), and declares search in the CapabilityStatement.
 * An encapsulated plugin: the form body parser applies to these routes only.
 */
export default async function searchRoutes(fastify: FastifyInstance, options: SearchRoutesOptions): Promise<void> {
  const { ctx: base, capabilities, settings } = options;
  const ctx = (request: FastifyRequest): FhirContext => requestContext(base, request);
  fastify.addContentTypeParser(FORM, { parseAs: 'string' }, (_request, body, done) => done(null, body));
  const hosted = base.resourceTypes;

  for (const type of [...hosted, ...options.readOnlyTypes]) {
    routeFamily(fastify, capabilities, `/${type}/_search`, {
      POST: {
        declare: { interaction: 'search-type', type, requires: { anyOf: ['s'] } },
        handler: async (request) =>
          runSearch(ctx(request), settings, { types: [type], path: type }, request, [...queryParams(request), ...formParams(request)]),
      },
    });
  }

  const system = (request: FastifyRequest, params: Array<[string, string]>) => {
    const typeParam = params
      .filter(([name]) => name === '_type')
      .map(([, v]) => v)
      .join(',');
    const { types, implied } = typesOf(typeParam || undefined, hosted, options.readOnlyTypes);
    const kept: Array<[string, string]> = params.filter(([name]) => name !== '_type');
    if (typeParam) kept.unshift(['_type', types.join(',')]);
    return runSearch(ctx(request), settings, { types, path: '', impliedTypes: implied }, request, kept);
  };
  // GET [base]?... (registered on its own: POST [base] belongs to batch/transaction).
  fhirRoute(fastify, capabilities, 'GET', '/', {
    declare: { interaction: 'search-system', requires: 'token' },
    handler: async (request) => system(request, queryParams(request)),
  });
  routeFamily(fastify, capabilities, '/_search', {
    POST: {
      declare: { interaction: 'search-system', requires: 'token' },
      handler: async (request) => system(request, [...queryParams(request), ...formParams(request)]),
    },
  });

  const compartmentTypes = hosted.filter((t) => searchRegistry().patientCompartment.has(t) || t === 'Patient');
  routeFamily(fastify, capabilities, '/Patient/:id/:compartmentType', {
    GET: {
      // The types searched come from the URL; the compartment's patient must be one the caller may read.
      declare: { interaction: 'search-type', type: 'Patient', requires: 'token' },
      schema: { params: COMPARTMENT_PARAMS },
      handler: async (request) => {
        const { id, compartmentType } = request.params as { id: string; compartmentType: string };
        const types = compartmentType === '*' ? compartmentTypes : [compartmentType];
        if (!types.every((t) => compartmentTypes.includes(t))) {
          throw errors.notFound(`${compartmentType} is not in the Patient compartment here (${compartmentTypes.join(', ')}, or *)`);
        }
        const requestCtx = ctx(request);
        await requireCompartmentReadable(requestCtx, id);
        return runSearch(
          requestCtx,
          settings,
          { types, path: `Patient/${id}/${compartmentType}`, compartmentPatient: id, impliedTypes: compartmentType === '*' },
          request,
          queryParams(request),
        );
      },
    },
  });

  for (const type of [...hosted, ...options.readOnlyTypes]) {
    capabilities.addInteraction(type, 'search-type');
    for (const param of capabilitySearchParams(type)) capabilities.addSearchParam(type, param);
    const registry = searchRegistry();
    const references = registry.paramsOf(type).filter((d) => d.type === 'reference');
    const revincludes = hosted.flatMap((source) =>
      registry
        .paramsOf(source)
        .filter((d) => d.type === 'reference' && (d.targets.length === 0 || d.targets.includes(type)))
        .map((d) => `${source}:${d.code}`),
    );
    const writable = hosted.includes(type);
    capabilities.setResourceDetails(type, {
      conditionalCreate: writable,
      conditionalUpdate: writable,
      conditionalDelete: writable ? 'single' : 'not-supported',
      searchInclude: ['*', ...references.map((d) => `${type}:${d.code}`)],
      // FHIR JSON has no empty arrays: a type nothing hosted refers to gets no searchRevInclude at all.
      ...(revincludes.length > 0 ? { searchRevInclude: revincludes } : {}),
    });
  }
  capabilities.addSystemInteraction('search-system');
}
