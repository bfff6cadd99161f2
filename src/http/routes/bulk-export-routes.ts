/**
 * Bulk Data export over HTTP (Bulk Data Access IG 2.0.0): kick-off (GET, or POST with a Parameters body) at
 * [base]/$export and [base]/Patient/$export, status and cancel at [base]/$export-status/<jobId>, files at
 * [base]/$export-file/<jobId>/<file>. The job runner lives with the app: it starts when the app is ready and stops
 * (handing its job back to the queue) when the app closes.
 *
 * These routes sit in a scope of their own beside the FHIR scope, without its content negotiation: the IG has its
 * own rules for Accept (a kick-off answers 400, not 406; a file is NDJSON, a manifest plain JSON).
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Capabilities } from '../../fhir/capability-statement.js';
import type { FhirContext } from '../../fhir/context.js';
import { BulkExportRunner, type RunnerLogger, type RunnerTuning } from '../../fhir/bulk-export/runner.js';
import { NDJSON } from '../../fhir/bulk-export/kickoff.js';
import { BulkExportService, filePath, statusPath, type ExportCaller } from '../../fhir/bulk-export/service.js';
import { patientCompartmentTypes } from '../../fhir/operations/everything.js';
import { errors } from '../../fhir/outcome.js';
import type { ExportLevel } from '../../store/export-jobs.js';
import { ExportJobStore } from '../../store/export-jobs.js';
import { FHIR_JSON } from '../fhir-format.js';
import { parseJsonText } from '../../fhir/json-text.js';
import { routeFamily, type RouteSpec } from '../route-table.js';
import { EXPORT_FILE_PARAMS, EXPORT_JOB_PARAMS } from '../schemas.js';
import { queryParams } from './search-routes.js';

export interface BulkExportDependencies {
  /** Where export files are written: <dir>/<jobId>/<Type>-<n>.ndjson. */
  dir: string;
  /** False leaves the runner stopped (tests of a server that stops before exporting); default true. */
  startRunner?: boolean;
  tuning?: Partial<RunnerTuning>;
}

export interface BulkExportSettings {
  retentionHours: number;
  maxResourcesPerFile: number;
}

export const DEFAULT_BULK_EXPORT_SETTINGS: BulkExportSettings = { retentionHours: 24, maxResourcesPerFile: 100_000 };

function headerText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(',') : (value ?? '');
}

export interface BulkExportRoutesOptions {
  basePath: string;
  ctx: FhirContext;
  capabilities: Capabilities;
  settings: BulkExportSettings;
  deps: BulkExportDependencies;
  log: RunnerLogger;
  /** Authorization is on: the manifest says files need the access token, and only the requester may fetch them. */
  requiresAccessToken: boolean;
}

/** Who asks, for the export service: the request's access and its client. */
function callerOf(request: FastifyRequest): ExportCaller {
  return { access: request.access, requestedBy: request.principal?.clientId ?? request.principal?.subject, signal: request.stopSignal };
}

