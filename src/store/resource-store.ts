/**
 * Persistence of FHIR resource versions in MongoDB.
 *
 * Two collections:
 * - `resource_versions`: one document per version, ever. `_id` is "Type/id/versionId", so the primary key itself
 *   arbitrates between concurrent writers: two writers that both read version N and both try to write N+1 cannot
 *   both insert "Type/id/N+1". The version document also carries the ledger's pending-anchor state, so a version
 *   can never exist without its anchor bookkeeping.
 * - `resources`: one document per resource (its current version, or the tombstone of a deleted one), with the
 *   search index values. Reads and searches touch only this collection; it is a projection of the newest version.
 *
 * A write inserts the version first (the arbiter), then moves the head from N to N+1 with a compare-and-set on
 * its versionId. On a deployment with transactions both happen in one transaction. On a standalone mongod a crash
 * between the two steps leaves a version whose head still says N; the next writer of that resource finds the
 * version, rolls the head forward to it (the same update the crashed writer would have made), and reports a
 * conflict to its own client, so the head never goes backwards and no version is lost.
 */
import { applyDecimalText } from '../fhir/decimal-text.js';
import type { Resource } from '@medplum/fhirtypes';
import { calculateObjectSize } from 'bson';
import { MongoBulkWriteError, MongoServerError, type ClientSession, type Collection, type Db, type Document } from 'mongodb';
import { compileFilter } from './search/compile.js';
import { ConditionalKeys } from './search/conditional-keys.js';
import { anyTypeIndexDescription, FORMER_ANY_TYPE_INDEX, inAnyTypeIndex, searchIndexDescriptions } from './search/indexes.js';
import type { Condition } from './search/query.js';

export const VERSIONS_COLLECTION = 'resource_versions';
export const HEADS_COLLECTION = 'resources';

/**
 * Types written once and never changed (the audit trail): a resource of these types has exactly one version,
 * so its version document is also its current version, and no head is written for it. Reads, searches and index
 * values use the version documents directly (their search indexes live on `resource_versions`), which halves what
 * each AuditEvent costs to store. A search covers single-version types or the others, never both at once.
 */
export const SINGLE_VERSION_TYPES: ReadonlySet<string> = new Set(['AuditEvent']);

/** The collection that holds the current versions of `types` (all single-version, or none); throws for a mix. */
export function currentCollectionName(types: readonly string[]): string {
  const single = types.filter((type) => SINGLE_VERSION_TYPES.has(type));
  if (single.length === 0) return HEADS_COLLECTION;
  if (single.length === types.length) return VERSIONS_COLLECTION;
  throw new MixedStorageError(single);
}

/** A query over single-version types and others at once: the caller must search them apart. */
export class MixedStorageError extends Error {
  constructor(readonly singleVersionTypes: string[]) {
    super(`${singleVersionTypes.join(', ')} cannot be searched together with other types`);
    this.name = 'MixedStorageError';
  }
}

/** The HTTP method that made a version, for history entries' request element. */
export type WriteMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The error code mongod answers for a unique-index violation. */
const DUPLICATE_KEY = 11000;

/**
 * A version's search index values: parameter name (with its variants, e.g. `name:a`) to normalised values, as
 * fhir/search/extract.ts computes them. The FHIR layer reads them (compartments, access) without knowing how they
 * are stored.
 */
export type IndexValues = Document;

/** Which fields of a stored version a read returns (the FHIR layer names them; here it is a MongoDB projection). */
export type FieldSelection = Document;

/**
 * A storage transaction, as the FHIR layer holds it: received from the store (a transaction Bundle's run) and
 * handed back to the store's methods unchanged, never used otherwise.
 */
export type StoreSession = ClientSession;

/** What a head (current version) and a version document share. */
interface StoredVersionFields {
  type: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  deleted: boolean;
  /** The version exactly as served to clients (meta.versionId and meta.lastUpdated included). */
  resource: Resource;
  /**
   * The digits its decimals were written with, where not their shortest form: [JSON pointer, text] pairs
   * (fhir/decimal-text.ts). Put back on `resource` by every read (restoreDecimalText).
   */
  decimals?: [string, string][];
  /** Search index values; kept on versions too, so a head can be rebuilt from its version alone. */
  idx?: IndexValues;
  /** Version of the index definitions that produced idx (reindexing touches only stale rows). */
  idxVersion?: number;
}

/** What the FHIR layer hands the store: a complete version, numbered and stamped. */
export interface NewVersion extends StoredVersionFields {
  method: WriteMethod;
  /** Ledger state; written with the version and owned by the ledger. */
  anchor?: Document;
}

/** One document per version, ever, in `resource_versions`. */
export interface VersionDocument extends NewVersion {
  _id: string;
}

