/**
 * JSON Patch (RFC 6902, application/json-patch+json) applied to a resource's JSON.
 *
 * The operations themselves are carried out by the `rfc6902` package (chbrown/rfc6902). Why that library:
 * - complete: all six operations, including test/move/copy, JSON Pointer escaping (RFC 6901), "-" for the
 *   array end, structural equality for `test` (so "10" is not 10);
 * - maintained: regular releases to this day, each tightening RFC conformance (strict array indexes, no move
 *   into one's own child, removal of the root refused), no dependencies, MIT; it is also what Medplum's
 *   server uses for the same job;
 * - its prototype-pollution history is closed (fixed in 5.0.0 for apply, 5.1.0 for Pointer#set): Pointer
 *   evaluation skips "__proto__"/"constructor"/"prototype" and its clone drops "__proto__" keys.
 * Rejected: fast-json-patch 3.1.1 (no release since 2022; its pollution guard is an opt-out flag that only
 * covers "__proto__" and "constructor/prototype", and "remove /toString" "succeeds" on inherited members);
 * json-joy (its current releases are AGPL-3.0, a large dependency tree for one feature); immutable-json-patch
 * (a `replace` or `remove` of a missing path silently does nothing, against the RFC).
 *
 * What this module adds around the library, because a FHIR server takes patches from the network:
 * - the document is checked first (400): an array of objects, known `op`, string `path`/`from` that are
 *   valid JSON Pointers, `value` present where required;
 * - any pointer token "__proto__", "constructor" or "prototype" is refused (400). rfc6902 would silently
 *   *skip* such tokens ("/__proto__/x" would write "/x"), which is safe but surprising; we say no instead;
 * - before each operation the pointers are resolved against the current document by own properties only
 *   (an inherited "toString" is not a member) with strict array indexes, so a path that does not exist is
 *   reported as such (422) rather than half-applied;
 * - atomicity: operations run on a deep copy of the resource; the first failure throws and the copy is
 *   dropped, so either every operation applies or none does, and the caller's object is never touched;
 * - the patched result must still be the same resource — that rule is checked by the caller (index.ts).
 */
import { applyPatch as applyRfc6902, type Operation } from 'rfc6902';
import { brief, cloneJson, findForbiddenKey, FORBIDDEN_KEYS, isJsonObject, malformed, unprocessable, type JsonObject } from './problems.js';

const OPERATIONS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

interface CheckedOperation {
  readonly index: number;
  readonly op: Operation['op'];
  readonly path: string;
  readonly pathTokens: readonly string[];
  readonly from?: string;
  readonly fromTokens?: readonly string[];
  readonly value?: unknown;
}

/** Applies a JSON Patch document to a copy of `document` and returns the copy. Throws FhirError 400/422. */
export function applyJsonPatch(document: unknown, operations: unknown): unknown {
  const checked = checkDocument(operations);
  let working: unknown = cloneJson(document);
  for (const operation of checked) {
    working = applyOne(working, operation);
  }
  return working;
}

// ---------------------------------------------------------------------------------------------------------
// Document checks (400)

function checkDocument(operations: unknown): CheckedOperation[] {
  if (!Array.isArray(operations)) {
    throw malformed('A JSON Patch document must be a JSON array of operations (RFC 6902 §3)');
  }
  return operations.map((raw, index) => checkOperation(raw, index));
}

