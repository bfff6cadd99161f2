/**
 * The search interaction: type level (GET [type]?..., POST [type]/_search), system level (GET [base]?_type=...)
 * and Patient compartment (GET Patient/[id]/[type]). Parses the parameters, resolves chains, reads one page by
 * keyset, counts when asked (or when cheap), follows _include/_revinclude and renders the searchset Bundle.
 *
 * Choices worth knowing:
 * - Default order: by resource key (type/id). Keys never change, so a resource updated while a client pages
 *   keeps its place: no duplicates, no gaps. _sort orders by index values, with the key as tie-breaker.
 * - total: a request without `_total` gets the server's policy (SearchSettings.defaultTotal, SEARCH_DEFAULT_TOTAL).
 *   Whatever the mode, a total that is free is given, and exact: when the first page holds every match, and when
 *   forward paging reaches the page where the matches run out (the cursors carry how many matches came before).
 *   `accurate` counts every match (bounded only by the query time limit); `estimate` counts up to
 *   ESTIMATE_COUNT_LIMIT matches and gives no total beyond (never a guess that reads as exact); `none` counts
 *   nothing. A count made for the first page rides in the paging cursors, so later pages repeat it rather than
 *   count again (a count costs more than a page); `accurate` recounts on every page. `_summary=count` and
 *   `_count=0` ask for the count itself: always exact.
 * - Links: self, first, next, previous and last, all keyset cursors bound to the query. None needs a count:
 *   a page is read with one entry more than it shows, which tells whether there is a next one, and the last
 *   page is read backwards from the end.
 */
