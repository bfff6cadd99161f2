/**
 * Patient/$everything (https://hl7.org/fhir/R4/patient-operation-everything.html): the patient and every hosted
 * resource in its Patient compartment, as a paged searchset Bundle. Patient/[id]/$everything for one patient,
 * Patient/$everything for all patients (every Patient, and every compartment resource that refers to a patient);
 * GET with a query string or POST with a Parameters body.
 *
 * How it reads: one indexed query per resource type and page, never a scan of a collection.
 * - One patient: the Patient by its key; Encounter and MedicationRequest through their compartment reference
 *   (`subject`), which the partial search indexes cover.
 * - All patients: each type in key order over its own key range (`Type/` .. `Type0`), so the _id index both bounds
 *   the scan and gives the order; the compartment reference is then a filter on the keys read.
 * Order: types in a fixed order (Patient first), by key within a type. The keyset cursor names the type and the
 * last key shown, so resources written while a client pages neither repeat nor push others off later pages.
 *
 * Choices:
 * - Patient resources that merely link to this patient (Patient.link, which the compartment definition puts in the
 *   compartment) are not included: they are other patients' records, not this patient's (compartment search
 *   Patient/[id]/Patient finds them, through the Patient link index).
 * - _since applies to every resource, the patient included (the specification does not exempt it).
 * - _type names outside the hosted compartment types: ignored with a warning entry, or 400 under
 *   Prefer: handling=strict, as for other search parameters. `start` and `end` are not supported (same handling).
 */
import type { Bundle, BundleEntry, BundleLink, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import type { HeadDocument } from '../../store/resource-store.js';
import { countMatches, findPage, type Page, type PagePosition } from '../../store/search/execute.js';
import type { Condition, StoreQuery } from '../../store/search/query.js';
import { stopIfAborted, type FhirContext } from '../context.js';
import { parseDateRange } from '../dates.js';
import { ID_PATTERN } from '../interactions/versions.js';
import { FhirError, errors, issue, operationOutcome } from '../outcome.js';
import { decodeCursor, encodeCursor, queryFingerprint } from '../search/cursor.js';
import { idxPath } from '../search/fields.js';
import { searchRegistry } from '../search/registry.js';
import { forbidden, visibilityCondition } from '../access/access-policy.js';
import { requireReadable } from '../interactions/visibility.js';
import type { SearchSettings } from '../search/search.js';

export interface EverythingRequest {
  /** One patient's record; undefined for all patients (Patient/$everything). */
  patientId?: string;
  params: Array<[string, string]>;
  /** Prefer: handling=strict: unknown or unsupported parameters are an error rather than ignored. */
  strict: boolean;
}

/** Hosted types that belong to the Patient compartment, Patient first (the order of an $everything Bundle). */
export function patientCompartmentTypes(ctx: Pick<FhirContext, 'resourceTypes'>): string[] {
  const registry = searchRegistry();
  const others = ctx.resourceTypes.filter((t) => t !== 'Patient' && registry.patientCompartment.has(t));
  return ctx.resourceTypes.includes('Patient') ? ['Patient', ...others] : others;
}

/** The keys of one type's heads ("Type/..."), as a range the _id index bounds. */
function keyRange(type: string): Condition {
  return { op: 'prefix', field: '_id', layout: 'scalar', prefixes: [`${type}/`] };
}

/**
 * Membership of a type's resources in a patient compartment: of the patient `patientId`, or (undefined) of any
 * patient. The Patient type contributes the patient itself (or every patient).
 */
export function compartmentMembership(type: string, patientId: string | undefined): Condition {
  if (type === 'Patient') {
    return patientId === undefined ? keyRange(type) : { op: 'in', field: '_id', values: [`Patient/${patientId}`] };
  }
  const registry = searchRegistry();
  const params = registry.patientCompartment.get(type) ?? [];
  const branches: Condition[] = params.map((param) =>
    patientId === undefined
      ? { op: 'prefix', field: idxPath(param), layout: registry.binding(type, param)?.single ? 'scalar' : 'array', prefixes: ['Patient/'] }
      : { op: 'in', field: idxPath(param), values: [`Patient/${patientId}`] },
  );
  const member: Condition = branches.length === 0 ? { op: 'none' } : branches.length === 1 ? branches[0] : { op: 'or', of: branches };
  return patientId === undefined ? { op: 'and', of: [keyRange(type), member] } : member;
}

interface ParsedEverything {
  types: string[];
  since?: Date;
  count: number;
  cursor?: string;
  /** Understood parameters, for the links (and the cursor fingerprint, less _count). */
  accepted: Array<[string, string]>;
  problems: OperationOutcomeIssue[];
}

const TRANSPARENT = new Set(['_format', '_pretty']);

function parseParams(ctx: FhirContext, settings: SearchSettings, request: EverythingRequest): ParsedEverything {
  const compartmentTypes = patientCompartmentTypes(ctx);
  const parsed: ParsedEverything = { types: compartmentTypes, count: settings.defaultCount, accepted: [], problems: [] };
  const requestedTypes: string[] = [];
  let typeGiven = false;
  const seen = new Set<string>();
  for (const [name, value] of request.params) {
    if (TRANSPARENT.has(name)) continue;
    if (['_since', '_count', '_cursor'].includes(name)) {
      if (seen.has(name)) throw errors.badRequest(`${name} is given more than once`, name);
      seen.add(name);
    }
    switch (name) {
      case '_since': {
        const range = parseDateRange(value);
        if (!range) throw errors.badRequest(`_since=${value} is not a FHIR instant (e.g. 2024-01-31T12:00:00Z)`, '_since');
        parsed.since = range.low;
        parsed.accepted.push([name, value]);
        break;
      }
      case '_count': {
        if (!/^\d+$/.test(value) || Number(value) < 1) throw errors.badRequest(`_count=${value} is not a positive integer`, '_count');
        parsed.count = Math.min(Number(value), settings.maxCount);
        parsed.accepted.push([name, String(parsed.count)]);
        break;
      }
      case '_cursor':
        parsed.cursor = value;
        break;
      case '_type': {
        typeGiven = true;
        for (const type of value
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean)) {
          if (compartmentTypes.includes(type)) {
            if (!requestedTypes.includes(type)) requestedTypes.push(type);
          } else {
            parsed.problems.push(
              issue(
                'warning',
                'not-supported',
                `_type=${type} ignored: the Patient compartment here holds ${compartmentTypes.join(', ')}`,
                '_type',
              ),
            );
          }
        }
        break;
      }
      case 'start':
      case 'end':
        parsed.problems.push(
          issue('warning', 'not-supported', `${name} ignored: care-date ranges are not supported by $everything here`, name),
        );
        break;
      default:
        parsed.problems.push(
          issue('warning', 'not-supported', `${name} ignored: not a parameter of $everything (_since, _type, _count)`, name),
        );
    }
  }
  if (typeGiven) {
    // Kept in the Bundle's order whatever order the client listed them in.
    parsed.types = compartmentTypes.filter((t) => requestedTypes.includes(t));
    parsed.accepted.push(['_type', parsed.types.join(',')]);
  }
  if (request.strict && parsed.problems.length > 0) {
    throw new FhirError(
      400,
      parsed.problems.map((p) => ({ ...p, severity: 'error' as const, diagnostics: p.diagnostics?.replace(' ignored:', ':') })),
    );
  }
  return parsed;
}

