/**
 * buildApp: the Fastify instance, with its plugins registered in one readable order.
 * It does not listen and owns no connections: main.ts (or a test) supplies the dependencies and listens.
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { ServerConfig } from './config.js';
import { Capabilities } from './fhir/capability-statement.js';
import type { FhirContext } from './fhir/context.js';
import { issue, operationOutcome } from './fhir/outcome.js';
import { SUPPORTED_RESOURCE_TYPES } from './fhir/resource-types.js';
import errorPlugin from './http/errors.js';
import { FHIR_JSON, JSON_PATCH, registerFhirFormat } from './http/fhir-format.js';
import healthPlugin from './http/health.js';
import { registerMetadataRoute } from './http/routes/metadata.js';
import { registerResourceRoutes } from './http/routes/resource-routes.js';
import { registerSearchRoutes, searchHandlers } from './http/routes/search-routes.js';
import { DEFAULT_SEARCH_SETTINGS, type SearchSettings } from './fhir/search/search.js';
import { registerLedgerRoutes } from './http/routes/ledger-routes.js';
import { DEFAULT_BUNDLE_SETTINGS, registerBundleRoutes } from './http/routes/bundle-routes.js';
import { registerOperationRoutes } from './http/routes/operation-routes.js';
import { DEFAULT_BULK_EXPORT_SETTINGS, registerBulkExportRoutes, type BulkExportDependencies } from './http/routes/bulk-export-routes.js';
import type { LedgerService } from './ledger/ledger-service.js';
import { SOFTWARE } from './software.js';
import type { ResourceStore } from './store/resource-store.js';
import type { ResourceValidator } from './fhir/validation/index.js';

export interface AppDependencies {
  store: ResourceStore;
  /** Built once per process (loading the R4 definitions takes a moment). */
  validator: ResourceValidator;
  /** Overrides the logger (tests pass false to silence it). */
  logger?: FastifyServerOptions['logger'];
  /** The ledger's read side ($verify, $proof, Provenance); without it those routes are not registered. */
  ledger?: LedgerService;
  /** Bulk Data export: where its files go and its runner; without it $export is not offered. */
  bulkExport?: BulkExportDependencies;
}

export type AppConfig = Pick<ServerConfig, 'basePath' | 'baseUrl' | 'bodyLimit' | 'logLevel' | 'referencePolicy'> &
  Partial<Pick<ServerConfig, 'search' | 'bundle' | 'bulkExport'>>;

/**
 * Log lines carry method, path and status, never query strings or bodies: a search such as ?name=Smith&birthdate=…
 * is patient data.
 */
function loggerOptions(config: AppConfig): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: ['req.headers.authorization', 'req.headers.cookie'],
    serializers: {
      req: (request: { method: string; url: string; id: string }) => ({
        id: request.id,
        method: request.method,
        path: request.url.split('?')[0],
      }),
    },
  };
}

/**
 * Requests so malformed that Node's HTTP parser rejects them never reach a route; they still get an
 * OperationOutcome, and the connection is closed since its framing can no longer be trusted.
 */
function answerMalformedRequest(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const body = JSON.stringify(
    operationOutcome([
      issue('error', tooLarge ? 'too-costly' : 'structure', tooLarge ? 'Request headers are too large' : 'Malformed HTTP request'),
    ]),
  );
  socket.end(
    `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\nContent-Type: application/fhir+json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export async function buildApp(config: AppConfig, deps: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? loggerOptions(config),
    bodyLimit: config.bodyLimit,
    routerOptions: { ignoreTrailingSlash: true },
    requestIdHeader: 'x-request-id',
    return503OnClosing: true,
    clientErrorHandler: answerMalformedRequest,
  });

  const capabilities = new Capabilities(SUPPORTED_RESOURCE_TYPES).addFormat(FHIR_JSON).addFormat('json');
  capabilities.addPatchFormat(JSON_PATCH).addPatchFormat(FHIR_JSON);
  const context: FhirContext = {
    store: deps.store,
    validator: deps.validator,
    baseUrl: config.baseUrl,
    resourceTypes: SUPPORTED_RESOURCE_TYPES,
    referencePolicy: config.referencePolicy,
    now: () => new Date(),
    newId: () => randomUUID(),
  };
  for (const [url, profile] of deps.validator.profiles) {
    if (url.includes('|') || !profile.type || !SUPPORTED_RESOURCE_TYPES.includes(profile.type as never)) continue;
    if (profile.kind === 'resource' && profile.derivation === 'constraint') capabilities.addSupportedProfile(profile.type, url);
  }
  const software = { ...SOFTWARE, baseUrl: config.baseUrl, startedAt: new Date() };

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  // Cross-cutting concerns first, in the order a request meets them.
  await app.register(errorPlugin, {
    resourceTypes: SUPPORTED_RESOURCE_TYPES,
    basePath: config.basePath,
    bodyLimit: config.bodyLimit,
  });
  await app.register(healthPlugin, { db: deps.store.db });

  // The FHIR base: its own scope, so content negotiation applies to FHIR routes only.
  await app.register(
    async (fhir) => {
      registerFhirFormat(fhir, { bodyLimit: config.bodyLimit });
      registerMetadataRoute(fhir, capabilities, software);
      const search: SearchSettings = config.search ?? DEFAULT_SEARCH_SETTINGS;
      registerResourceRoutes(fhir, context, capabilities, searchHandlers(context, search));
      await registerSearchRoutes(fhir, context, capabilities, search);
      if (deps.ledger) registerLedgerRoutes(fhir, context, capabilities, deps.ledger);
      await registerBundleRoutes(fhir, context, capabilities, { bundle: config.bundle ?? DEFAULT_BUNDLE_SETTINGS, search });
      registerOperationRoutes(fhir, context, capabilities, search);
    },
    { prefix: config.basePath },
  );
  // Beside the FHIR scope, not in it: the Bulk Data IG negotiates its own formats (NDJSON files, JSON manifests).
  if (deps.bulkExport) {
    await registerBulkExportRoutes(app, {
      basePath: config.basePath,
      ctx: context,
      capabilities,
      settings: config.bulkExport ?? DEFAULT_BULK_EXPORT_SETTINGS,
      deps: deps.bulkExport,
      log: app.log,
    });
  }

  return app;
}
