/**
 * The RESTful interactions on the hosted resource types, one handler per interaction, grouped by URL so that a
 * method the URL does not support answers 405. Handlers translate HTTP to the interaction functions in
 * fhir/interactions and back; they hold no FHIR rules of their own.
 */
import type { Parameters } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Capabilities } from '../../fhir/capability-statement.js';
import type { FhirContext } from '../../fhir/context.js';
import { createResource } from '../../fhir/interactions/create.js';
import { deleteResource } from '../../fhir/interactions/delete.js';
import { history, type HistoryParams } from '../../fhir/interactions/history.js';
import { readResource } from '../../fhir/interactions/read.js';
import { patchResource } from '../../fhir/interactions/patch.js';
import { updateResource } from '../../fhir/interactions/update.js';
import { validateOperation } from '../../fhir/interactions/validate.js';
import type { PatchDocument } from '../../fhir/patch/index.js';
import { errors } from '../../fhir/outcome.js';
import { JSON_PATCH } from '../fhir-format.js';
import { parseVersionTag, type VersionView } from '../../fhir/interactions/versions.js';
import { readResourceVersion } from '../../fhir/interactions/vread.js';
import { parseElements, parseSummary, shortenResource } from '../../fhir/summary.js';
import { notModified, sendWriteResult, setVersionHeaders } from '../respond.js';
import { registerRouteFamily } from '../route-family.js';
import type { SearchHandlers } from './search-routes.js';

type Query = Record<string, string | string[] | undefined>;

function single(query: Query, name: string): string | undefined {
  const value = query[name];
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function ifMatchOf(request: FastifyRequest): number | undefined {
  const header = request.headers['if-match'];
  return typeof header === 'string' ? parseVersionTag(header, 'If-Match') : undefined;
}

function sendVersion(request: FastifyRequest, reply: FastifyReply, version: VersionView): FastifyReply {
  setVersionHeaders(reply, version);
  if (notModified(request, version)) return reply.code(304).send();
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
    `PATCH takes ${JSON_PATCH} (JSON Patch) or application/fhir+json with a Parameters resource (FHIRPath Patch)`,
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

/**
 * `search` supplies the handlers that share the /[type] URL with create: search (GET), conditional create
 * (POST with If-None-Exist), conditional update (PUT) and conditional delete (DELETE); see search-routes.ts.
 */
export function registerResourceRoutes(
  fastify: FastifyInstance,
  ctx: FhirContext,
  capabilities: Capabilities,
  search?: SearchHandlers,
): void {
  for (const type of ctx.resourceTypes) {
    registerRouteFamily(
      fastify,
      `/${type}`,
      search
        ? {
            GET: search.search(type),
            POST: search.create(type),
            PUT: search.conditionalUpdate(type),
            DELETE: search.conditionalDelete(type),
          }
        : {
            POST: async (request, reply) => sendWriteResult(request, reply, ctx.baseUrl, await createResource(ctx, type, request.body)),
          },
    );

    registerRouteFamily(fastify, `/${type}/:id`, {
      GET: async (request, reply) => {
        const { id } = request.params as { id: string };
        return sendVersion(request, reply, await readResource(ctx, type, id));
      },
      PUT: async (request, reply) => {
        const { id } = request.params as { id: string };
        const result = await updateResource(ctx, type, id, request.body, { ifMatch: ifMatchOf(request) });
        return sendWriteResult(request, reply, ctx.baseUrl, result);
      },
      PATCH: async (request, reply) => {
        const { id } = request.params as { id: string };
        const result = await patchResource(ctx, type, id, patchDocument(request), { ifMatch: ifMatchOf(request) });
        return sendWriteResult(request, reply, ctx.baseUrl, result);
      },
      DELETE: async (request, reply) => {
        const { id } = request.params as { id: string };
        const result = await deleteResource(ctx, type, id, { ifMatch: ifMatchOf(request) });
        if (result.changed) reply.header('etag', `W/"${result.version.versionId}"`);
        return reply.code(204).send();
      },
    });

    registerRouteFamily(fastify, `/${type}/$validate`, {
      POST: async (request) => validateOperation(ctx, type, undefined, request.body, validateQuery(request.query as Query)),
    });
    registerRouteFamily(fastify, `/${type}/:id/$validate`, {
      POST: async (request) => {
        const { id } = request.params as { id: string };
        return validateOperation(ctx, type, id, request.body, validateQuery(request.query as Query));
      },
    });

    registerRouteFamily(fastify, `/${type}/:id/_history/:vid`, {
      GET: async (request, reply) => {
        const { id, vid } = request.params as { id: string; vid: string };
        return sendVersion(request, reply, await readResourceVersion(ctx, type, id, vid));
      },
    });

    registerRouteFamily(fastify, `/${type}/:id/_history`, {
      GET: async (request) => {
        const { id } = request.params as { id: string };
        return history(ctx, { type, id }, historyParams(request.query as Query));
      },
    });

    registerRouteFamily(fastify, `/${type}/_history`, {
      GET: async (request) => history(ctx, { type }, historyParams(request.query as Query)),
    });

    capabilities.addOperation(
      type,
      'validate',
      'http://hl7.org/fhir/OperationDefinition/Resource-validate',
      'POST [type]/$validate and [type]/[id]/$validate; parameters resource, mode (create | update | delete), profile',
    );
    for (const interaction of ['create', 'read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type'] as const) {
      capabilities.addInteraction(type, interaction);
    }
    capabilities.setResourceDetails(type, {
      versioning: 'versioned-update',
      readHistory: true,
      updateCreate: true,
      conditionalRead: 'full-support',
      conditionalDelete: 'not-supported',
    });
  }

  registerRouteFamily(fastify, '/_history', {
    GET: async (request) => history(ctx, {}, historyParams(request.query as Query)),
  });
  capabilities.addSystemInteraction('history-system');
}
