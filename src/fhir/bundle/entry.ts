/**
 * Running one Bundle entry through the interaction it names, and describing the result as a response entry
 * (status, location, etag, lastModified, and the resource or outcome). The same code serves batch entries
 * (each on its own) and transaction entries (all in one MongoDB transaction, through ctx.session).
 */
import { STATUS_CODES } from 'node:http';
import type { BundleEntry, BundleEntryResponse, Resource } from '@medplum/fhirtypes';
import type { FhirContext } from '../context.js';
import { createResource } from '../interactions/create.js';
import { deleteResource, type DeleteResult } from '../interactions/delete.js';
import { history } from '../interactions/history.js';
import { patchResource } from '../interactions/patch.js';
import { readResource } from '../interactions/read.js';
import { updateResource } from '../interactions/update.js';
import { writeSummary, type VersionView, type WriteResult } from '../interactions/versions.js';
import { readResourceVersion } from '../interactions/vread.js';
import { type FhirError, informationOutcome } from '../outcome.js';
import { conditionalCreate, conditionalDelete, conditionalUpdate } from '../search/conditional.js';
import { search, type SearchSettings } from '../search/search.js';
import type { EntryAction, EntryMethod } from './bundle-request.js';
import type { Permission } from '../access/scopes.js';
import type { AuditedInteraction } from '../audit/audit-event.js';

export type ReturnPreference = 'minimal' | 'representation' | 'OperationOutcome';

export interface BundleOptions {
  /** From the Prefer header of POST [base]; applies to every write entry, as for single interactions. */
  returnPreference: ReturnPreference;
  search: SearchSettings;
}

/** What running an entry produced: its response entry, and the resource it acted on (if any). */
export interface EntryResult {
  entry: BundleEntry;
  written?: {
    type: string;
    id: string;
    /** The version stored by this entry, when it stored one that is not a deletion. */
    stored?: Resource;
  };
}

