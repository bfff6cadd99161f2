/**
 * FHIR XML → FHIR JSON (R4 xml.html and json.html), driven by the type layouts read from the StructureDefinitions.
 *
 * Everything the XML format forbids is refused with a 400 that names the element by its FHIRPath: elements in
 * another namespace, unknown elements and attributes, elements out of the definition's order, a non-repeating
 * element twice, text where no text is allowed (only a narrative div holds mixed content), `value` attributes not
 * of the primitive's lexical form, primitives with neither a value nor extensions.
 *
 * Decimals: XML carries a decimal's text; JSON's number is the same value. The text is kept exactly where the
 * JSON parse keeps it (see json-text.ts) — here the value is the number that text denotes.
 */
import { errors } from '../outcome.js';
import { holdsResource, isResourceTypeName, JSON_NUMBER_TYPES, layoutOf, primitiveForm, typeKind, type TypeLayout } from './layout.js';
import { divToJson } from './xhtml.js';
import { FHIR_NS, parseXmlText, XHTML_NS, type XmlElement } from './xml-tree.js';

const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';

type JsonObject = Record<string, unknown>;

/** Parses FHIR XML text into the JSON form of the resource it holds; throws a 400 FhirError saying what is wrong. */
export function resourceFromXmlText(text: string): JsonObject {
  return resourceFromXml(parseXmlText(text));
}

/** The JSON form of a resource element (the document's root, a contained resource, a Bundle entry's resource). */
export function resourceFromXml(element: XmlElement, at?: string): JsonObject {
  const where = at ? ` at ${at}` : '';
  if (element.uri !== FHIR_NS) {
    throw errors.badRequest(
      `<${element.local}>${where} is not in the FHIR namespace: FHIR XML resources are in xmlns="${FHIR_NS}"` +
        (element.uri ? ` (found "${element.uri}")` : ''),
      at,
    );
  }
  if (!isResourceTypeName(element.local)) {
    throw errors.badRequest(`<${element.local}>${where} is not a resource type of FHIR R4`, at);
  }
  const layout = layoutOf(element.local);
  if (!layout) throw errors.badRequest(`<${element.local}>${where} is not a resource type of FHIR R4`, at);
  const json: JsonObject = { resourceType: element.local };
  readElement(element, layout, element.local, json);
  return json;
}

/** Reads the attributes and children of a complex element into `json`, in the order the layout requires. */
function readElement(element: XmlElement, layout: TypeLayout, path: string, json: JsonObject): void {
  for (const attribute of element.attributes) {
    if (attribute.uri === XSI_NS) continue; // xsi:schemaLocation and the like: hints for schema tools
    const known = attribute.uri === '' ? layout.attributes.find((candidate) => candidate.name === attribute.local) : undefined;
    if (!known) throw errors.badRequest(`${path} has an attribute "${attribute.name}" that FHIR does not define there`, path);
    json[known.name] = attribute.value;
  }
  const repeated = new Map<string, { values: unknown[]; extras: (JsonObject | null)[]; primitive: boolean }>();
  let position = -1;
  let previous = '';
  for (const child of element.children) {
    if (child.kind === 'comment') continue;
    if (child.kind === 'text') {
      if (child.text.trim() !== '') {
        throw errors.badRequest(`${path} holds text ("${clip(child.text.trim())}") where FHIR XML allows only elements`, path);
      }
      continue;
    }
    const entry = layout.byName.get(child.local);
    const isDiv = entry?.type === 'xhtml' && child.uri === XHTML_NS;
    if (child.uri !== FHIR_NS && !isDiv) {
      throw errors.badRequest(
        `<${child.local}> in ${path} is not in the FHIR namespace${child.uri ? ` (found "${child.uri}")` : ''}`,
        `${path}.${child.local}`,
      );
    }
    if (!entry)
      throw errors.badRequest(`${path} has an element <${child.local}> that FHIR does not define there`, `${path}.${child.local}`);
    const { element: definition, index, type } = entry;
    if (index < position) {
      throw errors.badRequest(
        `<${child.local}> in ${path} is out of order: FHIR XML puts it before <${previous}>`,
        `${path}.${child.local}`,
      );
    }
    if (index === position && !definition.repeats) {
      throw errors.badRequest(`${path}.${definition.name} appears more than once but does not repeat`, `${path}.${child.local}`);
    }
    position = index;
    previous = child.local;

    const name = child.local;
    let list = repeated.get(name);
    const count = list ? list.values.length : 0;
    const childPath = definition.repeats ? `${path}.${name}[${count}]` : `${path}.${name}`;
    const kind = typeKind(type);
    let value: unknown;
    let extra: JsonObject | null = null;
    if (type === 'xhtml') {
      value = divToJson(child, childPath);
    } else if (kind === 'primitive-type') {
      [value, extra] = readPrimitive(child, type, childPath);
    } else if (holdsResource(type)) {
      value = readContainedResource(child, childPath);
    } else {
      const childLayout = definition.children ?? layoutOf(type);
      if (!childLayout) throw errors.badRequest(`${childPath}: the type ${type} is not known`, childPath);
      const object: JsonObject = {};
      readElement(child, childLayout, childPath, object);
      value = object;
    }
    const primitive = kind === 'primitive-type' && type !== 'xhtml';
    if (!definition.repeats) {
      if (value !== null) json[name] = value;
      if (extra) json[`_${name}`] = extra;
      continue;
    }
    if (!list) {
      list = { values: [], extras: [], primitive };
      repeated.set(name, list);
      json[name] = list.values; // keeps the key where the element appears, as the JSON rendering orders it
    }
    list.values.push(value);
    list.extras.push(extra);
  }
  for (const [name, list] of repeated) {
    if (!list.primitive) continue;
    // A repeating primitive: parallel arrays with null where an item has no value, or no id/extensions.
    if (list.values.every((value) => value === null)) delete json[name];
    if (list.extras.some((extra) => extra !== null)) {
      if (json[name] === undefined) {
        json[`_${name}`] = list.extras;
      } else {
        // `_name` follows `name` in the JSON rendering: re-insert the keys after it to keep that order.
        insertAfter(json, name, `_${name}`, list.extras);
      }
    }
  }
}

