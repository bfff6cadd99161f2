/**
 * FHIRPath Patch (FHIR R4 fhirpatch.html): a Parameters resource whose `operation` parameters each carry
 * type (add | insert | delete | replace | move), path (FHIRPath), and, as the type needs, name, value,
 * index, source, destination.
 *
 * Rules applied (fhirpatch.html, base rules and operation table):
 * - every parameter must be an `operation` with exactly the parts its type uses (anything else: 400);
 * - the path must select exactly one element (0 → 422 "No content found", more → 422) — except for delete,
 *   where no match is a no-op (the spec: "Path of the element to delete (if found)"); insert and move take
 *   the path of a list, written as element names ending with the list's element (e.g. Patient.identifier),
 *   whose owner must be exactly one element; the list may be empty or absent for insert at index 0;
 * - add: appends to a repeating element, or sets a single element only if it has no value yet (422);
 * - insert: 0 ≤ index ≤ length; move: 0 ≤ source < length and 0 ≤ destination < length (destination is
 *   counted after the removal, as the official test cases show);
 * - delete removes one element; an object or array left empty is removed too (FHIR JSON has no empty
 *   elements — e.g. deleting the only child of contact.name removes the name);
 * - a primitive's `_name` companion (its id/extensions) moves, is removed, or is replaced with its value;
 * - resolve() is refused (a patch may not cross into other resources);
 * - the resource itself (the path `Patient`) cannot be deleted or replaced (422).
 * Operations run in order on a copy of the resource; the first failure throws and the copy is dropped.
 */
import { DotAtom, parseFhirPath, SymbolAtom, type FhirPathAtom } from '@medplum/core';
import { FhirError } from '../outcome.js';
import { Locator, PathNotSupportedError, type Location } from './locate.js';
import { brief, cloneJson, FORBIDDEN_KEYS, isJsonObject, malformed, unprocessable, type JsonObject } from './problems.js';
import { ensureDefinitions, jsonKey, jsonKeys, resolveElement, type ElementInfo, type ResolvedElement } from './schema.js';
import {
  checkValueShape,
  insertAt,
  placeNew,
  readValue,
  removeAt,
  tidyCompanion,
  valueKeyOf,
  type PatchValue,
  type Site,
} from './values.js';

type OperationType = 'add' | 'insert' | 'delete' | 'replace' | 'move';

/** The parts each operation type takes (all required; no others allowed). */
const PARTS: Record<OperationType, { required: readonly string[] }> = {
  add: { required: ['type', 'path', 'name', 'value'] },
  insert: { required: ['type', 'path', 'index', 'value'] },
  delete: { required: ['type', 'path'] },
  replace: { required: ['type', 'path', 'value'] },
  move: { required: ['type', 'path', 'source', 'destination'] },
};

interface PatchOperation {
  readonly index: number;
  readonly type: OperationType;
  readonly path: string;
  readonly atom: FhirPathAtom;
  readonly name?: string;
  /** the `value` part, read against the target element once it is known */
  readonly valuePart?: JsonObject;
  readonly insertIndex?: number;
  readonly source?: number;
  readonly destination?: number;
  readonly site: Site;
}

/** Applies a FHIRPath Patch to a copy of `resource` and returns the copy. Throws FhirError 400/422. */
export function applyFhirPathPatch(resource: unknown, parameters: unknown): JsonObject {
  ensureDefinitions();
  const operations = readOperations(parameters);
  if (!isJsonObject(resource)) {
    throw unprocessable('The resource to patch is not a JSON object');
  }
  const working = cloneJson(resource);
  for (const operation of operations) {
    apply(working, operation);
  }
  return working;
}

// ---------------------------------------------------------------------------------------------------------
// Reading the Parameters resource (400 when it is not a FHIRPath Patch)

function readOperations(parameters: unknown): PatchOperation[] {
  if (!isJsonObject(parameters) || parameters['resourceType'] !== 'Parameters') {
    throw malformed('A FHIRPath Patch must be a Parameters resource');
  }
  const list = parameters['parameter'];
  if (list === undefined) {
    return [];
  }
  if (!Array.isArray(list)) {
    throw malformed('Parameters.parameter must be an array', 'Parameters.parameter');
  }
  return list.map((parameter, index) => readOperation(parameter, index));
}

