/**
 * buildApp: the Fastify instance, with its plugins registered in one readable order.
 * It does not listen and owns no connections: main.ts (or a test) supplies the dependencies and listens.
 *
 * The order a request meets them:
 *   errors (every failure becomes an OperationOutcome) -> exposure (security headers, CORS, rate limits) ->
 *   access (token, scopes, audit trail; for every route of the route table) -> health | FHIR base (content
 *   negotiation, then the route modules) | Bulk export | the authorization server's endpoints.
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { openAuth, type OpenedAuth } from './auth/index.js';
import { DEFAULT_HTTP_LIMITS, type ServerConfig } from './config.js';
import { NO_ACCESS, SmartAccessPolicy } from './fhir/access/access-policy.js';
import { scopeQueryParser } from './fhir/search/scope-query.js';
import { AuditRecorder } from './fhir/audit/audit-recorder.js';
import { Capabilities } from './fhir/capability-statement.js';
import type { FhirContext } from './fhir/context.js';
import { issue, operationOutcome } from './fhir/outcome.js';
import { AUDIT_EVENT_TYPE, clientResourceTypes } from './fhir/resource-types.js';
import { DEFAULT_SEARCH_SETTINGS, type SearchSettings } from './fhir/search/search.js';
import { searchRegistry } from './fhir/search/registry.js';
import type { ResourceValidator } from './fhir/validation/index.js';
import accessPlugin from './http/access.js';
import errorPlugin, { MAX_PATH_SEGMENT, answerFrameworkError } from './http/errors.js';
import exposurePlugin, { addressKey } from './http/exposure.js';
import { FHIR_JSON, FHIR_XML, JSON_PATCH, registerFhirFormat } from './http/fhir-format.js';
import healthPlugin from './http/health.js';
import { trackRequests, type InFlightRequests } from './http/request-context.js';
import { requireDeclarations, type RouteTableEntry } from './http/route-table.js';
import bundleRoutes, { DEFAULT_BUNDLE_SETTINGS } from './http/routes/bundle-routes.js';
import { DEFAULT_BULK_EXPORT_SETTINGS, registerBulkExportRoutes, type BulkExportDependencies } from './http/routes/bulk-export-routes.js';
import ledgerRoutes from './http/routes/ledger-routes.js';
import metadataRoutes from './http/routes/metadata.js';
import { oauthRoutes } from './http/routes/oauth-routes.js';
import operationRoutes from './http/routes/operation-routes.js';
import resourceRoutes from './http/routes/resource-routes.js';
import searchRoutes from './http/routes/search-routes.js';
import verifyPageRoutes from './http/routes/verify-page-routes.js';
import type { LedgerService } from './ledger/ledger-service.js';
import { SOFTWARE } from './software.js';
import type { ResourceStore } from './store/resource-store.js';

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
  /** Authentication, already opened (tests share one); by default buildApp opens it from config.auth. */
  auth?: OpenedAuth;
  /**
   * Where the audit worker thread connects (the server's own MongoDB and database): buffered AuditEvents are then
   * built and written off the request thread. Without it they are built and written in this thread.
   */
  auditWorker?: { mongoUri: string; dbName: string };
}

export type AppConfig = Pick<
  ServerConfig,
  'basePath' | 'baseUrl' | 'bodyLimit' | 'logLevel' | 'referencePolicy' | 'auth' | 'audit' | 'exposure'
> &
  Partial<Pick<ServerConfig, 'bundle' | 'bulkExport' | 'http' | 'resourceTypes'>> & {
    /** Paging and limits of searches (ServerConfig.search without the store's query time limit). */
    search?: SearchSettings;
  };

declare module 'fastify' {
  interface FastifyInstance {
    /** Every registered route with its declaration (tests walk it). */
    routeTable: RouteTableEntry[];
    /** The audit recorder, when auditing is on (tests flush it). */
    auditRecorder: AuditRecorder | undefined;
    /** The server's own authorization server and token verifier, when authorization is on. */
    auth: OpenedAuth | undefined;
    /** The requests being answered (a shutdown stops those that outlive its grace period). */
    inFlight: InFlightRequests;
  }
}

