/**
 * The MongoDB queries of history (instance, type and system level) over `resource_versions`. The FHIR layer
 * (fhir/interactions/history.ts) decides what is in scope, what the caller may see, the time bounds and the
 * paging; here that becomes filters and a pipeline. Order is always (lastUpdated desc, _id desc): a keyset that
 * stays stable while versions are written.
 */
import type { Document, Filter } from 'mongodb';
import { restoreDecimalTexts, type ResourceStore, type StoreSession, type VersionDocument } from './resource-store.js';
import { compileCondition } from './search/compile.js';
import type { Condition } from './search/query.js';

/** Whose versions: every resource, those of a type, or one resource. */
export interface VersionScope {
  type?: string;
  id?: string;
}

/** One type's versions the caller may see. */
export interface VersionAccessBranch {
  type: string;
  /**
   * Only the versions that satisfy it (over the version documents' index values); absent: all of the type's
   * versions, deletions included. With a condition, deletions (which carry no index values to test) are left out
   * unless `includeDeleted`.
   */
  condition?: Condition;
  /** Deletions are seen whatever the condition: they carry nothing but the id (instance history of a visible resource). */
  includeDeleted?: boolean;
}

/** Which versions within the scope the caller may see. */
export type VersionAccess =
  /** All of them. */
  | { kind: 'all' }
  /** All of those of these types. */
  | { kind: 'types'; types: readonly string[] }
  /** Those some branch admits. */
  | { kind: 'branches'; branches: readonly VersionAccessBranch[] };

/** A version's place in (lastUpdated desc, _id desc) order, where a page continues from. */
export interface HistoryPosition {
  lastUpdated: Date;
  /** The version document's _id. */
  versionKey: string;
  /** Read the entries before it (the newer ones, oldest first) rather than those after it. */
  towardsNewer?: boolean;
}

/** What every history query shares: scope, access and where the page starts (absent: at the newest). */
export interface HistoryQuery {
  scope: VersionScope;
  access: VersionAccess;
  position?: HistoryPosition;
}

/** Bounds on lastUpdated, both inclusive. */
export interface MadeBetween {
  from?: Date;
  to?: Date;
}

const SORT = { lastUpdated: -1, _id: -1 } as const;
/** Towards newer entries a page is read oldest first (the caller reverses it). */
const REVERSE_SORT = { lastUpdated: 1, _id: 1 } as const;

/** Matches no document: an access without branches admits nothing. */
const NOTHING: Document = { _id: { $in: [] } };

function scopeFilter(scope: VersionScope): Filter<VersionDocument> {
  const filter: Filter<VersionDocument> = {};
  if (scope.type) filter.type = scope.type;
  if (scope.id) filter.id = scope.id;
  return filter;
}

/** Entries strictly after the position in (lastUpdated desc, _id desc) order, or strictly before it towards newer. */
function afterPosition(position: HistoryPosition | undefined): Filter<VersionDocument> {
  if (!position) return {};
  const t = position.lastUpdated;
  if (position.towardsNewer) return { $or: [{ lastUpdated: { $gt: t } }, { lastUpdated: t, _id: { $gt: position.versionKey } }] };
  return { $or: [{ lastUpdated: { $lt: t } }, { lastUpdated: t, _id: { $lt: position.versionKey } }] };
}

function branchFilter(branch: VersionAccessBranch): Document {
  if (branch.condition === undefined) return { type: branch.type };
  const condition = compileCondition(branch.condition);
  if (branch.includeDeleted) return { $and: [{ type: branch.type }, { $or: [{ deleted: true }, condition] }] };
  return { $and: [{ type: branch.type, deleted: false }, condition] };
}

/** The access as a filter; empty when it adds nothing to the scope. */
function accessFilter(access: VersionAccess): Document {
  switch (access.kind) {
    case 'all':
      return {};
    case 'types':
      return { type: { $in: [...access.types] } };
    case 'branches': {
      if (access.branches.length === 0) return NOTHING;
      const branches = access.branches.map(branchFilter);
      return branches.length === 1 ? branches[0] : { $or: branches };
    }
  }
}

/**
 * Up to `limit` versions made within `made`, in history order from the query's position (oldest first when read
 * towards newer entries).
 */
export async function versionsMade(
  store: ResourceStore,
  query: HistoryQuery,
  made: MadeBetween,
  limit: number,
  session?: StoreSession,
): Promise<VersionDocument[]> {
  const filter: Filter<VersionDocument> = { ...scopeFilter(query.scope), ...afterPosition(query.position) };
  const access = accessFilter(query.access);
  if (Object.keys(access).length > 0) (filter as Document).$and = [access];
  const time: { $gte?: Date; $lte?: Date } = {};
  if (made.from) time.$gte = made.from;
  if (made.to) time.$lte = made.to;
  if (Object.keys(time).length > 0) filter.lastUpdated = time;
  return restoreDecimalTexts(
    await store.versions
      .find(filter, { session, maxTimeMS: store.queryTimeMs })
      .sort(query.position?.towardsNewer ? REVERSE_SORT : SORT)
      .limit(limit)
      .toArray(),
  );
}

/**
 * Up to `limit` of the versions current at `instant` but made before it (the newest version of each resource made
 * before `instant`), in history order from the query's position (oldest first when read towards newer entries).
 */
export async function latestVersionsBefore(
  store: ResourceStore,
  query: HistoryQuery,
  instant: Date,
  limit: number,
  session?: StoreSession,
): Promise<VersionDocument[]> {
  const pipeline: Document[] = [
    { $match: { $and: [scopeFilter(query.scope), accessFilter(query.access), { lastUpdated: { $lt: instant } }] } },
    { $sort: { type: 1, id: 1, versionId: -1 } },
    { $group: { _id: { type: '$type', id: '$id' }, version: { $first: '$$ROOT' } } },
    { $replaceRoot: { newRoot: '$version' } },
  ];
  const after = afterPosition(query.position);
  if (Object.keys(after).length > 0) pipeline.push({ $match: after });
  pipeline.push({ $sort: query.position?.towardsNewer ? REVERSE_SORT : SORT }, { $limit: limit });
  return restoreDecimalTexts(await store.versions.aggregate<VersionDocument>(pipeline, { session }).toArray());
}