function readOperation(parameter: unknown, index: number): PatchOperation {
  const expression = `Parameters.parameter[${index}]`;
  const where = `FHIRPath Patch operation ${index}`;
  if (!isJsonObject(parameter)) {
    throw malformed(`${where} is not an object`, expression);
  }
  if (parameter['name'] !== 'operation') {
    throw malformed(
      `${where}: every parameter of a FHIRPath Patch must be named "operation" (got ${brief(parameter['name'])})`,
      expression,
    );
  }
  if (valueKeyOf(parameter, { describe: where, expression }) !== undefined || parameter['resource'] !== undefined) {
    throw malformed(`${where}: an operation carries its content in parts, not in value[x] or resource`, expression);
  }
  const parts = parameter['part'];
  if (!Array.isArray(parts)) {
    throw malformed(`${where}: the operation has no parts`, expression);
  }
  const byName = new Map<string, { part: JsonObject; expression: string }>();
  parts.forEach((part: unknown, i) => {
    const partExpression = `${expression}.part[${i}]`;
    if (!isJsonObject(part) || typeof part['name'] !== 'string') {
      throw malformed(`${where}: part ${i} has no name`, partExpression);
    }
    const name = part['name'];
    if (byName.has(name)) {
      throw malformed(`${where}: the part "${name}" is given more than once`, partExpression);
    }
    byName.set(name, { part, expression: partExpression });
  });

  const typePart = byName.get('type');
  const type = typePart?.part['valueCode'];
  if (typeof type !== 'string' || !Object.hasOwn(PARTS, type)) {
    throw malformed(
      `${where}: the part "type" must have valueCode add, insert, delete, replace or move (got ${brief(type)})`,
      typePart?.expression ?? expression,
    );
  }
  const opType = type as OperationType;
  const { required } = PARTS[opType];
  for (const name of required) {
    if (!byName.has(name)) {
      throw malformed(`${where} (${opType}): the part "${name}" is required`, expression);
    }
  }
  for (const [name, { expression: partExpression }] of byName) {
    if (!required.includes(name)) {
      throw malformed(`${where} (${opType}): the part "${name}" is not used by ${opType}`, partExpression);
    }
  }

  const pathPart = byName.get('path')!;
  const path = pathPart.part['valueString'];
  if (typeof path !== 'string' || path.trim() === '') {
    throw malformed(`${where} (${opType}): the part "path" must have a non-empty valueString`, pathPart.expression);
  }
  let atom: FhirPathAtom;
  try {
    atom = parseFhirPath(path);
  } catch (err) {
    throw malformed(`${where} (${opType} ${path}): the path is not valid FHIRPath: ${(err as Error).message}`, pathPart.expression);
  }
  const forbidden = symbolsOf(atom).find((symbol) => FORBIDDEN_KEYS.has(symbol));
  if (forbidden !== undefined) {
    throw malformed(
      `${where} (${opType} ${path}): the path refers to "${forbidden}", which is not allowed in a patch path`,
      pathPart.expression,
    );
  }
  if (/\bresolve\s*\(/.test(atom.toString())) {
    throw malformed(
      `${where} (${opType} ${path}): resolve() is not allowed; a patch may only change the resource it is applied to`,
      pathPart.expression,
    );
  }

  const describe = `${where} (${opType} ${path})`;
  const integer = (name: string): number | undefined => {
    const entry = byName.get(name);
    if (!entry) return undefined;
    const n = entry.part['valueInteger'];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      throw malformed(`${describe}: the part "${name}" must have a valueInteger ≥ 0 (got ${brief(n)})`, entry.expression);
    }
    return n;
  };
  let name: string | undefined;
  const namePart = byName.get('name');
  if (namePart) {
    const n = namePart.part['valueString'];
    if (typeof n !== 'string' || !/^[A-Za-z][A-Za-z0-9_]*$/.test(n) || FORBIDDEN_KEYS.has(n)) {
      throw malformed(
        `${describe}: the part "name" must have a valueString that is an element name (got ${brief(n)})`,
        namePart.expression,
      );
    }
    name = n;
  }
  const valueEntry = byName.get('value');
  const site: Site = { describe, expression: valueEntry?.expression ?? expression };
  if (valueEntry) {
    checkValueShape(valueEntry.part, site);
  }
  return {
    index,
    type: opType,
    path,
    atom,
    name,
    valuePart: valueEntry?.part,
    insertIndex: integer('index'),
    source: integer('source'),
    destination: integer('destination'),
    site,
  };
}

