/**
 * Query compilation: a search (conditions over idx fields) becomes ONE MongoDB filter over `resources` (current,
 * not deleted heads of the searched types), a sort and a keyset condition for paging. Nothing is ever filtered
 * in JavaScript: every condition is something MongoDB evaluates, and most can use an index.
 *
 * Notes on the shapes chosen:
 * - A range over an ARRAY field must hold for one element: {f: {$gte: a, $lt: b}} would let one element satisfy
 *   $gte and another $lt. Array dates and numbers are compared inside $elemMatch; a redundant condition on the
 *   dotted path (a necessary condition, so the result is unchanged) is added beside it so that planners which
 *   build index bounds only from top-level predicates still get them.
 * - String prefixes on scalars are ranges [p, successor(p)); on arrays they are anchored, case-sensitive regular
 *   expressions /^p/, which MongoDB turns into the same index range and which match element by element.
 * - :contains is an unanchored regular expression: it cannot use an index range (at best an index scan).
 * - Keyset paging: the sort keys are scalars (array-valued parameters sort on their stored :a/:d keys), so
 *   "after the last entry shown" is an exact condition; missing values sort first ascending and last
 *   descending, as MongoDB sorts them.
 */
import type { Document } from 'mongodb';
import { ANY_TYPE_MARKER, inAnyTypeIndex } from './indexes.js';
import { escapeRegexSource, successorOf } from './strings.js';
import type { Comparator, Condition, SortKey, StoreQuery } from './query.js';

type Op = '$gte' | '$gt' | '$lte' | '$lt' | '$eq';
type Pred = { path: string; op: Op; value: unknown };
type Tree = { and: Tree[] } | { or: Tree[] } | Pred;

const NOTHING: Document = { _id: { $in: [] } };

function isPred(tree: Tree): tree is Pred {
  return 'op' in tree;
}

/** The FHIR prefixes over ranges (search.html#prefix): target [lo, hi] against the query range [qlo, qhi]. */
function dateTree(cmp: Comparator, qlo: Date, qhi: Date): Tree {
  const lo = (op: Op, value: Date): Pred => ({ path: 'lo', op, value });
  const hi = (op: Op, value: Date): Pred => ({ path: 'hi', op, value });
  switch (cmp) {
    case 'eq': // the search range contains the target range (lo <= qhi and hi >= qlo follow; stated for bounds)
      return { and: [lo('$gte', qlo), lo('$lte', qhi), hi('$gte', qlo), hi('$lte', qhi)] };
    case 'ne':
      return { or: [lo('$lt', qlo), hi('$gt', qhi)] };
    case 'gt': // the range above the search value overlaps the target
      return hi('$gt', qhi);
    case 'lt':
      return lo('$lt', qlo);
    case 'ge': // gt or eq, rewritten so that one side bounds an index: hi >= qlo and (hi > qhi or lo >= qlo)
      return { and: [hi('$gte', qlo), { or: [hi('$gt', qhi), lo('$gte', qlo)] }] };
    case 'le':
      return { and: [lo('$lte', qhi), { or: [lo('$lt', qlo), hi('$lte', qhi)] }] };
    case 'sa': // starts after the search range
      return lo('$gt', qhi);
    case 'eb': // ends before the search range
      return hi('$lt', qlo);
    case 'ap': // overlaps the (already widened) search range
      return { and: [lo('$lte', qhi), hi('$gte', qlo)] };
  }
}

/** Numbers: eq/ne use the precision range [lo, hi), ap the widened [lo, hi], the others the value itself. */
function numberTree(cmp: Comparator, value: number, lo: number, hi: number, path: string): Tree {
  const p = (op: Op, v: number): Pred => ({ path, op, value: v });
  switch (cmp) {
    case 'eq':
      return { and: [p('$gte', lo), p('$lt', hi)] };
    case 'ne':
      return { or: [p('$lt', lo), p('$gte', hi)] };
    case 'gt':
    case 'sa':
      return p('$gt', value);
    case 'lt':
    case 'eb':
      return p('$lt', value);
    case 'ge':
      return p('$gte', value);
    case 'le':
      return p('$lte', value);
    case 'ap':
      return { and: [p('$gte', lo), p('$lte', hi)] };
  }
}