function insertAfter(json: JsonObject, after: string, key: string, value: unknown): void {
  const entries = Object.entries(json);
  for (const existing of Object.keys(json)) delete json[existing];
  for (const [existing, item] of entries) {
    json[existing] = item;
    if (existing === after) json[key] = value;
  }
}

/** A primitive element: its value attribute in the JSON type of the primitive, and its id and extensions. */
function readPrimitive(element: XmlElement, type: string, path: string): [unknown, JsonObject | null] {
  let text: string | undefined;
  const extra: JsonObject = {};
  for (const attribute of element.attributes) {
    if (attribute.uri === XSI_NS) continue;
    if (attribute.uri === '' && attribute.local === 'value') text = attribute.value;
    else if (attribute.uri === '' && attribute.local === 'id') extra.id = attribute.value;
    else throw errors.badRequest(`${path} has an attribute "${attribute.name}": a primitive has only value and id`, path);
  }
  const extensions: JsonObject[] = [];
  const extensionLayout = layoutOf('Extension');
  for (const child of element.children) {
    if (child.kind === 'comment') continue;
    if (child.kind === 'text') {
      if (child.text.trim() !== '') {
        throw errors.badRequest(`${path} holds text ("${clip(child.text.trim())}"): a primitive's value is its value attribute`, path);
      }
      continue;
    }
    if (child.uri !== FHIR_NS || child.local !== 'extension' || !extensionLayout) {
      throw errors.badRequest(`${path} has an element <${child.local}>: a primitive holds only extensions`, `${path}.${child.local}`);
    }
    const extension: JsonObject = {};
    readElement(child, extensionLayout, `${path}.extension[${extensions.length}]`, extension);
    extensions.push(extension);
  }
  if (extensions.length > 0) extra.extension = extensions;
  if (text === undefined && extensions.length === 0) {
    throw errors.badRequest(`${path} has neither a value attribute nor extensions`, path);
  }
  const value = text === undefined ? null : primitiveValue(text, type, path);
  return [value, Object.keys(extra).length > 0 ? extra : null];
}

/** A value attribute as the JSON value of its primitive type, refused when not of the type's lexical form. */
function primitiveValue(text: string, type: string, path: string): unknown {
  const form = primitiveForm(type);
  if (form && !form.test(text)) {
    throw errors.badRequest(`${path} has value="${clip(text)}", which is not a valid ${type}`, path);
  }
  if (text === '') throw errors.badRequest(`${path} has an empty value attribute: FHIR values are never empty`, path);
  if (type === 'boolean') {
    if (text !== 'true' && text !== 'false') throw errors.badRequest(`${path} has value="${clip(text)}", which is not a boolean`, path);
    return text === 'true';
  }
  if (JSON_NUMBER_TYPES.has(type)) {
    const number = Number(text);
    if (!Number.isFinite(number)) throw errors.badRequest(`${path} has value="${clip(text)}", which is not a ${type}`, path);
    return number;
  }
  return text;
}

/** A contained resource, a Bundle entry's resource, a Parameters resource: one resource element inside. */
function readContainedResource(element: XmlElement, path: string): JsonObject {
  if (element.attributes.some((attribute) => attribute.uri !== XSI_NS)) {
    throw errors.badRequest(`${path} takes no attributes: it holds one resource`, path);
  }
  let inner: XmlElement | undefined;
  for (const child of element.children) {
    if (child.kind === 'comment') continue;
    if (child.kind === 'text') {
      if (child.text.trim() !== '') throw errors.badRequest(`${path} holds text where a resource element was expected`, path);
      continue;
    }
    if (inner) throw errors.badRequest(`${path} holds more than one resource`, path);
    inner = child;
  }
  if (!inner) throw errors.badRequest(`${path} holds no resource`, path);
  return resourceFromXml(inner, path);
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
