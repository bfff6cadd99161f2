/**
 * findAndModify: one document, chosen by query + sort, removed or updated
 * (or upserted), returned before or after the change.
 */
import type { Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { CommandError, ErrorCode } from '../errors.js';
import { compileProjection } from '../query/filter.js';
import { runQuery } from '../query/planner.js';
import { applyUpdate, parseUpdate, targetPaths, unchangedAt, updateTargets, upsertDocument } from '../write/update.js';
import { checkSize, checkValidator } from '../write/validation.js';
import { collectionArg, namespaceOf, optionalBoolean, optionalDocument, type CommandContext, type CommandDefinition } from './context.js';
import { filterOptions, queryRequest } from './query-support.js';
import { retryOnLock } from './write.js';

async function findAndModify(ctx: CommandContext): Promise<Document> {
  const name = collectionArg(ctx);
  const ns = namespaceOf(ctx, name);
  const query = optionalDocument(ctx, 'query') ?? {};
  const fields = optionalDocument(ctx, 'fields');
  const variables = optionalDocument(ctx, 'let');
  const remove = optionalBoolean(ctx, 'remove', false);
  const returnNew = optionalBoolean(ctx, 'new', false);
  const upsert = optionalBoolean(ctx, 'upsert', false);
  const bypass = optionalBoolean(ctx, 'bypassDocumentValidation', false);
  const arrayFilters = ctx.body.arrayFilters as Document[] | undefined;
  const hasUpdate = ctx.body.update !== undefined;
  if (remove && hasUpdate) throw new CommandError(ErrorCode.FailedToParse, 'Cannot specify both an update and remove=true');
  if (!remove && !hasUpdate) throw new CommandError(ErrorCode.FailedToParse, 'Either an update or remove=true must be specified');
  if (remove && returnNew) {
    throw new CommandError(
      ErrorCode.FailedToParse,
      "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document",
    );
  }
  if (remove && upsert) throw new CommandError(ErrorCode.FailedToParse, 'Cannot specify both upsert=true and remove=true');
  const spec = hasUpdate ? parseUpdate(ctx.body.update) : undefined;
  const project = compileProjection(query, fields, filterOptions(ctx, variables));
  const shape = (doc: Document | null): Document | null => (doc && project ? (project([doc])[0] ?? null) : doc);
  const writer = ctx.instance.writer(ctx.txn);

  return retryOnLock(() => {
    const coll = ctx.instance.collection(ctx.db, name);
    const target = coll
      ? runQuery(
          queryRequest(ctx, ns, coll, {
            filter: query,
            sort: ctx.body.sort,
            limit: 1,
            hint: ctx.body.hint,
            collation: ctx.body.collation,
            variables,
          }),
        ).docs[0]
      : undefined;
    if (remove) {
      if (!target || !coll) return { lastErrorObject: { n: 0 }, value: null, ok: 1 };
      writer.remove(coll, target);
      return { lastErrorObject: { n: 1 }, value: shape(target), ok: 1 };
    }
    const applyOptions = { query, arrayFilters, inserting: false, variables };
    if (target && coll) {
      const next = applyUpdate(target, spec!, applyOptions);
      const targets = updateTargets(spec!);
      if (!(targets ? unchangedAt(target, next, targets) : encodeValue(next) === encodeValue(target))) {
        checkSize(next);
        if (!bypass) checkValidator(coll, next);
        writer.replace(coll, target, next, targets && targetPaths(targets));
      }
      return { lastErrorObject: { n: 1, updatedExisting: true }, value: shape(returnNew ? next : target), ok: 1 };
    }
    if (!upsert) return { lastErrorObject: { n: 0, updatedExisting: false }, value: null, ok: 1 };
    const doc = upsertDocument(query, spec!, applyOptions);
    checkSize(doc);
    const created = ctx.instance.ensureCollection(ctx.db, name).coll;
    if (!bypass) checkValidator(created, doc);
    writer.insert(created, doc);
    return {
      lastErrorObject: { n: 1, updatedExisting: false, upserted: doc._id },
      value: returnNew ? shape(doc) : null,
      ok: 1,
    };
  });
}

export const findAndModifyCommands: Record<string, CommandDefinition> = {
  findAndModify: { handler: findAndModify, inTransaction: true, retryableWrite: true },
  findandmodify: { handler: findAndModify, inTransaction: true, retryableWrite: true },
};