/** One document per resource, its current version, in `resources`. */
export interface HeadDocument extends StoredVersionFields {
  _id: string;
  /** Set on the heads of the types the wildcard search index holds (store/search/indexes.ts, inAnyTypeIndex). */
  anyTypeIndexed?: true;
}

/** Another writer got there first: the version the caller based its write on is no longer current. */
export class VersionConflictError extends Error {
  constructor(
    readonly type: string,
    readonly id: string,
    readonly attemptedVersion: number,
  ) {
    super(`${type}/${id} was changed by another request (version ${attemptedVersion} already exists)`);
    this.name = 'VersionConflictError';
  }
}

/**
 * The largest document this store writes: MongoDB's limit is 16 MiB (BSONObjMaxUserSize), and a version document
 * later grows by the ledger's claim on its anchor (a state and a batch number: a few bytes; the proof lives in the
 * batch), and a margin is kept.
 */
export const MAX_STORED_DOCUMENT_BYTES = 16 * 1024 * 1024 - 64 * 1024;

/** A version whose stored document would exceed MongoDB's document size limit: refused before anything is written. */
export class DocumentTooLargeError extends Error {
  constructor(
    readonly type: string,
    readonly id: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`${type}/${id} would be stored as ${bytes} bytes; the limit is ${limit}`);
    this.name = 'DocumentTooLargeError';
  }
}

/**
 * Throws DocumentTooLargeError when the documents that would store this version (the version itself, and the head
 * that carries the same resource and index values) would exceed MAX_STORED_DOCUMENT_BYTES. Computed over exactly what
 * is written, index values included: those can be several times the resource's own size.
 */
export function assertStorable(version: NewVersion): void {
  // The version document holds everything its head holds, and more: its size bounds both.
  const bytes = calculateObjectSize(versionDocument(version));
  if (bytes > MAX_STORED_DOCUMENT_BYTES) throw new DocumentTooLargeError(version.type, version.id, bytes, MAX_STORED_DOCUMENT_BYTES);
}

export const versionKey = (type: string, id: string, versionId: number): string => `${type}/${id}/${versionId}`;
export const headKey = (type: string, id: string): string => `${type}/${id}`;

function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY;
}

/** The positions of an unordered insertMany that failed, when every failure is a duplicate key; null otherwise. */
function duplicatePositions(error: unknown): number[] | null {
  if (!(error instanceof MongoBulkWriteError)) return isDuplicateKey(error) ? [0] : null;
  const failures = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
  if (failures.length === 0 || failures.some((failure) => failure.code !== DUPLICATE_KEY)) return null;
  return failures.map((failure) => failure.index);
}

/** The head document for a version: the same fields, so a head can always be rebuilt from its version. */
export function headFromVersion(version: NewVersion | VersionDocument): HeadDocument {
  const head: HeadDocument = {
    _id: headKey(version.type, version.id),
    type: version.type,
    id: version.id,
    versionId: version.versionId,
    lastUpdated: version.lastUpdated,
    deleted: version.deleted,
    resource: version.resource,
  };
  if (version.decimals !== undefined) head.decimals = version.decimals;
  if (version.idx !== undefined) head.idx = version.idx;
  if (version.idxVersion !== undefined) head.idxVersion = version.idxVersion;
  if (inAnyTypeIndex(version.type)) head.anyTypeIndexed = true;
  return head;
}

function versionDocument(version: NewVersion): VersionDocument {
  return { _id: versionKey(version.type, version.id, version.versionId), ...version };
}

/** Moves a head to a version; a version without index values (a deletion) leaves none of the previous ones. */
function headUpdate(fields: Omit<HeadDocument, '_id'>): Document {
  const unset: Document = {
    ...(fields.idx === undefined ? { idx: '', idxVersion: '' } : {}),
    ...(fields.decimals === undefined ? { decimals: '' } : {}),
  };
  return Object.keys(unset).length > 0 ? { $set: fields, $unset: unset } : { $set: fields };
}

/**
 * Puts the written digits of a stored version's decimals back on its resource (fhir/decimal-text.ts). Every read
 * that hands out stored resources passes its documents through here.
 */
export function restoreDecimalText<T extends { resource?: Resource; decimals?: [string, string][] } | null>(doc: T): T {
  if (doc?.decimals && doc.resource) applyDecimalText(doc.resource, Object.fromEntries(doc.decimals));
  return doc;
}

/** As restoreDecimalText, for a list of documents. */
export function restoreDecimalTexts<T extends { resource?: Resource; decimals?: [string, string][] }>(docs: T[]): T[] {
  for (const doc of docs) restoreDecimalText(doc);
  return docs;
}