export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? ''}`.trim();
}

function versionResponse(status: number, version: VersionView): BundleEntryResponse {
  return {
    status: statusLine(status),
    location: `${version.type}/${version.id}/_history/${version.versionId}`,
    etag: `W/"${version.versionId}"`,
    lastModified: version.lastUpdated.toISOString(),
  };
}

function fullUrlOf(ctx: FhirContext, version: VersionView): string {
  return `${ctx.baseUrl}/${version.type}/${version.id}`;
}

function writeEntry(ctx: FhirContext, result: WriteResult, preference: ReturnPreference): EntryResult {
  const { version } = result;
  const entry: BundleEntry = { fullUrl: fullUrlOf(ctx, version), response: versionResponse(result.created ? 201 : 200, version) };
  if (preference === 'representation') entry.resource = version.resource;
  if (preference === 'OperationOutcome') {
    const summary = writeSummary(result);
    const outcome = informationOutcome(summary);
    if (result.warnings.length > 0) outcome.issue = [...(outcome.issue ?? []), ...result.warnings];
    entry.response!.outcome = outcome;
  }
  return { entry, written: { type: version.type, id: version.id, ...(result.changed ? { stored: version.resource } : {}) } };
}

function deleteEntry(result: DeleteResult | undefined): EntryResult {
  const response: BundleEntryResponse = { status: statusLine(204) };
  if (result?.changed) {
    response.etag = `W/"${result.version.versionId}"`;
    response.lastModified = result.version.lastUpdated.toISOString();
  }
  return { entry: { response }, ...(result ? { written: { type: result.version.type, id: result.version.id } } : {}) };
}

/** If-None-Match / If-Modified-Since of a GET entry (If-None-Match wins, as in RFC 9110). */
function notModified(action: Extract<EntryAction, { kind: 'read' }>, version: VersionView): boolean {
  if (action.ifNoneMatch !== undefined) {
    return action.ifNoneMatch
      .split(',')
      .map((tag) => tag.trim().replace(/^W\//, ''))
      .some((tag) => tag === '*' || tag === `"${version.versionId}"`);
  }
  if (action.ifModifiedSince !== undefined) {
    const since = Date.parse(action.ifModifiedSince);
    if (!Number.isNaN(since)) return Math.floor(version.lastUpdated.getTime() / 1000) * 1000 <= since;
  }
  return false;
}

function readEntry(ctx: FhirContext, version: VersionView, method: EntryMethod): EntryResult {
  const entry: BundleEntry = { fullUrl: fullUrlOf(ctx, version), response: versionResponse(200, version) };
  delete entry.response!.location;
  if (method !== 'HEAD') entry.resource = version.resource;
  return { entry };
}

function bundleEntry(resource: Resource, method: EntryMethod): EntryResult {
  return { entry: { response: { status: statusLine(200) }, ...(method !== 'HEAD' ? { resource } : {}) } };
}

/** A failed entry: its status and OperationOutcome (batch-response). */
export function errorEntry(error: FhirError): BundleEntry {
  return { response: { status: statusLine(error.status), outcome: error.outcome } };
}

function historyParams(params: Array<[string, string]>): Record<'_count' | '_since' | '_at' | '_cursor', string | undefined> {
  const last = (name: string) => params.filter(([n]) => n === name).pop()?.[1];
  return { _count: last('_count'), _since: last('_since'), _at: last('_at'), _cursor: last('_cursor') };
}

/**
 * What an entry is, as a route declaration would say it: the interaction (its audit subtype) and the permission
 * the caller needs on the entry's type. An entry is judged exactly as the same request sent on its own.
 */
export function entryInteraction(action: EntryAction): { interaction: AuditedInteraction; permission: Permission } {
  switch (action.kind) {
    case 'create':
      return { interaction: 'create', permission: 'c' };
    case 'update':
    case 'conditional-update':
      return { interaction: 'update', permission: 'u' };
    case 'patch':
      return { interaction: 'patch', permission: 'u' };
    case 'delete':
    case 'conditional-delete':
      return { interaction: 'delete', permission: 'd' };
    case 'read':
      return { interaction: 'read', permission: 'r' };
    case 'vread':
      return { interaction: 'vread', permission: 'r' };
    case 'search':
      return { interaction: 'search-type', permission: 's' };
    case 'history':
      return { interaction: action.id === undefined ? 'history-type' : 'history-instance', permission: 'r' };
  }
}

/**
 * Runs an entry. `ctx` may carry a fixed newId (transactions assign ids before running, so that placeholders
 * can be rewritten first).
 */
export async function runEntry(ctx: FhirContext, action: EntryAction, method: EntryMethod, options: BundleOptions): Promise<EntryResult> {
  ctx.access.require(entryInteraction(action).permission, action.type);
  const preference = options.returnPreference;
  switch (action.kind) {
    case 'create':
      return writeEntry(
        ctx,
        action.ifNoneExist
          ? await conditionalCreate(ctx, action.type, action.resource, action.ifNoneExist)
          : await createResource(ctx, action.type, action.resource),
        preference,
      );
    case 'update':
      return writeEntry(ctx, await updateResource(ctx, action.type, action.id, action.resource, { ifMatch: action.ifMatch }), preference);
    case 'conditional-update':
      return writeEntry(
        ctx,
        await conditionalUpdate(ctx, action.type, action.resource, action.criteria, { ifMatch: action.ifMatch }),
        preference,
      );
    case 'patch':
      return writeEntry(ctx, await patchResource(ctx, action.type, action.id, action.patch, { ifMatch: action.ifMatch }), preference);
    case 'delete':
      return deleteEntry(await deleteResource(ctx, action.type, action.id, { ifMatch: action.ifMatch }));
    case 'conditional-delete':
      return deleteEntry(await conditionalDelete(ctx, action.type, action.criteria, { ifMatch: action.ifMatch }));
    case 'read': {
      const version = await readResource(ctx, action.type, action.id);
      if (notModified(action, version)) {
        const response = versionResponse(304, version);
        delete response.location;
        return { entry: { response } };
      }
      return readEntry(ctx, version, method);
    }
    case 'vread':
      return readEntry(ctx, await readResourceVersion(ctx, action.type, action.id, action.vid), method);
    case 'search':
      return bundleEntry(
        await search(ctx, options.search, { types: [action.type], path: action.type }, { params: action.params, strict: false }),
        method,
      );
    case 'history':
      return bundleEntry(await history(ctx, { type: action.type, id: action.id }, historyParams(action.params)), method);
  }
}