/**
 * The store query that reads one type of an $everything (exported for the index tests); `restriction` is what the
 * caller's access adds (a patient/ token's compartment, a scope's search parameters).
 */
export function everythingQuery(type: string, patientId: string | undefined, since: Date | undefined, restriction?: Condition): StoreQuery {
  const where: Condition[] = [compartmentMembership(type, patientId)];
  if (restriction) where.push(restriction);
  if (since) where.push({ op: 'date', field: 'lastUpdated', layout: 'point', cmp: 'ge', lo: since, hi: since });
  return { types: [type], where: where.length === 1 ? where[0] : { op: 'and', of: where }, sort: [] };
}

/**
 * One page of one type, by key. All patients' resources are read along the _id index (hinted): it bounds the
 * type's key range and gives the order, so a page reads about a page of documents. Left to itself a planner may
 * prefer the compartment reference's index, which would sort every matching resource for every page.
 */
async function readPage(ctx: FhirContext, query: StoreQuery, byKey: boolean, count: number, position: PagePosition): Promise<Page> {
  const forward = position.kind === 'first' || position.kind === 'after';
  return findPage(ctx.store, query, count, position, byKey && forward ? { hint: { _id: 1 } } : {});
}

function linkUrl(ctx: FhirContext, path: string, params: Array<[string, string]>): string {
  const query = new URLSearchParams(params).toString();
  return `${ctx.baseUrl}/${path}${query ? `?${query}` : ''}`;
}