/** A projection that asks for the resource asks for its decimals' digits too. */
export function withDecimals(projection: Document): Document {
  return projection.resource === 1 || projection.resource === true ? { ...projection, decimals: 1 } : projection;
}

/** The default time limit of a query a request runs (searches, history, $everything). */
export const DEFAULT_QUERY_TIME_MS = 10_000;

/** Whether an error is MongoDB's answer to a query that used up its maxTimeMS (MaxTimeMSExpired, code 50). */
export function isQueryTimeout(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === 50;
}

export class ResourceStore {
  readonly versions: Collection<VersionDocument>;
  readonly heads: Collection<HeadDocument>;

  /** The keys that serialise conditional creates with the same criteria (see search/conditional-keys.ts). */
  readonly conditionalKeys: ConditionalKeys;

  constructor(
    readonly db: Db,
    readonly supportsTransactions: boolean,
    /**
     * maxTimeMS of every query whose cost depends on what a client asks (searches, their counts, includes and
     * sub-searches, history, $everything): MongoDB stops it with MaxTimeMSExpired instead of letting it run on.
     */
    readonly queryTimeMs: number = DEFAULT_QUERY_TIME_MS,
  ) {
    this.versions = db.collection<VersionDocument>(VERSIONS_COLLECTION);
    this.heads = db.collection<HeadDocument>(HEADS_COLLECTION);
    this.conditionalKeys = new ConditionalKeys(db);
  }

  /** Creates the indexes every query relies on. Idempotent: createIndexes with identical specs is a no-op. */
  async ensureIndexes(): Promise<void> {
    await this.versions.createIndexes([
      // Instance history, newest first; vread is by _id.
      { key: { type: 1, id: 1, versionId: -1 }, name: 'type_id_version', unique: true },
      // Type-level and system-level history, by time.
      { key: { type: 1, lastUpdated: -1 }, name: 'type_lastUpdated' },
      { key: { lastUpdated: -1 }, name: 'lastUpdated' },
      // Searches of single-version types (their version documents are their current versions).
      ...searchIndexDescriptions((type) => SINGLE_VERSION_TYPES.has(type)),
    ]);
    await this.heads.createIndexes([
      { key: { type: 1, id: 1 }, name: 'type_id', unique: true },
      { key: { type: 1, lastUpdated: -1 }, name: 'type_lastUpdated' },
      // Searches: partial indexes over idx fields, per type, and one over every type's (see store/search/indexes.ts).
      ...searchIndexDescriptions((type) => !SINGLE_VERSION_TYPES.has(type)),
      anyTypeIndexDescription,
    ]);
    // The first wildcard index (2026-12-07) also held the featured types: replaced by the one above.
    await this.heads.dropIndex(FORMER_ANY_TYPE_INDEX).catch(() => undefined);
  }

  /** The collection that holds the current versions of `types` (see SINGLE_VERSION_TYPES). */
  currentOf(types: readonly string[]): Collection<HeadDocument> {
    return currentCollectionName(types) === VERSIONS_COLLECTION ? (this.versions as unknown as Collection<HeadDocument>) : this.heads;
  }

  /**
   * The current version of a resource (a deleted resource's tombstone included), by one indexed lookup; with
   * `projection`, only those fields of it.
   */
  async readCurrent(type: string, id: string, session?: ClientSession, projection?: Document): Promise<HeadDocument | null> {
    return restoreDecimalText(await this.readCurrentDocument(type, id, session, projection && withDecimals(projection)));
  }

  private async readCurrentDocument(
    type: string,
    id: string,
    session?: ClientSession,
    projection?: Document,
  ): Promise<HeadDocument | null> {
    if (SINGLE_VERSION_TYPES.has(type)) {
      const version = await this.versions.findOne({ _id: versionKey(type, id, 1) }, { session, ...(projection ? { projection } : {}) });
      return version ? headFromVersion(version) : null;
    }
    return this.heads.findOne({ _id: headKey(type, id) }, { session, ...(projection ? { projection } : {}) });
  }

  /** One version of a resource, by one indexed lookup. */
  async readVersion(type: string, id: string, versionId: number, session?: ClientSession): Promise<VersionDocument | null> {
    return restoreDecimalText(await this.versions.findOne({ _id: versionKey(type, id, versionId) }, { session }));
  }

