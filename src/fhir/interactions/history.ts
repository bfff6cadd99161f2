/**
 * history: instance ([type]/[id]/_history), type ([type]/_history) and system (/_history) level.
 * Newest first. Paging is by keyset (a cursor naming the last entry shown), not by offset, so versions written
 * while a client pages appear on no page it has yet to read twice and push nothing off the pages ahead: no
 * duplicates, no gaps. Links: self, first, next and previous (a cursor read towards newer entries).
 * _since: versions made at or after the instant. _at: versions that were current at some point during the
 * period the value denotes (a version is current from its lastUpdated until the next version's).
 */
import type { Bundle, BundleEntry, BundleLink, Resource } from '@medplum/fhirtypes';
import type { VersionDocument } from '../../store/resource-store.js';
import {
  latestVersionsBefore,
  versionsMade,
  type HistoryPosition,
  type HistoryQuery,
  type MadeBetween,
  type VersionAccess,
  type VersionAccessBranch,
} from '../../store/history-queries.js';
import type { FhirContext } from '../context.js';
import { parseDateRange } from '../dates.js';
import { errors } from '../outcome.js';
import { visibilityCondition } from '../access/access-policy.js';
import { requireReadable } from './visibility.js';
import { patientsOf } from '../access/compartment.js';

export const DEFAULT_HISTORY_COUNT = 50;
export const MAX_HISTORY_COUNT = 1000;

export interface HistoryScope {
  type?: string;
  id?: string;
}

export interface HistoryParams {
  _count?: string;
  _since?: string;
  _at?: string;
  _cursor?: string;
}

/** A position in (lastUpdated desc, _id desc) order; `b` marks a page that ends just before it (a previous link). */
interface Cursor {
  t: number;
  k: string;
  b?: 1;
}

function encodeCursor(version: VersionDocument, before = false): string {
  const cursor: Cursor = { t: version.lastUpdated.getTime(), k: version._id };
  if (before) cursor.b = 1;
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(value: string): Cursor {
  try {
    const cursor = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Cursor;
    if (typeof cursor.t === 'number' && typeof cursor.k === 'string' && (cursor.b === undefined || cursor.b === 1)) return cursor;
  } catch {
    // fall through to the error below
  }
  throw errors.badRequest('_cursor is not a cursor this server issued; follow the Bundle links to page');
}

function parseCount(value: string | undefined): number {
  if (value === undefined) return DEFAULT_HISTORY_COUNT;
  if (!/^\d+$/.test(value)) throw errors.badRequest(`_count=${value} is not a non-negative integer`);
  return Math.min(Number(value), MAX_HISTORY_COUNT);
}

function parseInstantParam(name: string, value: string) {
  const range = parseDateRange(value);
  if (!range) throw errors.badRequest(`${name}=${value} is not a FHIR date, dateTime or instant`);
  return range;
}

/** Where a cursor says the page starts, for the store. */
function positionOf(cursor: Cursor): HistoryPosition {
  const position: HistoryPosition = { lastUpdated: new Date(cursor.t), versionKey: cursor.k };
  if (cursor.b) position.towardsNewer = true;
  return position;
}

function entryFor(ctx: FhirContext, version: VersionDocument): BundleEntry {
  const url = `${version.type}/${version.id}`;
  const entry: BundleEntry = {
    fullUrl: `${ctx.baseUrl}/${url}`,
    request: { method: version.method, url: version.method === 'POST' ? version.type : url },
    response: {
      status: version.deleted ? '204' : version.versionId === 1 || version.method === 'POST' ? '201' : '200',
      etag: `W/"${version.versionId}"`,
      lastModified: version.lastUpdated.toISOString(),
    },
  };
  if (!version.deleted) entry.resource = version.resource as Resource;
  return entry;
}

function historyPath(scope: HistoryScope): string {
  if (scope.type && scope.id) return `${scope.type}/${scope.id}/_history`;
  if (scope.type) return `${scope.type}/_history`;
  return '_history';
}

function linkUrl(ctx: FhirContext, scope: HistoryScope, params: Record<string, string | undefined>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined) query.set(name, value);
  const text = query.toString();
  return `${ctx.baseUrl}/${historyPath(scope)}${text ? `?${text}` : ''}`;
}

