/**
 * Turning the value of a FHIRPath Patch operation into resource JSON.
 *
 * A value comes in one of three shapes (fhirpatch.html):
 * - `value[x]` — a data type; the [x] suffix names its type (valueDate → date, valueHumanName → HumanName).
 *   Primitives keep their JSON form (a date stays a string, a boolean a boolean, an integer a number), and
 *   the JSON form must match the declared type (else 400). A primitive's id/extensions given as
 *   `_value[x]` are carried over to the element's `_name` companion;
 * - nested `part`s — for types Parameters cannot carry directly, e.g. backbone elements (Patient.contact,
 *   Timing.repeat) or Extension: each part names a child element and carries its value the same three ways;
 * - `resource` — for elements of type Resource (contained, Bundle.entry.resource).
 * The value's type must fit the target element (fhirpatch.html: "Servers SHALL return an error if the type is
 * wrong"; 422). Primitive types that share a JSON form are accepted for each other (valueString for a code,
 * an xhtml div or a uri) because Parameters.value[x] cannot carry every type (xhtml, for one); the server's
 * validation of the patched resource then checks the content. A choice element takes the value's own type.
 */
import { isPrimitiveType, tryGetDataType } from '@medplum/core';
import { brief, cloneJson, findForbiddenKey, FORBIDDEN_KEYS, isJsonObject, malformed, unprocessable, type JsonObject } from './problems.js';
import {
  isIntegerType,
  isPrimitive,
  jsonKey,
  jsonKeys,
  jsonKind,
  QUANTITY_TYPES,
  resolveElement,
  type ElementInfo,
  type ResolvedElement,
} from './schema.js';

export interface PatchValue {
  /** the JSON to store */
  readonly json: unknown;
  /** the primitive's companion (`_name`: id and extensions), if any */
  readonly companion?: JsonObject;
  /** the FHIR type the value will have in the resource (the element's type for a choice element) */
  readonly type: string;
}

/** Where a value sits in the Parameters document, for messages and OperationOutcome.issue.expression. */
export interface Site {
  readonly describe: string;
  readonly expression: string;
}

const VALUE_KEY = /^value[A-Z][A-Za-z0-9]*$/;

/** Finds the single value[x] member of a part, if any (400 if there are several). */
export function valueKeyOf(part: JsonObject, site: Site): string | undefined {
  const keys = Object.keys(part).filter((k) => VALUE_KEY.test(k));
  if (keys.length > 1) {
    throw malformed(`${site.describe}: more than one value[x] (${keys.join(', ')})`, site.expression);
  }
  return keys[0];
}

/** The FHIR type named by a value[x] suffix ("Date" → "date", "HumanName" → "HumanName"), if it is one. */
export function typeOfSuffix(suffix: string): string | undefined {
  const lower = suffix.charAt(0).toLowerCase() + suffix.slice(1);
  if (isPrimitiveType(lower)) return lower;
  if (!isPrimitiveType(suffix) && tryGetDataType(suffix)) return suffix;
  return undefined;
}

/**
 * Reads the value carried by `part` (value[x], nested parts or resource) for the element `target`.
 * `fixedType` restricts a choice element to one type (the name was given with its suffix).
 */
export function readValue(part: JsonObject, target: ResolvedElement, site: Site): PatchValue {
  const valueKey = valueKeyOf(part, site);
  const nested = part['part'];
  const resource = part['resource'];
  const shapes = [valueKey !== undefined, nested !== undefined, resource !== undefined].filter(Boolean).length;
  if (shapes !== 1) {
    throw malformed(`${site.describe}: the value must be given as exactly one of value[x], part or resource`, site.expression);
  }
  if (valueKey !== undefined) {
    return fromValueX(part, valueKey, target, site);
  }
  if (resource !== undefined) {
    return fromResource(resource, target, site);
  }
  return fromParts(nested, target, site);
}

/**
 * Checks the shape of a value part without reference to the resource (400 when malformed): exactly one of
 * value[x] / part / resource; a value[x] that names a type and has that type's JSON form; nested parts that
 * have element names and well-formed values themselves. Done for every operation before any is applied.
 */
