/**
 * history: instance ([type]/[id]/_history), type ([type]/_history) and system (/_history) level.
 * Newest first. Paging is by keyset (a cursor naming the last entry shown), not by offset, so versions written
 * while a client pages appear on no page it has yet to read twice and push nothing off the pages ahead: no
 * duplicates, no gaps. Links: self, first, next and previous (a cursor read towards newer entries).
 * _since: versions made at or after the instant. _at: versions that were current at some point during the
 * period the value denotes (a version is current from its lastUpdated until the next version's).
 */
import type { Bundle, BundleEntry, BundleLink, Resource } from '@medplum/fhirtypes';
import type { Document, Filter } from 'mongodb';
import type { VersionDocument } from '../../store/resource-store.js';
import type { FhirContext } from '../context.js';
import { parseDateRange } from '../dates.js';
import { errors } from '../outcome.js';
import { visibilityCondition } from '../access/access-policy.js';
import { compileCondition } from '../../store/search/compile.js';
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

/** Entries strictly after the cursor in (lastUpdated desc, _id desc) order, or strictly before it for `b`. */
function afterCursor(cursor: Cursor | undefined): Filter<VersionDocument> {
  if (!cursor) return {};
  const t = new Date(cursor.t);
  if (cursor.b) return { $or: [{ lastUpdated: { $gt: t } }, { lastUpdated: t, _id: { $gt: cursor.k } }] };
  return { $or: [{ lastUpdated: { $lt: t } }, { lastUpdated: t, _id: { $lt: cursor.k } }] };
}

function scopeFilter(scope: HistoryScope): Filter<VersionDocument> {
  const filter: Filter<VersionDocument> = {};
  if (scope.type) filter.type = scope.type;
  if (scope.id) filter.id = scope.id;
  return filter;
}

const SORT = { lastUpdated: -1, _id: -1 } as const;
/** A previous page is read towards newer entries, then reversed. */
const REVERSE_SORT = { lastUpdated: 1, _id: 1 } as const;

/** Versions current at the period's start but made before it: the newest version of each resource before `low`. */
async function versionsCurrentAtStart(
  ctx: FhirContext,
  scope: HistoryScope,
  access: Filter<VersionDocument>,
  low: Date,
  cursor: Cursor | undefined,
  limit: number,
): Promise<VersionDocument[]> {
  const pipeline: Document[] = [
    { $match: { $and: [scopeFilter(scope), access, { lastUpdated: { $lt: low } }] } },
    { $sort: { type: 1, id: 1, versionId: -1 } },
    { $group: { _id: { type: '$type', id: '$id' }, version: { $first: '$$ROOT' } } },
    { $replaceRoot: { newRoot: '$version' } },
  ];
  const after = afterCursor(cursor);
  if (Object.keys(after).length > 0) pipeline.push({ $match: after });
  pipeline.push({ $sort: cursor?.b ? REVERSE_SORT : SORT }, { $limit: limit });
  return ctx.store.versions.aggregate<VersionDocument>(pipeline, { session: ctx.session }).toArray();
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
 * The versions the caller may see, as a filter: for a resource it may see (instance history), its versions that
 * were themselves visible (deletions included: they carry nothing but the id); across a type or the system, the
 * visible versions of the types it may read. System history covers the clinical types only: the audit trail's
 * own versions are read through AuditEvent/_history.
 */
async function accessFilter(ctx: FhirContext, scope: HistoryScope): Promise<Filter<VersionDocument>> {
  const types = scope.type ? [scope.type] : [...ctx.resourceTypes];
  if (scope.type) ctx.access.require('r', scope.type);
  if (scope.type && scope.id) {
    const head = await ctx.store.readCurrent(scope.type, scope.id, ctx.session);
    if (!head) throw errors.notFound(`${scope.type}/${scope.id} is not known`);
    ctx.audit?.touched(`${scope.type}/${scope.id}`, patientsOf(head.type, head.id, head.idx));
    await requireReadable(ctx, head);
  }
  if (ctx.access.unrestricted) return scope.type ? {} : { type: { $in: types } };
  const branches: Document[] = [];
  for (const type of types) {
    const visibility = ctx.access.visibility('r', type);
    if (visibility.kind === 'none') continue;
    const restriction = visibilityCondition(type, visibility, { versions: true });
    if (restriction === undefined) branches.push({ type });
    else if (scope.id) branches.push({ $and: [{ type }, { $or: [{ deleted: true }, compileCondition(restriction)] }] });
    else branches.push({ $and: [{ type, deleted: false }, compileCondition(restriction)] });
  }
  if (branches.length === 0) ctx.access.require('r', types[0]);
  return branches.length === 1 ? branches[0] : { $or: branches };
}

export async function history(ctx: FhirContext, scope: HistoryScope, params: HistoryParams): Promise<Bundle> {
  const count = parseCount(params._count);
  const since = params._since !== undefined ? parseInstantParam('_since', params._since).low : undefined;
  const at = params._at !== undefined ? parseInstantParam('_at', params._at) : undefined;
  const cursor = params._cursor !== undefined ? decodeCursor(params._cursor) : undefined;

  const access = await accessFilter(ctx, scope);
  const filter: Filter<VersionDocument> = { ...scopeFilter(scope), ...afterCursor(cursor) };
  if (Object.keys(access).length > 0) (filter as Document).$and = [access];
  const time: { $gte?: Date; $lte?: Date } = {};
  if (since) time.$gte = since;
  if (at) {
    time.$lte = at.high;
    if (!since || at.low > since) time.$gte = at.low;
  }
  if (Object.keys(time).length > 0) filter.lastUpdated = time;

  // One more than a page tells whether another page exists in the direction read. With _at the list is the
  // versions made in the period, newest first, then those current at its start (made before it); a previous page
  // reads the same list from the other end.
  const backwards = cursor?.b === 1;
  const inPeriod = (limit: number) =>
    ctx.store.versions.find(filter, { session: ctx.session, maxTimeMS: ctx.store.queryTimeMs }).sort(backwards ? REVERSE_SORT : SORT).limit(limit).toArray();
  const currentAtStart = async (limit: number) => {
    if (!at) return [];
    const earlier = await versionsCurrentAtStart(ctx, scope, access, at.low, cursor, limit);
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
