/**
 * The write path shared by create, update, patch and delete: check the body, validate it, stamp meta, attach the
 * pending anchor and hand the version to the store. Also the read-side view of a stored version.
 */
import { collectDecimalText, copyOwnDecimalText, markDecimalText } from '../decimal-text.js';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { pendingAnchorFor } from '../../ledger/pending-anchor.js';
import { canonicalJson } from '../../ledger/canonical-json.js';
import {
  DocumentTooLargeError,
  assertStorable,
  type HeadDocument,
  type IndexValues,
  type NewVersion,
  type VersionDocument,
  type WriteMethod,
} from '../../store/resource-store.js';
import type { FhirContext } from '../context.js';
import { FhirError, errors, issue } from '../outcome.js';
import { extractIndex } from '../search/extract.js';
import { searchRegistry } from '../search/registry.js';
import { checkReferences } from './references.js';

/** A stored version as interactions see it. */
export interface VersionView {
  type: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  deleted: boolean;
  /** The version as served (for a deletion: the tombstone that was committed to the ledger). */
  resource: Resource;
  /** Its search index values (which patients it concerns, for access checks and the audit trail); never served. */
  idx?: IndexValues;
}

export interface WriteResult {
  version: VersionView;
  /** 201 Created rather than 200 OK. */
  created: boolean;
  /** False when an update changed nothing and no version was made. */
  changed: boolean;
  /** Non-fatal validation issues, for Prefer: return=OperationOutcome. */
  warnings: OperationOutcomeIssue[];
}

/** What a write did, in one sentence (the information issue of Prefer: return=OperationOutcome). */
export function writeSummary(result: WriteResult): string {
  const { version } = result;
  if (result.created) return `Created ${version.type}/${version.id} version ${version.versionId}`;
  if (result.changed) return `Updated ${version.type}/${version.id} to version ${version.versionId}`;
  return `No change: ${version.type}/${version.id} is still version ${version.versionId}`;
}

export const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

export function viewOf(document: HeadDocument | VersionDocument): VersionView {
  return {
    type: document.type,
    id: document.id,
    versionId: document.versionId,
    lastUpdated: document.lastUpdated,
    deleted: document.deleted,
    resource: document.resource,
    ...(document.idx !== undefined ? { idx: document.idx } : {}),
  };
}

/** The request body must be a resource of the URL's type; anything else is a 400 before validation. */
export function requireResourceBody(body: unknown, type: string): Resource {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw errors.badRequest(`The body must be a ${type} resource (a JSON object)`);
  }
  const resourceType = (body as { resourceType?: unknown }).resourceType;
  if (resourceType === undefined) throw errors.badRequest(`The body has no resourceType; expected "${type}"`, type);
  if (resourceType !== type) {
    throw errors.badRequest(`The body's resourceType ${JSON.stringify(resourceType)} does not match the URL's ${type}`, type);
  }
  return body as Resource;
}

/** Validates a resource about to be stored; errors become one 400 listing every issue, warnings are returned. */
export async function validateForWrite(ctx: FhirContext, resource: Resource): Promise<OperationOutcomeIssue[]> {
  const issues = ctx.validator.validate(resource);
  const failures = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  if (failures.length > 0) throw new FhirError(400, issues);
  const referenceIssues = await checkReferences(ctx, resource);
  if (referenceIssues.length > 0) throw new FhirError(422, referenceIssues);
  return issues;
}

/** Content compared for no-op detection: everything but the server-assigned meta fields. */
export function contentKey(resource: Resource): string {
  const { meta, ...rest } = resource;
  if (!meta) return canonicalJson(rest);
  const { versionId: _v, lastUpdated: _l, ...otherMeta } = meta;
  return canonicalJson(Object.keys(otherMeta).length > 0 ? { ...rest, meta: otherMeta } : rest);
}

/**
 * lastUpdated must increase from one version to the next even when two writes land in the same millisecond, so
 * that history ordered by time and by version agree.
 */
function nextTimestamp(ctx: FhirContext, previous: HeadDocument | null): Date {
  const now = ctx.now();
  if (previous && previous.lastUpdated.getTime() >= now.getTime()) return new Date(previous.lastUpdated.getTime() + 1);
  return now;
}

