/**
 * Wildcard index terms ('$**', 'path.$**'): their spec rules and their key
 * generation, as mongod 7.0 has them.
 *
 * A wildcard term indexes every leaf under its prefix (the whole document but
 * _id for '$**', narrowed by a wildcardProjection): one key per leaf, holding
 * the leaf's dotted path (array positions left out) and its value. mongod
 * builds a projected copy of the document and walks it; here the projection is
 * applied during the walk, which reaches the same keys without a copy and in
 * time linear in the document's leaves:
 *
 * - an object is descended into; an empty one (also one the projection
 *   empties) is a leaf whose value is {};
 * - an array marks its path multikey and each element is visited at the same
 *   path; an element that is itself an array is a value, not descended; an
 *   empty array is a leaf whose value is undefined (as regular indexes key it);
 * - field names containing a dot cannot be queried and are skipped.
 */
import type { Document } from 'bson';
import { formatDocument } from '../bson/format.js';
import { dbRefAsDocument, isDbRef, isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';

/** The wildcard suffix of a key pattern field. */
export const WILDCARD_SUFFIX = '$**';

export function isWildcardField(name: string): boolean {
  return name === WILDCARD_SUFFIX || name.endsWith(`.${WILDCARD_SUFFIX}`);
}

/** The path a wildcard field indexes under ('a.b' for 'a.b.$**'), or undefined for '$**'. */
export function wildcardPrefix(name: string): string | undefined {
  return name === WILDCARD_SUFFIX ? undefined : name.slice(0, -(WILDCARD_SUFFIX.length + 1));
}

/** Error codes mongod uses for compound wildcard index specs (its uassert locations). */
export const enum WildcardCode {
  ProjectionCollision = 7246200,
  SeveralWildcards = 7246201,
  RegularOverlapsWildcard = 7246204,
  ProjectionIncludesRegular = 7246208,
  ProjectionKeepsRegular = 7246209,
  ProjectionOnlyExcludesId = 7246210,
  ProjectionMixed = 7246211,
  RegularFieldIsArray = 7246301,
  PathCollision = 31249,
  PathPrefixCollision = 31250,
  InclusionInExclusion = 31253,
  ExclusionInInclusion = 31254,
}

/** One node of a projection tree: `leaf` ends a listed path (included or excluded whole). */
export interface ProjectionNode {
  leaf: boolean;
  children: Map<string, ProjectionNode>;
}

function node(): ProjectionNode {
  return { leaf: false, children: new Map() };
}

/** What the wildcard term looks at: an inclusion or exclusion projection of the document. */
export interface WildcardProjection {
  readonly include: boolean;
  readonly root: ProjectionNode;
  /** The listed paths (the included ones for an inclusion, the excluded ones for an exclusion). */
  readonly paths: readonly string[];
}

function addPath(root: ProjectionNode, path: string, compound: boolean): void {
  const parts = path.split('.');
  let cur = root;
  for (let i = 0; i < parts.length; i++) {
    if (cur.leaf) {
      throw new CommandError(
        compound ? WildcardCode.ProjectionCollision : WildcardCode.PathCollision,
        `Path collision at ${path} remaining portion ${parts.slice(i).join('.')}`,
      );
    }
    let next = cur.children.get(parts[i]!);
    if (!next) {
      next = node();
      cur.children.set(parts[i]!, next);
    }
    cur = next;
  }
  if (cur.leaf || cur.children.size > 0) {
    throw new CommandError(compound ? WildcardCode.ProjectionCollision : WildcardCode.PathPrefixCollision, `Path collision at ${path}`);
  }
  cur.leaf = true;
}

/** The projection of a 'path.$**' term: that path alone. */
export function subtreeProjection(prefix: string): WildcardProjection {
  const root = node();
  addPath(root, prefix, false);
  return { include: true, root, paths: [prefix] };
}

/** The projection of a '$**' term without wildcardProjection: everything but _id. */
export function defaultProjection(): WildcardProjection {
  const root = node();
  addPath(root, '_id', false);
  return { include: false, root, paths: ['_id'] };
}

function truthy(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  const n = (v as { valueOf(): unknown } | null | undefined)?.valueOf();
  if (typeof n === 'number') return n !== 0;
  if (typeof n === 'bigint') return n !== 0n;
  return undefined;
}

/** The (path, include) entries of a projection document, nested documents flattened ({a: {b: 1}} is 'a.b'). */
function projectionEntries(spec: Document, prefix: string, out: Array<[string, boolean]>): void {
  for (const [key, value] of Object.entries(spec)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (isPlainObject(value) && Object.keys(value).length > 0) {
      projectionEntries(value, path, out);
      continue;
    }
    const flag = truthy(value);
    if (flag === undefined || key.startsWith('$')) {
      throw new CommandError(
        51271,
        'Bad projection specification, cannot use computed fields when parsing a spec in kBanComputedFields mode',
      );
    }
    out.push([path, flag]);
  }
}

/**
 * Parses a wildcardProjection (already known to be a non-empty document): inclusion or exclusion, not both
 * (except for _id), no path listed inside another. _id is left out unless included explicitly.
 */
export function parseWildcardProjection(spec: Document, compound: boolean): WildcardProjection {
  const entries: Array<[string, boolean]> = [];
  projectionEntries(spec, '', entries);
  const nonId = entries.filter(([path]) => path !== '_id');
  const id = entries.find(([path]) => path === '_id');
  // {_id: 1} alone is an inclusion (of _id), {_id: 0} alone an exclusion.
  const include = nonId.length > 0 ? nonId[0]![1] : id?.[1] === true;
  for (const [path, flag] of nonId) {
    if (flag === include) continue;
    if (compound) {
      throw new CommandError(
        WildcardCode.ProjectionMixed,
        `wildcardProjection cannot mix inclusion and exclusion of fields other than _id: ${formatDocument(spec)}`,
      );
    }
    throw include
      ? new CommandError(WildcardCode.ExclusionInInclusion, `Cannot do exclusion on field ${path} in inclusion projection`)
      : new CommandError(WildcardCode.InclusionInExclusion, `Cannot do inclusion on field ${path} in exclusion projection`);
  }
  const root = node();
  const paths: string[] = [];
  for (const [path] of nonId) {
    addPath(root, path, compound);
    paths.push(path);
  }
  // _id is excluded unless included: listed in an inclusion when included, in an exclusion unless included.
  if (include ? id?.[1] === true : id?.[1] !== true) {
    addPath(root, '_id', compound);
    paths.push('_id');
  }
  return { include, root, paths };
}

const overlaps = (a: string, b: string): boolean => a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`);
const within = (path: string, prefix: string): boolean => path === prefix || path.startsWith(`${prefix}.`);

/**
 * The compound wildcard rules on how the regular fields meet the wildcard term: none overlaps a 'path.$**'
 * prefix; a '$**' term needs a wildcardProjection that leaves every regular field out of it.
 */
export function checkCompoundWildcard(
  key: Document,
  wildcardName: string,
  regular: readonly string[],
  projectionSpec: Document | undefined,
  projection: WildcardProjection,
): void {
  const prefix = wildcardPrefix(wildcardName);
  if (prefix !== undefined) {
    const clash = regular.find((r) => overlaps(r, prefix));
    if (clash !== undefined) {
      throw new CommandError(
        WildcardCode.RegularOverlapsWildcard,
        `Index key pattern field '${clash}' overlaps the wildcard field '${wildcardName}': ${formatDocument(key)}`,
      );
    }
    return;
  }
  if (!projectionSpec) {
    throw new CommandError(
      ErrorCode.CannotCreateIndex,
      `A compound wildcard index on all fields ('$**') requires a 'wildcardProjection' that excludes its regular fields: ${formatDocument(key)}`,
    );
  }
  const listed = projection.paths.filter((p) => p !== '_id' || projectionSpec._id !== undefined);
  if (projection.include) {
    const clash = regular.find((r) => listed.some((p) => overlaps(r, p)));
    if (clash !== undefined) {
      throw new CommandError(
        WildcardCode.ProjectionIncludesRegular,
        `The wildcardProjection of a compound wildcard index cannot include its regular field '${clash}'`,
      );
    }
    return;
  }
  const kept = regular.filter((r) => !listed.some((p) => within(r, p)));
  if (kept.length === 0) return;
  if (listed.length === 1 && listed[0] === '_id') {
    throw new CommandError(
      WildcardCode.ProjectionOnlyExcludesId,
      `The wildcardProjection of a compound wildcard index must exclude its regular fields, not only _id`,
    );
  }
  throw new CommandError(
    WildcardCode.ProjectionKeepsRegular,
    `The wildcardProjection of a compound wildcard index must exclude its regular field '${kept[0]}'`,
  );
}

/** Whether a query path is indexed by a wildcard term with this projection (as a path of some leaf). */
export function projectionCovers(projection: WildcardProjection, path: string): boolean {
  const parts = path.split('.');
  let cur = projection.root;
  for (const part of parts) {
    const next = cur.children.get(part);
    if (!next) return !projection.include;
    if (next.leaf) return projection.include;
    cur = next;
  }
  // The path stops inside the projection tree: only some of what is below it is indexed.
  return false;
}

/** Receives what a wildcard walk finds. */
export interface WildcardSink {
  /** A leaf: its path and value (undefined for an empty array). */
  leaf(path: string, value: unknown): void;
  /** An array was traversed at this path. */
  array(path: string): void;
}

type Walk = ProjectionNode | null; // null: everything below is indexed

const join = (path: string, name: string): string => (path ? `${path}.${name}` : name);

function asDocument(v: unknown): Document | undefined {
  if (isPlainObject(v)) return v;
  if (isDbRef(v)) return dbRefAsDocument(v as object);
  return undefined;
}

/** Whether the projected object has no field left. */
function projectedEmpty(obj: Document, at: Walk, include: boolean): boolean {
  if (at === null) {
    for (const _ in obj) return false;
    return true;
  }
  for (const name of Object.keys(obj)) {
    const child = at.children.get(name);
    if (include) {
      if (!child) continue;
      const value = obj[name];
      if (child.leaf || Array.isArray(value) || asDocument(value)) return false;
    } else if (!child?.leaf) {
      return false;
    }
  }
  return true;
}

function walkFields(obj: Document, at: Walk, include: boolean, path: string, sink: WildcardSink): void {
  for (const name of Object.keys(obj)) {
    if (name.includes('.')) continue;
    let next: Walk = null;
    if (at !== null) {
      const child = at.children.get(name);
      if (include) {
        if (!child) continue;
        next = child.leaf ? null : child;
      } else {
        if (child?.leaf) continue;
        next = child ?? null;
      }
    }
    walkValue(obj[name], next, include, join(path, name), false, sink);
  }
}

function walkValue(value: unknown, at: Walk, include: boolean, path: string, inArray: boolean, sink: WildcardSink): void {
  // Below an inclusion's inner node only documents (and arrays of them) are kept by the projection.
  const keepsOnlyDocuments = include && at !== null;
  if (Array.isArray(value)) {
    if (inArray) {
      // A nested array is a value; an inclusion does not descend into one, and drops it.
      if (!keepsOnlyDocuments) sink.leaf(path, value);
      return;
    }
    sink.array(path);
    let visited = 0;
    for (const el of value) {
      if (keepsOnlyDocuments && !asDocument(el)) continue;
      visited++;
      walkValue(el, at, include, path, true, sink);
    }
    if (visited === 0) sink.leaf(path, undefined);
    return;
  }
  const doc = asDocument(value);
  if (doc) {
    if (projectedEmpty(doc, at, include)) sink.leaf(path, at === null ? value : {});
    else walkFields(doc, at, include, path, sink);
    return;
  }
  if (keepsOnlyDocuments) return;
  sink.leaf(path, value);
}

/** Walks the leaves of a document that a wildcard term with this projection indexes. */
export function walkWildcard(doc: Document, projection: WildcardProjection, sink: WildcardSink): void {
  walkFields(doc, projection.root, projection.include, '', sink);
}
