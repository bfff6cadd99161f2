/**
 * The MongoDB queries of a Bulk Data export (fhir/bulk-export/export-files.ts decides what is exported and writes
 * the files): a per-type estimate, pages of heads by key along the _id index, and the version of a resource as it
 * was at the export's transaction time T.
 *
 * A page holds the heads of one type that were current at T and qualify (live, changed after _since, meeting the
 * caller's membership condition), plus every head changed after T whatever it holds now: the caller replaces
 * those by `versionAt(..., T)` and applies the same rules to that version.
 */
import type { Document, Filter } from 'mongodb';
import { restoreDecimalText, restoreDecimalTexts, type HeadDocument, type ResourceStore, type VersionDocument } from './resource-store.js';
import { compileCondition } from './search/compile.js';
import type { Condition } from './search/query.js';

/** The fields of a head an export reads (the rest, idx above all, is left in the database). */
export type ExportHead = Pick<HeadDocument, '_id' | 'type' | 'id' | 'lastUpdated' | 'resource' | 'decimals'>;

export interface ExportPageQuery {
  type: string;
  /** The export's transaction time T. */
  transactionTime: Date;
  /** _since: heads current at T must have changed after it. */
  since?: Date;
  /** What a head current at T must also meet (e.g. membership of some patient's compartment); none when undefined. */
  membership?: Condition;
  /** The last key of the previous page; undefined for the type's first page. */
  afterKey?: string;
  limit: number;
}

/** Live heads of `type` now: the estimate an export's progress reports (not the count it will export). */
export async function countCurrent(store: ResourceStore, type: string): Promise<number> {
  return store.heads.countDocuments({ type, deleted: false });
}

/** The heads of one type after `afterKey`: those current at T that qualify, and every head changed after T. */
function exportFilter(query: ExportPageQuery): Document {
  const { type, transactionTime, since, afterKey } = query;
  const current: Document = { lastUpdated: { $lte: transactionTime, ...(since ? { $gt: since } : {}) }, deleted: false };
  const member = query.membership ? compileCondition(query.membership) : {};
  return {
    _id: { ...(afterKey === undefined ? { $gte: `${type}/` } : { $gt: afterKey }), $lt: `${type}0` },
    type,
    $or: [{ ...current, ...(Object.keys(member).length > 0 ? { $and: [member] } : {}) }, { lastUpdated: { $gt: transactionTime } }],
  };
}

/**
 * One page of an export's heads in key order, at most `limit`. Hinted to the _id index: the type's key range bounds
 * the scan and gives the order, so each page is one bounded query and concurrent writes cannot reorder keys.
 */
export async function exportPage(store: ResourceStore, query: ExportPageQuery): Promise<ExportHead[]> {
  return restoreDecimalTexts(
    await store.heads
      .find<ExportHead>(exportFilter(query) as Filter<HeadDocument>, {
        projection: { _id: 1, type: 1, id: 1, lastUpdated: 1, resource: 1, decimals: 1 },
      })
      .sort({ _id: 1 })
      .hint({ _id: 1 })
      .limit(query.limit)
      .toArray(),
  );
}

/** The newest version of a resource at or before `time` (one lookup on type_id_version); null if none existed yet. */
export async function versionAt(store: ResourceStore, type: string, id: string, time: Date): Promise<VersionDocument | null> {
  return restoreDecimalText(
    await store.versions
      .find({ type, id, lastUpdated: { $lte: time } } as Filter<VersionDocument>)
      .sort({ type: 1, id: 1, versionId: -1 })
      .limit(1)
      .next(),
  );
}
