/**
 * How a patch failure is reported.
 *
 * The status rule (RFC 5789 §2.2, which FHIR's patch interaction builds on, and RFC 6902 §5):
 * - 400 Bad Request — the patch document itself is malformed: not a JSON array / not a Parameters resource
 *   shaped as a FHIRPath Patch, an unknown operation, a missing or ill-typed member (path, value, from,
 *   index…), JSON Pointer or FHIRPath syntax errors, and paths that try to reach "__proto__", "constructor"
 *   or "prototype". Such a document is wrong whatever resource it is applied to.
 * - 422 Unprocessable Entity — the document is well formed but cannot be applied to *this* resource: a `test`
 *   that fails, a path that does not exist (remove/replace/move/copy source, JSON Pointer into a missing
 *   parent), an index out of range, a FHIRPath that selects no element (except for delete) or more than one,
 *   a value of the wrong type for the element, and any change of resourceType or id. FHIR processes the
 *   patched document as an update of the same resource (http.html#patch), and an update answers 422 when
 *   the proposed content breaks the server's rules.
 * RFC 5789 would also allow 409 for "conflicting state"; we keep 409 for version conflicts (If-Match) and use
 * 422 for everything the patch content causes. HAPI FHIR and Medplum answer 400 for all patch failures; we
 * separate the two cases so a client can tell "fix your patch" from "the resource is not as you thought".
 */
import { copyOwnDecimalText } from '../decimal-text.js';
import { FhirError, issue } from '../outcome.js';
import type { IssueType } from '../outcome.js';

/** 400: the patch document is malformed. */
export function malformed(diagnostics: string, expression?: string): FhirError {
  return new FhirError(400, issue('error', 'invalid', diagnostics, expression));
}

/** 422: the patch is well formed but cannot be applied to this resource. */
export function unprocessable(diagnostics: string, expression?: string, code: IssueType = 'processing'): FhirError {
  return new FhirError(422, issue('error', code, diagnostics, expression));
}

/** Keys that must never be reached through a patch path (prototype pollution). */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The first member named "__proto__" anywhere inside `value`, if any. Such a member cannot come from a
 * legitimate FHIR document, and refusing it spares every later step from having to handle it.
 */
export function findForbiddenKey(value: unknown): string | undefined {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (Array.isArray(next)) {
      pending.push(...next);
    } else if (isJsonObject(next)) {
      for (const key of Object.keys(next)) {
        if (key === '__proto__') return key;
        pending.push(next[key]);
      }
    }
  }
  return undefined;
}

/**
 * Deep copy of JSON data. Keys named "__proto__" are copied as plain own data properties (never through the
 * __proto__ setter), so a copy can never change any object's prototype.
 */
export function cloneJson<T>(value: T): T {
  if (Array.isArray(value)) {
    const copy = value.map((v) => cloneJson(v));
    copyOwnDecimalText(value, copy);
    return copy as T;
  }
  if (isJsonObject(value)) {
    const out: JsonObject = {};
    // Decimals keep the digits they were written with through a patch (decimal-text.ts).
    copyOwnDecimalText(value, out);
    for (const key of Object.keys(value)) {
      const v = cloneJson(value[key]);
      if (key === '__proto__') {
        Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      } else {
        out[key] = v;
      }
    }
    return out as T;
  }
  return value;
}

/** A short JSON rendering for diagnostics. */
export function brief(value: unknown, max = 80): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
