/**
 * The ledger's HTTP face:
 *
 *   GET [type]/[id]/_history/[vid]/$verify   is this version what the ledger anchored? (Parameters)
 *   GET [type]/[id]/$proof                   proof package for every version (JSON, "fhir-ledger-proof" v1)
 *   GET [type]/[id]/_history/[vid]/$proof    proof package for one version
 *   GET [type]/[id]/$provenance              derived Provenance of every version (collection Bundle)
 *   GET [type]/[id]/_history/[vid]/$provenance   that of one version
 *
 * Why "$verify" on the version and why GET: FHIR operations are invoked with POST, or with GET when the
 * operation does not change anything (affectsState = false) and its parameters are primitive — both hold here:
 * it only reads, and it takes no parameters at all. It is an instance-version-level operation because what is
 * verified is one version exactly as served (meta.versionId and meta.lastUpdated included); the URL names that
 * version the way vread does. $proof follows the same reasoning at instance level (all versions) and at
 * version level; its answer is a JSON document meant to be saved and checked offline, not a FHIR resource.
 *
 *   GET [base]/$ledger-audit?from=N&to=M      the completeness audit of batches N..M (JSON report,
 *                                             "fhir-ledger-audit" v1; at most MAX_AUDIT_BATCHES per request)
 *
 * $ledger-audit is system-level: it reads every version of every anchored type, the audit trail included, and
 * names the records it finds missing or altered. So it needs, for every one of those types, a read scope that is
 * not confined to one patient (system/ or user/: e.g. system/*.r system/AuditEvent.r, what a Bulk export of
 * everything and a reader of the audit trail would need together); a patient/ token or a narrower one gets 403.
 */
import type { Bundle, Parameters, ParametersParameter, Provenance } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Capabilities } from '../../fhir/capability-statement.js';
import type { FhirContext } from '../../fhir/context.js';
import { ID_PATTERN } from '../../fhir/interactions/versions.js';
import { forbidden, type AccessPolicy } from '../../fhir/access/access-policy.js';
import { FhirError, errors, issue } from '../../fhir/outcome.js';
import { consensusTimestampToInstant } from '../../ledger/hedera-ids.js';
import { MirrorUnavailableError } from '../../ledger/mirror-client.js';
import type { LedgerService, VersionReport } from '../../ledger/ledger-service.js';
import { requireVersionReadable } from '../../fhir/interactions/visibility.js';
import { requestContext } from '../request-context.js';
import { routeFamily, type RouteSpec } from '../route-table.js';
import { ID_PARAMS, VERSION_PARAMS } from '../schemas.js';

const OPERATION_BASE = 'urn:fhir-ledger-server:OperationDefinition';

function versionParams(request: FastifyRequest): { id: string; versionId: number } {
  const { id, vid } = request.params as { id: string; vid?: string };
  if (!ID_PATTERN.test(id)) throw errors.badRequest(`${id} is not a valid resource id`);
  if (vid === undefined) return { id, versionId: 0 };
  if (!/^[1-9]\d{0,8}$/.test(vid)) throw errors.notFound(`${vid} is not a version of this resource`);
  return { id, versionId: Number(vid) };
}

const hexOf = (b: Buffer | null | undefined): string | undefined => (b ? b.toString('hex') : undefined);