function checkOperation(raw: unknown, index: number): CheckedOperation {
  const where = `JSON Patch operation ${index}`;
  if (!isJsonObject(raw)) {
    throw malformed(`${where} is not a JSON object`);
  }
  const op = raw['op'];
  if (typeof op !== 'string' || !OPERATIONS.has(op)) {
    throw malformed(`${where}: "op" must be one of add, remove, replace, move, copy, test (got ${brief(op)})`);
  }
  const path = raw['path'];
  if (typeof path !== 'string') {
    throw malformed(`${where} (${op}): "path" is required and must be a string`);
  }
  const pathTokens = parsePointer(path, `${where} (${op}): "path"`);
  let from: string | undefined;
  let fromTokens: string[] | undefined;
  if (op === 'move' || op === 'copy') {
    const rawFrom = raw['from'];
    if (typeof rawFrom !== 'string') {
      throw malformed(`${where} (${op} ${path}): "from" is required and must be a string`);
    }
    from = rawFrom;
    fromTokens = parsePointer(rawFrom, `${where} (${op} ${path}): "from"`);
  }
  let value: unknown;
  if (op === 'add' || op === 'replace' || op === 'test') {
    if (!Object.hasOwn(raw, 'value')) {
      throw malformed(`${where} (${op} ${path}): "value" is required`);
    }
    value = raw['value'];
    const bad = findForbiddenKey(value);
    if (bad !== undefined) {
      throw malformed(`${where} (${op} ${path}): the value contains a member named "${bad}", which is not allowed`);
    }
  }
  return { index, op: op as Operation['op'], path, pathTokens, from, fromTokens, value };
}

