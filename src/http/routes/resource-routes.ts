/**
 * The RESTful interactions on the hosted resource types, one declared route per interaction, grouped by URL so
 * that a method the URL does not support answers 405. Handlers translate HTTP to the interaction functions in
 * fhir/interactions and back, with the request's own FhirContext (its access policy and audit trail); they hold
 * no FHIR rules of their own.
 *
 * The clinical types get every interaction. AuditEvent, recorded by the server itself, gets the read side only
 * (read, vread, history, search): the audit trail is never created, changed or deleted through the API.
 */
import type { Parameters } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Capabilities } from '../../fhir/capability-statement.js';
import type { FhirContext } from '../../fhir/context.js';
import { deleteResource } from '../../fhir/interactions/delete.js';
import { history, type HistoryParams } from '../../fhir/interactions/history.js';
import { readResource } from '../../fhir/interactions/read.js';
import { patchResource } from '../../fhir/interactions/patch.js';
import { updateResource } from '../../fhir/interactions/update.js';
import { validateOperation } from '../../fhir/interactions/validate.js';
import { r4ResourceTypes } from '../../fhir/resource-types.js';
import type { PatchDocument } from '../../fhir/patch/index.js';
import { errors } from '../../fhir/outcome.js';
import type { SearchSettings } from '../../fhir/search/search.js';
import { acceptBinaryContent, sendBinaryContent } from '../binary-content.js';
import { JSON_PATCH } from '../fhir-format.js';
import type { VersionView } from '../../fhir/interactions/versions.js';
import { readResourceVersion } from '../../fhir/interactions/vread.js';
import { parseElements, parseSummary, shortenResource } from '../../fhir/summary.js';
import { requestContext } from '../request-context.js';
import { ifMatchOf, notModified, sendWriteResult, setVersionHeaders } from '../respond.js';
import { routeFamily, type RouteFamily, type RouteSpec } from '../route-table.js';
import { ID_PARAMS, VERSION_PARAMS } from '../schemas.js';
import { searchHandlers } from './search-routes.js';

type Query = Record<string, string | string[] | undefined>;