/** The names of all SymbolAtoms (element names, variables) in a parsed FHIRPath expression. */
function symbolsOf(atom: unknown): string[] {
  const names: string[] = [];
  const pending: unknown[] = [atom];
  while (pending.length > 0) {
    const next = pending.pop();
    if (next instanceof SymbolAtom) {
      names.push(next.name);
    } else if (typeof next === 'object' && next !== null) {
      // FhirPathAtom.child, DotAtom/infix operators .left/.right, IndexerAtom .left/.expr, FunctionAtom .args
      const { child, left, right, expr, args } = next as Record<string, unknown>;
      pending.push(child, left, right, expr, ...(Array.isArray(args) ? args : []));
    }
  }
  return names;
}

// ---------------------------------------------------------------------------------------------------------
// Applying (422 when the operation does not fit the resource)

function apply(resource: JsonObject, operation: PatchOperation): void {
  const locator = new Locator(resource);
  const fail = (reason: string, code: 'processing' | 'not-supported' | 'business-rule' = 'processing'): never => {
    throw unprocessable(`${operation.site.describe}: ${reason}`, `Parameters.parameter[${operation.index}]`, code);
  };
  const locate = (): Location[] => {
    try {
      return locator.locate(operation.atom);
    } catch (err) {
      if (err instanceof FhirError) throw err;
      if (err instanceof PathNotSupportedError) {
        if (err.forbidden) throw malformed(`${operation.site.describe}: ${err.message}`, `Parameters.parameter[${operation.index}]`);
        return fail(`the path cannot be used for a patch: ${err.message}`, 'not-supported');
      }
      return fail(`the path could not be evaluated: ${(err as Error).message}`);
    }
  };
  const single = (verb: string): Location => {
    const found = locate();
    if (found.length === 0) fail(`No content found at ${operation.path} when ${verb}`);
    if (found.length > 1) fail(`the path selects ${found.length} elements; it must select exactly one`);
    return found[0]!;
  };

  switch (operation.type) {
    case 'add': {
      const target = single('adding');
      const object = target.tv.value;
      if (!isJsonObject(object)) {
        return fail(`${operation.path} is a primitive value (${target.tv.type}); elements can only be added to complex elements`);
      }
      const element = elementOf(target.tv.type, operation.name!, fail);
      const value = readValue(operation.valuePart!, element, operation.site);
      placeNew(object, element.info, value, operation.site.describe, operation.site.expression);
      return;
    }
    case 'replace': {
      const target = single('replacing');
      if (!target.parent || !target.up) {
        return fail('the resource itself cannot be replaced; replace its elements');
      }
      const element = elementAt(target, fail);
      const value = readValue(operation.valuePart!, element, operation.site);
      replaceAt(target, element.info, value);
      return;
    }
    case 'delete': {
      const found = locate();
      if (found.length === 0) return; // "Path of the element to delete (if found)"
      if (found.length > 1) fail(`the path selects ${found.length} elements; only a single element can be deleted`);
      const target = found[0]!;
      if (!target.parent) {
        return fail('the resource itself cannot be deleted');
      }
      deleteAt(target);
      return;
    }
    case 'insert':
    case 'move': {
      const { owner, element, key } = listOf(operation, locator, fail);
      const existing = owner[key];
      if (existing !== undefined && !Array.isArray(existing)) {
        return fail(`${element.info.path} is not an array in the resource`);
      }
      const list = (existing as unknown[] | undefined) ?? [];
      if (operation.type === 'insert') {
        const at = operation.insertIndex!;
        if (at > list.length) {
          return fail(`index ${at} is out of range: the list has ${list.length} element(s), so the index must be 0..${list.length}`);
        }
        insertAt(owner, key, list, at, readValue(operation.valuePart!, element, operation.site));
        return;
      }
      const { source, destination } = operation as Required<Pick<PatchOperation, 'source' | 'destination'>>;
      if (source >= list.length) {
        return fail(`source index ${source} is out of range: the list has ${list.length} element(s)`);
      }
      if (destination >= list.length) {
        return fail(`destination index ${destination} is out of range: the list has ${list.length} element(s)`);
      }
      const moved = removeAt(owner, key, source);
      insertAt(owner, key, owner[key] === undefined ? [] : (owner[key] as unknown[]), destination, {
        json: moved.json,
        companion: isJsonObject(moved.companion) ? moved.companion : undefined,
        type: '',
      });
      return;
    }
  }
}

