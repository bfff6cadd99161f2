/**
 * Transaction Bundles (http.html#transaction): all entries succeed together or nothing is written.
 *
 * Everything runs in ONE MongoDB transaction (ctx.session): reads see the transaction's own writes, and an
 * abort leaves no version, no head, no index value and no pending ledger anchor behind (the anchor lives in
 * the version document). Steps, inside the transaction:
 * 1. plan, in processing order (DELETE, POST, PUT/PATCH; GET/HEAD last): resolve each conditional write to
 *    the resource it acts on, give every created resource its id now, and map each entry's fullUrl to
 *    "Type/id"; two entries acting on one resource fail the transaction (the specification forbids it);
 * 2. rewrite placeholders (urn:uuid, urn:oid, fullUrls) and conditional references in every resource;
 * 3. run the entries in that order through the ordinary interactions, then answer in the original order.
 * Write conflicts with concurrent requests retry the whole transaction a few times, then answer 409.
 */
import type { Bundle, BundleEntry, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { VersionConflictError } from '../../store/resource-store.js';
import { ConditionalKeyHeldError } from '../../store/search/conditional-keys.js';
import { TransactionRetriesExhaustedError, runInTransaction } from '../../store/transaction-runner.js';
import { stopIfAborted, type FhirContext } from '../context.js';
import { checkReferences } from '../interactions/references.js';
import { FhirError, errors, issue } from '../outcome.js';
import { fhirErrorOfStoreFailure } from '../store-failures.js';
import { criteriaKey } from '../search/conditional.js';
import { findByCriteria } from '../search/search.js';
import { entryPath, type BundleRequest, type BundleRequestEntry, type EntryAction } from './bundle-request.js';
import { entryInteraction, runEntry, type BundleOptions } from './entry.js';
import { rewriteActionReferences } from './references.js';

/** Attempts of a whole transaction that keeps meeting concurrent writers, before 409. */
export const MAX_TRANSACTION_ATTEMPTS = 5;

const METHOD_RANK: Record<string, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };

/** An entry's failure, carrying its position so the answer can name it. */
class EntryFailure extends Error {
  constructor(
    readonly index: number,
    cause: unknown,
  ) {
    super(`${entryPath(index)} failed`, { cause });
    this.name = 'EntryFailure';
  }
}

interface PlannedEntry {
  entry: BundleRequestEntry;
  action: EntryAction;
  /** "Type/id" of the resource a write entry acts on, when it acts on one. */
  target?: string;
  /** The id a create (or a conditional update that creates) gives its resource. */
  newId?: string;
}

/** Processing order: DELETE, POST, PUT/PATCH, GET/HEAD; the Bundle's order within each group. */
export function processingOrder<T extends { index: number; method?: string }>(entries: T[]): T[] {
  return [...entries].sort((a, b) => (METHOD_RANK[a.method ?? ''] ?? 4) - (METHOD_RANK[b.method ?? ''] ?? 4) || a.index - b.index);
}

/** The entry's error, with every issue naming the entry (diagnostics and expression). */
export function namedError(index: number, error: FhirError, resourceType?: string): FhirError {
  const prefix = entryPath(index);
  const issues: OperationOutcomeIssue[] = (error.outcome.issue ?? []).map((original) => {
    const named: OperationOutcomeIssue = { ...original };
    if (!named.diagnostics?.startsWith(`${prefix}:`)) named.diagnostics = `${prefix}: ${named.diagnostics ?? named.code}`;
    const expressions = (original.expression ?? []).map((expression) => {
      if (expression.startsWith('Bundle.')) return expression;
      if (
        resourceType &&
        (expression === resourceType || expression.startsWith(`${resourceType}.`) || expression.startsWith(`${resourceType}[`))
      ) {
        return `${prefix}.resource${expression.slice(resourceType.length)}`;
      }
      return `${prefix}.${expression}`;
    });
    named.expression = expressions.length > 0 ? expressions : [prefix];
    return named;
  });
  return new FhirError(error.status, issues);
}

