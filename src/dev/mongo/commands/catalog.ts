/**
 * Catalog commands: collections, databases and indexes.
 */
import type { Document } from 'bson';
import { Query } from 'mingo/query';
import { encodeValue } from '../bson/keystring.js';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { mingoOptions } from '../query/mingo-context.js';
import { splitNamespace, validateCollectionName, validateDatabaseName } from '../storage/catalog.js';
import { ID_INDEX_SPEC, type Collection } from '../storage/collection.js';
import { defaultIndexName, Index, parseKeyPattern, type IndexField } from '../storage/index.js';
import { checkCompoundWildcard, parseWildcardProjection, WILDCARD_SUFFIX, type WildcardProjection } from '../storage/wildcard.js';
import { resetValidator } from '../write/validation.js';
import {
  collectionArg,
  documentArray,
  namespaceOf,
  optionalBoolean,
  optionalDocument,
  type CommandContext,
  type CommandDefinition,
} from './context.js';
import { checkCollation } from './query-support.js';

const CREATE_OPTIONS = new Set([
  'validator',
  'validationLevel',
  'validationAction',
  'collation',
  'comment',
  'writeConcern',
  'storageEngine',
  'indexOptionDefaults',
  'idIndex',
  'expireAfterSeconds',
  'changeStreamPreAndPostImages',
]);

function collectionOptions(body: Document, command: string): Document {
  const options: Document = {};
  for (const [k, v] of Object.entries(body)) {
    if (
      k === command ||
      k.startsWith('$') ||
      [
        'lsid',
        'txnNumber',
        'autocommit',
        'startTransaction',
        'writeConcern',
        'comment',
        'apiVersion',
        'apiStrict',
        'apiDeprecationErrors',
        'maxTimeMS',
      ].includes(k)
    )
      continue;
    if (k === 'capped' || k === 'size' || k === 'max') {
      if (k === 'capped' && v === true)
        throw new CommandError(ErrorCode.CommandNotSupported, 'capped collections are not supported by the embedded server');
      continue;
    }
    if (k === 'viewOn' || k === 'pipeline')
      throw new CommandError(ErrorCode.CommandNotSupported, 'views are not supported by the embedded server');
    if (k === 'timeseries' || k === 'clusteredIndex')
      throw new CommandError(ErrorCode.CommandNotSupported, `${k} collections are not supported by the embedded server`);
    if (!CREATE_OPTIONS.has(k)) throw new CommandError(ErrorCode.InvalidOptions, `The field '${k}' is not a valid collection option.`);
    if (k === 'collation') checkCollation(v);
    options[k] = v;
  }
  if (isPlainObject(options.validator)) {
    if ('$jsonSchema' in options.validator) {
      throw new CommandError(ErrorCode.CommandNotSupported, '$jsonSchema validators are not supported by the embedded server');
    }
    new Query(options.validator, mingoOptions());
  }
  return options;
}

function create(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  validateDatabaseName(ctx.db);
  const options = collectionOptions(ctx.body, 'create');
  const existing = ctx.instance.collection(ctx.db, name);
  if (existing) {
    // mongod 7.0 treats a repeated create with identical options as success.
    if (encodeValue(existing.options) === encodeValue(options)) return { ok: 1 };
    throw new CommandError(ErrorCode.NamespaceExists, `Collection ${ctx.db}.${name} already exists.`);
  }
  ctx.instance.ensureCollection(ctx.db, name, options);
  return { ok: 1 };
}

/** Transactions holding writes on a namespace that is going away are aborted (mongod would block the drop). */
function abortTransactionsOn(ctx: CommandContext, nsPrefix: (ns: string) => boolean): void {
  for (const session of ctx.instance.sessions.all()) {
    const txn = session.txn;
    if (txn?.state === 'active' && [...txn.writes.keys()].some(nsPrefix)) ctx.instance.txns.abort(txn);
  }
}

function drop(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const ns = namespaceOf(ctx, name);
  const coll = ctx.instance.collection(ctx.db, name);
  if (!coll) return { ok: 1 };
  abortTransactionsOn(ctx, (n) => n === ns);
  ctx.instance.cursors.killForNamespace(ns);
  const nIndexesWas = coll.indexes.length;
  ctx.instance.engine.apply([{ op: 'dropCollection', ns }]);
  return { nIndexesWas, ns, ok: 1 };
}