/** The $verify answer. Every hash in it is recomputed or read from the mirror node, never echoed from storage. */
export function verifyParameters(report: VersionReport): Parameters {
  const v = report.verification;
  const p: ParametersParameter[] = [];
  const add = (name: string, value: Omit<ParametersParameter, 'name'> | undefined): void => {
    if (value) p.push({ name, ...value });
  };
  const str = (value: string | undefined) => (value === undefined ? undefined : { valueString: value });
  const int = (value: number | undefined) => (value === undefined ? undefined : { valueInteger: value });

  add('status', { valueCode: v.status });
  for (const reason of v.reasons) add('reason', { valueString: reason });
  // A failure found without the ledger stands; say that the ledger side was not checked.
  if (report.mirrorUnavailable) add('note', { valueString: `the ledger was not read: ${report.mirrorUnavailable}` });
  add('network', { valueString: report.network });
  if (report.mirrorUrl) add('mirrorUrl', { valueUri: report.mirrorUrl });
  add('commitment', str(hexOf(v.commitment)));
  add('salt', str(hexOf(report.anchor?.salt)));
  const anchor = report.anchor;
  if (anchor?.state === 'batched') add('batch', int(anchor.batch));
  if (anchor?.state === 'anchored') {
    add('batch', int(anchor.batch));
    add('leafIndex', int(anchor.leafIndex));
    add('treeSize', int(anchor.treeSize));
    for (const hash of anchor.auditPath ?? []) add('auditPath', { valueString: hash.toString('hex') });
    // The root the audit path leads to (recomputed), then what the ledger published.
    add('root', str(hexOf(v.computedRoot)));
    add('publishedRoot', str(hexOf(v.published?.root)));
    add('topic', str(anchor.topicId));
    add('sequenceNumber', int(anchor.sequenceNumber));
    const timestamp = v.published?.consensusTimestamp;
    add('consensusTimestamp', str(timestamp));
    const instant = timestamp ? consensusTimestampToInstant(timestamp) : null;
    if (instant) add('consensusTime', { valueInstant: instant });
    add('runningHash', str(hexOf(v.published?.runningHash)));
    add('runningHashVersion', int(v.published?.runningHashVersion));
    add('transactionId', str(anchor.transactionId));
  }
  if (report.hashscan) {
    add('hashscan', { valueUri: report.hashscan.transaction });
    add('hashscanTopic', { valueUri: report.hashscan.topic });
  }
  for (const check of v.checks) {
    p.push({
      name: 'check',
      part: [
        { name: 'name', valueCode: check.name },
        { name: 'ok', valueBoolean: check.ok },
        { name: 'detail', valueString: check.detail },
      ],
    });
  }
  p.push({
    name: 'history',
    part: [
      { name: 'status', valueCode: report.history.ok ? 'complete' : 'incomplete' },
      ...report.history.missing.map((m) => ({ name: 'missingVersion', valueInteger: m })),
      { name: 'detail', valueString: report.history.detail },
    ],
  });
  return { resourceType: 'Parameters', parameter: p };
}

function sendPackage(reply: FastifyReply, name: string, body: unknown): FastifyReply {
  reply.type('application/json; charset=utf-8');
  reply.header('content-disposition', `inline; filename="${name}.proof.json"`);
  return reply.send(body);
}

/**
 * The derived Provenances of a resource's versions, oldest first. A collection rather than a searchset: they are
 * computed from the ledger state when asked and have no URL of their own on this server (the Provenance type
 * holds what clients store), so the entries carry no fullUrl.
 */
function derivedProvenanceBundle(found: Provenance[]): Bundle<Provenance> {
  return { resourceType: 'Bundle', type: 'collection', entry: found.map((resource) => ({ resource })) };
}

/** Batches one $ledger-audit request may cover: the audit reads every member version of each. */
export const MAX_AUDIT_BATCHES = 1000;
/** A version pending longer than this is reported by $ledger-audit (the CLI's --grace-minutes default). */
const AUDIT_GRACE_MS = 15 * 60_000;

/** 403 unless the token reads every anchored type beyond a patient compartment (see the header). */
function requireWholeDatabaseRead(access: AccessPolicy, types: readonly string[]): void {
  const lacking = types.filter((type) => !access.allowsBeyondPatient('r', type));
  if (lacking.length === 0) return;
  const patient = access.principal?.patient;
  throw forbidden(
    `$ledger-audit reads every version of every anchored type, the audit trail included: it needs read on each of them by a ` +
      `system/ or user/ scope, e.g. system/*.r system/AuditEvent.r; this token lacks it for ${lacking.slice(0, 5).join(', ')}` +
      `${lacking.length > 5 ? ` and ${lacking.length - 5} more types` : ''}` +
      (patient !== undefined ? ` (its patient/ scopes are confined to the compartment of Patient/${patient})` : ''),
  );
}