  /**
   * Stores a new version. `version.versionId` must be the current version + 1 (1 for a new resource).
   * Throws VersionConflictError when another writer stored that version first.
   * Pass a session to join a caller's transaction (transaction Bundles); otherwise the store makes its own
   * transaction where the deployment has them.
   *
   * `companions` are new resources (version 1 each, typically the AuditEvent that records this write) stored in
   * the same transaction: they exist if and only if the version does. Without transactions (a standalone mongod)
   * they are inserted right after the version, in the same command.
   */
  async writeVersion(version: NewVersion, session?: ClientSession, companions: NewVersion[] = []): Promise<void> {
    if (session) {
      await this.writeSteps(version, session, companions);
      return;
    }
    if (!this.supportsTransactions) {
      await this.writeSteps(version, undefined, companions);
      return;
    }
    const ownSession = this.db.client.startSession();
    try {
      await ownSession.withTransaction(() => this.writeSteps(version, ownSession, companions));
    } finally {
      await ownSession.endSession();
    }
  }

  private async writeSteps(version: NewVersion, session: ClientSession | undefined, companions: NewVersion[]): Promise<void> {
    const document: VersionDocument = { _id: versionKey(version.type, version.id, version.versionId), ...version };
    const companionDocuments = companions.map(versionDocument);
    try {
      // Ordered: the version (the arbiter between concurrent writers) first; a conflict inserts no companion.
      if (companionDocuments.length === 0) await this.versions.insertOne(document, { session });
      else await this.versions.insertMany([document, ...companionDocuments], { session, ordered: true });
    } catch (error) {
      if (!isDuplicateKey(error) && !duplicatePositions(error)?.every((position) => position === 0)) throw error;
      if (!session) await this.rollForward(version.type, version.id, version.versionId);
      throw new VersionConflictError(version.type, version.id, version.versionId);
    }
    const head = headFromVersion(version);
    const companionHeads = companions.filter((c) => !SINGLE_VERSION_TYPES.has(c.type)).map(headFromVersion);
    if (version.versionId === 1) {
      try {
        if (companionHeads.length === 0) await this.heads.insertOne(head, { session });
        else await this.heads.insertMany([head, ...companionHeads], { session, ordered: false });
      } catch (error) {
        // Only a roll-forward by another writer can have inserted this head: it holds our version already.
        if (!isDuplicateKey(error) && !duplicatePositions(error)?.every((position) => position === 0)) throw error;
      }
      return;
    }
    const { _id, ...fields } = head;
    await this.heads.updateOne({ _id, versionId: version.versionId - 1 }, headUpdate(fields), { session });
    // matchedCount 0 means a roll-forward already moved the head to this very version; nothing to do.
    if (companionHeads.length > 0) await this.heads.insertMany(companionHeads, { session, ordered: false });
  }

  /**
   * Stores new resources of one version each (buffered AuditEvents): their versions, and the heads of those not
   * single-version, in one transaction where the deployment has them and there are heads to write. Without
   * transactions (a standalone mongod) a crash between the two inserts can leave versions without heads: kept and
   * anchored, readable by vread, but not found by search.
   */
  async insertNewResources(versions: NewVersion[], session?: ClientSession): Promise<void> {
    if (versions.length === 0) return;
    const heads = versions.filter((v) => !SINGLE_VERSION_TYPES.has(v.type)).map(headFromVersion);
    const steps = async (s: ClientSession | undefined): Promise<void> => {
      await this.versions.insertMany(versions.map(versionDocument), { session: s, ordered: false });
      if (heads.length > 0) await this.heads.insertMany(heads, { session: s, ordered: false });
    };
    // One insert needs no transaction: it is atomic per document, and there is nothing else to keep with it.
    if (session || !this.supportsTransactions || heads.length === 0) {
      await steps(session);
      return;
    }
    const ownSession = this.db.client.startSession();
    try {
      await ownSession.withTransaction(() => steps(ownSession));
    } finally {
      await ownSession.endSession();
    }
  }

  /**
   * Whether a stored version (by key) satisfies a search condition over its index values, as its head would when
   * it was current: one lookup by primary key. Conditions on `_id` (the head's key) do not apply to versions.
   */
  async versionMatches(type: string, id: string, versionId: number, condition: Condition, session?: ClientSession): Promise<boolean> {
    const filter = compileFilter({ types: [type], where: condition });
    const found = await this.versions.findOne(
      { $and: [{ _id: versionKey(type, id, versionId) }, filter] },
      { session, projection: { _id: 1 } },
    );
    return found !== null;
  }

  /** Brings the head up to a version that exists in the history but was never applied (crash between steps). */
  private async rollForward(type: string, id: string, versionId: number): Promise<void> {
    const stranded = await this.readVersion(type, id, versionId);
    if (!stranded) return;
    const head = headFromVersion(stranded);
    if (versionId === 1) {
      await this.heads.updateOne({ _id: head._id }, { $setOnInsert: head }, { upsert: true }).catch((error: unknown) => {
        if (!isDuplicateKey(error)) throw error;
      });
      return;
    }
    const { _id, ...fields } = head;
    await this.heads.updateOne({ _id, versionId: versionId - 1 }, headUpdate(fields));
  }
}