function dropDatabase(ctx: CommandContext): Document {
  validateDatabaseName(ctx.db);
  abortTransactionsOn(ctx, (n) => splitNamespace(n).db === ctx.db);
  for (const coll of ctx.instance.engine.catalog.collections(ctx.db)) ctx.instance.cursors.killForNamespace(coll.ns);
  if (ctx.instance.engine.catalog.collections(ctx.db).length) ctx.instance.engine.apply([{ op: 'dropDatabase', db: ctx.db }]);
  return { dropped: ctx.db, ok: 1 };
}

function collectionInfo(coll: Collection): Document {
  return {
    name: coll.name,
    type: 'collection',
    options: coll.options,
    info: { readOnly: false, uuid: coll.uuid },
    idIndex: { ...ID_INDEX_SPEC },
  };
}

function listCollections(ctx: CommandContext): Document {
  const filter = optionalDocument(ctx, 'filter');
  const nameOnly = optionalBoolean(ctx, 'nameOnly', false);
  let infos = ctx.instance.engine.catalog.collections(ctx.db).map(collectionInfo);
  if (filter && Object.keys(filter).length) {
    const q = new Query(filter, mingoOptions());
    infos = infos.filter((i) => q.test(i));
  }
  const docs = nameOnly ? infos.map((i) => ({ name: i.name, type: i.type })) : infos;
  const cursor = optionalDocument(ctx, 'cursor');
  const batch = ctx.instance.cursors.open(`${ctx.db}.$cmd.listCollections`, docs, {
    batchSize: cursor?.batchSize === undefined ? undefined : Number(cursor.batchSize),
    sessionKey: ctx.session?.key,
  });
  return { ...batch, ok: 1 };
}

/**
 * The BSON bytes of a database's documents, from the totals each collection's store keeps as it writes (reading
 * every document instead took two minutes at a million of them, and held the single-threaded server meanwhile).
 */
function databaseSize(ctx: CommandContext, db: string): number {
  let size = 0;
  for (const coll of ctx.instance.engine.catalog.collections(db)) size += coll.store.dataSize();
  return size;
}

function listDatabases(ctx: CommandContext): Document {
  const nameOnly = optionalBoolean(ctx, 'nameOnly', false);
  const filter = optionalDocument(ctx, 'filter');
  let dbs: Document[] = ctx.instance.engine.catalog
    .databases()
    .sort()
    .map((name) => {
      if (nameOnly) return { name };
      const size = databaseSize(ctx, name);
      return { name, sizeOnDisk: size, empty: size === 0 };
    });
  if (filter && Object.keys(filter).length) {
    const q = new Query(filter, mingoOptions());
    dbs = dbs.filter((d) => q.test(d));
  }
  if (nameOnly) return { databases: dbs, ok: 1 };
  const totalSize = dbs.reduce((s, d) => s + Number(d.sizeOnDisk ?? 0), 0);
  return { databases: dbs, totalSize, totalSizeMb: Math.floor(totalSize / (1024 * 1024)), ok: 1 };
}

const INDEX_OPTIONS = new Set([
  'key',
  'name',
  'unique',
  'sparse',
  'partialFilterExpression',
  'expireAfterSeconds',
  'hidden',
  'v',
  'background',
  'collation',
  'ns',
  'wildcardProjection',
]);

/** mongod's word on options a wildcard index cannot have. */
function wildcardOptionError(option: string): CommandError {
  return new CommandError(ErrorCode.CannotCreateIndex, `Index type 'wildcard' does not support the '${option}' option`);
}

/**
 * The wildcard rules of an index spec, in mongod's order: wildcardProjection only on a '$**' term (and then a
 * non-empty, valid projection), the compound rules, then the options a wildcard index cannot have.
 */
