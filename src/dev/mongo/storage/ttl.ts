/**
 * TTL indexes: documents whose indexed date (the earliest one, for arrays)
 * is older than expireAfterSeconds are deleted by a periodic pass, as
 * mongod's TTL monitor does every 60 seconds.
 */
import type { Document } from 'bson';
import { invert } from '../bson/keystring.js';
import { Rank } from '../bson/values.js';
import { collectPathValues } from '../query/paths.js';
import { docLockKey, type TransactionManager } from '../txn/manager.js';
import { prefixSuccessor } from './record-keys.js';
import type { StorageEngine } from './engine.js';
import type { StorageOp } from './ops.js';

function earliestDate(doc: Document, path: string): number | undefined {
  let min: number | undefined;
  for (const v of collectPathValues(doc, path).values) {
    if (v instanceof Date && (min === undefined || v.getTime() < min)) min = v.getTime();
  }
  return min;
}

/** Deletes expired documents; returns how many. Documents a transaction holds are left for the next pass. */
export function expireDocuments(engine: StorageEngine, txns: TransactionManager, now = Date.now()): number {
  const ops: StorageOp[] = [];
  for (const coll of engine.catalog.allCollections()) {
    for (const index of coll.indexes) {
      const seconds = index.spec.expireAfterSeconds;
      if (typeof seconds !== 'number' || index.fields.length !== 1 || index.wildcard) continue;
      const field = index.fields[0]!;
      const cutoff = now - seconds * 1000;
      // Every key of the Date type bracket, whichever the index direction.
      const bracket = String.fromCharCode(Rank.Date);
      const prefix = field.direction === 1 ? bracket : invert(bracket);
      const seen = new Set<string>();
      for (const entry of index.tree.range(prefix, prefixSuccessor(prefix))) {
        if (seen.has(entry.id)) continue;
        seen.add(entry.id);
        const doc = coll.docs.get(entry.id);
        const date = doc ? earliestDate(doc, field.path) : undefined;
        if (!doc || date === undefined || date > cutoff) continue;
        if (txns.isLocked(docLockKey(coll.ns, entry.id))) continue;
        ops.push({ op: 'delete', ns: coll.ns, id: doc._id });
      }
    }
  }
  if (ops.length) engine.apply(ops);
  return ops.length;
}
