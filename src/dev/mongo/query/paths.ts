/**
 * Dotted-path traversal with mongod's array expansion, shared by index key
 * generation and sort key extraction so that an index scan and an in-memory
 * sort agree on which values a document has at a path.
 */
import type { Document } from 'bson';
import { isPlainObject } from '../bson/values.js';

export interface PathValues {
  /** Values at the path; a missing path contributes null, an empty array undefined. */
  values: unknown[];
  /** Bit i set: an array was traversed at path component i (0-based; deeper ones share bit 30). */
  arrayComponents: number;
}

function arrayBit(component: number): number {
  return 1 << Math.min(component, 30);
}

/** Component positions of an arrayComponents bitmask, ascending. */
export function componentsOf(mask: number): number[] {
  const out: number[] = [];
  for (let i = 0; mask !== 0 && i <= 30; i++) if (mask & (1 << i)) out.push(i);
  return out;
}

const DIGITS = /^\d+$/;

export function collectPathValues(doc: Document, path: string): PathValues {
  const parts = path.split('.');
  const out: PathValues = { values: [], arrayComponents: 0 };
  walk(doc, parts, 0, out);
  return out;
}

function walk(value: unknown, parts: string[], i: number, out: PathValues): void {
  if (i === parts.length) {
    if (Array.isArray(value)) {
      out.arrayComponents |= arrayBit(i - 1);
      // mongod keys an empty array as undefined, which sorts below null.
      if (value.length === 0) out.values.push(undefined);
      else for (const el of value) out.values.push(el);
    } else {
      out.values.push(value === undefined ? null : value);
    }
    return;
  }
  const part = parts[i]!;
  if (Array.isArray(value)) {
    out.arrayComponents |= arrayBit(i - 1);
    if (DIGITS.test(part)) {
      walk(value[Number(part)], parts, i + 1, out);
      return;
    }
    if (value.length === 0) {
      out.values.push(null);
      return;
    }
    for (const el of value) {
      if (isPlainObject(el)) walk(el[part], parts, i + 1, out);
      else out.values.push(null);
    }
    return;
  }
  if (isPlainObject(value)) {
    walk(value[part], parts, i + 1, out);
    return;
  }
  out.values.push(null);
}

/** Sets a dotted path, creating intermediate sub-documents. */
export function setPath(doc: Document, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur: Document = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i]!;
    const next: unknown = cur[part];
    if (isPlainObject(next)) {
      cur = next;
    } else {
      const created: Document = {};
      cur[part] = created;
      cur = created;
    }
  }
  cur[parts[parts.length - 1]!] = value;
}

/** Whether any branch of the path (through arrays) reaches a present value. */
export function pathExists(doc: Document, path: string): boolean {
  return exists(doc, path.split('.'), 0);
}

function exists(value: unknown, parts: string[], i: number): boolean {
  if (i === parts.length) return value !== undefined;
  const part = parts[i]!;
  if (Array.isArray(value)) {
    if (DIGITS.test(part) && exists(value[Number(part)], parts, i + 1)) return true;
    return value.some((el) => isPlainObject(el) && exists(el[part], parts, i + 1));
  }
  if (isPlainObject(value)) return exists(value[part], parts, i + 1);
  return false;
}
