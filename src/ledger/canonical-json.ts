/**
 * Canonical JSON per RFC 8785, the JSON Canonicalization Scheme (JCS).
 *
 * The canonical form is produced by the `canonicalize` package (by S. Erdtman, a co-author of
 * RFC 8785), pinned to exactly 4.0.0 in package.json:
 *   - 4.x is ESM, ships its own types, declares `engines: node >= 18` and so is supported on every
 *     Node this project runs on (20.19+, 22, 24); it rejects lone surrogates, NaN and Infinity and
 *     detects cycles, as RFC 8785 requires.
 *   - 5.x declares `engines: node >= 22` (npm warns EBADENGINE on Node 20, and fails under
 *     engine-strict); its differences from 4.0.0 (iterative instead of recursive descent, boxed
 *     primitives, functions inside arrays) concern inputs that `canonicalJson` rejects anyway
 *     before the library sees them.
 *   - The version is pinned exactly because every commitment ever anchored depends on these bytes:
 *     an upgrade must be a deliberate change, gated by the RFC 8785 vectors in
 *     test/fixtures/ledger/jcs/.
 *
 * Number and string serialization come from ECMAScript's own JSON.stringify (which is what
 * RFC 8785 normatively references), property sorting from Array.prototype.sort's default
 * UTF-16 code-unit order (RFC 8785 section 3.2.3).
 *
 * Before handing a value to the library, `canonicalJson` checks that it is *exactly* JSON data, so
 * that nothing is silently dropped or rewritten (the library, like JSON.stringify, would turn
 * `undefined` in an array into `null`, omit `undefined` properties, and call `toJSON()`):
 *   - null, booleans, finite numbers, strings without lone surrogates;
 *   - dense arrays of JSON values;
 *   - plain objects (prototype Object.prototype or null) whose enumerable own string-keyed
 *     properties all hold JSON values.
 * Anything else (undefined — also as a property value —, functions, symbols, bigint, NaN,
 * ±Infinity, Date, Buffer, Map, class instances, sparse arrays, cycles, nesting deeper than
 * MAX_DEPTH) throws a CanonicalJsonError naming the offending location (e.g. `$.name[0].given`).
 * Callers holding data with such values should serialise it the way it is served first
 * (e.g. canonicalJson(JSON.parse(body))).
 */
import canonicalize from 'canonicalize';

/** Maximum nesting depth of arrays/objects accepted (FHIR resources are far shallower). */
export const MAX_DEPTH = 1000;

export class CanonicalJsonError extends TypeError {
  /** JSONPath-like location of the offending value, `$` being the root. */
  readonly path: string;

  constructor(message: string, path: string) {
    super(`canonicalJson: ${message} at ${path}`);
    this.name = 'CanonicalJsonError';
    this.path = path;
  }
}

// With the `u` flag a well-formed surrogate pair is a single code point, so this only matches
// unpaired (lone) surrogates, which RFC 8785 section 3.2.2.2 says MUST cause an error.
const LONE_SURROGATE = /\p{Surrogate}/u;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number') return String(value); // NaN, Infinity, -Infinity
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'bigint') return 'a bigint';
  const ctor = (value as { constructor?: { name?: unknown } }).constructor;
  const name = typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'non-plain object';
  return `an instance of ${name}`;
}

function assertJsonValue(value: unknown, path: string, depth: number, ancestors: Set<object>): void {
  switch (typeof value) {
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) {
        throw new CanonicalJsonError(`${describe(value)} is not a JSON number (RFC 8785 3.2.2.3)`, path);
      }
      return;
    case 'string':
      if (LONE_SURROGATE.test(value)) {
        throw new CanonicalJsonError('string contains a lone surrogate (RFC 8785 3.2.2.2)', path);
      }
      return;
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`${describe(value)} is not a JSON value`, path);
  }
  if (value === null) return;

  if (depth >= MAX_DEPTH) {
    throw new CanonicalJsonError(`nesting deeper than ${MAX_DEPTH} levels`, path);
  }
  if (ancestors.has(value)) {
    throw new CanonicalJsonError('circular reference', path);
  }
  ancestors.add(value);

  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!Object.prototype.hasOwnProperty.call(value, i)) {
        throw new CanonicalJsonError('sparse array (hole) is not JSON', childPath(path, i));
      }
      assertJsonValue(value[i], childPath(path, i), depth + 1, ancestors);
    }
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new CanonicalJsonError(`${describe(value)} is not a plain JSON object`, path);
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (LONE_SURROGATE.test(key)) {
        throw new CanonicalJsonError('property name contains a lone surrogate (RFC 8785 3.2.2.2)', path);
      }
      assertJsonValue(record[key], childPath(path, key), depth + 1, ancestors);
    }
  }

  ancestors.delete(value);
}

/**
 * RFC 8785 canonical form of `value`, as a JS string (encode it as UTF-8 for hashing — RFC 8785
 * section 3.2.4; see `canonicalJsonBytes`). Throws CanonicalJsonError if `value` is not JSON data.
 */
export function canonicalJson(value: unknown): string {
  assertJsonValue(value, '$', 0, new Set());
  const out = canonicalize(value);
  if (typeof out !== 'string') {
    // Unreachable after validation; kept so a library change can never yield a silent "undefined".
    throw new CanonicalJsonError('canonicalizer produced no output', '$');
  }
  return out;
}

/** UTF-8 bytes of the RFC 8785 canonical form (what is hashed). */
export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