/** Renders a tree into a filter; `pathOf` maps the tree's relative paths to document paths. */
function render(tree: Tree, pathOf: (path: string) => string): Document {
  if (isPred(tree)) return { [pathOf(tree.path)]: { [tree.op]: tree.value } };
  if ('or' in tree) return { $or: tree.or.map((t) => render(t, pathOf)) };
  const merged: Document = {};
  const rest: Document[] = [];
  for (const child of tree.and) {
    const doc = render(child, pathOf);
    const keys = Object.keys(doc);
    const key = keys[0];
    if (keys.length === 1 && !key.startsWith('$')) {
      const ops = doc[key] as Document;
      const existing = merged[key] as Document | undefined;
      if (!existing) {
        merged[key] = { ...ops };
        continue;
      }
      if (Object.keys(ops).every((op) => !(op in existing))) {
        Object.assign(existing, ops);
        continue;
      }
    }
    rest.push(doc);
  }
  if (rest.length === 0) return merged;
  return Object.keys(merged).length > 0 ? { ...merged, $and: rest } : rest.length === 1 ? rest[0] : { $and: rest };
}

/** The predicates that must hold whatever branch of an $or is taken: top-level conjuncts. */
function necessary(tree: Tree): Pred[] {
  if (isPred(tree)) return [tree];
  if ('or' in tree) return [];
  return tree.and.filter(isPred);
}

/** A condition over an array of sub-documents: some element satisfies the whole tree. */
function someElement(field: string, tree: Tree): Document {
  const elemMatch: Document = { [field]: { $elemMatch: render(tree, (p) => p) } };
  const hints = necessary(tree);
  if (hints.length > 0) {
    // Necessary conditions on the dotted paths, for index bounds (see the module comment).
    return { $and: [render({ and: hints }, (p) => `${field}.${p}`), elemMatch] };
  }
  // A disjunction whose every branch has necessary conditions (a quantity compared by its canonical value or by
  // its own unit): their disjunction is necessary too, and each branch can bound an index.
  if ('or' in tree && tree.or.length > 0) {
    const branches = tree.or.map(necessary);
    if (branches.every((preds) => preds.length > 0)) {
      return { $and: [{ $or: branches.map((preds) => render({ and: preds }, (p) => `${field}.${p}`)) }, elemMatch] };
    }
  }
  return elemMatch;
}

/** A condition over an array of scalars: some element satisfies the tree (OR distributes over "some"). */
function someScalar(field: string, tree: Tree): Document {
  if (isPred(tree)) return { [field]: { $elemMatch: { [tree.op]: tree.value } } };
  if ('or' in tree) return { $or: tree.or.map((t) => someScalar(field, t)) };
  if (tree.and.every(isPred)) {
    const ops: Document = {};
    for (const p of tree.and as Pred[]) ops[p.op] = p.value;
    return { [field]: { $elemMatch: ops } };
  }
  throw new Error('compile: nested conditions over an array of scalars are not supported');
}

/**
 * Conditions implied by a prefix when no stored value spans more than `span` (hi - lo <= span): redundant for the
 * result, but they give a range index on lo or hi its missing end. Without them `birthdate=ge1966-02-01&
 * birthdate=le1966-02-28` bounds lo from above only, and reads every birth date before March 1966.
 */
function spanBounds(cmp: Comparator, qlo: Date, qhi: Date, span: number): Pred[] {
  const lo = (op: Op, ms: number): Pred => ({ path: 'lo', op, value: new Date(ms) });
  const hi = (op: Op, ms: number): Pred => ({ path: 'hi', op, value: new Date(ms) });
  switch (cmp) {
    case 'ge': // hi >= qlo
      return [lo('$gte', qlo.getTime() - span)];
    case 'gt': // hi > qhi
      return [lo('$gt', qhi.getTime() - span)];
    case 'le': // lo <= qhi
      return [hi('$lte', qhi.getTime() + span)];
    case 'lt': // lo < qlo
      return [hi('$lt', qlo.getTime() + span)];
    case 'ap': // lo <= qhi and hi >= qlo
      return [lo('$gte', qlo.getTime() - span), hi('$lte', qhi.getTime() + span)];
    default: // eq and sa/eb bound what they need already; ne is a disjunction
      return [];
  }
}