/**
 * The versions the caller may see: for a resource it may see (instance history), its versions that were
 * themselves visible (deletions included: they carry nothing but the id); across a type or the system, the
 * visible versions of the types it may read. System history covers the clinical types only: the audit trail's
 * own versions are read through AuditEvent/_history.
 */
async function versionAccess(ctx: FhirContext, scope: HistoryScope): Promise<VersionAccess> {
  const types = scope.type ? [scope.type] : [...ctx.resourceTypes];
  if (scope.type) ctx.access.require('r', scope.type);
  if (scope.type && scope.id) {
    const head = await ctx.store.readCurrent(scope.type, scope.id, ctx.session);
    if (!head) throw errors.notFound(`${scope.type}/${scope.id} is not known`);
    ctx.audit?.touched(`${scope.type}/${scope.id}`, patientsOf(head.type, head.id, head.idx));
    await requireReadable(ctx, head);
  }
  if (ctx.access.unrestricted) return scope.type ? { kind: 'all' } : { kind: 'types', types };
  const branches: VersionAccessBranch[] = [];
  for (const type of types) {
    const visibility = ctx.access.visibility('r', type);
    if (visibility.kind === 'none') continue;
    const condition = visibilityCondition(type, visibility, { versions: true });
    if (condition === undefined) branches.push({ type });
    else if (scope.id) branches.push({ type, condition, includeDeleted: true });
    else branches.push({ type, condition });
  }
  if (branches.length === 0) ctx.access.require('r', types[0]);
  return { kind: 'branches', branches };
}

export async function history(ctx: FhirContext, scope: HistoryScope, params: HistoryParams): Promise<Bundle> {
  const count = parseCount(params._count);
  const since = params._since !== undefined ? parseInstantParam('_since', params._since).low : undefined;
  const at = params._at !== undefined ? parseInstantParam('_at', params._at) : undefined;
  const cursor = params._cursor !== undefined ? decodeCursor(params._cursor) : undefined;

  const query: HistoryQuery = { scope, access: await versionAccess(ctx, scope) };
  if (cursor) query.position = positionOf(cursor);
  const made: MadeBetween = {};
  if (since) made.from = since;
  if (at) {
    made.to = at.high;
    if (!since || at.low > since) made.from = at.low;
  }

  // One more than a page tells whether another page exists in the direction read. With _at the list is the
  // versions made in the period, newest first, then those current at its start (made before it); a previous page
  // reads the same list from the other end.
  const backwards = cursor?.b === 1;
  const inPeriod = (limit: number) => versionsMade(ctx.store, query, made, limit, ctx.session);
  const currentAtStart = async (limit: number) => {
    if (!at) return [];
    const earlier = await latestVersionsBefore(ctx.store, query, at.low, limit, ctx.session);
    return since ? earlier.filter((v) => v.lastUpdated >= since) : earlier;
  };
  let versions: VersionDocument[];
  if (!backwards) {
    versions = await inPeriod(count + 1);
    if (versions.length <= count) versions = versions.concat(await currentAtStart(count + 1 - versions.length));
  } else {
    versions = cursor && at && cursor.t < at.low.getTime() ? await currentAtStart(count + 1) : [];
    if (versions.length <= count) versions = versions.concat(await inPeriod(count + 1 - versions.length));
  }
  const more = versions.length > count;
  const page = backwards ? versions.slice(0, count).reverse() : versions.slice(0, count);
  const hasNext = backwards ? cursor !== undefined : more;
  const hasPrevious = backwards ? more : cursor !== undefined;
  const base = { _count: params._count, _since: params._since, _at: params._at };
  const link: BundleLink[] = [{ relation: 'self', url: linkUrl(ctx, scope, { ...base, _cursor: params._cursor }) }];
  if (params._cursor !== undefined) link.push({ relation: 'first', url: linkUrl(ctx, scope, base) });
  if (hasPrevious && page.length > 0) {
    link.push({ relation: 'previous', url: linkUrl(ctx, scope, { ...base, _cursor: encodeCursor(page[0]!, true) }) });
  }
  if (hasNext && page.length > 0) {
    link.push({ relation: 'next', url: linkUrl(ctx, scope, { ...base, _cursor: encodeCursor(page[page.length - 1]!) }) });
  }
  for (const version of page) ctx.audit?.touchedVersion(version);
  return {
    resourceType: 'Bundle',
    type: 'history',
    link,
    entry: page.map((version) => entryFor(ctx, version)),
  };
}