export function checkValueShape(part: JsonObject, site: Site, depth = 0): void {
  if (depth > 50) {
    throw malformed(`${site.describe}: the value is nested too deeply`, site.expression);
  }
  const valueKey = valueKeyOf(part, site);
  const nested = part['part'];
  const resource = part['resource'];
  const shapes = [valueKey !== undefined, nested !== undefined, resource !== undefined].filter(Boolean).length;
  if (shapes !== 1) {
    throw malformed(`${site.describe}: the value must be given as exactly one of value[x], part or resource`, site.expression);
  }
  const forbidden = findForbiddenKey([valueKey === undefined ? undefined : part[valueKey], part[`_${valueKey}`], resource]);
  if (forbidden !== undefined) {
    throw malformed(`${site.describe}: the value contains a member named "${forbidden}", which is not allowed`, site.expression);
  }
  if (valueKey !== undefined) {
    checkValueX(part, valueKey, site);
  } else if (resource !== undefined) {
    if (!isJsonObject(resource) || typeof resource['resourceType'] !== 'string') {
      throw malformed(`${site.describe}: "resource" must be a resource`, site.expression);
    }
  } else {
    if (!Array.isArray(nested)) {
      throw malformed(`${site.describe}: "part" must be an array`, site.expression);
    }
    nested.forEach((sub: unknown, i) => {
      const subSite: Site = { describe: `${site.describe}, part[${i}]`, expression: `${site.expression}.part[${i}]` };
      if (!isJsonObject(sub)) {
        throw malformed(`${subSite.describe} is not an object`, subSite.expression);
      }
      const name = sub['name'];
      if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_]*$/.test(name) || FORBIDDEN_KEYS.has(name)) {
        throw malformed(`${subSite.describe}: "name" must be an element name (got ${brief(name)})`, subSite.expression);
      }
      checkValueShape(sub, subSite, depth + 1);
    });
  }
}

/** Checks a value[x] member: a known type, in that type's JSON form; returns the type. */
function checkValueX(part: JsonObject, valueKey: string, site: Site): string {
  const suffix = valueKey.slice('value'.length);
  const type = typeOfSuffix(suffix);
  if (!type) {
    throw malformed(`${site.describe}: ${valueKey} does not name a FHIR data type`, site.expression);
  }
  const raw = part[valueKey];
  if (isPrimitive(type)) {
    const kind = jsonKind(type);
    const ok =
      kind === 'number'
        ? typeof raw === 'number' && Number.isFinite(raw) && (!isIntegerType(type) || Number.isInteger(raw))
        : typeof raw === kind;
    if (!ok) {
      throw malformed(
        `${site.describe}: ${valueKey} must be a JSON ${isIntegerType(type) ? 'integer' : kind} (got ${brief(raw)})`,
        site.expression,
      );
    }
  } else if (!isJsonObject(raw)) {
    throw malformed(`${site.describe}: ${valueKey} must be a JSON object`, site.expression);
  }
  const companion = part[`_${valueKey}`];
  if (companion !== undefined && (!isPrimitive(type) || !isJsonObject(companion))) {
    throw malformed(`${site.describe}: _${valueKey} must be an object and only accompanies a primitive value`, site.expression);
  }
  return type;
}

function fromValueX(part: JsonObject, valueKey: string, target: ResolvedElement, site: Site): PatchValue {
  const type = checkValueX(part, valueKey, site);
  const raw = part[valueKey];
  const effective = fit(type, raw, target, site);
  const companionRaw = part[`_${valueKey}`];
  const companion = isJsonObject(companionRaw) ? cloneJson(companionRaw) : undefined;
  return { json: cloneJson(raw), companion, type: effective };
}

/** The type the value takes in the element, or 422 when the value's type does not fit. */
function fit(type: string, raw: unknown, target: ResolvedElement, site: Site): string {
  const { info, fixedType } = target;
  const allowed = fixedType ? [fixedType] : info.types;
  const refuse = (): never => {
    throw unprocessable(`${site.describe}: a value of type ${type} does not fit ${info.path} (${allowed.join(' | ')})`, site.expression);
  };
  if (allowed.includes(type)) {
    return type;
  }
  if (info.isChoice) {
    return refuse();
  }
  const elementType = allowed[0];
  if (elementType === undefined) {
    return refuse();
  }
  if (isPrimitive(type) && isPrimitive(elementType) && jsonKind(type) === jsonKind(elementType)) {
    if (isIntegerType(elementType) && !Number.isInteger(raw)) {
      return refuse();
    }
    return elementType;
  }
  if (type === 'Quantity' && QUANTITY_TYPES.has(elementType)) {
    return elementType;
  }
  return refuse();
}

function fromResource(resource: unknown, target: ResolvedElement, site: Site): PatchValue {
  if (!isJsonObject(resource) || typeof resource['resourceType'] !== 'string') {
    throw malformed(`${site.describe}: "resource" must be a resource`, site.expression);
  }
  const type = resource['resourceType'];
  if (!target.info.types.includes('Resource') && !target.info.types.includes(type)) {
    throw unprocessable(
      `${site.describe}: a ${type} resource does not fit ${target.info.path} (${target.info.types.join(' | ')})`,
      site.expression,
    );
  }
  return { json: cloneJson(resource), type };
}