/**
 * Stamps meta, extracts the search index values (a deletion has none), computes the pending anchor and stores
 * the version after `previous`: the version, its index values and its anchor state go to the store together.
 */
export async function storeNextVersion(
  ctx: FhirContext,
  args: { type: string; id: string; previous: HeadDocument | null; resource: Resource; deleted: boolean; method: WriteMethod },
): Promise<VersionView> {
  const versionId = (args.previous?.versionId ?? 0) + 1;
  const lastUpdated = nextTimestamp(ctx, args.previous);
  const { meta, ...content } = args.resource;
  const stamped = {
    ...content,
    resourceType: args.type,
    id: args.id,
    meta: { ...meta, versionId: String(versionId), lastUpdated: lastUpdated.toISOString() },
  } as Resource;
  // The copy of the top level keeps the written digits of its decimals (a ChargeItem's factorOverride); deeper
  // objects are the same objects. Stored beside the resource, they come back with it (decimal-text.ts).
  copyOwnDecimalText(args.resource, stamped);
  const decimals = collectDecimalText(stamped);
  if (decimals) markDecimalText(stamped);
  const index = args.deleted ? undefined : extractIndex(searchRegistry(), stamped, ctx.baseUrl);
  // The caller may change what exists (the current version) and what it becomes (the new one): for patient/
  // scopes both must be in the token's patient compartment.
  const creates = !args.previous || args.previous.deleted;
  const permission = args.method === 'DELETE' ? 'd' : creates ? 'c' : 'u';
  if (!ctx.access.unrestricted) {
    if (args.previous && !args.previous.deleted) ctx.access.requireWritable(permission, args.type, args.id, args.previous.idx);
    if (index) ctx.access.requireWritable(permission, args.type, args.id, index.idx);
  }
  const version: NewVersion = {
    type: args.type,
    id: args.id,
    versionId,
    lastUpdated,
    deleted: args.deleted,
    method: args.method,
    resource: stamped,
    ...(decimals ? { decimals: Object.entries(decimals) } : {}),
    ...(index ? { idx: index.idx, idxVersion: index.idxVersion } : {}),
    anchor: pendingAnchorFor(stamped),
  };
  refuseUnstorable(version);
  // The AuditEvent of this write is stored with it (inside a transaction Bundle, the Bundle's one event is).
  const written = { type: args.type, id: args.id, versionId, idx: index?.idx ?? args.previous?.idx };
  if (ctx.audit && !ctx.session) {
    const status = args.method === 'DELETE' ? 204 : creates ? 201 : 200;
    await ctx.store.writeVersion(version, undefined, [ctx.audit.companionFor(written, status)]);
    ctx.audit.markCommitted();
  } else {
    await ctx.store.writeVersion(version, ctx.session);
    ctx.audit?.touchedVersion(written);
  }
  return { type: args.type, id: args.id, versionId, lastUpdated, deleted: args.deleted, resource: stamped };
}

/** 413 for a version MongoDB could not hold (a huge resource, or a PATCH that grows one past the limit). */
function refuseUnstorable(version: NewVersion): void {
  try {
    assertStorable(version);
  } catch (error) {
    if (!(error instanceof DocumentTooLargeError)) throw error;
    const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
    throw new FhirError(
      413,
      issue(
        'error',
        'too-costly',
        `${version.type}/${version.id} would be stored as ${mb(error.bytes)} (the resource with its search index values), ` +
          `over the limit of ${mb(error.limit)} per stored document (MongoDB's document size limit); nothing was written`,
      ),
    );
  }
}

/** A tombstone: what a deleted version is, as far as history and the ledger are concerned. */
export function tombstone(type: string, id: string): Resource {
  return { resourceType: type, id } as Resource;
}

/** Parses an ETag or If-Match value (W/"3", "3" or 3) into a version number. */
export function parseVersionTag(value: string, header: string): number {
  const match = /^(?:W\/)?"?(\d+)"?$/.exec(value.trim());
  if (!match) throw new FhirError(400, issue('error', 'invalid', `${header}: ${value} is not a version tag such as W/"3"`));
  return Number(match[1]);
}
