/**
 * Bulk Data export (Bulk Data Access IG 2.0.0) as the HTTP layer sees it: kick off a job, report its status (or its
 * manifest), cancel it, and find one of its files. URLs:
 *   [base]/$export-status/<jobId>            status (GET) and cancel (DELETE): the kick-off's Content-Location
 *   [base]/$export-file/<jobId>/<Type>-<n>.ndjson   one output file, listed in the manifest
 * Files are served only for completed jobs and only by the names the job recorded, so a request can never name a
 * path outside the job's directory.
 */
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { ExportFile, ExportJobDocument, ExportJobStore } from '../../store/export-jobs.js';
import { errors, informationOutcome, issue, operationOutcome } from '../outcome.js';
import { parseKickoff, type ExportableTypes, type KickoffRequest } from './kickoff.js';
import { forbidden, type AccessPolicy } from '../access/access-policy.js';
import type { BulkExportRunner } from './runner.js';
import { stopIfAborted } from '../context.js';

export interface ManifestFile {
  type: string;
  url: string;
  count: number;
}

/** The completion manifest (IG 2.0.0, "Response - Complete Status"). */
export interface ExportManifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: boolean;
  output: ManifestFile[];
  error: ManifestFile[];
}

export type ExportStatus =
  | { kind: 'in-progress'; progress: string; retryAfterSeconds: number }
  | { kind: 'completed'; manifest: ExportManifest; expires?: Date }
  | { kind: 'failed'; outcome: OperationOutcome };

const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A job's file names: only what the runner writes. */
const FILE_NAME = /^[A-Z][A-Za-z]{0,63}-[1-9][0-9]{0,8}\.ndjson$/;

export const statusPath = (jobId: string): string => `$export-status/${jobId}`;
export const filePath = (jobId: string, file: string): string => `$export-file/${jobId}/${file}`;

/** Who is asking: their access, and who they are (the export's files are theirs alone). */
export interface ExportCaller {
  access: AccessPolicy;
  /** Client id (or token subject); undefined when authorization is off. */
  requestedBy: string | undefined;
  /** Aborted when the client has gone: a kick-off nobody will poll queues no job. */
  signal?: AbortSignal;
}

/**
 * The types a caller may export. An export hands out every resource of a type, so it needs a scope that lets the
 * caller read every resource of it: scopes confined to a patient's compartment or narrowed by search parameters
 * are not applied to exports. Named types (_type) the caller may not export are a 403; implied ones are left out.
 */
function exportableFor(access: AccessPolicy, types: string[], named: boolean): string[] {
  if (access.unrestricted) return types;
  const allowed: string[] = [];
  for (const type of types) {
    const visibility = access.visibility('r', type);
    // patient/ scopes are a patient's: a Practitioner they may read in full is still not theirs to export.
    if (visibility.kind === 'all' && access.allowsBeyondPatient('r', type)) {
      allowed.push(type);
      continue;
    }
    const reason =
      visibility.kind === 'none'
        ? visibility.reason
        : `Bulk export of ${type} needs a scope that grants reading every ${type} (system/${type}.r or user/${type}.r); scopes confined ` +
          'to a patient or narrowed by search parameters are not applied to exports';
    if (named) throw forbidden(reason);
  }
  if (allowed.length === 0) throw forbidden(`Bulk export needs system/ or user/ read scopes for the types exported (${types.join(', ')})`);
  return allowed;
}

export class BulkExportService {
  constructor(
    private readonly jobs: ExportJobStore,
    private readonly runner: BulkExportRunner,
    private readonly options: { baseUrl: string; exportable: ExportableTypes; now: () => Date; requiresAccessToken: boolean },
  ) {}

