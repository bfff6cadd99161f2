/**
 * Applying an update specification (operators, replacement or pipeline) to
 * a document, and building the document an upsert inserts. The operators
 * themselves are mingo's; this module adds what is specific to mongod's
 * update command: $setOnInsert, _id immutability, and upsert seeding from
 * the query's equality predicates.
 */
import { ObjectId, type Document } from 'bson';
import { Aggregator } from 'mingo/aggregator';
import { update as mingoUpdate } from 'mingo/updater';
import { cloneDeep } from 'mingo/util';
import { encodeValue } from '../bson/keystring.js';
import { formatValue } from '../bson/format.js';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { extractPredicates } from '../query/bounds.js';
import { mingoOptions } from '../query/mingo-context.js';
import { setPath } from '../query/paths.js';

export type UpdateSpec =
  { kind: 'replacement'; doc: Document } | { kind: 'operators'; ops: Document } | { kind: 'pipeline'; stages: Document[] };

const UPDATE_OPERATORS = new Set([
  '$set',
  '$unset',
  '$inc',
  '$mul',
  '$rename',
  '$min',
  '$max',
  '$currentDate',
  '$push',
  '$addToSet',
  '$pop',
  '$pull',
  '$pullAll',
  '$bit',
  '$setOnInsert',
]);

const PIPELINE_UPDATE_STAGES = new Set(['$addFields', '$set', '$project', '$unset', '$replaceRoot', '$replaceWith']);

export function parseUpdate(u: unknown): UpdateSpec {
  if (Array.isArray(u)) {
    for (const stage of u) {
      const name = isPlainObject(stage) ? Object.keys(stage)[0] : undefined;
      if (!name || !PIPELINE_UPDATE_STAGES.has(name)) {
        throw new CommandError(ErrorCode.InvalidOptions, `${name ?? 'stage'} is not allowed to be used within an update`);
      }
    }
    return { kind: 'pipeline', stages: u as Document[] };
  }
  if (!isPlainObject(u)) throw new CommandError(ErrorCode.FailedToParse, 'Update argument must be either an object or an array');
  const keys = Object.keys(u);
  if (keys.length > 0 && keys[0]!.startsWith('$')) {
    for (const k of keys) {
      if (!UPDATE_OPERATORS.has(k)) {
        throw new CommandError(
          ErrorCode.FailedToParse,
          `Unknown modifier: ${k}. Expected a valid update modifier or pipeline-style update specified as an array`,
        );
      }
      if (!isPlainObject(u[k])) {
        throw new CommandError(ErrorCode.FailedToParse, `Modifiers operate on fields but we found type ${typeof u[k]} instead.`);
      }
    }
    return { kind: 'operators', ops: u };
  }
  for (const k of keys) {
    if (k.startsWith('$')) {
      throw new CommandError(
        ErrorCode.DollarPrefixedFieldName,
        `The dollar ($) prefixed field '${k}' in '${k}' is not allowed in the context of an update's replacement document.`,
      );
    }
  }
  return { kind: 'replacement', doc: u };
}

export interface ApplyOptions {
  query: Document;
  arrayFilters?: Document[];
  /** The update runs for an upsert's insert ($setOnInsert applies). */
  inserting: boolean;
  variables?: Document;
}

function idFirst(doc: Document): Document {
  if (!('_id' in doc) || Object.keys(doc)[0] === '_id') return doc;
  const { _id, ...rest } = doc;
  return { _id, ...rest };
}

function checkIdUnchanged(before: Document, after: Document): void {
  if (!('_id' in before)) return;
  if (!('_id' in after) || encodeValue(before._id) !== encodeValue(after._id)) {
    throw new CommandError(ErrorCode.ImmutableField, `Performing an update on the path '_id' would modify the immutable field '_id'`);
  }
}

function mingoFailure(err: unknown): CommandError {
  if (err instanceof CommandError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/immutable field/i.test(message)) return new CommandError(ErrorCode.ImmutableField, message);
  if (/conflict/i.test(message)) return new CommandError(ErrorCode.ConflictingUpdateOperators, message);
  return new CommandError(ErrorCode.BadValue, message);
}

/** Whether an update path uses the positional `$` (as in "grades.$.score"), which needs the query. */
function usesPositionalOperator(ops: Document): boolean {
  return Object.values(ops).some((fields) => isPlainObject(fields) && Object.keys(fields).some((path) => /(^|\.)\$(\.|$)/.test(path)));
}

/**
 * Where an operator update may change a document: for each path it names (and $rename's targets), the path up to its
 * first positional ($, $[], $[id]) or numeric component, and whether it was cut there (then anything below may
 * change). Undefined when it cannot be said (a replacement, a pipeline, a path that starts with such a component).
 */