function compileDate(c: Extract<Condition, { op: 'date' }>): Document {
  let tree = dateTree(c.cmp, c.lo, c.hi);
  if (c.maxSpanMs !== undefined) {
    const extra = spanBounds(c.cmp, c.lo, c.hi, c.maxSpanMs);
    if (extra.length > 0) tree = { and: [...(!isPred(tree) && 'and' in tree ? tree.and : [tree]), ...extra] };
  }
  if (c.layout === 'point') return render(tree, () => c.field);
  if (c.layout === 'scalar') return render(tree, (p) => `${c.field}.${p}`);
  return someElement(c.field, tree);
}

function compileNumber(c: Extract<Condition, { op: 'number' }>): Document {
  if (!c.quantity) {
    const tree = numberTree(c.cmp, c.value, c.lo, c.hi, '');
    return c.layout === 'scalar' ? render(tree, () => c.field) : someScalar(c.field, tree);
  }
  const parts: Tree[] = [numberTree(c.cmp, c.value, c.lo, c.hi, 'v')];
  const { system, code, canonical } = c.quantity;
  if (system) parts.push({ path: 's', op: '$eq', value: system });
  if (system && code) parts.push({ path: 'c', op: '$eq', value: code });
  if (!system && code)
    parts.push({
      or: [
        { path: 'c', op: '$eq', value: code },
        { path: 'u', op: '$eq', value: code },
      ],
    });
  let tree: Tree = { and: parts };
  if (canonical) {
    // Same dimension: compare in base units. The exact branch still serves values indexed before canonical
    // values existed (until a reindex); for values in the searched unit both branches agree.
    const converted: Tree = {
      and: [{ path: 'cc', op: '$eq', value: canonical.unit }, numberTree(c.cmp, canonical.value, canonical.lo, canonical.hi, 'cv')],
    };
    tree = { or: [converted, tree] };
  }
  return c.layout === 'scalar' ? render(tree, (p) => `${c.field}.${p}`) : someElement(c.field, tree);
}

function compilePrefix(c: Extract<Condition, { op: 'prefix' }>): Document {
  if (c.layout === 'scalar') {
    const ranges = c.prefixes.map((p) => ({ [c.field]: { $gte: p, $lt: successorOf(p) } }));
    return ranges.length === 1 ? ranges[0] : { $or: ranges };
  }
  const patterns = c.prefixes.map((p) => new RegExp(`^${escapeRegexSource(p)}`));
  return patterns.length === 1 ? { [c.field]: { $regex: patterns[0] } } : { [c.field]: { $in: patterns } };
}

/**
 * One tuple satisfies every component. The components' equalities (their tokens, references, URIs) are repeated on
 * the dotted paths outside the $elemMatch: necessary conditions, so that an index on the tuples' fields (the
 * wildcard index) has bounds to scan.
 */
function compileComposite(c: Extract<Condition, { op: 'composite' }>): Document {
  const within = compileCondition({ op: 'and', of: c.of });
  const some: Document = { [c.field]: { $elemMatch: within } };
  const bounds = c.of
    .filter((component): component is Extract<Condition, { op: 'in' }> => component.op === 'in' && component.values.length > 0)
    .map((component) => compileCondition({ ...component, field: `${c.field}.${component.field}` }));
  return bounds.length > 0 ? { $and: [...bounds, some] } : some;
}