function checkWildcardSpec(raw: Document, fields: IndexField[]): void {
  const term = fields.find((f) => f.wildcard);
  const projectionSpec: unknown = raw.wildcardProjection;
  let projection: WildcardProjection | undefined;
  if (projectionSpec !== undefined) {
    if (!term) throw new CommandError(ErrorCode.BadValue, "The field 'wildcardProjection' is only allowed in an 'wildcard' index");
    if (!isPlainObject(projectionSpec)) {
      throw new CommandError(ErrorCode.TypeMismatch, "The field 'wildcardProjection' must be a non-empty object");
    }
    if (term.path !== WILDCARD_SUFFIX) {
      throw new CommandError(ErrorCode.FailedToParse, `The field 'wildcardProjection' is only allowed when 'key' is {"$**": ±1}`);
    }
    if (Object.keys(projectionSpec).length === 0) {
      throw new CommandError(ErrorCode.FailedToParse, "The 'wildcardProjection' field can't be an empty object");
    }
    projection = parseWildcardProjection(projectionSpec, fields.length > 1);
  }
  if (!term) return;
  if (fields.length > 1) {
    const regular = fields.filter((f) => !f.wildcard).map((f) => f.path);
    const effective = projection ?? parseWildcardProjection({ _id: 0 }, true);
    checkCompoundWildcard(raw.key as Document, term.path, regular, projectionSpec as Document | undefined, effective);
  }
  if (raw.sparse === true) throw wildcardOptionError('sparse');
  if (raw.unique === true) throw wildcardOptionError('unique');
  if (raw.expireAfterSeconds !== undefined) {
    const cause = wildcardOptionError('expireAfterSeconds');
    throw new CommandError(ErrorCode.CannotCreateIndex, `cannot make a TTL index :: caused by :: ${cause.message}`);
  }
}

function normalizeIndexSpec(raw: Document): Document {
  for (const k of Object.keys(raw)) {
    if (!INDEX_OPTIONS.has(k)) {
      throw new CommandError(
        ErrorCode.InvalidOptions,
        `The field '${k}' is not valid for an index specification. Specification: ${JSON.stringify(raw)}`,
      );
    }
  }
  const fields = parseKeyPattern(raw.key, true);
  checkWildcardSpec(raw, fields);
  checkCollation(raw.collation);
  if (raw.sparse === true && raw.partialFilterExpression !== undefined) {
    throw new CommandError(ErrorCode.CannotCreateIndex, 'cannot mix "partialFilterExpression" and "sparse" options');
  }
  if (raw.partialFilterExpression !== undefined) {
    if (!isPlainObject(raw.partialFilterExpression))
      throw new CommandError(ErrorCode.TypeMismatch, 'partialFilterExpression must be an object');
    new Query(raw.partialFilterExpression, mingoOptions());
  }
  const key = raw.key as Document;
  const spec: Document = { v: 2, key, name: typeof raw.name === 'string' && raw.name ? raw.name : defaultIndexName(key) };
  for (const k of ['unique', 'sparse', 'partialFilterExpression', 'expireAfterSeconds', 'hidden', 'wildcardProjection'] as const) {
    if (
      raw[k] !== undefined &&
      !(k === 'unique' && raw[k] === false) &&
      !(k === 'sparse' && raw[k] === false) &&
      !(k === 'hidden' && raw[k] === false)
    ) {
      spec[k] = raw[k];
    }
  }
  return spec;
}

function sameIndexOptions(a: Document, b: Document): boolean {
  const pick = (s: Document): Document => ({
    unique: s.unique === true,
    sparse: s.sparse === true,
    partial: s.partialFilterExpression ?? null,
    ttl: s.expireAfterSeconds ?? null,
    projection: s.wildcardProjection ?? null,
  });
  return encodeValue(pick(a)) === encodeValue(pick(b));
}