export interface UpdateTarget {
  parts: string[];
  cut: boolean;
}

export function updateTargets(spec: UpdateSpec): UpdateTarget[] | undefined {
  if (spec.kind !== 'operators') return undefined;
  const out: UpdateTarget[] = [];
  for (const [operator, fields] of Object.entries(spec.ops)) {
    if (!isPlainObject(fields)) return undefined;
    for (const [path, value] of Object.entries(fields)) {
      const paths = operator === '$rename' && typeof value === 'string' ? [path, value] : [path];
      for (const p of paths) {
        const parts = p.split('.');
        const at = parts.findIndex((part) => part.startsWith('$') || /^\d+$/.test(part));
        if (at === 0) return undefined;
        out.push(at < 0 ? { parts, cut: false } : { parts: parts.slice(0, at), cut: true });
      }
    }
  }
  return out;
}

/** The dotted paths of update targets, for index maintenance. */
export function targetPaths(targets: readonly UpdateTarget[]): string[] {
  return [...new Set(targets.map((t) => t.parts.join('.')))];
}

/**
 * A copy of `doc` that an operator update may modify in place without touching `doc`: the objects along each
 * target path are copied (shallow), the value at a target is copied shallow (an array that $push or $pull change)
 * or deep when the path was cut there or runs on through an array (elements below may change); everything else
 * is shared. Documents are immutable once stored, so sharing is safe, and an update of one field of a large
 * document no longer copies all of it.
 */
function copyForUpdate(doc: Document, targets: readonly UpdateTarget[]): Document {
  const root: Document = { ...doc };
  /** Containers copied shallow (their children still shared) and deep (wholly new). */
  const shallow = new Set<unknown>([root]);
  const deep = new Set<unknown>();
  for (const { parts, cut } of targets) {
    let parent: Document = root;
    for (let i = 0; i < parts.length; i++) {
      const key = parts[i]!;
      const value: unknown = parent[key];
      if (!Array.isArray(value) && !isPlainObject(value)) break;
      if (deep.has(value)) break;
      const last = i === parts.length - 1;
      // Below a cut, or beyond an array in the middle of a path, elements may change: a deep copy.
      if ((last && cut) || (!last && Array.isArray(value))) {
        const copy = cloneDeep(value);
        parent[key] = copy;
        deep.add(copy);
        break;
      }
      let copy = value;
      if (!shallow.has(value)) {
        copy = Array.isArray(value) ? value.slice() : { ...value };
        parent[key] = copy;
        shallow.add(copy);
      }
      if (last) break;
      parent = copy as Document;
    }
  }
  return root;
}

/**
 * Whether an operator update left the document as it was: its values at every target path are the same (the
 * update can change nothing else). Cheaper than comparing whole documents.
 */
export function unchangedAt(before: Document, after: Document, targets: readonly UpdateTarget[]): boolean {
  const at = (doc: Document, parts: string[]): unknown => {
    let value: unknown = doc;
    for (const part of parts) {
      if (!isPlainObject(value)) return value;
      value = value[part];
    }
    return value;
  };
  for (const { parts } of targets) {
    const a = at(before, parts);
    const b = at(after, parts);
    if (a === b) continue;
    if (a === undefined || b === undefined || encodeValue(a) !== encodeValue(b)) return false;
  }
  return true;
}

/**
 * An update that is only a `$set` of plain dotted paths through sub-documents (no component numeric or starting
 * with `$`, no array or other value in the way, no path inside another): what the ledger's claims and most
 * updates are. Applied here without mingo, whose update builds an operator context on every call (a sixth of the
 * engine's CPU time under a stream of claims). The result is mingo's: a field that exists keeps its place, a new
 * one is appended in the order given, and values are copied deep. Returns false, having changed nothing, when the
 * update is not of that kind.
 */
function setPlainPaths(next: Document, ops: Document): boolean {
  const operators = Object.keys(ops);
  if (operators.length !== 1 || operators[0] !== '$set') return false;
  const fields = ops.$set as Document;
  const paths = Object.keys(fields);
  if (paths.length === 0) return false;
  const split: string[][] = [];
  for (const path of paths) {
    const parts = path.split('.');
    let parent: unknown = next;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part === '' || part.startsWith('$') || /^\d+$/.test(part)) return false;
      if (i < parts.length - 1) {
        parent = (parent as Document)[part];
        if (parent === undefined) break;
        if (!isPlainObject(parent)) return false;
      }
    }
    split.push(parts);
  }
  for (const a of paths) for (const b of paths) if (a !== b && b.startsWith(`${a}.`)) return false;
  for (let p = 0; p < paths.length; p++) {
    const parts = split[p]!;
    let parent = next;
    for (let i = 0; i < parts.length - 1; i++) {
      const part = parts[i]!;
      // Objects along the path are this update's own copies (copyForUpdate) or new ones.
      if (parent[part] === undefined) parent[part] = {};
      parent = parent[part] as Document;
    }
    const value: unknown = fields[paths[p]!];
    parent[parts[parts.length - 1]!] = value !== null && typeof value === 'object' ? cloneDeep(value) : value;
  }
  return true;
}