import type { Bundle, BundleEntry, BundleLink, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import type { HeadDocument } from '../../store/resource-store.js';
import { fullSort, type SortValue } from '../../store/search/compile.js';
import {
  countMatches,
  explainSearch,
  findHeadsByKeys,
  findPage,
  findReferencing,
  positionOf,
  resolveSubSearches,
  type PagePosition,
} from '../../store/search/execute.js';
import type { Condition, StoreQuery } from '../../store/search/query.js';
import { fhirErrorOfStoreFailure } from '../store-failures.js';
import { stopIfAborted, type FhirContext } from '../context.js';
import { FhirError, issue, operationOutcome } from '../outcome.js';
import { shortenResource } from '../summary.js';
import { decodeCursor, encodeCursor, queryFingerprint, type Cursor } from './cursor.js';
import { idxPath } from './fields.js';
import { DEFAULT_SEARCH_LIMITS, parseSearch, type IncludeSpec, type ParsedSearch, type SearchLimits, type TotalMode } from './parse.js';
import { searchRegistry, type SearchRegistry } from './registry.js';
import { compartmentCondition, resultFields } from '../access/compartment.js';
import { confineSearch, includeRestriction } from './confine.js';

export interface SearchSettings {
  /** _count when the client gives none. */
  defaultCount: number;
  /** Largest page; a larger _count is reduced to it. */
  maxCount: number;
  /** What one search may ask for (parameters, values, includes, chain depth). */
  limits: SearchLimits;
  /** _total when the client gives none (SEARCH_DEFAULT_TOTAL). */
  defaultTotal: TotalMode;
}

export const DEFAULT_SEARCH_SETTINGS: SearchSettings = {
  defaultCount: 20,
  maxCount: 1000,
  limits: DEFAULT_SEARCH_LIMITS,
  defaultTotal: 'none',
};

/**
 * `_total=estimate` counts this many matches at most: below it the total is exact, beyond it the Bundle has none
 * (ask _total=accurate). Fifty pages of the default size, so the count costs a bounded amount at any data size.
 */
export const ESTIMATE_COUNT_LIMIT = 1000;
/** At most this many resources are added by _include/_revinclude to one page. */
export const MAX_INCLUDED = 1000;
/** _include:iterate follows references this many rounds at most. */
const MAX_INCLUDE_ROUNDS = 4;

export interface SearchScope {
  types: string[];
  /** The search's path under the base, for links: "Patient", "" (system), "Patient/123/Encounter". */
  path: string;
  /** Restricts the search to the Patient compartment of this patient. */
  compartmentPatient?: string;
  /**
   * The types were implied, not named (a system-level search without _type): those the caller may not search are
   * left out rather than refused.
   */
  impliedTypes?: boolean;
}

export interface SearchRequest {
  params: Array<[string, string]>;
  /** Prefer: handling=strict: unknown or malformed parameters are an error rather than ignored. */
  strict: boolean;
}

function toFhirError(error: unknown): unknown {
  return fhirErrorOfStoreFailure(error) ?? error;
}

/** Parses a search for a scope, throwing 400 for problems under strict handling. */
export function parseForScope(ctx: FhirContext, settings: SearchSettings, scope: SearchScope, request: SearchRequest): ParsedSearch {
  const registry = searchRegistry();
  const parsed = parseSearch(scope.types, request.params, {
    registry,
    baseUrl: ctx.baseUrl,
    hostedTypes: ctx.resourceTypes,
    defaultCount: settings.defaultCount,
    maxCount: settings.maxCount,
    limits: settings.limits,
    now: ctx.now(),
    systemLevel: scope.path === '',
  });
  if (request.strict && parsed.problems.length > 0) {
    throw new FhirError(
      400,
      parsed.problems.map((p) => ({ ...p, severity: 'error' as const, diagnostics: p.diagnostics?.replace(' ignored:', ':') })),
    );
  }
  if (scope.compartmentPatient !== undefined) {
    const patient = scope.compartmentPatient;
    const perType = scope.types.map((type) => compartmentCondition(type, patient));
    const compartment: Condition =
      scope.types.length === 1
        ? perType[0]
        : { op: 'or', of: scope.types.map((t, i) => ({ op: 'and', of: [{ op: 'in', field: 'type', values: [t] }, perType[i]] })) };
    parsed.where = { op: 'and', of: [compartment, parsed.where] };
  }
  confineSearch(ctx.access, parsed, scope.impliedTypes === true);
  return parsed;
}

/** The store query of a parsed search, with chains resolved into ids. */
export async function storeQueryOf(ctx: FhirContext, parsed: ParsedSearch): Promise<StoreQuery> {
  try {
    return { types: parsed.types, where: await resolveSubSearches(ctx.store, parsed.where, ctx.session), sort: parsed.sort };
  } catch (error) {
    throw toFhirError(error);
  }
}

/** Query component encoding that keeps the characters FHIR parameters are made of readable (: , / $). */
function encodeQueryPart(text: string): string {
  return encodeURIComponent(text).replace(/%3A/g, ':').replace(/%2C/g, ',').replace(/%2F/g, '/').replace(/%24/g, '$');
}

function linkUrl(ctx: FhirContext, scope: SearchScope, params: Array<[string, string]>): string {
  const query = params.map(([name, value]) => `${encodeQueryPart(name)}=${encodeQueryPart(value)}`).join('&');
  const path = scope.path ? `/${scope.path}` : '';
  return `${ctx.baseUrl}${path}${query ? `?${query}` : ''}`;
}

function referencesOf(head: HeadDocument, param: string): string[] {
  const value = (head.idx as Record<string, unknown> | undefined)?.[param];
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return values.filter((v): v is string => typeof v === 'string');
}

function referenceParams(registry: SearchRegistry, type: string, spec: IncludeSpec): string[] {
  if (spec.param !== '*') return [spec.param];
  return registry
    .paramsOf(type)
    .filter((d) => d.type === 'reference')
    .map((d) => d.code);
}

interface Included {
  heads: HeadDocument[];
  truncated: boolean;
  /** Types whose resources were left out because the caller may not read them. */
  withheld: Set<string>;
}

/** The hosted types an include spec can bring in from resources of `sourceType`. */
function includeTargets(registry: SearchRegistry, hosted: readonly string[], sourceType: string, spec: IncludeSpec): string[] {
  if (spec.targetType) return [spec.targetType];
  const defs = spec.param === '*' ? [] : [registry.get(sourceType, spec.param)];
  const targets = defs.flatMap((def) => (def && def.targets.length > 0 ? def.targets : [...hosted]));
  return [...new Set(targets)].filter((t) => hosted.includes(t));
}

/**
 * _include and _revinclude that name a type the caller may not read are refused before the search runs (403);
 * those that only might reach such a type (`*`, a reference that can point at several types) leave it out.
 */
function checkIncludes(ctx: FhirContext, parsed: ParsedSearch): void {
  if (ctx.access.unrestricted) return;
  const registry = searchRegistry();
  for (const spec of parsed.include) {
    if (spec.param === '*') continue;
    const sources = spec.sourceType === '*' ? parsed.types : [spec.sourceType];
    for (const source of sources) {
      const targets = includeTargets(registry, ctx.resourceTypes, source, spec);
      if (targets.length > 0 && targets.every((t) => includeRestriction(ctx.access, t) === null)) {
        ctx.access.require('r', targets[0]);
      }
    }
  }
  for (const spec of parsed.revinclude) {
    if (spec.sourceType !== '*' && includeRestriction(ctx.access, spec.sourceType) === null) ctx.access.require('r', spec.sourceType);
  }
}

/** _include and _revinclude (with :iterate): the resources the page's matches refer to, or that refer to them. */
async function includeResources(ctx: FhirContext, parsed: ParsedSearch, matches: HeadDocument[]): Promise<Included> {
  const registry = searchRegistry();
  const hosted = ctx.resourceTypes;
  const seen = new Set(matches.map((m) => m._id));
  const included: HeadDocument[] = [];
  const withheld = new Set<string>();
  const restrictions = new Map<string, Condition | undefined | null>();
  const restrictionOf = (type: string): Condition | undefined | null => {
    if (!restrictions.has(type)) restrictions.set(type, includeRestriction(ctx.access, type));
    const restriction = restrictions.get(type);
    if (restriction === null) withheld.add(type);
    return restriction;
  };
  let sources = matches;
  let truncated = false;
  for (let round = 0; round < MAX_INCLUDE_ROUNDS && sources.length > 0 && !truncated; round++) {
    if (round > 0) stopIfAborted(ctx);
    const includes = parsed.include.filter((s) => round === 0 || s.iterate);
    const revincludes = parsed.revinclude.filter((s) => round === 0 || s.iterate);
    const found: HeadDocument[] = [];
    const add = (heads: HeadDocument[]): void => {
      for (const head of heads) {
        if (seen.has(head._id)) continue;
        if (included.length + found.length >= MAX_INCLUDED) {
          truncated = true;
          return;
        }
        seen.add(head._id);
        found.push(head);
      }
    };

    const keys = new Set<string>();
    for (const spec of includes) {
      for (const source of sources) {
        if (spec.sourceType !== '*' && source.type !== spec.sourceType) continue;
        for (const param of referenceParams(registry, source.type, spec)) {
          for (const reference of referencesOf(source, param)) {
            const type = reference.split('/')[0];
            if (!hosted.includes(type) || (spec.targetType && type !== spec.targetType)) continue;
            if (!seen.has(reference)) keys.add(reference);
          }
        }
      }
    }
    const visibleKeys = new Map<string, Condition | undefined>();
    for (const key of keys) {
      const type = key.split('/')[0];
      const restriction = restrictionOf(type);
      if (restriction !== null) visibleKeys.set(key, restriction);
    }
    add(
      await findHeadsByKeys(
        ctx.store,
        [...visibleKeys.keys()],
        MAX_INCLUDED + 1,
        ctx.session,
        (type) => restrictions.get(type) ?? undefined,
      ),
    );

    for (const spec of revincludes) {
      const types = spec.sourceType === '*' ? [...hosted] : [spec.sourceType];
      for (const type of types) {
        const restriction = restrictionOf(type);
        if (restriction === null) continue;
        for (const param of referenceParams(registry, type, spec)) {
          const def = registry.get(type, param);
          const targets = sources
            .filter((s) => (!spec.targetType || s.type === spec.targetType) && (!def?.targets.length || def.targets.includes(s.type)))
            .map((s) => s._id);
          if (targets.length === 0) continue;
          add(await findReferencing(ctx.store, type, idxPath(param), targets, MAX_INCLUDED + 1, ctx.session, restriction));
        }
      }
    }
    included.push(...found);
    sources = found;
  }
  return { heads: included, truncated, withheld };
}

function entryOf(ctx: FhirContext, head: HeadDocument, mode: 'match' | 'include', parsed: ParsedSearch): BundleEntry {
  return {
    fullUrl: `${ctx.baseUrl}/${head.type}/${head.id}`,
    resource: shortenResource(head.resource as Resource, parsed.summary, parsed.elements),
    search: { mode },
  };
}

/** The page read, as far as the total is concerned. */
interface PageRead {
  heads: HeadDocument[];
  /** More matches beyond the page in the direction it was read. */
  more: boolean;
  /** Read forward: the first page or a next link (previous and last links read backwards). */
  forward: boolean;
  /** How many matches sort before the page, when paging knows it. */
  start: number | undefined;
}

/**
 * Bundle.total for a page: free when forward paging runs out of matches on it (the matches before it plus its
 * own), else counted, carried or left out as the mode says. Every total given is exact; none is a guess.
 */
async function totalOf(
  ctx: FhirContext,
  settings: SearchSettings,
  parsed: ParsedSearch,
  query: StoreQuery,
  count: number,
  page: PageRead,
  cursor: Cursor | undefined,
): Promise<number | undefined> {
  // _summary=count and _count=0 ask for the count itself (R4 search.html#count).
  const mode: TotalMode = count === 0 ? 'accurate' : (parsed.total ?? settings.defaultTotal);
  const free = count > 0 && page.forward && !page.more && page.start !== undefined ? page.start + page.heads.length : undefined;
  if (mode === 'accurate') {
    // On the first page "free" is this very query's answer; further on it is what paging has walked through,
    // and accurate asks for a count.
    return free !== undefined && !cursor ? free : countMatches(ctx.store, query, undefined, ctx.session);
  }
  if (free !== undefined) return free;
  if (mode === 'none') return undefined;
  if (cursor) return cursor.total; // counted once, for the first page (none when that count reached its bound)
  const bounded = await countMatches(ctx.store, query, ESTIMATE_COUNT_LIMIT + 1, ctx.session);
  return bounded <= ESTIMATE_COUNT_LIMIT ? bounded : undefined;
}

/**
 * How many matches sort before the page just read, when paging knows it: 0 for the first page; from a next
 * link, what its cursor carries; from a previous link, the position's offset less the page read (0 when nothing
 * is left before it, whatever writes did meanwhile); unknown after a jump to the last page.
 */
function startOf(cursor: Cursor | undefined, read: number, more: boolean): number | undefined {
  if (!cursor) return 0;
  if (cursor.direction === 'before') {
    if (!more) return 0;
    return cursor.offset === undefined ? undefined : Math.max(0, cursor.offset - read);
  }
  return cursor.direction === 'after' ? cursor.offset : undefined;
}

/** Runs a search and renders its searchset Bundle. */
export async function search(ctx: FhirContext, settings: SearchSettings, scope: SearchScope, request: SearchRequest): Promise<Bundle> {
  ctx.audit?.searched(new URLSearchParams(request.params).toString(), scope.types);
  const parsed = parseForScope(ctx, settings, scope, request);
  checkIncludes(ctx, parsed);
  const query = await storeQueryOf(ctx, parsed);
  const sort = fullSort(parsed.sort);
  // A cursor is bound to what decides membership and order, the caller's access included (a cursor carries the
  // first page's total); page size and presentation may change between pages.
  const presentation = new Set(['_count', '_summary', '_elements', '_include', '_revinclude', '_total']);
  const fingerprint = queryFingerprint([
    scope.types,
    scope.path,
    parsed.accepted.filter(([name]) => !presentation.has(name.split(':')[0])),
    ctx.access.fingerprint,
  ]);
  const cursor = parsed.cursor !== undefined ? decodeCursor(parsed.cursor, fingerprint, sort.length) : undefined;
  const count = parsed.summary === 'count' ? 0 : parsed.count;

  let heads: HeadDocument[] = [];
  let more = false;
  if (count > 0) {
    const position: PagePosition = !cursor
      ? { kind: 'first' }
      : cursor.direction === 'last'
        ? { kind: 'last' }
        : { kind: cursor.direction, values: cursor.values };
    // Without _include the page's heads are rendered and audited only: the fields that takes (and the sort keys
    // its links are made of). _include reads the matches' reference values: those get whole heads.
    const fields =
      parsed.include.length === 0
        ? resultFields(
            query.types,
            fullSort(query.sort).map((key) => key.field),
          )
        : undefined;
    ({ heads, more } = await findPage(ctx.store, query, count, position, { session: ctx.session, projection: fields }));
  }
  const readForward = !cursor || cursor.direction === 'after';
  const pageStart = startOf(cursor, heads.length, more);
  // Counting and including are further queries: not for a client that is gone.
  stopIfAborted(ctx);
  const total = await totalOf(ctx, settings, parsed, query, count, { heads, more, forward: readForward, start: pageStart }, cursor);

  const link: BundleLink[] = [];
  const self: Array<[string, string]> = parsed.cursor !== undefined ? [...parsed.accepted, ['_cursor', parsed.cursor]] : parsed.accepted;
  link.push({ relation: 'self', url: linkUrl(ctx, scope, self) });
  if (count > 0) {
    const at = (direction: 'after' | 'before' | 'last', values: SortValue[] = [], offset?: number): string =>
      linkUrl(ctx, scope, [
        ...parsed.accepted,
        [
          '_cursor',
          encodeCursor(fingerprint, {
            direction,
            values,
            ...(total !== undefined ? { total } : {}),
            ...(offset !== undefined ? { offset } : {}),
          }),
        ],
      ]);
    // Positions around this page: its first and last entries, or (an empty page) the cursor it was read from.
    const start = heads.length > 0 ? positionOf(heads[0], query) : cursor?.values;
    const end = heads.length > 0 ? positionOf(heads[heads.length - 1], query) : cursor?.values;
    // Whether there is a next page comes from the page read itself (one entry more than it shows), never a count.
    const hasNext = readForward ? more : cursor?.direction === 'before';
    const hasPrevious = readForward ? cursor !== undefined : more;
    link.push({ relation: 'first', url: linkUrl(ctx, scope, parsed.accepted) });
    if (hasPrevious && start?.length) link.push({ relation: 'previous', url: at('before', start, pageStart) });
    if (hasNext && end?.length)
      link.push({ relation: 'next', url: at('after', end, pageStart === undefined ? undefined : pageStart + heads.length) });
    // The last page is read backwards from the end of the order: no total needed.
    if (hasNext || cursor?.direction === 'last') link.push({ relation: 'last', url: at('last') });
  }

  const entry: BundleEntry[] = heads.map((head) => entryOf(ctx, head, 'match', parsed));
  const warnings: OperationOutcomeIssue[] = [...parsed.problems];
  for (const head of heads) ctx.audit?.touchedVersion(head);
  if (heads.length > 0 && (parsed.include.length > 0 || parsed.revinclude.length > 0)) {
    const included = await includeResources(ctx, parsed, heads);
    entry.push(...included.heads.map((head) => entryOf(ctx, head, 'include', parsed)));
    for (const head of included.heads) ctx.audit?.touchedVersion(head);
    if (included.truncated) {
      warnings.push(
        issue('warning', 'too-costly', `_include/_revinclude stopped after ${MAX_INCLUDED} resources; narrow the search or page it`),
      );
    }
    if (included.withheld.size > 0) {
      warnings.push(
        issue(
          'warning',
          'suppressed',
          `Included resources of type ${[...included.withheld].join(', ')} were left out: the token does not grant reading them`,
        ),
      );
    }
  }
  if (warnings.length > 0) entry.push({ resource: operationOutcome(warnings), search: { mode: 'outcome' } });

  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset' };
  if (total !== undefined) bundle.total = total;
  bundle.link = link;
  if (entry.length > 0) bundle.entry = entry;
  return bundle;
}

/** Live resources of `type` matching conditional criteria (a query string), at most `limit` (strict parsing). */
export async function findByCriteria(
  ctx: FhirContext,
  type: string,
  criteria: Array<[string, string]>,
  limit: number,
): Promise<HeadDocument[]> {
  const control = criteria.filter(
    ([name]) =>
      name.startsWith('_') &&
      ['_count', '_sort', '_include', '_revinclude', '_summary', '_elements', '_total', '_cursor'].includes(name.split(':')[0]),
  );
  if (control.length > 0) {
    throw new FhirError(400, issue('error', 'invalid', `Conditional criteria cannot use ${control.map(([n]) => n).join(', ')}`));
  }
  if (criteria.filter(([name]) => !['_format', '_pretty'].includes(name)).length === 0) {
    throw new FhirError(400, issue('error', 'invalid', 'Conditional criteria are empty; give at least one search parameter'));
  }
  const parsed = parseForScope(
    ctx,
    { ...DEFAULT_SEARCH_SETTINGS, defaultCount: limit, maxCount: limit },
    { types: [type], path: type },
    { params: criteria, strict: true },
  );
  const query = await storeQueryOf(ctx, parsed);
  const { heads } = await findPage(ctx.store, query, limit, { kind: 'first' }, { session: ctx.session });
  return heads;
}

/** The query plan MongoDB picks for the first page of a search (index tests and diagnostics). */
export async function explainFhirSearch(
  ctx: FhirContext,
  scope: SearchScope,
  params: Array<[string, string]>,
): ReturnType<typeof explainSearch> {
  const parsed = parseForScope(ctx, DEFAULT_SEARCH_SETTINGS, scope, { params, strict: true });
  return explainSearch(ctx.store, { types: parsed.types, where: parsed.where, sort: parsed.sort }, parsed.count);
}
