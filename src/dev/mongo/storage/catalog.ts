/**
 * Databases and their collections. A database exists while it has at least
 * one collection, as in mongod.
 */
import type { Document, UUID } from 'bson';
import { CommandError, ErrorCode } from '../errors.js';
import { Collection } from './collection.js';
import type { StorageBackend } from './engine.js';

export function splitNamespace(ns: string): { db: string; coll: string } {
  const dot = ns.indexOf('.');
  if (dot <= 0) throw new CommandError(ErrorCode.InvalidNamespace, `Invalid namespace specified '${ns}'`);
  return { db: ns.slice(0, dot), coll: ns.slice(dot + 1) };
}

export function validateCollectionName(db: string, name: unknown): string {
  if (typeof name !== 'string') {
    throw new CommandError(ErrorCode.InvalidNamespace, `collection name has invalid type ${typeof name}`);
  }
  if (name.length === 0 || name.includes('\u0000') || name.includes('$') || name.startsWith('.')) {
    throw new CommandError(ErrorCode.InvalidNamespace, `Invalid collection name: ${db}.${name}`);
  }
  return name;
}

export function validateDatabaseName(db: unknown): string {
  if (typeof db !== 'string' || db.length === 0 || /[/\\. "$\u0000]/.test(db) || db.length > 63) {
    throw new CommandError(ErrorCode.InvalidNamespace, `Invalid database name: '${String(db)}'`);
  }
  return db;
}

export class Catalog {
  private readonly dbs = new Map<string, Map<string, Collection>>();

  constructor(private readonly backend: StorageBackend) {}

  /** Adds a collection loaded from the backend. */
  restore(coll: Collection): void {
    let colls = this.dbs.get(coll.db);
    if (!colls) {
      colls = new Map();
      this.dbs.set(coll.db, colls);
    }
    colls.set(coll.name, coll);
  }

  /** Replaces everything with the backend's committed collections. */
  reload(collections: Collection[]): void {
    this.dbs.clear();
    for (const coll of collections) this.restore(coll);
  }

  get(ns: string): Collection | undefined {
    const { db, coll } = splitNamespace(ns);
    return this.dbs.get(db)?.get(coll);
  }

  getIn(db: string, name: string): Collection | undefined {
    return this.dbs.get(db)?.get(name);
  }

  create(db: string, name: string, options: Document = {}, uuid?: UUID): Collection {
    let colls = this.dbs.get(db);
    if (!colls) {
      colls = new Map();
      this.dbs.set(db, colls);
    }
    if (colls.has(name)) throw new CommandError(ErrorCode.NamespaceExists, `Collection ${db}.${name} already exists.`);
    const coll = new Collection(db, name, options, uuid, this.backend.newCollectionStore());
    coll.store.saveMetadata(coll);
    colls.set(name, coll);
    return coll;
  }

  /** Detaches the collection (its storage is the caller's to destroy). */
  drop(db: string, name: string): Collection | undefined {
    const colls = this.dbs.get(db);
    const coll = colls?.get(name);
    if (!colls || !coll) return undefined;
    colls.delete(name);
    if (colls.size === 0) this.dbs.delete(db);
    return coll;
  }

  /** The collections the database had (their storage is the caller's to destroy). */
  dropDatabase(db: string): Collection[] {
    const colls = [...(this.dbs.get(db)?.values() ?? [])];
    this.dbs.delete(db);
    return colls;
  }

  rename(from: { db: string; coll: string }, to: { db: string; coll: string }): void {
    const coll = this.drop(from.db, from.coll);
    if (!coll) throw new CommandError(ErrorCode.NamespaceNotFound, 'source namespace does not exist');
    let colls = this.dbs.get(to.db);
    if (!colls) {
      colls = new Map();
      this.dbs.set(to.db, colls);
    }
    // Records are keyed by the collection's storage number, not its name: a rename (across databases too) is a relabel.
    coll.db = to.db;
    coll.name = to.coll;
    colls.set(to.coll, coll);
    coll.store.saveMetadata(coll);
  }

  databases(): string[] {
    return [...this.dbs.keys()];
  }

  collections(db: string): Collection[] {
    return [...(this.dbs.get(db)?.values() ?? [])];
  }

  allCollections(): Collection[] {
    return [...this.dbs.values()].flatMap((m) => [...m.values()]);
  }
}
