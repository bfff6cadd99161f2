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
import { BulkExportService } from '../../fhir/bulk-export/service.js';
import { patientCompartmentTypes } from '../../fhir/operations/everything.js';
import { errors } from '../../fhir/outcome.js';
import type { ExportLevel } from '../../store/export-jobs.js';
import { ExportJobStore } from '../../store/export-jobs.js';
import { FHIR_JSON, parseJsonBody } from '../fhir-format.js';
import { registerRouteFamily } from '../route-family.js';
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

export async function registerBulkExportRoutes(
  app: FastifyInstance,
  args: {
    basePath: string;
    ctx: FhirContext;
    capabilities: Capabilities;
    settings: BulkExportSettings;
    deps: BulkExportDependencies;
    log: RunnerLogger;
  },
): Promise<BulkExportRunner> {
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
          done(null, parseJsonBody(typeof body === 'string' ? body : body.toString('utf8')));
        } catch (error) {
          done(error as Error);
        }
      });

      const kickOff = (level: ExportLevel) => async (request: FastifyRequest, reply: FastifyReply) => {
        // Fastify answers HEAD with the GET handler; a HEAD must not start an export.
        if (request.method === 'HEAD') throw errors.methodNotAllowed('HEAD', request.url.split('?')[0], ['GET', 'POST']);
        const result = await service.kickOff(
          {
            level,
            query: queryParams(request),
            body: request.method === 'POST' ? request.body : undefined,
            prefer: headerText(request.headers.prefer),
            accept: request.headers.accept,
          },
          `${ctx.baseUrl}${request.url.slice(basePath.length)}`,
        );
        reply.code(202).header('content-location', result.statusUrl).type(`${FHIR_JSON}; charset=utf-8`);
        return result.outcome;
      };
      registerRouteFamily(scope, '/$export', { GET: kickOff('system'), POST: kickOff('system') });
      if (ctx.resourceTypes.includes('Patient')) {
        registerRouteFamily(scope, '/Patient/$export', { GET: kickOff('patient'), POST: kickOff('patient') });
      }

      registerRouteFamily(scope, '/$export-status/:jobId', {
        GET: async (request, reply) => {
          const { jobId } = request.params as { jobId: string };
          const status = await service.status(jobId);
          if (status.kind === 'in-progress') {
            return reply.code(202).header('x-progress', status.progress).header('retry-after', String(status.retryAfterSeconds)).send();
          }
          if (status.kind === 'failed') return reply.code(500).type(`${FHIR_JSON}; charset=utf-8`).send(status.outcome);
          if (status.expires) reply.header('expires', status.expires.toUTCString());
          return reply.code(200).type('application/json; charset=utf-8').send(status.manifest);
        },
        DELETE: async (request, reply) => {
          const { jobId } = request.params as { jobId: string };
          const outcome = await service.cancel(jobId);
          return reply.code(202).type(`${FHIR_JSON}; charset=utf-8`).send(outcome);
        },
      });

      registerRouteFamily(scope, '/$export-file/:jobId/:file', {
        GET: async (request, reply) => {
          const { jobId, file } = request.params as { jobId: string; file: string };
          const { path, size } = await service.file(jobId, file);
          // Streamed from disk: a file may hold 100,000 resources.
          return reply.type(NDJSON).header('content-length', size).send(createReadStream(path));
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
