/**
 * Write commands: insert, update, delete. Each statement is atomic on its
 * own (outside a transaction each one commits by itself, as in mongod);
 * ordered batches stop at the first error, unordered ones carry on and
 * report every error in writeErrors.
 */
import type { Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { compileFilter } from '../query/filter.js';
import { runQuery } from '../query/planner.js';
import { idKeyOf, type Collection } from '../storage/collection.js';
import { LockWait } from '../txn/manager.js';
import { applyUpdate, parseUpdate, targetPaths, unchangedAt, updateTargets, upsertDocument, type UpdateSpec } from '../write/update.js';
import { checkSize, checkValidator, prepareForInsert } from '../write/validation.js';
import {
  collectionArg,
  documentArray,
  namespaceOf,
  optionalBoolean,
  optionalDocument,
  type CommandContext,
  type CommandDefinition,
} from './context.js';
import { filterOptions, queryRequest } from './query-support.js';

/**
 * Runs a statement, waiting out transactions that hold its locks. `attempt`
 * must be safe to run again from scratch (nothing was applied when it threw).
 */
export async function retryOnLock<T>(attempt: () => T): Promise<T> {
  for (;;) {
    try {
      return attempt();
    } catch (err) {
      if (!(err instanceof LockWait)) throw err;
      await err.until;
    }
  }
}

/** Errors that fail the whole command rather than one statement. */
function isCommandLevel(err: CommandError, ctx: CommandContext): boolean {
  return ctx.txn !== undefined && err.code === ErrorCode.WriteConflict;
}

interface BatchResult {
  writeErrors: Document[];
}

async function runStatements<T>(
  ctx: CommandContext,
  items: T[],
  ordered: boolean,
  run: (item: T, index: number) => Promise<void>,
): Promise<BatchResult> {
  const writeErrors: Document[] = [];
  for (let i = 0; i < items.length; i++) {
    try {
      await run(items[i]!, i);
    } catch (err) {
      if (!(err instanceof CommandError) || isCommandLevel(err, ctx)) throw err;
      writeErrors.push(err.toWriteError(i));
      if (ordered) break;
    }
  }
  return { writeErrors };
}

function withErrors(reply: Document, result: BatchResult): Document {
  if (result.writeErrors.length) reply.writeErrors = result.writeErrors;
  reply.ok = 1;
  return reply;
}

async function insert(ctx: CommandContext): Promise<Document> {
  const name = collectionArg(ctx);
  const docs = documentArray(ctx, 'documents');
  const ordered = optionalBoolean(ctx, 'ordered', true);
  const bypass = optionalBoolean(ctx, 'bypassDocumentValidation', false);
  const writer = ctx.instance.writer(ctx.txn);
  let coll: Collection | undefined;
  let n = 0;
  const result = await runStatements(ctx, docs, ordered, async (raw) => {
    const doc = prepareForInsert(raw);
    coll ??= ctx.instance.ensureCollection(ctx.db, name).coll;
    const target = coll;
    if (!bypass) checkValidator(target, doc);
    await retryOnLock(() => writer.insert(target, doc));
    n++;
  });
  return withErrors({ n }, result);
}

interface UpdateStatement {
  q: Document;
  spec: UpdateSpec;
  multi: boolean;
  upsert: boolean;
  arrayFilters: Document[] | undefined;
  hint: unknown;
  variables: Document | undefined;
  collation: unknown;
}

function parseUpdateStatement(raw: Document, variables: Document | undefined): UpdateStatement {
  if (!isPlainObject(raw.q))
    throw new CommandError(ErrorCode.FailedToParse, "BSON field 'update.updates.q' is missing but a required field");
  if (raw.u === undefined) throw new CommandError(ErrorCode.FailedToParse, "BSON field 'update.updates.u' is missing but a required field");
  const spec = parseUpdate(raw.u);
  const multi = raw.multi === true;
  if (multi && spec.kind === 'replacement') {
    throw new CommandError(ErrorCode.FailedToParse, 'multi update is not supported for replacement-style update');
  }
  const arrayFilters = raw.arrayFilters as Document[] | undefined;
  if (arrayFilters !== undefined && !Array.isArray(arrayFilters)) {
    throw new CommandError(ErrorCode.TypeMismatch, "BSON field 'update.updates.arrayFilters' is the wrong type, expected type 'array'");
  }
  return {
    q: raw.q,
    spec,
    multi,
    upsert: raw.upsert === true,
    arrayFilters,
    hint: raw.hint,
    variables: isPlainObject(raw.c) ? { ...variables, ...raw.c } : variables,
    collation: raw.collation,
  };
}

export interface UpdateOutcome {
  n: number;
  nModified: number;
  upsertedId?: unknown;
}

/**
 * One update statement. Documents are updated one at a time; when a
 * transaction holds a document's lock, the statement waits, re-reads that
 * document and re-checks the filter before updating it.
 */
async function executeUpdate(ctx: CommandContext, name: string, st: UpdateStatement, bypass: boolean): Promise<UpdateOutcome> {
  const ns = namespaceOf(ctx, name);
  const writer = ctx.instance.writer(ctx.txn);
  const matcher = compileFilter(st.q, filterOptions(ctx, st.variables));
  const applyOptions = { query: st.q, arrayFilters: st.arrayFilters, inserting: false, variables: st.variables };
  const targets = (): Document[] => {
    const coll = ctx.instance.collection(ctx.db, name);
    if (!coll) return [];
    return runQuery(
      queryRequest(ctx, ns, coll, {
        filter: st.q,
        limit: st.multi ? 0 : 1,
        hint: st.hint,
        collation: st.collation,
        variables: st.variables,
      }),
    ).docs;
  };
  const found = targets();
  if (found.length === 0) {
    if (!st.upsert) return { n: 0, nModified: 0 };
    // Re-run the whole statement after a wait: a matching document may exist by then.
    for (;;) {
      const doc = upsertDocument(st.q, st.spec, applyOptions);
      checkSize(doc);
      const { coll } = ctx.instance.ensureCollection(ctx.db, name);
      if (!bypass) checkValidator(coll, doc);
      try {
        writer.insert(coll, doc);
        return { n: 1, nModified: 0, upsertedId: doc._id };
      } catch (err) {
        if (!(err instanceof LockWait)) throw err;
        await err.until;
        if (targets().length) return executeUpdate(ctx, name, { ...st, upsert: false }, bypass);
      }
    }
  }
  let n = 0;
  let nModified = 0;
  // Where an operator update can change a document: the no-op check and index maintenance look there only.
  const updated = updateTargets(st.spec);
  const changed = updated && targetPaths(updated);
  for (const original of found) {
    let current: Document | undefined = original;
    // The query just matched `original`; only a document re-read after a lock wait needs the filter again.
    // (Re-checking every match made updateMany with a large $in quadratic: mingo's $in is a linear scan.)
    let recheck = false;
    for (;;) {
      const coll = ctx.instance.collection(ctx.db, name);
      if (!coll || !current || (recheck && matcher && !matcher(current))) break;
      const next = applyUpdate(current, st.spec, applyOptions);
      n++;
      if (updated ? unchangedAt(current, next, updated) : encodeValue(next) === encodeValue(current)) break;
      checkSize(next, true);
      if (!bypass) checkValidator(coll, next);
      try {
        writer.replace(coll, current, next, changed);
        nModified++;
        break;
      } catch (err) {
        if (!(err instanceof LockWait)) throw err;
        n--;
        await err.until;
        current = ctx.instance.source(ns, ctx.instance.collection(ctx.db, name), ctx.txn).get(idKeyOf(original));
        recheck = true;
      }
    }
  }
  return { n, nModified };
}

async function update(ctx: CommandContext): Promise<Document> {
  const name = collectionArg(ctx);
  const statements = documentArray(ctx, 'updates');
  const ordered = optionalBoolean(ctx, 'ordered', true);
  const bypass = optionalBoolean(ctx, 'bypassDocumentValidation', false);
  const variables = optionalDocument(ctx, 'let');
  let n = 0;
  let nModified = 0;
  const upserted: Document[] = [];
  const result = await runStatements(ctx, statements, ordered, async (raw, index) => {
    const outcome = await executeUpdate(ctx, name, parseUpdateStatement(raw, variables), bypass);
    n += outcome.n;
    nModified += outcome.nModified;
    if (outcome.upsertedId !== undefined) upserted.push({ index, _id: outcome.upsertedId });
  });
  const reply: Document = { n, nModified };
  if (upserted.length) reply.upserted = upserted;
  return withErrors(reply, result);
}

async function remove(ctx: CommandContext): Promise<Document> {
  const name = collectionArg(ctx);
  const ns = namespaceOf(ctx, name);
  const statements = documentArray(ctx, 'deletes');
  const ordered = optionalBoolean(ctx, 'ordered', true);
  const variables = optionalDocument(ctx, 'let');
  const writer = ctx.instance.writer(ctx.txn);
  let n = 0;
  const result = await runStatements(ctx, statements, ordered, async (raw) => {
    if (!isPlainObject(raw.q))
      throw new CommandError(ErrorCode.FailedToParse, "BSON field 'delete.deletes.q' is missing but a required field");
    const limit = Number(raw.limit ?? 0);
    if (limit !== 0 && limit !== 1)
      throw new CommandError(ErrorCode.FailedToParse, `The limit field in delete objects must be 0 or 1. Got ${limit}`);
    const coll = ctx.instance.collection(ctx.db, name);
    if (!coll) return;
    const q = raw.q;
    const vars = isPlainObject(raw.c) ? { ...variables, ...raw.c } : variables;
    const matcher = compileFilter(q, filterOptions(ctx, vars));
    const found = runQuery(
      queryRequest(ctx, ns, coll, { filter: q, limit, hint: raw.hint, collation: raw.collation, variables: vars }),
    ).docs;
    for (const original of found) {
      let current: Document | undefined = original;
      for (;;) {
        if (!current || (matcher && !matcher(current))) break;
        try {
          writer.remove(coll, current);
          n++;
          break;
        } catch (err) {
          if (!(err instanceof LockWait)) throw err;
          await err.until;
          current = ctx.instance.source(ns, coll, ctx.txn).get(idKeyOf(original));
        }
      }
    }
  });
  return withErrors({ n }, result);
}

export const writeCommands: Record<string, CommandDefinition> = {
  insert: { handler: insert, inTransaction: true, retryableWrite: true },
  update: { handler: update, inTransaction: true, retryableWrite: true },
  delete: { handler: remove, inTransaction: true, retryableWrite: true },
};