function fromParts(parts: unknown, target: ResolvedElement, site: Site): PatchValue {
  if (!Array.isArray(parts)) {
    throw malformed(`${site.describe}: "part" must be an array`, site.expression);
  }
  const { info } = target;
  const types = target.fixedType ? [target.fixedType] : info.types;
  if (types.length !== 1) {
    throw unprocessable(
      `${site.describe}: ${info.path} can take several types (${types.join(' | ')}); give the value as value[x] so its type is known`,
      site.expression,
    );
  }
  const type = types[0]!;
  if (isPrimitive(type) || type === 'Resource') {
    throw unprocessable(
      `${site.describe}: ${info.path} is of type ${type}; give it as ${type === 'Resource' ? 'resource' : 'value[x]'}, not as parts`,
      site.expression,
    );
  }
  const object: JsonObject = {};
  parts.forEach((sub: unknown, i) => {
    const subSite: Site = { describe: `${site.describe}, part[${i}]`, expression: `${site.expression}.part[${i}]` };
    if (!isJsonObject(sub)) {
      throw malformed(`${subSite.describe} is not an object`, subSite.expression);
    }
    const name = sub['name'];
    if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
      throw malformed(`${subSite.describe}: "name" must be an element name (got ${brief(name)})`, subSite.expression);
    }
    const element = resolveElement(type, name);
    if (!element) {
      throw unprocessable(`${subSite.describe}: ${type} has no element "${name}"`, subSite.expression);
    }
    const value = readValue(sub, element, subSite);
    placeNew(object, element.info, value, `${subSite.describe}`, subSite.expression);
  });
  return { json: object, type };
}

/**
 * Puts a new value for element `info` into `object`: appended when the element repeats, set when it is
 * single and absent; 422 when a single element already has a value (fhirpatch.html: "Add can be used for
 * non-repeating elements as long as they do not already exist").
 */
export function placeNew(object: JsonObject, info: ElementInfo, value: PatchValue, describe: string, expression: string): void {
  const key = jsonKey(info, value.type);
  if (info.isArray) {
    const existing = object[key];
    if (existing !== undefined && !Array.isArray(existing)) {
      throw unprocessable(`${describe}: ${info.path} is not an array in the resource`, expression);
    }
    const list = (existing as unknown[] | undefined) ?? [];
    insertAt(object, key, list, list.length, value);
    return;
  }
  const present = jsonKeys(info).find((k) => object[k] !== undefined || object[`_${k}`] !== undefined);
  if (present !== undefined) {
    throw unprocessable(`${describe}: ${info.path} already has a value (${present}); use replace to change it`, expression);
  }
  object[key] = value.json;
  if (value.companion) {
    object[`_${key}`] = value.companion;
  }
}

/** Inserts into object[key] (the array `list`) at `index`, keeping a primitive array's `_key` companion aligned. */
export function insertAt(object: JsonObject, key: string, list: unknown[], index: number, value: PatchValue): void {
  list.splice(index, 0, value.json);
  object[key] = list;
  const companionKey = `_${key}`;
  const companion = object[companionKey];
  if (Array.isArray(companion)) {
    companion.splice(index, 0, value.companion ?? null);
  } else if (value.companion) {
    const aligned: unknown[] = list.map(() => null);
    aligned[index] = value.companion;
    object[companionKey] = aligned;
  }
  tidyCompanion(object, key);
}

/** Removes object[key][index] (and its companion entry); returns what was there. */
export function removeAt(object: JsonObject, key: string, index: number): { json: unknown; companion: unknown } {
  const list = object[key] as unknown[];
  const [json] = list.splice(index, 1);
  const companionKey = `_${key}`;
  const companion = object[companionKey];
  let removedCompanion: unknown = null;
  if (Array.isArray(companion)) {
    [removedCompanion] = companion.splice(index, 1);
  }
  if (list.length === 0) {
    delete object[key];
  }
  tidyCompanion(object, key);
  return { json, companion: removedCompanion };
}

/** Drops a `_key` companion array that no longer carries anything. */
export function tidyCompanion(object: JsonObject, key: string): void {
  const companionKey = `_${key}`;
  const companion = object[companionKey];
  if (Array.isArray(companion) && (object[key] === undefined || companion.every((c) => c === null || c === undefined))) {
    delete object[companionKey];
  }
}