/** A new document; the input is never modified. */
export function applyUpdate(doc: Document, spec: UpdateSpec, opts: ApplyOptions): Document {
  switch (spec.kind) {
    case 'replacement': {
      const next: Document = { ...spec.doc };
      if ('_id' in next) {
        if ('_id' in doc && encodeValue(next._id) !== encodeValue(doc._id)) {
          throw new CommandError(
            ErrorCode.ImmutableField,
            `After applying the update, the (immutable) field '_id' was found to have been altered to _id: ${formatValue(next._id)}`,
          );
        }
      }
      if ('_id' in doc) next._id = doc._id;
      return idFirst(next);
    }
    case 'operators': {
      const targets = updateTargets(spec);
      const next = targets ? copyForUpdate(doc, targets) : (cloneDeep(doc) as Document);
      if (setPlainPaths(next, spec.ops)) {
        checkIdUnchanged(doc, next);
        return idFirst(next);
      }
      const ops: Document = { ...spec.ops };
      const onInsert = ops.$setOnInsert as Document | undefined;
      delete ops.$setOnInsert;
      try {
        if (Object.keys(ops).length) {
          // mingo applies an update only when `condition` matches, compiling it on every call. The caller has
          // matched the document already, so the condition is passed only where mingo needs it: to resolve the
          // positional $ of an existing document. (Passing it always made an upsert whose seed cannot satisfy
          // an $or drop its $set, and made updateMany with a large $in quadratic.)
          const condition = !opts.inserting && usesPositionalOperator(ops) ? opts.query : undefined;
          mingoUpdate(next, ops, opts.arrayFilters, condition, {
            cloneMode: 'deep',
            queryOptions: mingoOptions({ variables: opts.variables }),
          });
        }
        if (opts.inserting && onInsert && Object.keys(onInsert).length) {
          mingoUpdate(next, { $set: onInsert }, undefined, undefined, { cloneMode: 'deep', queryOptions: mingoOptions() });
        }
      } catch (err) {
        throw mingoFailure(err);
      }
      checkIdUnchanged(doc, next);
      return idFirst(next);
    }
    case 'pipeline': {
      let out: Document[];
      try {
        out = new Aggregator(spec.stages, mingoOptions({ variables: opts.variables })).run([cloneDeep(doc) as Document]);
      } catch (err) {
        throw mingoFailure(err);
      }
      const next = out[0] ?? {};
      if (!('_id' in next) && '_id' in doc) next._id = doc._id;
      checkIdUnchanged(doc, next);
      return idFirst(next);
    }
  }
}

/**
 * The document an upsert starts from: equality predicates of the query
 * (mongod ignores operators other than $eq there), then the update.
 */
export function upsertDocument(query: Document, spec: UpdateSpec, opts: Omit<ApplyOptions, 'inserting'>): Document {
  let seed: Document = {};
  if (spec.kind !== 'replacement') {
    for (const [path, preds] of extractPredicates(query)) {
      const eq = preds.find((p) => p.op === '$eq');
      if (eq) setPath(seed, path, cloneDeep(eq.value));
    }
  } else if (Object.prototype.hasOwnProperty.call(query, '_id') && !isPlainObject(query._id)) {
    seed = { _id: query._id };
  } else if (isPlainObject(query._id) && Object.keys(query._id).length === 1 && '$eq' in query._id) {
    seed = { _id: query._id.$eq };
  }
  let doc: Document;
  if (spec.kind === 'replacement') {
    doc = { ...seed, ...spec.doc };
  } else {
    // The seed has no _id check: an upsert may set _id through $set or $setOnInsert.
    const base = seed;
    doc = applyUpdate(base, spec, { ...opts, inserting: true });
    if ('_id' in seed && encodeValue(seed._id) !== encodeValue(doc._id)) {
      throw new CommandError(ErrorCode.ImmutableField, `Performing an update on the path '_id' would modify the immutable field '_id'`);
    }
  }
  if (!('_id' in doc)) doc = { _id: new ObjectId(), ...doc };
  return idFirst(doc);
}