/**
 * Log lines carry method, path and status, never query strings, bodies or credentials: a search such as
 * ?name=Smith&birthdate=… is patient data, and a token or client assertion is a credential.
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
  // As Node's own handler: no answer on a socket that is gone, or where a response has already begun (a request
  // timeout can fire while an answer is being written; a second response would corrupt the stream).
  const inProgress = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, code, diagnostics] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? (['431 Request Header Fields Too Large', 'too-costly', 'Request headers are too large'] as const)
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ([
            '408 Request Timeout',
            'timeout',
            'The request was not received in time (HTTP_REQUEST_TIMEOUT_MS, HTTP_HEADERS_TIMEOUT_MS)',
          ] as const)
        : (['400 Bad Request', 'structure', 'Malformed HTTP request'] as const);
  const body = JSON.stringify(operationOutcome([issue('error', code, diagnostics)]));
  // The answer to a HEAD request has no body (a client would read one as garbage after the response). The parser
  // failed, so the method is known only from the bytes that failed: a request line too long for the header limit
  // arrives in that first packet.
  const raw = (error as Error & { rawPacket?: unknown }).rawPacket;
  const head = Buffer.isBuffer(raw) && raw.subarray(0, 5).toString('latin1') === 'HEAD ';
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: application/fhir+json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`,
  );
}

export async function buildApp(config: AppConfig, deps: AppDependencies): Promise<FastifyInstance> {
  const trustProxy = config.exposure.trustProxy;
  const limits = config.http ?? DEFAULT_HTTP_LIMITS;
  const app = Fastify({
    // Behind a reverse proxy, the client's address (audit trail, rate limits) is the one the proxy forwards.
    trustProxy:
      trustProxy === undefined
        ? false
        : typeof trustProxy === 'number'
          ? (_address: string, hop: number) => hop < trustProxy
          : trustProxy.split(','),
    logger: deps.logger ?? loggerOptions(config),
    bodyLimit: config.bodyLimit,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PATH_SEGMENT },
    frameworkErrors: answerFrameworkError,
    // Slow or idle clients are cut off (Node answers 408 to a request not received in time); Fastify's own
    // defaults would let a slowly sent body hold its connection forever.
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      requireHostHeader: false,
      headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
      // How often Node checks the two timeouts above (its default, 30 s, would let a slow client overrun them by that much).
      connectionsCheckingInterval: 1000,
    },
    // Request ids correlate a response with its AuditEvent and log lines, across restarts: a UUID each, or the
    // caller's X-Request-Id when it is a plausible id (not an arbitrary string that would end up in every record).
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    // Start-up includes the audit worker thread loading its modules and connecting to MongoDB: on a loaded machine
    // (or under a TypeScript loader) that can take longer than Fastify's default of 10 s.
    pluginTimeout: 60_000,
    clientErrorHandler: answerMalformedRequest,
  });
  app.server.maxConnections = limits.maxConnections;
  // Before any route: a route without a FHIR declaration (or a reason to be public) stops the server here.
  app.decorate('routeTable', requireDeclarations(app));

  const resourceTypes = config.resourceTypes ?? clientResourceTypes();
  /** What the server stores for this deployment: the hosted types and the audit trail. */
  const storedTypes = [...resourceTypes, AUDIT_EVENT_TYPE];
  const capabilities = new Capabilities(resourceTypes).addFormat(FHIR_JSON).addFormat('json').addFormat(FHIR_XML).addFormat('xml');
  capabilities.addPatchFormat(JSON_PATCH).addPatchFormat(FHIR_JSON).addPatchFormat(FHIR_XML);
  const context: FhirContext = {
    store: deps.store,
    validator: deps.validator,
    baseUrl: config.baseUrl,
    resourceTypes,
    referencePolicy: config.referencePolicy,
    now: () => new Date(),
    newId: () => randomUUID(),
    // Route handlers use the request's own policy (http/request-context.ts); this one grants nothing.
    access: NO_ACCESS,
  };
  for (const [url, profile] of deps.validator.profiles) {
    if (url.includes('|') || !profile.type || !resourceTypes.includes(profile.type)) continue;
    if (profile.kind === 'resource' && profile.derivation === 'constraint') capabilities.addSupportedProfile(profile.type, url);
  }
  const software = { ...SOFTWARE, baseUrl: config.baseUrl, startedAt: new Date() };

  // Authentication: opened here unless the caller brought it (and then the caller closes it).
  let auth = deps.auth;
  if (config.auth.mode === 'smart' && !auth) {
    const opened = await openAuth(config.auth, config.baseUrl, deps.store.db, app.log);
    auth = opened;
    app.addHook('onClose', async () => opened.close());
  }
  app.decorate('auth', auth);
  if (config.auth.mode === 'smart') {
    capabilities.setSecurity({
      cors: config.exposure.corsOrigins.length > 0,
      service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
      description:
        'SMART on FHIR: every request needs a Bearer access token (JWT) with the scopes it uses (SMART App Launch 2.x; 1.0 scopes accepted). ' +
        'Discovery: [base]/.well-known/smart-configuration.',
      ...(auth?.tokenEndpoint
        ? {
            extension: [
              {
                url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
                extension: [{ url: 'token', valueUri: auth.tokenEndpoint }],
              },
            ],
          }
        : {}),
    });
  }

  // The audit trail: events of writes are committed with the writes; the others are buffered here.
  let recorder: AuditRecorder | undefined;
  if (config.audit.enabled) {
    const audit = new AuditRecorder({
      store: deps.store,
      baseUrl: config.baseUrl,
      flushIntervalMs: config.audit.flushIntervalMs,
      bufferMax: config.audit.bufferMax,
      newId: () => randomUUID(),
      log: app.log,
      ...(deps.auditWorker ? { worker: deps.auditWorker } : {}),
    });
    recorder = audit;
    app.addHook('onReady', async () => audit.start());
    app.addHook('onClose', async () => audit.close());
  }
  app.decorate('auditRecorder', recorder);

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.decorate('inFlight', trackRequests(app));

  // Cross-cutting concerns first, in the order a request meets them.
  await app.register(errorPlugin, {
    resourceTypes,
    basePath: config.basePath,
    bodyLimit: config.bodyLimit,
  });
  await app.register(exposurePlugin, {
    corsOrigins: config.exposure.corsOrigins,
    rateLimitPerMinute: config.exposure.rateLimitPerMinute,
    rateLimitKey: (request) => (request.principal?.clientId ? `client:${request.principal.clientId}` : `address:${addressKey(request)}`),
  });
  const parseScopeQuery = scopeQueryParser(searchRegistry(), config.baseUrl, storedTypes);
  await app.register(accessPlugin, {
    mode: config.auth.mode,
    verifier: auth?.verifier,
    realm: config.baseUrl,
    policyFor: (principal) => new SmartAccessPolicy(principal, parseScopeQuery),
    audit: recorder
      ? { sink: recorder, server: { baseUrl: config.baseUrl, name: SOFTWARE.name, version: SOFTWARE.version }, now: () => new Date() }
      : undefined,
  });
  await app.register(healthPlugin, { db: deps.store.db });
  await app.register(verifyPageRoutes, { fhirBasePath: config.basePath });

  // The FHIR base: its own scope, so content negotiation applies to FHIR routes only.
  const search: SearchSettings = config.search ?? DEFAULT_SEARCH_SETTINGS;
  const readOnlyTypes = [AUDIT_EVENT_TYPE];
  await app.register(
    async (fhir) => {
      registerFhirFormat(fhir, { bodyLimit: config.bodyLimit });
      await fhir.register(metadataRoutes, { capabilities, software, smartConfiguration: auth?.smartConfiguration });
      await fhir.register(resourceRoutes, { ctx: context, capabilities, search, readOnlyTypes });
      await fhir.register(searchRoutes, { ctx: context, capabilities, settings: search, readOnlyTypes });
      if (deps.ledger) await fhir.register(ledgerRoutes, { ctx: context, capabilities, ledger: deps.ledger, types: storedTypes });
      await fhir.register(bundleRoutes, { ctx: context, capabilities, bundle: config.bundle ?? DEFAULT_BUNDLE_SETTINGS, search });
      await fhir.register(operationRoutes, { ctx: context, capabilities, search });
    },
    { prefix: config.basePath },
  );
  // Beside the FHIR scope, not in it: the Bulk Data IG negotiates its own formats (NDJSON files, JSON manifests),
  // and the token endpoint speaks OAuth (form bodies in, JSON out).
  if (deps.bulkExport) {
    await registerBulkExportRoutes(app, {
      basePath: config.basePath,
      ctx: context,
      capabilities,
      settings: config.bulkExport ?? DEFAULT_BULK_EXPORT_SETTINGS,
      deps: deps.bulkExport,
      log: app.log,
      requiresAccessToken: config.auth.mode === 'smart',
    });
  }
  if (auth?.server) {
    await app.register(oauthRoutes, { prefix: config.basePath, server: auth.server, routeConfig: { public: 'authorization-server' } });
  }

  return app;
}
