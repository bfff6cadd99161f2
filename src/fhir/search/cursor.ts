/**
 * Paging cursors: an opaque token naming a position in a search's sort order (the sort values of an entry,
 * `_id` last) and the direction to read from it. A cursor is bound to the query it came from by a fingerprint,
 * so it cannot be replayed against another search.
 *
 * A cursor may also carry what paging has learnt without counting: the total counted for the first page, and the
 * offset of its position (how many matches sort before it), so that the page where the matches run out knows the
 * total for free.
 */
import { createHash } from 'node:crypto';
import type { SortValue } from '../../store/search/compile.js';
import { errors } from '../outcome.js';

export type CursorDirection = 'after' | 'before' | 'last';

export interface Cursor {
  direction: CursorDirection;
  values: SortValue[];
  /** The total counted for the first page, carried so that later pages need not count again. */
  total?: number;
  /**
   * How many matches sort before the page read from this cursor ('after'), or before the position itself
   * ('before'): known when paging started at the first page, unknown after a jump to the last page.
   */
  offset?: number;
}

interface Encoded {
  q: string;
  d: 'n' | 'p' | 'l';
  v?: unknown[];
  t?: number;
  o?: number;
}

const CODES: Record<CursorDirection, Encoded['d']> = { after: 'n', before: 'p', last: 'l' };
const DIRECTIONS: Record<Encoded['d'], CursorDirection> = { n: 'after', p: 'before', l: 'last' };

export function queryFingerprint(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12);
}

function encodeValue(value: SortValue): unknown {
  return value instanceof Date ? { d: value.getTime() } : value;
}

function decodeValue(value: unknown): SortValue {
  if (value !== null && typeof value === 'object') {
    const ms = (value as { d?: unknown }).d;
    if (typeof ms === 'number') return new Date(ms);
    throw new Error('bad value');
  }
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  throw new Error('bad value');
}

export function encodeCursor(fingerprint: string, cursor: Cursor): string {
  const encoded: Encoded = { q: fingerprint, d: CODES[cursor.direction] };
  if (cursor.direction !== 'last') encoded.v = cursor.values.map(encodeValue);
  if (cursor.total !== undefined) encoded.t = cursor.total;
  if (cursor.offset !== undefined) encoded.o = cursor.offset;
  return Buffer.from(JSON.stringify(encoded)).toString('base64url');
}

/** A carried count when it is one (a non-negative integer); anything else is left out, not trusted. */
function count<K extends 'total' | 'offset'>(key: K, value: unknown): Partial<Record<K, number>> {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? ({ [key]: value as number } as Partial<Record<K, number>>) : {};
}

export function decodeCursor(text: string, fingerprint: string, width: number): Cursor {
  let encoded: Encoded;
  try {
    encoded = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Encoded;
  } catch {
    throw errors.badRequest('_cursor is not a cursor this server issued; follow the Bundle links to page');
  }
  if (encoded?.q !== fingerprint) {
    throw errors.badRequest('_cursor belongs to another search; follow the links of the Bundle it came from');
  }
  const direction = DIRECTIONS[encoded.d];
  if (!direction) throw errors.badRequest('_cursor is not a cursor this server issued');
  const counts = { ...count('total', encoded.t), ...count('offset', encoded.o) };
  if (direction === 'last') return { direction, values: [], ...counts };
  try {
    if (!Array.isArray(encoded.v) || encoded.v.length !== width) throw new Error('width');
    return { direction, values: encoded.v.map(decodeValue), ...counts };
  } catch {
    throw errors.badRequest('_cursor is not a cursor this server issued; follow the Bundle links to page');
  }
}