type Fail = (reason: string, code?: 'processing' | 'not-supported' | 'business-rule') => never;

function elementOf(typeName: string, name: string, fail: Fail): ResolvedElement {
  const element = resolveElement(typeName, name);
  if (!element) {
    return fail(`${typeName} has no element "${name}"`);
  }
  return element;
}

/** The element definition of the value at `location` (from its parent's type and its JSON key). */
function elementAt(location: Location, fail: Fail): ResolvedElement {
  const parentType = location.up!.tv.type;
  const element = resolveElement(parentType, location.key);
  if (!element) {
    return fail(`cannot find the definition of ${parentType}.${location.key}`);
  }
  // a choice element keeps its choice of types when replaced (deceasedBoolean may become deceasedDateTime)
  return element.info.isChoice ? { info: element.info } : element;
}

/**
 * For insert/move: the list named by the path. The path must end with an element name (a.b.list); the part
 * before it must select exactly one element, which owns the list.
 */
function listOf(operation: PatchOperation, locator: Locator, fail: Fail): { owner: JsonObject; element: ResolvedElement; key: string } {
  const body = operation.atom.child;
  let ownerAtom: FhirPathAtom['child'] | undefined;
  let name: string;
  if (body instanceof DotAtom && body.right instanceof SymbolAtom) {
    ownerAtom = body.left;
    name = body.right.name;
  } else if (body instanceof SymbolAtom) {
    name = body.name;
  } else {
    return fail(`the path must name a list, ending with its element name (e.g. Patient.identifier)`, 'not-supported');
  }
  let owners: Location[];
  try {
    owners = ownerAtom ? locator.locate(ownerAtom) : [locator.root];
  } catch (err) {
    if (err instanceof PathNotSupportedError) return fail(`the path cannot be used for a patch: ${err.message}`, 'not-supported');
    return fail(`the path could not be evaluated: ${(err as Error).message}`);
  }
  if (owners.length === 0) fail(`No content found at ${ownerAtom?.toString() ?? ''} (the owner of the list)`);
  if (owners.length > 1) fail(`the path selects ${owners.length} lists; it must select exactly one`);
  const owner = owners[0]!;
  if (!isJsonObject(owner.tv.value)) {
    return fail(`${operation.path} is not a list`);
  }
  const element = elementOf(owner.tv.type, name, fail);
  if (!element.info.isArray) {
    return fail(`${element.info.path} is not a list (it takes a single value)`);
  }
  return { owner: owner.tv.value, element, key: jsonKey(element.info, element.fixedType ?? element.info.types[0] ?? '') };
}

function replaceAt(target: Location, info: ElementInfo, value: PatchValue): void {
  const parent = target.parent!;
  const key = jsonKey(info, value.type);
  if (target.index !== undefined) {
    const list = parent[target.key] as unknown[];
    list[target.index] = value.json;
    const companionKey = `_${target.key}`;
    const companion = parent[companionKey];
    if (Array.isArray(companion)) {
      companion[target.index] = value.companion ?? null;
    } else if (value.companion) {
      const aligned: unknown[] = list.map(() => null);
      aligned[target.index] = value.companion;
      parent[companionKey] = aligned;
    }
    tidyCompanion(parent, target.key);
    return;
  }
  for (const k of jsonKeys(info)) {
    delete parent[k];
    delete parent[`_${k}`];
  }
  parent[key] = value.json;
  if (value.companion) {
    parent[`_${key}`] = value.companion;
  }
}

/** Removes the element at `location`, then any object or array left empty above it. */
function deleteAt(location: Location): void {
  let current: Location | undefined = location;
  while (current?.parent) {
    const parent: JsonObject = current.parent;
    if (current.index !== undefined) {
      removeAt(parent, current.key, current.index);
    } else {
      delete parent[current.key];
      delete parent[`_${current.key}`];
    }
    current = current.up;
    // stop at the resource, and at the first ancestor that still has content
    if (!current?.parent || Object.keys(parent).length > 0) {
      return;
    }
  }
}
