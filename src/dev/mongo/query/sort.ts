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
 * Keeps the first `limit` documents of the sorted order without sorting the
 * whole input (mongod's top-k SORT with limitAmount).
 */
export function topK<T extends Document>(docs: T[], fields: SortField[], limit: number): T[] {
  if (limit <= 0 || limit >= docs.length) return sortDocuments(docs, fields);
  const heap: Array<{ doc: T; index: number; keys: string[] }> = [];
  const worse = (a: (typeof heap)[number], b: (typeof heap)[number]): boolean =>
    (compareSortKeys(a.keys, b.keys, fields) || a.index - b.index) > 0;
  // Max-heap on "worst first" so the worst kept element is evicted.
  const up = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!worse(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  };
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  docs.forEach((doc, index) => {
    const entry = { doc, index, keys: fields.map((f) => sortKey(doc, f)) };
    if (heap.length < limit) {
      heap.push(entry);
      up(heap.length - 1);
    } else if (worse(heap[0]!, entry)) {
      heap[0] = entry;
      down(0);
    }
  });
  heap.sort((a, b) => compareSortKeys(a.keys, b.keys, fields) || a.index - b.index);
  return heap.map((e) => e.doc);
}