export async function registerBulkExportRoutes(app: FastifyInstance, args: BulkExportRoutesOptions): Promise<BulkExportRunner> {
  const { ctx, basePath, settings, deps } = args;
  const jobs = new ExportJobStore(ctx.store.db);
  const runner = new BulkExportRunner({
    store: ctx.store,
    jobs,
    dir: deps.dir,
    maxResourcesPerFile: settings.maxResourcesPerFile,
    retentionMs: settings.retentionHours * 3_600_000,
    tuning: deps.tuning,
    log: args.log,
    now: () => ctx.now(),
  });
  const service = new BulkExportService(jobs, runner, {
    baseUrl: ctx.baseUrl,
    exportable: { system: ctx.resourceTypes, patient: patientCompartmentTypes(ctx) },
    now: () => ctx.now(),
    requiresAccessToken: args.requiresAccessToken,
  });

  app.addHook('onReady', async () => {
    await jobs.ensureIndexes();
    if (deps.startRunner !== false) runner.start();
  });
  app.addHook('onClose', async () => {
    await runner.stop();
  });

  await app.register(
    async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser([FHIR_JSON, 'application/json'], { parseAs: 'string' }, (_request, body, done) => {
        try {
          done(null, parseJsonText(typeof body === 'string' ? body : body.toString('utf8')));
        } catch (error) {
          done(error as Error);
        }
      });

      const kickOff = (level: ExportLevel) => async (request: FastifyRequest, reply: FastifyReply) => {
        // Fastify answers HEAD with the GET handler; a HEAD must not start an export.
        if (request.method === 'HEAD') throw errors.methodNotAllowed('HEAD', request.url.split('?')[0], ['GET', 'POST']);
        const query = queryParams(request);
        const result = await service.kickOff(
          {
            level,
            query,
            body: request.method === 'POST' ? request.body : undefined,
            prefer: headerText(request.headers.prefer),
            accept: request.headers.accept,
          },
          `${ctx.baseUrl}${request.url.slice(basePath.length)}`,
          callerOf(request),
        );
        request.audit?.searched(new URLSearchParams(query).toString(), result.types);
        request.audit?.touched(statusPath(result.jobId), []);
        reply.code(202).header('content-location', result.statusUrl).type(`${FHIR_JSON}; charset=utf-8`);
        return result.outcome;
      };
      const exportRoute = (level: ExportLevel): RouteSpec =>
        level === 'system'
          ? { declare: { interaction: 'operation', operation: 'export', requires: 'token' }, handler: kickOff(level) }
          : {
              declare: { interaction: 'operation', operation: 'export', type: 'Patient', requires: { anyOf: ['r'] } },
              handler: kickOff(level),
            };
      routeFamily(scope, undefined, '/$export', { GET: exportRoute('system'), POST: exportRoute('system') });
      if (ctx.resourceTypes.includes('Patient')) {
        routeFamily(scope, undefined, '/Patient/$export', { GET: exportRoute('patient'), POST: exportRoute('patient') });
      }

      routeFamily(scope, undefined, '/$export-status/:jobId', {
        GET: {
          declare: { interaction: 'operation', operation: 'export-status', requires: 'token' },
          schema: { params: EXPORT_JOB_PARAMS },
          handler: async (request, reply) => {
            const { jobId } = request.params as { jobId: string };
            request.audit?.touched(statusPath(jobId), []);
            const status = await service.status(jobId, callerOf(request));
            if (status.kind === 'in-progress') {
              return reply.code(202).header('x-progress', status.progress).header('retry-after', String(status.retryAfterSeconds)).send();
            }
            if (status.kind === 'failed') return reply.code(500).type(`${FHIR_JSON}; charset=utf-8`).send(status.outcome);
            if (status.expires) reply.header('expires', status.expires.toUTCString());
            return reply.code(200).type('application/json; charset=utf-8').send(status.manifest);
          },
        },
        DELETE: {
          declare: { interaction: 'operation', operation: 'export-cancel', requires: 'token' },
          schema: { params: EXPORT_JOB_PARAMS },
          handler: async (request, reply) => {
            const { jobId } = request.params as { jobId: string };
            request.audit?.touched(statusPath(jobId), []);
            const outcome = await service.cancel(jobId, callerOf(request));
            return reply.code(202).type(`${FHIR_JSON}; charset=utf-8`).send(outcome);
          },
        },
      });

      routeFamily(scope, undefined, '/$export-file/:jobId/:file', {
        GET: {
          declare: { interaction: 'operation', operation: 'export-file', requires: 'token' },
          schema: { params: EXPORT_FILE_PARAMS },
          handler: async (request, reply) => {
            const { jobId, file } = request.params as { jobId: string; file: string };
            request.audit?.touched(filePath(jobId, file), []);
            const { path, size } = await service.file(jobId, file, callerOf(request));
            // Streamed from disk: a file may hold 100,000 resources.
            return reply.type(NDJSON).header('content-length', size).send(createReadStream(path));
          },
        },
      });
    },
    { prefix: basePath },
  );

  args.capabilities.addInstantiates('http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data');
  args.capabilities.addOperation(
    'system',
    'export',
    'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export',
    'Bulk Data export of every hosted type (Prefer: respond-async; _outputFormat ndjson, _since, _type); NDJSON files, ' +
      'status at $export-status/<job>',
  );
  if (ctx.resourceTypes.includes('Patient')) {
    args.capabilities.addOperation(
      'Patient',
      'export',
      'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export',
      'Bulk Data export of all patients and their compartments (Encounter, MedicationRequest by subject); parameters as $export',
    );
  }
  return runner;
}