/** Parses a JSON Pointer (RFC 6901) into unescaped tokens; refuses bad syntax and forbidden keys (400). */
export function parsePointer(pointer: string, what: string): string[] {
  if (pointer === '') {
    return [];
  }
  if (!pointer.startsWith('/')) {
    throw malformed(`${what} ${brief(pointer)} is not a JSON Pointer: it must be empty or start with "/"`);
  }
  const tokens = pointer.slice(1).split('/');
  return tokens.map((token) => {
    if (/~(?![01])/.test(token)) {
      throw malformed(`${what} ${brief(pointer)} is not a JSON Pointer: "~" must be followed by 0 or 1`);
    }
    const unescaped = token.replace(/~1/g, '/').replace(/~0/g, '~');
    if (FORBIDDEN_KEYS.has(unescaped)) {
      throw malformed(`${what} ${brief(pointer)} refers to "${unescaped}", which is not allowed in a patch path`);
    }
    return unescaped;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Application (422 when the document does not fit the resource)

const ARRAY_INDEX = /^(0|[1-9][0-9]*)$/;

interface Endpoint {
  /** the container holding the target, undefined for the root */
  readonly parent?: JsonObject | unknown[];
  readonly token?: string;
  /** whether the target exists (own member / index within bounds) */
  readonly exists: boolean;
  readonly value?: unknown;
}

function describe(operation: CheckedOperation): string {
  const from = operation.from !== undefined ? ` from ${operation.from}` : '';
  return `JSON Patch operation ${operation.index} (${operation.op} ${operation.path || '""'}${from})`;
}

/**
 * Resolves `tokens` against `document` by own members only. Returns the endpoint, or a reason why the parent
 * of the target does not exist.
 */
function resolve(document: unknown, tokens: readonly string[]): Endpoint | string {
  if (tokens.length === 0) {
    return { exists: true, value: document };
  }
  let container: unknown = document;
  for (let i = 0; i < tokens.length - 1; i++) {
    const next = child(container, tokens[i]!);
    if (next === undefined) {
      return `${pointerOf(tokens.slice(0, i + 1))} does not exist`;
    }
    container = next.value;
  }
  if (!Array.isArray(container) && !isJsonObject(container)) {
    return `${pointerOf(tokens.slice(0, -1)) || 'the document'} is not an object or array`;
  }
  const token = tokens[tokens.length - 1]!;
  const target = child(container, token);
  return { parent: container, token, exists: target !== undefined, value: target?.value };
}

function child(container: unknown, token: string): { value: unknown } | undefined {
  if (Array.isArray(container)) {
    if (!ARRAY_INDEX.test(token)) return undefined;
    const index = Number(token);
    return index < container.length ? { value: container[index] } : undefined;
  }
  if (isJsonObject(container)) {
    return Object.hasOwn(container, token) ? { value: container[token] } : undefined;
  }
  return undefined;
}

function pointerOf(tokens: readonly string[]): string {
  return tokens.map((t) => '/' + t.replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/** Checks that `endpoint` can receive an added value (RFC 6902 §4.1). */
function checkAddTarget(operation: CheckedOperation, endpoint: Endpoint | string): void {
  if (typeof endpoint === 'string') {
    throw unprocessable(`${describe(operation)} cannot be applied: ${endpoint}`);
  }
  if (Array.isArray(endpoint.parent)) {
    const token = endpoint.token!;
    if (token !== '-' && (!ARRAY_INDEX.test(token) || Number(token) > endpoint.parent.length)) {
      throw unprocessable(
        `${describe(operation)} cannot be applied: "${token}" is not an index within the array (length ${endpoint.parent.length})`,
      );
    }
  }
}

function requireExisting(operation: CheckedOperation, endpoint: Endpoint | string, pointer: string): Endpoint {
  if (typeof endpoint === 'string') {
    throw unprocessable(`${describe(operation)} cannot be applied: ${endpoint}`);
  }
  if (!endpoint.exists) {
    throw unprocessable(`${describe(operation)} cannot be applied: ${pointer} does not exist`);
  }
  return endpoint;
}

function applyOne(document: unknown, operation: CheckedOperation): unknown {
  const { op, path, pathTokens } = operation;
  const target = resolve(document, pathTokens);

  switch (op) {
    case 'add':
      checkAddTarget(operation, target);
      if (pathTokens.length === 0) return cloneJson(operation.value);
      break;
    case 'replace':
      requireExisting(operation, target, path);
      if (pathTokens.length === 0) return cloneJson(operation.value);
      break;
    case 'remove':
      if (pathTokens.length === 0) {
        throw unprocessable(`${describe(operation)} cannot be applied: the whole resource cannot be removed`);
      }
      requireExisting(operation, target, path);
      break;
    case 'test':
      requireExisting(operation, target, path);
      break;
    case 'copy': {
      const source = requireExisting(operation, resolve(document, operation.fromTokens!), operation.from!);
      checkAddTarget(operation, target);
      if (pathTokens.length === 0) return cloneJson(source.value);
      break;
    }
    case 'move': {
      // RFC 6902 §4.4 defines move as a remove of "from" followed by an add at "path", with "path" evaluated
      // after the removal (indexes may have shifted). rfc6902's own move resolves "path" before removing, so
      // the two steps are given to the library one after the other, each checked first.
      const fromTokens = operation.fromTokens!;
      const source = requireExisting(operation, resolve(document, fromTokens), operation.from!);
      if (fromTokens.length < pathTokens.length && fromTokens.every((t, i) => t === pathTokens[i])) {
        throw unprocessable(`${describe(operation)} cannot be applied: a value cannot be moved into one of its own children`);
      }
      if (pathTokens.length === 0) return source.value;
      if (fromTokens.length === 0) {
        throw unprocessable(`${describe(operation)} cannot be applied: the whole resource cannot be moved`);
      }
      run(document, operation, { op: 'remove', path: operation.from! });
      checkAddTarget(operation, resolve(document, pathTokens));
      run(document, operation, { op: 'add', path, value: source.value });
      return document;
    }
  }

  run(document, operation, { op, path, from: operation.from, value: operation.value } as Operation, target);
  return document;
}

/** Hands one operation to rfc6902 and turns its error result, if any, into a FhirError. */
function run(document: unknown, operation: CheckedOperation, libraryOperation: Operation, target?: Endpoint | string): void {
  const [failure] = applyRfc6902(document, [libraryOperation]);
  if (failure) {
    if (failure.name === 'TestError') {
      const actual = target === undefined || typeof target === 'string' ? undefined : target.value;
      throw unprocessable(
        `${describe(operation)} failed: the value at ${operation.path || 'the root'} is ${brief(actual)}, expected ${brief(operation.value)}`,
      );
    }
    if (failure.name === 'InvalidOperationError') {
      throw malformed(`${describe(operation)} is not a valid operation: ${failure.message}`);
    }
    throw unprocessable(`${describe(operation)} cannot be applied: ${failure.message}`);
  }
}