function createIndexes(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const specs = documentArray(ctx, 'indexes').map(normalizeIndexSpec);
  if (specs.length === 0) throw new CommandError(ErrorCode.BadValue, 'Must specify at least one index to create');
  const existingColl = ctx.instance.collection(ctx.db, name);
  if (ctx.txn && existingColl && existingColl.docs.size > 0) {
    throw new CommandError(
      ErrorCode.OperationNotSupportedInTransaction,
      `Cannot create new indexes on non-empty collection ${ctx.db}.${name} in a multi-document transaction.`,
    );
  }
  const { coll, created } = ctx.instance.ensureCollection(ctx.db, name);
  const before = coll.indexes.length;
  const toCreate: Document[] = [];
  for (const spec of specs) {
    const existing: Document[] = [...coll.indexes.map((i) => i.spec), ...toCreate];
    const sameKey = (other: Document): boolean => encodeValue(other.key) === encodeValue(spec.key);
    const sameName = existing.find((other) => other.name === spec.name);
    if (sameName) {
      if (sameKey(sameName) && sameIndexOptions(sameName, spec)) continue;
      throw new CommandError(
        ErrorCode.IndexKeySpecsConflict,
        `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(sameName)}`,
      );
    }
    // Indexes on the same keys may coexist only when their partial filters (or wildcard projections) differ.
    const twin = existing.find(
      (other) =>
        sameKey(other) &&
        encodeValue(other.partialFilterExpression ?? null) === encodeValue(spec.partialFilterExpression ?? null) &&
        encodeValue(other.wildcardProjection ?? null) === encodeValue(spec.wildcardProjection ?? null),
    );
    if (twin) {
      throw new CommandError(
        ErrorCode.IndexOptionsConflict,
        sameIndexOptions(twin, spec)
          ? `Index already exists with a different name: ${String(twin.name)}`
          : `An existing index has the same key pattern but different options. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(twin)}`,
      );
    }
    toCreate.push(spec);
  }
  // Build every index first so a duplicate-key failure leaves the catalog untouched.
  for (const spec of toCreate) {
    const probe = new Index(spec);
    const scratch = new Map<string, string>();
    if (probe.unique) {
      for (const [idKey, doc] of coll.docs) {
        for (const k of probe.keysFor(doc).keys) {
          const other = scratch.get(k.key);
          if (other !== undefined && other !== idKey) throw probe.duplicateKeyError(coll.ns, k.values);
          scratch.set(k.key, idKey);
        }
      }
    } else {
      for (const doc of coll.docs.values()) probe.keysFor(doc);
    }
  }
  if (toCreate.length) ctx.instance.engine.apply(toCreate.map((spec) => ({ op: 'createIndex' as const, ns: coll.ns, spec })));
  const reply: Document = { numIndexesBefore: before, numIndexesAfter: coll.indexes.length, createdCollectionAutomatically: created };
  if (toCreate.length === 0) reply.note = 'all indexes already exist';
  reply.ok = 1;
  return reply;
}

function requireCollection(ctx: CommandContext, name: string): Collection {
  const coll = ctx.instance.collection(ctx.db, name);
  if (!coll) throw new CommandError(ErrorCode.NamespaceNotFound, `ns does not exist: ${ctx.db}.${name}`);
  return coll;
}

function listIndexes(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const coll = requireCollection(ctx, name);
  const cursor = optionalDocument(ctx, 'cursor');
  const batch = ctx.instance.cursors.open(
    `${ctx.db}.$cmd.listIndexes.${name}`,
    coll.indexes.map((i) => i.spec),
    {
      batchSize: cursor?.batchSize === undefined ? undefined : Number(cursor.batchSize),
      sessionKey: ctx.session?.key,
    },
  );
  return { ...batch, ok: 1 };
}

function dropIndexes(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const coll = requireCollection(ctx, name);
  const nIndexesWas = coll.indexes.length;
  const which = ctx.body.index;
  let names: string[];
  if (which === '*') {
    names = coll.indexes.filter((i) => !i.isIdIndex).map((i) => i.name);
  } else if (typeof which === 'string') {
    names = [which];
  } else if (Array.isArray(which)) {
    names = which.map(String);
  } else if (isPlainObject(which)) {
    const found = coll.indexes.find((i) => encodeValue(i.keyPattern) === encodeValue(which));
    if (!found) throw new CommandError(ErrorCode.IndexNotFound, `can't find index with key: ${JSON.stringify(which)}`);
    names = [found.name];
  } else {
    throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'dropIndexes.index' is the wrong type");
  }
  for (const n of names) {
    if (n === '_id_') throw new CommandError(ErrorCode.InvalidOptions, 'cannot drop _id index');
    if (!coll.index(n)) throw new CommandError(ErrorCode.IndexNotFound, `index not found with name [${n}]`);
  }
  if (names.length) ctx.instance.engine.apply(names.map((n) => ({ op: 'dropIndex' as const, ns: coll.ns, name: n })));
  return { nIndexesWas, ok: 1 };
}

