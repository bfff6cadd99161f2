/**
 * Wildcard indexes in planning, as mongod does it: a wildcard index is never
 * scanned as such, but expanded, per query, into virtual indexes on concrete
 * paths. For a predicate on a path its wildcard term indexes, the term becomes
 * two fields: '$_path', bound to that one path, and the path itself, bound
 * like any indexed field ({ type: 1, 'idx.$**': 1 } and a predicate on
 * 'idx.code' scan { type: 1, $_path: 1, 'idx.code': 1 } with $_path
 * ["idx.code", "idx.code"]). Each path with a usable predicate is a candidate
 * plan of its own; the trial picks one. A compound wildcard index whose
 * regular fields before the wildcard term have predicates is also a candidate
 * without any path ('$_path' bound to every path and to MinKey, the key of
 * documents without a wildcard leaf); such a scan meets a document under
 * several keys and deduplicates.
 *
 * The expansion is multikey on a path exactly when an array was traversed
 * along it (the index's multikey paths that prefix it), so bounds, exactness
 * and sorts follow the rules of regular indexes.
 */
import type { Document } from 'bson';
import type { Index, IndexField, IndexTable } from '../storage/index.js';
import { projectionCovers } from '../storage/wildcard.js';
import { allPathsBounds, pathPointBounds, usableByWildcard, type FieldBounds, type PathPredicates } from './bounds.js';

/** The name of the virtual path field of an expanded wildcard index, and the path of a regular-prefix scan. */
export const PATH_FIELD = '$_path';

/** The index a scan reads, as the planner sees it: a regular index, or a wildcard index expanded for a path. */
export interface ScanIndex {
  /** The index whose entries are read. */
  readonly physical: Index;
  readonly name: string;
  readonly spec: Document;
  /** The fields of the keys, in key order (an expansion's include $_path). */
  readonly fields: readonly IndexField[];
  readonly keyPattern: Document;
  readonly unique: boolean;
  readonly sparse: boolean;
  readonly partialFilter: Document | undefined;
  readonly tree: IndexTable;
  /** explain's isMultiKey. */
  readonly multikey: boolean;
  readonly multikeyPaths: ReadonlyMap<string, ReadonlySet<number>>;
  /** Whether a scan can meet a document under several keys. */
  readonly needsDedup: boolean;
  /** An expansion's query path (PATH_FIELD: a scan of the regular prefix alone). */
  readonly wildcardPath?: string;
  /** An expansion's position of the expanded path in `fields`. */
  readonly wildcardPosition?: number;
  /** Bounds the expansion fixes ($_path), by field position. */
  readonly fixedBounds?: ReadonlyArray<FieldBounds | undefined>;
  explainMultiKeyPaths(): Document;
}

const NUMERIC_COMPONENT = /(^|\.)\d+(\.|$)/;

/** A wildcard index seen as an index on { ...regular fields, $_path, <path> }. */
class WildcardExpansion implements ScanIndex {
  readonly fields: IndexField[] = [];
  readonly keyPattern: Document = {};
  readonly multikeyPaths = new Map<string, Set<number>>();
  readonly multikey: boolean;
  readonly needsDedup: boolean;
  readonly wildcardPosition: number;
  readonly fixedBounds: Array<FieldBounds | undefined> = [];
  readonly unique = false;
  /** mongod plans an expanded wildcard index as sparse: a document without the path has no key for it. */
  readonly sparse = true;

  constructor(
    readonly physical: Index,
    readonly wildcardPath: string,
  ) {
    const term = physical.wildcard!;
    const prefixScan = wildcardPath === PATH_FIELD;
    const components = new Set<number>();
    if (!prefixScan) {
      const parts = wildcardPath.split('.');
      let prefix = '';
      parts.forEach((part, i) => {
        prefix = i === 0 ? part : `${prefix}.${part}`;
        if (physical.wildcardMultikeyPaths.has(prefix)) components.add(i);
      });
    }
    this.multikey = components.size > 0;
    this.needsDedup = this.multikey || prefixScan;
    physical.fields.forEach((field, f) => {
      if (f !== term.position) {
        this.add({ path: field.path, direction: field.direction }, new Set());
        return;
      }
      this.fixedBounds[this.fields.length] = prefixScan ? allPathsBounds() : pathPointBounds(wildcardPath);
      this.add({ path: PATH_FIELD, direction: 1 }, new Set());
      this.add({ path: wildcardPath, direction: term.direction }, components);
    });
    this.wildcardPosition = term.position + 1;
  }

  private add(field: IndexField, components: Set<number>): void {
    this.fields.push(field);
    // A regular-prefix scan has $_path twice; the first is what explain shows (as mongod's, whose keyPattern repeats it).
    if (!(field.path in this.keyPattern)) this.keyPattern[field.path] = field.direction;
    if (!this.multikeyPaths.has(field.path)) this.multikeyPaths.set(field.path, components);
  }

  get name(): string {
    return this.physical.name;
  }

  get spec(): Document {
    return this.physical.spec;
  }

  get partialFilter(): Document | undefined {
    return this.physical.partialFilter;
  }

  get tree(): IndexTable {
    return this.physical.tree;
  }

  explainMultiKeyPaths(): Document {
    const out: Document = {};
    for (const [path, set] of this.multikeyPaths) {
      const parts = path.split('.');
      out[path] = [...set].sort((a, b) => a - b).map((c) => parts.slice(0, c + 1).join('.'));
    }
    return out;
  }
}

/** Whether the index's wildcard term indexes this query path (as mongod plans it: no positional components). */
function indexesPath(index: Index, path: string): boolean {
  const term = index.wildcard;
  if (!term || path === PATH_FIELD || path.startsWith('$') || NUMERIC_COMPONENT.test(path)) return false;
  return projectionCovers(term.projection, path);
}

/** Whether some regular field before the wildcard term has a predicate (a regular-prefix scan can serve it). */
function prefixHasPredicate(index: Index, predicates: PathPredicates): boolean {
  const term = index.wildcard!;
  return index.fields.slice(0, term.position).some((f) => predicates.has(f.path));
}

/**
 * The expansion of a wildcard index for one query path (or PATH_FIELD), when the query has a predicate there that
 * the index can bound; undefined otherwise.
 */
export function expandWildcard(index: Index, path: string, predicates: PathPredicates): ScanIndex | undefined {
  if (!index.wildcard) return undefined;
  if (path === PATH_FIELD) return prefixHasPredicate(index, predicates) ? new WildcardExpansion(index, path) : undefined;
  if (!indexesPath(index, path) || !(predicates.get(path) ?? []).some(usableByWildcard)) return undefined;
  return new WildcardExpansion(index, path);
}

/** Every expansion of a wildcard index a query can use: one per path with a usable predicate, then the regular prefix. */
export function wildcardExpansions(index: Index, predicates: PathPredicates): ScanIndex[] {
  const out: ScanIndex[] = [];
  for (const path of predicates.keys()) {
    const expansion = expandWildcard(index, path, predicates);
    if (expansion) out.push(expansion);
  }
  const prefix = expandWildcard(index, PATH_FIELD, predicates);
  if (prefix) out.push(prefix);
  return out;
}