async function matchesOf(ctx: FhirContext, type: string, criteria: Array<[string, string]>): Promise<string | undefined> {
  const matches = await findByCriteria(ctx, type, criteria, 2);
  if (matches.length > 1)
    throw errors.preconditionFailed(`The criteria ${criteriaKey(type, criteria)} match more than one ${type}; make them more selective`);
  return matches[0]?.id;
}

/** Step 1: what each write entry acts on, the ids of new resources, and fullUrl -> "Type/id". */
async function plan(
  ctx: FhirContext,
  entries: BundleRequestEntry[],
): Promise<{ planned: PlannedEntry[]; placeholders: Map<string, string> }> {
  const planned: PlannedEntry[] = [];
  const placeholders = new Map<string, string>();
  const actedOn = new Map<string, number>();
  const criteriaSeen = new Map<string, number>();
  for (const entry of processingOrder(entries)) {
    const action = entry.action!;
    const step: PlannedEntry = { entry, action };
    try {
      switch (action.kind) {
        case 'delete':
        case 'update':
        case 'patch':
          step.target = `${action.type}/${action.id}`;
          break;
        case 'conditional-delete': {
          const id = await matchesOf(ctx, action.type, action.criteria);
          if (id !== undefined) step.target = `${action.type}/${id}`;
          break;
        }
        case 'create': {
          const existing = action.ifNoneExist ? await matchesOf(ctx, action.type, action.ifNoneExist) : undefined;
          step.newId = existing ?? ctx.newId();
          step.target = `${action.type}/${step.newId}`;
          break;
        }
        case 'conditional-update': {
          const existing = await matchesOf(ctx, action.type, action.criteria);
          const bodyId = typeof action.resource.id === 'string' ? action.resource.id : undefined;
          step.newId = existing ?? bodyId ?? ctx.newId();
          step.target = `${action.type}/${step.newId}`;
          break;
        }
        default:
          break;
      }
      const criteria = action.kind === 'create' ? action.ifNoneExist : action.kind === 'conditional-update' ? action.criteria : undefined;
      if (criteria) {
        const key = criteriaKey(action.type, criteria);
        const other = criteriaSeen.get(key);
        if (other !== undefined)
          throw errors.badRequest(
            `${entryPath(other)} has the same conditional criteria (${key}); one transaction may act on a resource once`,
          );
        criteriaSeen.set(key, entry.index);
      }
      if (step.target !== undefined) {
        const other = actedOn.get(step.target);
        if (other !== undefined) {
          throw errors.badRequest(`${entryPath(other)} acts on ${step.target} as well; a transaction may act on each resource only once`);
        }
        actedOn.set(step.target, entry.index);
        if (entry.fullUrl !== undefined && (action.kind === 'create' || action.kind === 'update' || action.kind === 'conditional-update')) {
          placeholders.set(entry.fullUrl, step.target);
        }
      }
    } catch (error) {
      throw new EntryFailure(entry.index, error);
    }
    planned.push(step);
  }
  return { planned, placeholders };
}