/** Runs $everything and renders one page of its searchset Bundle. */
export async function patientEverything(ctx: FhirContext, settings: SearchSettings, request: EverythingRequest): Promise<Bundle> {
  const { patientId } = request;
  ctx.access.require('r', 'Patient');
  if (patientId !== undefined) {
    const patient = ID_PATTERN.test(patientId) ? await ctx.store.readCurrent('Patient', patientId) : null;
    if (!patient) throw errors.notFound(`Patient/${patientId} is not known`);
    ctx.audit?.touched(`Patient/${patientId}`, [`Patient/${patientId}`]);
    await requireReadable(ctx, patient);
    if (patient.deleted) throw errors.gone(`Patient/${patientId} was deleted (version ${patient.versionId})`);
  }
  const parsed = parseParams(ctx, settings, request);
  // What the caller may read of each type: types it may not read are left out (403 when _type named them).
  const restrictions = new Map<string, Condition | undefined>();
  const named = request.params.some(([name]) => name === '_type');
  for (const type of parsed.types) {
    const visibility = ctx.access.visibility('r', type);
    if (visibility.kind === 'none') {
      if (named) throw forbidden(visibility.reason);
      continue;
    }
    restrictions.set(type, visibilityCondition(type, visibility));
  }
  parsed.types = parsed.types.filter((type) => restrictions.has(type));
  const queryOf = (type: string) => everythingQuery(type, patientId, parsed.since, restrictions.get(type));
  const path = patientId === undefined ? 'Patient/$everything' : `Patient/${patientId}/$everything`;
  const fingerprint = queryFingerprint([
    '$everything',
    patientId ?? '*',
    parsed.types,
    parsed.since?.getTime() ?? null,
    ctx.access.fingerprint,
  ]);
  // The cursor's values: the type being read, and the last key shown of it.
  const cursor = parsed.cursor !== undefined ? decodeCursor(parsed.cursor, fingerprint, 2) : undefined;
  let startType = 0;
  let startAfter: string | undefined;
  if (cursor) {
    const [type, key] = cursor.values;
    startType = parsed.types.indexOf(String(type));
    if (cursor.direction !== 'after' || startType < 0 || typeof key !== 'string') {
      throw errors.badRequest('_cursor is not a cursor this server issued; follow the Bundle links to page');
    }
    startAfter = key;
  }

  const heads: HeadDocument[] = [];
  let next: { type: string; key: string } | undefined;
  for (let t = startType; t < parsed.types.length; t++) {
    const type = parsed.types[t];
    const query = queryOf(type);
    const remaining = parsed.count - heads.length;
    if (t > startType) stopIfAborted(ctx);
    const position: PagePosition =
      t === startType && startAfter !== undefined ? { kind: 'after', values: [startAfter] } : { kind: 'first' };
    const page = await readPage(ctx, query, patientId === undefined, remaining, position);
    heads.push(...page.heads);
    if (heads.length < parsed.count) continue;
    const last = heads[heads.length - 1];
    if (page.more && last) {
      next = { type: last.type, key: last._id };
      break;
    }
    for (let u = t + 1; u < parsed.types.length && !next; u++) {
      // A zero-size read (one document) tells whether anything follows.
      const probe = await readPage(ctx, queryOf(parsed.types[u]), patientId === undefined, 0, { kind: 'first' });
      if (probe.more && last) next = { type: last.type, key: last._id };
    }
    break;
  }

  const link: BundleLink[] = [];
  const self: Array<[string, string]> = parsed.cursor !== undefined ? [...parsed.accepted, ['_cursor', parsed.cursor]] : parsed.accepted;
  link.push({ relation: 'self', url: linkUrl(ctx, path, self) });
  link.push({ relation: 'first', url: linkUrl(ctx, path, parsed.accepted) });
  if (next) {
    const token = encodeCursor(fingerprint, { direction: 'after', values: [next.type, next.key] });
    link.push({ relation: 'next', url: linkUrl(ctx, path, [...parsed.accepted, ['_cursor', token]]) });
  }

  for (const head of heads) ctx.audit?.touchedVersion(head);
  const entry: BundleEntry[] = heads.map((head) => ({
    fullUrl: `${ctx.baseUrl}/${head.type}/${head.id}`,
    resource: head.resource as Resource,
    search: { mode: 'match' },
  }));
  if (parsed.problems.length > 0) entry.push({ resource: operationOutcome(parsed.problems), search: { mode: 'outcome' } });

  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset' };
  // One patient's record is counted through the same indexes that read it; all patients' is not counted.
  if (patientId !== undefined) {
    let total = 0;
    for (const type of parsed.types) total += await countMatches(ctx.store, queryOf(type));
    bundle.total = total;
  }
  bundle.link = link;
  if (entry.length > 0) bundle.entry = entry;
  return bundle;
}
