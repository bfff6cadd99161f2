/**
 * A search as the store sees it: conditions over fields of the `resources` head documents, already normalised
 * by the FHIR layer (which knows parameters, modifiers and prefixes). compile.ts turns it into one MongoDB
 * filter; execute.ts runs it. Nothing here knows FHIR beyond the shapes of the stored index values.
 */

/** How a parameter's values are stored: one value, or an array of values. */
export type Layout = 'scalar' | 'array';

/** FHIR search prefixes. */
export type Comparator = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

export type Condition =
  | { op: 'and'; of: Condition[] }
  | { op: 'or'; of: Condition[] }
  /** Matches nothing (a chain whose target search found no resources). */
  | { op: 'none' }
  /** The field has (true) or lacks (false) values. */
  | { op: 'exists'; field: string; value: boolean }
  /** Some stored value equals one of `values` (scalar or array fields alike). */
  | { op: 'in'; field: string; values: Array<string | number | boolean> }
  /** No stored value equals any of `values`; a resource without the field matches. */
  | { op: 'nin'; field: string; values: Array<string | number | boolean> }
  /** Some stored string starts with one of `prefixes`. */
  | { op: 'prefix'; field: string; layout: Layout; prefixes: string[] }
  /** Some stored string contains one of `fragments` (a regular expression: no index prefix to use). */
  | { op: 'contains'; field: string; fragments: string[] }
  /**
   * Date ranges: the stored values are {lo, hi} (layout scalar or array) or single instants (layout 'point',
   * e.g. the head's lastUpdated); the query value is the range [lo, hi] it denotes. Semantics per FHIR R4
   * search.html#prefix over ranges.
   */
  | {
      op: 'date';
      field: string;
      layout: Layout | 'point';
      cmp: Comparator;
      lo: Date;
      hi: Date;
      /** The widest range a stored value can denote, when known: lets one-sided prefixes bound both index ends. */
      maxSpanMs?: number;
    }
  /**
   * Numbers (layout scalar/array of numbers) or quantities (field holds {v, s, c, u, cv, cc}; `quantity` set):
   * `value` for gt/lt/ge/le/sa/eb, the precision range [lo, hi) for eq/ne, [lo, hi] widened for ap. With
   * `quantity.canonical`, stored values of that canonical unit compare by `cv` against the canonical numbers,
   * and values without one by `v` with the exact system and code.
   */
  | {
      op: 'number';
      field: string;
      layout: Layout;
      cmp: Comparator;
      value: number;
      lo: number;
      hi: number;
      quantity?: { system?: string; code?: string; canonical?: CanonicalQuantity };
    }
  /**
   * The field holds an array of sub-documents (a composite parameter's tuples) and one of them satisfies every
   * condition of `of`, whose fields are relative to the sub-document.
   */
  | { op: 'composite'; field: string; of: Condition[] }
  /** The field holds a reference to one of the resources a sub-search finds (chaining). */
  | { op: 'chain'; field: string; search: SubSearch }
  /**
   * Reverse chaining (_has): the head is referenced, through `referenceField` of resources a sub-search finds,
   * by a reference "Type/id" equal to its own _id.
   */
  | { op: 'has'; referenceField: string; targetType: string; search: SubSearch };

/** A quantity search value converted to base units (the same conversion as the stored cv/cc). */
export interface CanonicalQuantity {
  unit: string;
  value: number;
  lo: number;
  hi: number;
}

export interface SubSearch {
  types: string[];
  where: Condition;
}

export interface SortKey {
  field: string;
  direction: 1 | -1;
}

export interface StoreQuery {
  types: string[];
  where: Condition;
  /** Explicit sort keys; `_id` is always added last as the tie-breaker. */
  sort: SortKey[];
}

/** A chained or reverse-chained search matched more resources than a single query can carry as ids. */
export class SubSearchTooLargeError extends Error {
  constructor(
    readonly types: string[],
    readonly limit: number,
  ) {
    super(`A chained search on ${types.join(', ')} matches more than ${limit} resources; narrow it`);
    this.name = 'SubSearchTooLargeError';
  }
}