async function processTransaction(ctx: FhirContext, entries: BundleRequestEntry[], options: BundleOptions): Promise<BundleEntry[]> {
  const { planned, placeholders } = await plan(ctx, entries);
  // Entries may refer to resources that later entries create, so references are checked once everything is
  // written (still inside the transaction), not entry by entry.
  const strict = ctx.referencePolicy === 'strict';
  const runCtx: FhirContext = strict ? { ...ctx, referencePolicy: 'lenient' } : ctx;
  const stored: Array<{ index: number; resource: Resource }> = [];
  const cache = new Map<string, string>();
  const actions: EntryAction[] = [];
  for (const step of planned) {
    try {
      actions.push(
        await rewriteActionReferences(ctx, step.entry.index, step.action, {
          placeholders,
          allowPlaceholders: true,
          conditionalCache: cache,
        }),
      );
    } catch (error) {
      throw new EntryFailure(step.entry.index, error);
    }
  }
  const responses: BundleEntry[] = new Array<BundleEntry>(entries.length);
  for (const [position, step] of planned.entries()) {
    // Nothing is committed yet: a client that is gone gets no transaction rather than one it never hears of.
    stopIfAborted(runCtx);
    const index = step.entry.index;
    try {
      const entryCtx = step.newId !== undefined ? { ...runCtx, newId: () => step.newId! } : runCtx;
      const result = await runEntry(entryCtx, actions[position], step.entry.method!, options);
      const written = result.written ? `${result.written.type}/${result.written.id}` : undefined;
      if (written !== step.target) {
        // The resource a conditional entry resolves to changed between planning and running (an earlier entry
        // of this transaction created or deleted it): references were rewritten to the planned one.
        throw errors.conflict(
          `the criteria resolved to ${written ?? 'nothing'} when run but to ${step.target ?? 'nothing'} when the transaction was planned; earlier entries of this transaction changed what they match`,
        );
      }
      responses[index] = result.entry;
      if (result.written?.stored) stored.push({ index, resource: result.written.stored });
    } catch (error) {
      throw new EntryFailure(index, error);
    }
  }
  if (strict) {
    for (const { index, resource } of stored.sort((a, b) => a.index - b.index)) {
      const issues = await checkReferences(ctx, resource);
      if (issues.length > 0) throw new EntryFailure(index, new FhirError(422, issues));
    }
  }
  return responses;
}

function retryable(error: unknown): boolean {
  const cause = error instanceof EntryFailure ? error.cause : error;
  return cause instanceof VersionConflictError || cause instanceof ConditionalKeyHeldError;
}

export async function runTransaction(ctx: FhirContext, request: BundleRequest, options: BundleOptions): Promise<Bundle> {
  if (!ctx.store.supportsTransactions) {
    throw new FhirError(
      422,
      issue(
        'error',
        'not-supported',
        'Transaction Bundles need MongoDB multi-document transactions, which this deployment (a standalone mongod) does not have; ' +
          'nothing was written. Run MongoDB as a replica set, or send a batch Bundle (its entries are processed independently).',
        'Bundle.type',
      ),
    );
  }
  const broken = request.entries.find((entry) => entry.error !== undefined);
  if (broken) throw broken.error!;
  // Every entry must be allowed before anything runs: one forbidden entry fails the whole transaction, named.
  for (const entry of request.entries) {
    const action = entry.action!;
    try {
      ctx.access.require(entryInteraction(action).permission, action.type);
    } catch (error) {
      const failure = error instanceof FhirError ? error : fhirErrorOfStoreFailure(error);
      if (failure) throw namedError(entry.index, failure, 'resource' in action ? action.resource.resourceType : action.type);
      throw error;
    }
  }
  try {
    const entry = await runInTransaction(
      ctx.store,
      async (session) => {
        // One AuditEvent for the transaction, naming what every entry touched, committed with the entries.
        const trail = ctx.audit?.forTransaction();
        const responses = await processTransaction({ ...ctx, session, audit: trail }, request.entries, options);
        if (trail) await ctx.store.insertNewResources([trail.transactionEvent(200)], session);
        return responses;
      },
      { maxAttempts: MAX_TRANSACTION_ATTEMPTS, retryable },
    );
    ctx.audit?.markCommitted();
    return { resourceType: 'Bundle', type: 'transaction-response', entry };
  } catch (error) {
    if (error instanceof TransactionRetriesExhaustedError) {
      const last = error.lastError instanceof EntryFailure ? ` (last at ${entryPath(error.lastError.index)})` : '';
      throw errors.conflict(
        `The transaction met concurrent changes to the same resources ${error.attempts} times${last}; nothing was written. Try again.`,
      );
    }
    if (error instanceof EntryFailure) {
      const cause = error.cause;
      if (cause instanceof FhirError) {
        const step = request.entries[error.index];
        const type = step.action && 'resource' in step.action ? step.action.resource.resourceType : step.action?.type;
        throw namedError(error.index, cause, type);
      }
      throw cause;
    }
    throw error;
  }
}