function renameCollection(ctx: CommandContext): Document {
  const from = ctx.body.renameCollection;
  const to = ctx.body.to;
  if (typeof from !== 'string' || typeof to !== 'string')
    throw new CommandError(ErrorCode.TypeMismatch, 'renameCollection and to must be namespace strings');
  const dst = splitNamespace(to);
  validateCollectionName(dst.db, dst.coll);
  if (!ctx.instance.engine.catalog.get(from)) throw new CommandError(ErrorCode.NamespaceNotFound, 'source namespace does not exist');
  if (from === to) throw new CommandError(ErrorCode.IllegalOperation, "Can't rename a collection to itself");
  if (ctx.instance.engine.catalog.get(to)) {
    if (!optionalBoolean(ctx, 'dropTarget', false)) throw new CommandError(ErrorCode.NamespaceExists, 'target namespace exists');
  }
  abortTransactionsOn(ctx, (n) => n === from || n === to);
  ctx.instance.cursors.killForNamespace(from);
  ctx.instance.engine.apply([{ op: 'renameCollection', from, to }]);
  return { ok: 1 };
}

function collMod(ctx: CommandContext): Document {
  const name = collectionArg(ctx);
  const coll = requireCollection(ctx, name);
  const reply: Document = {};
  const options: Document = { ...coll.options };
  const indexSpecs: Document[] = [];
  const index = optionalDocument(ctx, 'index');
  if (index) {
    const target =
      typeof index.name === 'string'
        ? coll.index(index.name)
        : coll.indexes.find((i) => encodeValue(i.keyPattern) === encodeValue(index.keyPattern));
    if (!target) throw new CommandError(ErrorCode.IndexNotFound, 'cannot find index for collMod');
    const spec: Document = { ...target.spec };
    if (index.hidden !== undefined) {
      reply.hidden_old = target.spec.hidden === true;
      reply.hidden_new = index.hidden === true;
      if (index.hidden === true) spec.hidden = true;
      else delete spec.hidden;
    }
    if (index.expireAfterSeconds !== undefined) {
      if (target.wildcard) {
        throw new CommandError(ErrorCode.InvalidOptions, "Index type 'wildcard' does not support the 'expireAfterSeconds' option");
      }
      reply.expireAfterSeconds_old = target.spec.expireAfterSeconds;
      reply.expireAfterSeconds_new = index.expireAfterSeconds;
      spec.expireAfterSeconds = index.expireAfterSeconds;
    }
    indexSpecs.push(spec);
  }
  for (const k of ['validator', 'validationLevel', 'validationAction'] as const) {
    if (ctx.body[k] !== undefined) options[k] = ctx.body[k];
  }
  if (isPlainObject(options.validator) && '$jsonSchema' in options.validator) {
    throw new CommandError(ErrorCode.CommandNotSupported, '$jsonSchema validators are not supported by the embedded server');
  }
  ctx.instance.engine.apply([{ op: 'collMod', ns: coll.ns, options, indexSpecs }]);
  resetValidator(coll);
  reply.ok = 1;
  return reply;
}

function dbStats(ctx: CommandContext): Document {
  const colls = ctx.instance.engine.catalog.collections(ctx.db);
  const objects = colls.reduce((s, c) => s + c.docs.size, 0);
  const dataSize = databaseSize(ctx, ctx.db);
  const scale = Number(ctx.body.scale ?? 1) || 1;
  return {
    db: ctx.db,
    collections: colls.length,
    views: 0,
    objects,
    avgObjSize: objects ? dataSize / objects : 0,
    dataSize: dataSize / scale,
    storageSize: dataSize / scale,
    indexes: colls.reduce((s, c) => s + c.indexes.length, 0),
    indexSize: 0,
    totalSize: dataSize / scale,
    scaleFactor: scale,
    fsUsedSize: 0,
    fsTotalSize: 0,
    ok: 1,
  };
}

export const catalogCommands: Record<string, CommandDefinition> = {
  create: { handler: create, inTransaction: true },
  drop: { handler: drop },
  dropDatabase: { handler: dropDatabase },
  listCollections: { handler: listCollections },
  listDatabases: { handler: listDatabases, adminOnly: true },
  createIndexes: { handler: createIndexes, inTransaction: true },
  listIndexes: { handler: listIndexes },
  dropIndexes: { handler: dropIndexes },
  deleteIndexes: { handler: dropIndexes },
  renameCollection: { handler: renameCollection, adminOnly: true },
  collMod: { handler: collMod },
  dbStats: { handler: dbStats },
};
