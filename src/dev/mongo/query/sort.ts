/**
 * Sorting in mongod's BSON order. An array-valued sort field sorts by its
 * smallest element ascending and its largest element descending.
 */
import type { Document } from 'bson';
import { encodeValue } from '../bson/keystring.js';
import { CommandError, ErrorCode } from '../errors.js';
import { collectPathValues } from './paths.js';

export interface SortField {
  path: string;
  direction: 1 | -1;
}

export function parseSort(spec: unknown): SortField[] {
  if (spec === undefined || spec === null) return [];
  if (typeof spec !== 'object' || Array.isArray(spec)) {
    throw new CommandError(ErrorCode.TypeMismatch, 'Expected field sort to be of type object');
  }
  const out: SortField[] = [];
  for (const [path, dir] of Object.entries(spec as Document)) {
    const n = typeof dir === 'number' ? dir : Number(dir);
    if (n === 1 || n === -1) {
      out.push({ path, direction: n });
      continue;
    }
    if (dir !== null && typeof dir === 'object' && '$meta' in (dir as Document)) {
      throw new CommandError(ErrorCode.BadValue, `$meta sort is not supported by the embedded server: ${path}`);
    }
    throw new CommandError(ErrorCode.BadValue, `$sort key ordering must be 1 (for ascending) or -1 (for descending)`);
  }
  return out;
}

/** Encoded key of one sort field for one document. */
export function sortKey(doc: Document, field: SortField): string {
  const { values } = collectPathValues(doc, field.path);
  let best: string | undefined;
  for (const v of values) {
    const k = encodeValue(v);
    if (best === undefined || (field.direction === 1 ? k < best : k > best)) best = k;
  }
  return best ?? encodeValue(null);
}

export function compareSortKeys(a: string[], b: string[], fields: SortField[]): number {
  for (let i = 0; i < fields.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return (x < y ? -1 : 1) * fields[i]!.direction;
  }
  return 0;
}

/** Stable sort; keys are computed once per document. */
export function sortDocuments<T extends Document>(docs: T[], fields: SortField[]): T[] {
  if (fields.length === 0) return docs;
  const decorated = docs.map((doc, index) => ({ doc, index, keys: fields.map((f) => sortKey(doc, f)) }));
  decorated.sort((a, b) => compareSortKeys(a.keys, b.keys, fields) || a.index - b.index);
  return decorated.map((d) => d.doc);
}

/**
 * The first `limit` documents of the sorted order, kept as documents arrive without holding the others (mongod's
 * top-k SORT with limitAmount): memory is bounded by the limit, not by the number of matches, and the cost is
 * paid while the scan runs (where the query's time limit is checked), not in one sort at its end.
 */
export class TopK<T extends Document> {
  private readonly heap: Array<{ doc: T; index: number; keys: string[] }> = [];
  private seen = 0;

  constructor(
    private readonly fields: SortField[],
    private readonly limit: number,
  ) {}

  /** Whether a is after b in the sorted order (ties: the later arrival is after). */
  private worse(a: { index: number; keys: string[] }, b: { index: number; keys: string[] }): boolean {
    return (compareSortKeys(a.keys, b.keys, this.fields) || a.index - b.index) > 0;
  }

  push(doc: T): void {
    const heap = this.heap;
    const entry = { doc, index: this.seen++, keys: this.fields.map((f) => sortKey(doc, f)) };
    // A max-heap on "worst first": the worst kept entry is the one to evict.
    if (heap.length < this.limit) {
      heap.push(entry);
      let i = heap.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.worse(heap[i]!, heap[p]!)) break;
        [heap[i], heap[p]] = [heap[p]!, heap[i]!];
        i = p;
      }
      return;
    }
    if (this.limit === 0 || !this.worse(heap[0]!, entry)) return;
    heap[0] = entry;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && this.worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && this.worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }

  /** The kept documents, in order. */
  sorted(): T[] {
    return [...this.heap].sort((a, b) => compareSortKeys(a.keys, b.keys, this.fields) || a.index - b.index).map((e) => e.doc);
  }
}