  /** Accepts an export: the job is queued with its transaction time fixed now. */
  async kickOff(
    request: KickoffRequest,
    requestUrl: string,
    caller: ExportCaller,
  ): Promise<{ jobId: string; statusUrl: string; outcome: OperationOutcome; types: string[] }> {
    const plan = parseKickoff(request, this.options.exportable);
    plan.params.types = exportableFor(caller.access, plan.params.types, plan.typesNamed);
    stopIfAborted(caller);
    const now = this.options.now();
    const job = await this.jobs.create({
      _id: randomUUID(),
      request: requestUrl,
      params: plan.params,
      createdAt: now,
      transactionTime: now,
      warnings: plan.warnings,
      ...(caller.requestedBy !== undefined ? { requestedBy: caller.requestedBy } : {}),
    });
    this.runner.wake();
    const outcome = operationOutcome([
      issue(
        'information',
        'informational',
        `Export accepted (${plan.params.types.join(', ') || 'no types'}); poll the Content-Location URL for its status`,
      ),
      ...plan.warnings.map((w) => issue('warning', 'not-supported', w)),
    ]);
    return { jobId: job._id, statusUrl: `${this.options.baseUrl}/${statusPath(job._id)}`, outcome, types: plan.params.types };
  }

  /** A job, for the caller who asked for it: another caller is told it does not exist. */
  private async job(jobId: string, caller: ExportCaller): Promise<ExportJobDocument> {
    const job = JOB_ID.test(jobId) ? await this.jobs.get(jobId) : null;
    const theirs = job !== null && (caller.access.unrestricted || job.requestedBy === undefined || job.requestedBy === caller.requestedBy);
    if (!job || job.state === 'cancelled' || !theirs)
      throw errors.notFound(`There is no export job ${jobId} (it may have expired or been cancelled)`);
    // The job's URLs need what its kick-off needed: another token of the same client whose scopes do not cover the
    // exported types unconfined (a patient/ token, a narrower system/ token) gets neither the manifest nor a file.
    exportableFor(caller.access, job.params.types, true);
    return job;
  }

  private manifestFile(job: ExportJobDocument, file: ExportFile): ManifestFile {
    return { type: file.type, url: `${this.options.baseUrl}/${filePath(job._id, file.file)}`, count: file.count };
  }

  async status(jobId: string, caller: ExportCaller): Promise<ExportStatus> {
    const job = await this.job(jobId, caller);
    switch (job.state) {
      case 'completed':
        return {
          kind: 'completed',
          expires: job.expiresAt,
          manifest: {
            transactionTime: job.transactionTime.toISOString(),
            request: job.request,
            requiresAccessToken: this.options.requiresAccessToken,
            output: job.output.map((f) => this.manifestFile(job, f)),
            error: job.error.map((f) => this.manifestFile(job, f)),
          },
        };
      case 'failed':
        return { kind: 'failed', outcome: operationOutcome([issue('error', 'exception', job.failure ?? 'The export failed')]) };
      case 'accepted': {
        const ahead = await this.jobs.countAhead(job);
        const restart = job.attempts > 0 ? ' (restarting after an interruption)' : '';
        return {
          kind: 'in-progress',
          progress: ahead > 0 ? `queued: ${ahead} export(s) ahead${restart}` : `waiting to start${restart}`,
          retryAfterSeconds: 2,
        };
      }
      default:
        return { kind: 'in-progress', progress: job.progress.message, retryAfterSeconds: 2 };
    }
  }

  /** Cancels a job (running or not) and removes it with its files. */
  async cancel(jobId: string, caller: ExportCaller): Promise<OperationOutcome> {
    await this.job(jobId, caller);
    if (!JOB_ID.test(jobId) || !(await this.jobs.cancel(jobId, this.options.now()))) {
      throw errors.notFound(`There is no export job ${jobId} (it may have expired or been cancelled)`);
    }
    await this.runner.cancel(jobId);
    await this.runner.removeFiles(jobId);
    await this.jobs.remove(jobId);
    return informationOutcome(`Export job ${jobId} was cancelled and its files removed`);
  }

  /** The path and size of a completed job's file. */
  async file(jobId: string, name: string, caller: ExportCaller): Promise<{ path: string; size: number }> {
    const job = await this.job(jobId, caller);
    const listed = FILE_NAME.test(name) && [...job.output, ...job.error].some((f) => f.file === name);
    if (job.state !== 'completed' || !listed) throw errors.notFound(`Export job ${jobId} has no file ${name}`);
    const path = join(this.runner.jobDir(jobId), name);
    try {
      return { path, size: (await stat(path)).size };
    } catch {
      throw errors.notFound(`The file ${name} of export job ${jobId} is no longer available`);
    }
  }
}
