/**
 * Databases and their collections. A database exists while it has at least
 * one collection, as in mongod.
 */
import type { Document, UUID } from 'bson';
import { CommandError, ErrorCode } from '../errors.js';
import { Collection } from './collection.js';
import { Index } from './index.js';

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
    const coll = new Collection(db, name, options, uuid);
    colls.set(name, coll);
    return coll;
  }

  drop(db: string, name: string): Collection | undefined {
    const colls = this.dbs.get(db);
    const coll = colls?.get(name);
    if (!colls || !coll) return undefined;
    colls.delete(name);
    if (colls.size === 0) this.dbs.delete(db);
    return coll;
  }

  dropDatabase(db: string): boolean {
    return this.dbs.delete(db);
  }

  rename(from: { db: string; coll: string }, to: { db: string; coll: string }): void {
    const coll = this.drop(from.db, from.coll);
    if (!coll) throw new CommandError(ErrorCode.NamespaceNotFound, 'source namespace does not exist');
    let colls = this.dbs.get(to.db);
    if (!colls) {
      colls = new Map();
      this.dbs.set(to.db, colls);
    }
    if (to.db !== from.db) {
      // Collections carry their database name; a cross-database rename rebuilds it.
      const moved = new Collection(to.db, to.coll, coll.options, coll.uuid);
      for (const index of coll.indexes) if (!index.isIdIndex) moved.buildIndex(new Index(index.spec));
      for (const [id, doc] of coll.docs) moved.insertDoc(id, doc);
      colls.set(to.coll, moved);
      return;
    }
    coll.name = to.coll;
    colls.set(to.coll, coll);
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