export function compileCondition(condition: Condition): Document {
  switch (condition.op) {
    case 'and': {
      const parts = condition.of.map(compileCondition).filter((d) => Object.keys(d).length > 0);
      if (parts.length === 0) return {};
      return parts.length === 1 ? parts[0] : { $and: parts };
    }
    case 'or':
      if (condition.of.length === 0) return NOTHING;
      return condition.of.length === 1 ? compileCondition(condition.of[0]) : { $or: condition.of.map(compileCondition) };
    case 'none':
      return NOTHING;
    case 'exists':
      return { [condition.field]: { $exists: condition.value } };
    case 'in':
      if (condition.values.length === 0) return NOTHING;
      return condition.values.length === 1 ? { [condition.field]: condition.values[0] } : { [condition.field]: { $in: condition.values } };
    case 'nin':
      return { [condition.field]: { $nin: condition.values } };
    case 'prefix':
      return compilePrefix(condition);
    case 'contains': {
      const patterns = condition.fragments.map((f) => new RegExp(escapeRegexSource(f)));
      return patterns.length === 1 ? { [condition.field]: { $regex: patterns[0] } } : { [condition.field]: { $in: patterns } };
    }
    case 'date':
      return compileDate(condition);
    case 'number':
      return compileNumber(condition);
    case 'composite':
      return compileComposite(condition);
    case 'chain':
    case 'has':
      throw new Error(`compile: a ${condition.op} condition must be resolved into ids before compiling`);
  }
}

/** The filter of a search: live heads of the searched types satisfying the conditions. */
export function compileFilter(query: Pick<StoreQuery, 'types' | 'where'>): Document {
  const filter: Document = {
    type: query.types.length === 1 ? query.types[0] : { $in: query.types },
    deleted: false,
  };
  // Implied by the types; said so that MongoDB may use the wildcard index, whose partial filter names it.
  if (query.types.length > 0 && query.types.every(inAnyTypeIndex)) filter[ANY_TYPE_MARKER] = true;
  const where = compileCondition(query.where);
  if (Object.keys(where).length > 0) filter.$and = [where];
  return filter;
}

/**
 * The sort keys with the `_id` tie-breaker (in the direction of the last key, so one index serves both ways).
 * Keys after an explicit `_id` can never decide anything (it is unique) and are dropped.
 */
export function fullSort(sort: SortKey[]): SortKey[] {
  const explicit = sort.findIndex((k) => k.field === '_id');
  if (explicit >= 0) return sort.slice(0, explicit + 1);
  const direction = sort.length > 0 ? sort[sort.length - 1].direction : 1;
  return [...sort, { field: '_id', direction }];
}

export function sortDocument(sort: SortKey[]): Document {
  const doc: Document = {};
  for (const key of sort) doc[key.field] = key.direction;
  return doc;
}

export type SortValue = string | number | boolean | Date | null;

/** Strictly after `value` in the key's direction (missing/null first ascending, last descending). */
function after(field: string, direction: 1 | -1, value: SortValue): Document | undefined {
  if (direction === 1) return value === null ? { [field]: { $ne: null } } : { [field]: { $gt: value } };
  if (value === null) return undefined;
  return { $or: [{ [field]: { $lt: value } }, { [field]: null }] };
}

function equal(field: string, value: SortValue): Document {
  return { [field]: value };
}

/**
 * Entries strictly after a position in the (full) sort order: the keyset condition of the next page.
 * For keys k1..kn with values v1..vn: (k1 after v1) or (k1 = v1 and k2 after v2) or ...
 */
export function keysetAfter(sort: SortKey[], values: SortValue[]): Document {
  const branches: Document[] = [];
  for (let i = 0; i < sort.length; i++) {
    const tail = after(sort[i].field, sort[i].direction, values[i]);
    if (!tail) continue;
    const prefix = sort.slice(0, i).map((k, j) => equal(k.field, values[j]));
    branches.push(prefix.length === 0 ? tail : { $and: [...prefix, tail] });
  }
  if (branches.length === 0) return NOTHING;
  return branches.length === 1 ? branches[0] : { $or: branches };
}

/** The same sort, every key reversed (for a previous page, read backwards from its first entry). */
export function reverseSort(sort: SortKey[]): SortKey[] {
  return sort.map((k) => ({ field: k.field, direction: (k.direction === 1 ? -1 : 1) as 1 | -1 }));
}

/** The value of a (dotted) sort field in a head document, null when missing. */
export function sortValueOf(document: Document, field: string): SortValue {
  let value: unknown = document;
  for (const part of field.split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
    value = (value as Document)[part];
  }
  if (value === undefined || value === null) return null;
  if (value instanceof Date || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  return null;
}