function single(query: Query, name: string): string | undefined {
  const value = query[name];
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function sendVersion(request: FastifyRequest, reply: FastifyReply, version: VersionView): FastifyReply {
  setVersionHeaders(reply, version);
  if (notModified(request, version)) return reply.code(304).send();
  if (request.binaryContent && version.resource.resourceType === 'Binary') return sendBinaryContent(reply, version);
  const query = request.query as Query;
  return reply.send(shortenResource(version.resource, parseSummary(single(query, '_summary')), parseElements(single(query, '_elements'))));
}

/** The patch document by Content-Type: JSON Patch, or FHIRPath Patch (a Parameters resource). */
function patchDocument(request: FastifyRequest): PatchDocument {
  const contentType = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (contentType === JSON_PATCH) return { kind: 'json-patch', operations: request.body };
  const body = request.body as { resourceType?: unknown } | undefined;
  if (body && typeof body === 'object' && body.resourceType === 'Parameters') {
    return { kind: 'fhirpath-patch', parameters: body as Parameters };
  }
  throw errors.unsupportedMediaType(
    `PATCH takes ${JSON_PATCH} (JSON Patch) or a Parameters resource in application/fhir+json or application/fhir+xml (FHIRPath Patch)`,
  );
}

function validateQuery(query: Query): { mode?: string; profile?: string } {
  return { mode: single(query, 'mode'), profile: single(query, 'profile') };
}

function historyParams(query: Query): HistoryParams {
  return {
    _count: single(query, '_count'),
    _since: single(query, '_since'),
    _at: single(query, '_at'),
    _cursor: single(query, '_cursor'),
  };
}

export interface ResourceRoutesOptions {
  /** The server's context (its access policy grants nothing: handlers use the request's). */
  ctx: FhirContext;
  capabilities: Capabilities;
  search: SearchSettings;
  /** Types served read-only (the audit trail). */
  readOnlyTypes: readonly string[];
}

/**
 * A write to a read-only type (the audit trail) is answered 405 like any unsupported method, but it is declared: it
 * needs a token and leaves an AuditEvent, since an attempt to change the audit trail is itself worth recording.
 */
function refusedWrite(type: string, interaction: 'create' | 'update' | 'patch' | 'delete', allow: string[]): RouteSpec {
  return {
    declare: { interaction, type, requires: 'token' },
    capability: false,
    handler: async (request) => {
      throw errors.methodNotAllowed(
        request.method,
        request.url.split('?')[0],
        allow,
        `${type} is recorded by the server and cannot be changed through the API`,
      );
    },
  };
}

const VALIDATE_DEFINITION = 'http://hl7.org/fhir/OperationDefinition/Resource-validate';

/** POST [type]/$validate, a dry run of a create or an update: either permission will do. */
function validateRoute(fastify: FastifyInstance, options: ResourceRoutesOptions, type: string): void {
  routeFamily(fastify, options.capabilities, `/${type}/$validate`, {
    POST: {
      declare: { interaction: 'operation', operation: 'validate', type, requires: { anyOf: ['c', 'u'] } },
      handler: async (request) =>
        validateOperation(requestContext(options.ctx, request), type, undefined, request.body, validateQuery(request.query as Query)),
    },
  });
}

/** The routes of one type: its instance- and type-level interactions. */
function typeRoutes(fastify: FastifyInstance, options: ResourceRoutesOptions, type: string, writable: boolean): void {
  const { ctx: base, capabilities } = options;
  const ctx = (request: FastifyRequest): FhirContext => requestContext(base, request);
  const search = searchHandlers(base, options.search);

  const typeLevel: RouteFamily = {
    GET: { declare: { interaction: 'search-type', type, requires: { anyOf: ['s'] } }, handler: search.search(type) },
  };
  if (writable) {
    typeLevel.POST = { declare: { interaction: 'create', type, requires: { anyOf: ['c'] } }, handler: search.create(type) };
    typeLevel.PUT = { declare: { interaction: 'update', type, requires: { anyOf: ['u'] } }, handler: search.conditionalUpdate(type) };
    typeLevel.DELETE = { declare: { interaction: 'delete', type, requires: { anyOf: ['d'] } }, handler: search.conditionalDelete(type) };
  } else {
    typeLevel.POST = refusedWrite(type, 'create', ['GET', 'HEAD']);
    typeLevel.PUT = refusedWrite(type, 'update', ['GET', 'HEAD']);
    typeLevel.DELETE = refusedWrite(type, 'delete', ['GET', 'HEAD']);
  }
  routeFamily(fastify, capabilities, `/${type}`, typeLevel);

  const instance: RouteFamily = {
    GET: {
      declare: { interaction: 'read', type, requires: { anyOf: ['r'] } },
      schema: { params: ID_PARAMS },
      handler: async (request, reply) => {
        const { id } = request.params as { id: string };
        return sendVersion(request, reply, await readResource(ctx(request), type, id));
      },
    },
  };
  if (writable) {
    instance.PUT = {
      declare: { interaction: 'update', type, requires: { anyOf: ['u'] } },
      schema: { params: ID_PARAMS },
      handler: async (request, reply) => {
        const { id } = request.params as { id: string };
        const result = await updateResource(ctx(request), type, id, request.body, { ifMatch: ifMatchOf(request) });
        return sendWriteResult(request, reply, base.baseUrl, result);
      },
    };
    instance.PATCH = {
      declare: { interaction: 'patch', type, requires: { anyOf: ['u'] } },
      schema: { params: ID_PARAMS },
      handler: async (request, reply) => {
        const { id } = request.params as { id: string };
        const result = await patchResource(ctx(request), type, id, patchDocument(request), { ifMatch: ifMatchOf(request) });
        return sendWriteResult(request, reply, base.baseUrl, result);
      },
    };
    instance.DELETE = {
      declare: { interaction: 'delete', type, requires: { anyOf: ['d'] } },
      schema: { params: ID_PARAMS },
      handler: async (request, reply) => {
        const { id } = request.params as { id: string };
        const result = await deleteResource(ctx(request), type, id, { ifMatch: ifMatchOf(request) });
        if (result.changed) reply.header('etag', `W/"${result.version.versionId}"`);
        return reply.code(204).send();
      },
    };
  }
  if (!writable) {
    instance.PUT = refusedWrite(type, 'update', ['GET', 'HEAD']);
    instance.PATCH = refusedWrite(type, 'patch', ['GET', 'HEAD']);
    instance.DELETE = refusedWrite(type, 'delete', ['GET', 'HEAD']);
  }
  routeFamily(fastify, capabilities, `/${type}/:id`, instance);

  if (writable) {
    validateRoute(fastify, options, type);
    routeFamily(fastify, capabilities, `/${type}/:id/$validate`, {
      POST: {
        declare: { interaction: 'operation', operation: 'validate', type, requires: { anyOf: ['c', 'u'] } },
        schema: { params: ID_PARAMS },
        handler: async (request) => {
          const { id } = request.params as { id: string };
          return validateOperation(ctx(request), type, id, request.body, validateQuery(request.query as Query));
        },
      },
    });
    capabilities.addOperation(
      type,
      'validate',
      VALIDATE_DEFINITION,
      'POST [type]/$validate and [type]/[id]/$validate; parameters resource, mode (create | update | delete), profile',
    );
  }

  routeFamily(fastify, capabilities, `/${type}/:id/_history/:vid`, {
    GET: {
      declare: { interaction: 'vread', type, requires: { anyOf: ['r'] } },
      schema: { params: VERSION_PARAMS },
      handler: async (request, reply) => {
        const { id, vid } = request.params as { id: string; vid: string };
        return sendVersion(request, reply, await readResourceVersion(ctx(request), type, id, vid));
      },
    },
  });

  routeFamily(fastify, capabilities, `/${type}/:id/_history`, {
    GET: {
      declare: { interaction: 'history-instance', type, requires: { anyOf: ['r'] } },
      schema: { params: ID_PARAMS },
      handler: async (request) => {
        const { id } = request.params as { id: string };
        return history(ctx(request), { type, id }, historyParams(request.query as Query));
      },
    },
  });

  routeFamily(fastify, capabilities, `/${type}/_history`, {
    GET: {
      declare: { interaction: 'history-type', type, requires: { anyOf: ['r'] } },
      handler: async (request) => history(ctx(request), { type }, historyParams(request.query as Query)),
    },
  });

  capabilities.setResourceDetails(type, {
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: writable,
    conditionalRead: 'full-support',
    conditionalDelete: 'not-supported',
  });
}

export default async function resourceRoutes(fastify: FastifyInstance, options: ResourceRoutesOptions): Promise<void> {
  for (const type of options.ctx.resourceTypes) {
    if (type !== 'Binary') typeRoutes(fastify, options, type, true);
    else {
      // Binary's routes in a scope of their own, whose parser takes a body in any media type as the Binary's content.
      await fastify.register(async (scope) => {
        acceptBinaryContent(scope);
        typeRoutes(scope, options, type, true);
      });
    }
  }
  for (const type of options.readOnlyTypes) {
    options.capabilities.addResourceType(type);
    typeRoutes(fastify, options, type, false);
    options.capabilities.setResourceDetails(type, {
      documentation:
        'The audit trail: one AuditEvent (IHE BALP) per access, recorded by the server, anchored on the ledger like the records. ' +
        'Read and searched with a scope that names AuditEvent; never created, changed or deleted through the API.',
    });
  }

  // Every other R4 resource type can still be validated (a Parameters, a Bundle about to be sent elsewhere): it
  // is never stored here, so there is no instance-level $validate and no other interaction.
  const hosted = new Set([...options.ctx.resourceTypes, ...options.readOnlyTypes]);
  for (const type of r4ResourceTypes()) {
    if (hosted.has(type)) continue;
    options.capabilities.addResourceType(type);
    validateRoute(fastify, options, type);
    options.capabilities.addOperation(type, 'validate', VALIDATE_DEFINITION, 'POST [type]/$validate: this type is not stored here');
  }

  routeFamily(fastify, options.capabilities, '/_history', {
    GET: {
      declare: { interaction: 'history-system', requires: 'token' },
      handler: async (request) => history(requestContext(options.ctx, request), {}, historyParams(request.query as Query)),
    },
  });
}