function auditRange(query: unknown): { from: number; to: number | null } {
  const q = (query ?? {}) as Record<string, unknown>;
  const number = (name: string): number | null => {
    const value = q[name];
    if (value === undefined) return null;
    if (typeof value !== 'string' || !/^[1-9]\d{0,14}$/.test(value)) throw errors.badRequest(`${name} must be a batch number >= 1`, name);
    return Number(value);
  };
  const from = number('from') ?? 1;
  const to = number('to');
  if (to !== null && to < from) throw errors.badRequest('to must not be below from', 'to');
  if (to !== null && to - from + 1 > MAX_AUDIT_BATCHES)
    throw errors.badRequest(
      `at most ${MAX_AUDIT_BATCHES} batches per request (from=${from}&to=${to} asks for ${to - from + 1}); use fhir-ledger-audit for more`,
    );
  return { from, to };
}

export interface LedgerRoutesOptions {
  ctx: FhirContext;
  capabilities: Capabilities;
  ledger: LedgerService;
  /** The types whose versions are anchored: the clinical ones and the audit trail. */
  types: readonly string[];
}

export default async function ledgerRoutes(fastify: FastifyInstance, options: LedgerRoutesOptions): Promise<void> {
  const { ctx: base, capabilities, ledger } = options;
  const ctx = (request: FastifyRequest): FhirContext => requestContext(base, request);
  for (const type of options.types) {
    routeFamily(fastify, capabilities, `/${type}/:id/_history/:vid/$verify`, {
      GET: {
        declare: { interaction: 'operation', operation: 'verify', type, requires: { anyOf: ['r'] } },
        schema: { params: VERSION_PARAMS },
        handler: async (request, reply) => {
          const { id, versionId } = versionParams(request);
          const requestCtx = ctx(request);
          await requireVersionReadable(requestCtx, type, id, versionId);
          requestCtx.audit?.touched(`${type}/${id}/_history/${versionId}`, []);
          const report = await ledger.verifyVersion(type, id, versionId);
          if (!report) throw errors.notFound(`${type}/${id} has no version ${versionId}`);
          if (report.mirrorUnavailable && report.verification.status !== 'failed') {
            // Not a finding about the record: the ledger could not be read, so nothing can be said yet.
            throw new FhirError(
              503,
              issue(
                'error',
                'transient',
                `The ledger could not be read, so ${type}/${id}/_history/${versionId} cannot be verified now (${report.mirrorUnavailable}). ` +
                  `The checks that need no ledger passed: ${report.verification.checks.map((c) => c.name).join(', ')}.`,
              ),
            );
          }
          return reply.send(verifyParameters(report));
        },
      },
    });

    // The proof package of every version ([type]/[id]/$proof) or of one ([type]/[id]/_history/[vid]/$proof).
    const proof = (versioned: boolean): RouteSpec => ({
      declare: { interaction: 'operation', operation: 'proof', type, requires: { anyOf: ['r'] } },
      schema: { params: versioned ? VERSION_PARAMS : ID_PARAMS },
      handler: async (request, reply) => {
        const { id, versionId } = versionParams(request);
        const version = versioned ? versionId : undefined;
        const requestCtx = ctx(request);
        await requireVersionReadable(requestCtx, type, id, version);
        const target = version === undefined ? `${type}/${id}` : `${type}/${id}/_history/${version}`;
        requestCtx.audit?.touched(target, []);
        const body = await ledger.proofPackage(type, id, version);
        if (!body) throw errors.notFound(version === undefined ? `${target} is not known` : `${type}/${id} has no version ${version}`);
        return sendPackage(reply, version === undefined ? `${type}-${id}` : `${type}-${id}-${version}`, body);
      },
    });
    routeFamily(fastify, capabilities, `/${type}/:id/$proof`, { GET: proof(false) });
    routeFamily(fastify, capabilities, `/${type}/:id/_history/:vid/$proof`, { GET: proof(true) });

    // The derived Provenance of every version ([type]/[id]/$provenance) or of one (.../_history/[vid]/$provenance).
    const provenance = (versioned: boolean): RouteSpec => ({
      declare: { interaction: 'operation', operation: 'provenance', type, requires: { anyOf: ['r'] } },
      schema: { params: versioned ? VERSION_PARAMS : ID_PARAMS },
      handler: async (request) => {
        const { id, versionId } = versionParams(request);
        const version = versioned ? versionId : undefined;
        const requestCtx = ctx(request);
        await requireVersionReadable(requestCtx, type, id, version);
        const found = await ledger.provenance(type, id, version);
        if (found.length === 0) {
          throw errors.notFound(version === undefined ? `${type}/${id} is not known` : `${type}/${id} has no version ${version}`);
        }
        requestCtx.audit?.touched(version === undefined ? `${type}/${id}` : `${type}/${id}/_history/${version}`, []);
        return derivedProvenanceBundle(found);
      },
    });
    routeFamily(fastify, capabilities, `/${type}/:id/$provenance`, { GET: provenance(false) });
    routeFamily(fastify, capabilities, `/${type}/:id/_history/:vid/$provenance`, { GET: provenance(true) });

    capabilities.addOperation(
      type,
      'provenance',
      `${OPERATION_BASE}:provenance`,
      'GET [type]/[id]/$provenance (all versions) or [type]/[id]/_history/[vid]/$provenance: a collection Bundle of derived, read-only ' +
        'Provenance, one per version, with its ledger anchor in the extension urn:fhir-ledger-server:StructureDefinition:ledger-anchor',
    );
    capabilities.addOperation(
      type,
      'verify',
      `${OPERATION_BASE}:verify`,
      "GET [type]/[id]/_history/[vid]/$verify: recomputes the version's commitment, folds its Merkle audit path and compares the root with the HCS message on the mirror node; Parameters with status anchored | pending | failed",
    );
    capabilities.addOperation(
      type,
      'proof',
      `${OPERATION_BASE}:proof`,
      'GET [type]/[id]/$proof (all versions) or [type]/[id]/_history/[vid]/$proof: a self-contained proof package (JSON, format fhir-ledger-proof v1) for the fhir-ledger-verify CLI',
    );
  }

  routeFamily(fastify, capabilities, '/$ledger-audit', {
    GET: {
      declare: { interaction: 'operation', operation: 'ledger-audit', requires: 'token' },
      handler: async (request, reply) => {
        requireWholeDatabaseRead(request.access, options.types);
        const { from, to } = auditRange(request.query);
        // What it read: every version of every anchored type, for these batches (a search in all but name).
        request.audit?.searched(`from=${from}${to === null ? '' : `&to=${to}`}`, [...options.types]);
        // Without `to`: to the last batch, unless that is more than one request may cover.
        const last = to === null ? await ledger.lastBatchNumber() : 0;
        const end = to ?? (last - from + 1 > MAX_AUDIT_BATCHES ? from + MAX_AUDIT_BATCHES - 1 : null);
        let report;
        try {
          report = await ledger.completenessAudit(from, end, AUDIT_GRACE_MS);
        } catch (error) {
          if (!(error instanceof MirrorUnavailableError)) throw error;
          throw new FhirError(
            503,
            issue('error', 'transient', `The ledger could not be read, so nothing can be audited now (${error.message}).`),
          );
        }
        return reply.type('application/json; charset=utf-8').send(report);
      },
    },
  });
  capabilities.addOperation(
    'system',
    'ledger-audit',
    `${OPERATION_BASE}:ledger-audit`,
    `GET [base]/$ledger-audit?from=N&to=M (at most ${MAX_AUDIT_BATCHES} batches): the completeness audit — every batch rebuilt from the stored ` +
      'versions and compared with the HCS messages; every version missing, altered or not anchored reported (JSON, format fhir-ledger-audit v1)',
  );
}
