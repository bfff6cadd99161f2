/**
 * The plan cache, per collection, with mongod's (classic engine, 4.2+)
 * semantics:
 *
 * - Only queries with more than one candidate plan are cached; the key is
 *   the query shape (shape.ts) plus which partial indexes the query can use.
 * - A new entry is inactive and records the works (trial steps) its plan
 *   needed. A later query of the shape plans again; if the winner needs no
 *   more works the entry becomes active, else its works value doubles
 *   (internalQueryCacheWorksGrowthCoefficient) and it stays inactive. So one
 *   lucky, cheap query cannot pin a plan.
 * - An active entry is used without a trial: its plan is re-instantiated
 *   with the new query's values (bounds recomputed) and run. If it needs
 *   more than 10 × the recorded works (internalQueryCacheEvictionRatio)
 *   before producing a batch or finishing, the entry is deactivated and the
 *   query planned again, which records the new winner as above. A bad entry
 *   therefore cannot stick.
 * - Creating or dropping an index, an index becoming multikey, or dropping
 *   the collection clears it (checked on each use, so every path that changes
 *   the catalog is covered); planCacheClear clears it by hand.
 * - explain reads the cache (winningPlan.isCached) but never writes it.
 */
import type { Document } from 'bson';
import type { Collection } from '../storage/collection.js';
import type { Index } from '../storage/index.js';

/** An index scan's index; for a wildcard index, the query path it was expanded for (the scan's $_path bound). */
export interface CachedScan {
  index: Index;
  wildcardPath?: string;
}

/** What is cached: the choice of access path, re-instantiated with each query's values (an OR: which $or, and each branch's scan). */
export type CachedSolution =
  ({ kind: 'IXSCAN' } & CachedScan) | { kind: 'OR'; conjunct: number; branches: CachedScan[] } | { kind: 'COLLSCAN' };

export interface PlanCacheEntry {
  readonly key: string;
  readonly queryHash: string;
  readonly planCacheKey: string;
  solution: CachedSolution;
  /** Trial works of the plan when it won: the yardstick for replanning. */
  works: number;
  isActive: boolean;
  timeOfCreation: Date;
  createdFromQuery: { query: Document; sort: Document; projection: Document };
  /** The candidates' scores when the entry was planned, the winner's first. */
  candidatePlanScores: number[];
  /** The winning plan's stage tree (as explain shows it) for $planCacheStats. */
  cachedPlan: Document;
}

/** internalQueryCacheEvictionRatio: a cached plan may use this many times its recorded works before a replan. */
export const CACHE_EVICTION_RATIO = 10;
/** internalQueryCacheWorksGrowthCoefficient: how an inactive entry's works grow when a query does worse. */
export const WORKS_GROWTH_COEFFICIENT = 2;
/** Entries per collection, least recently used evicted first (mongod sizes its cache in bytes since 5.0). */
export const MAX_ENTRIES_PER_COLLECTION = 5000;

interface IndexState {
  index: Index;
  multikeyPaths: number;
  hidden: boolean;
}

function indexState(index: Index): IndexState {
  return { index, multikeyPaths: index.multikeyPathCount(), hidden: index.spec.hidden === true };
}

export interface NewPlan {
  key: string;
  queryHash: string;
  planCacheKey: string;
  solution: CachedSolution;
  works: number;
  candidatePlanScores: number[];
  createdFromQuery: PlanCacheEntry['createdFromQuery'];
  cachedPlan: Document;
}

export class CollectionPlanCache {
  private readonly entries = new Map<string, PlanCacheEntry>();
  private signature: IndexState[];

  constructor(collection: Collection) {
    this.signature = collection.indexes.map(indexState);
  }

  /**
   * Drops every entry if the collection's indexes changed since the last
   * look: one was created or dropped, a path became multikey (bounds and
   * sorts an index can give change), or one was hidden or unhidden.
   */
  validate(collection: Collection): void {
    const indexes = collection.indexes;
    let same = indexes.length === this.signature.length;
    for (let i = 0; same && i < indexes.length; i++) {
      const was = this.signature[i]!;
      const index = indexes[i]!;
      if (was.index !== index || was.hidden !== (index.spec.hidden === true)) {
        same = false;
      } else if (index.multikey || was.multikeyPaths > 0) {
        same = indexState(index).multikeyPaths === was.multikeyPaths;
      }
    }
    if (same) return;
    this.entries.clear();
    this.signature = indexes.map(indexState);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entry for a key, marked as most recently used. */
  get(key: string): PlanCacheEntry | undefined {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** mongod's PlanCache::set after a multi-planning: create, activate, replace or grow, as the module comment says. */
  record(plan: NewPlan): void {
    const existing = this.entries.get(plan.key);
    if (existing && plan.works > existing.works) {
      if (!existing.isActive) existing.works *= WORKS_GROWTH_COEFFICIENT;
      return;
    }
    this.entries.delete(plan.key);
    this.entries.set(plan.key, {
      key: plan.key,
      queryHash: plan.queryHash,
      planCacheKey: plan.planCacheKey,
      solution: plan.solution,
      works: plan.works,
      isActive: existing !== undefined,
      timeOfCreation: new Date(),
      createdFromQuery: plan.createdFromQuery,
      candidatePlanScores: plan.candidatePlanScores,
      cachedPlan: plan.cachedPlan,
    });
    if (this.entries.size > MAX_ENTRIES_PER_COLLECTION) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  /** After a cached plan did much worse than its works promised: planned again before it is used again. */
  deactivate(key: string): void {
    const entry = this.entries.get(key);
    if (entry) entry.isActive = false;
  }

  clear(): void {
    this.entries.clear();
  }

  /** Removes the entries whose query hash is one of these; returns how many. */
  clearQueryHashes(hashes: ReadonlySet<string>): number {
    let n = 0;
    for (const [key, entry] of this.entries) {
      if (hashes.has(entry.queryHash)) {
        this.entries.delete(key);
        n++;
      }
    }
    return n;
  }

  list(): PlanCacheEntry[] {
    return [...this.entries.values()];
  }
}

/** serverStatus metrics.query.planCache.classic. */
export interface PlanCacheMetrics {
  /** Queries answered by an active entry's plan without a trial. */
  hits: number;
  /** Queries with several candidate plans that were planned by a trial (no entry, or an inactive one). */
  misses: number;
  /** Active entries whose plan exceeded its works budget, and the query planned again. */
  replanned: number;
  /** Queries with a single candidate plan (hint, _id lookup, one usable index): nothing to cache. */
  skipped: number;
}

/** Every collection's plan cache of one server. */
export class PlanCacheRegistry {
  private readonly caches = new WeakMap<Collection, CollectionPlanCache>();
  readonly metrics: PlanCacheMetrics = { hits: 0, misses: 0, replanned: 0, skipped: 0 };

  /**
   * The collection's cache, emptied first if its indexes changed. Keyed by
   * the collection object: a dropped and re-created collection is a new one
   * (and a dropped one's cache goes with it).
   */
  forCollection(collection: Collection): CollectionPlanCache {
    let cache = this.caches.get(collection);
    if (!cache) {
      cache = new CollectionPlanCache(collection);
      this.caches.set(collection, cache);
    } else {
      cache.validate(collection);
    }
    return cache;
  }
}
