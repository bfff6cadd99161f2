/**
 * FHIR XML → FHIR JSON (R4 xml.html and json.html), driven by the type layouts read from the StructureDefinitions.
 *
 * Everything the XML format forbids is refused with a 400 that names the element by its FHIRPath: elements in
 * another namespace, unknown elements and attributes, elements out of the definition's order, a non-repeating
 * element twice, text where no text is allowed (only a narrative div holds mixed content), `value` attributes not
 * of the primitive's lexical form, primitives with neither a value nor extensions.
 *
 * Decimals: XML carries a decimal's text, JSON a number. The number is the value the text denotes, and a text that
 * is not the number's shortest form ("135.00") is kept beside it (decimal-text.ts), as the JSON parse keeps it.
 */
import { markDecimalText, needsDecimalText, setDecimalText } from '../decimal-text.js';
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

/** The JSON form of the resource a parsed XML document holds; throws a 400 FhirError saying what is wrong. */
export function resourceFromXml(root: XmlElement): JsonObject {
  const decimals = { found: false };
  const resource = readResource(root, undefined, decimals);
  if (decimals.found) markDecimalText(resource);
  return resource;
}

/** Whether a conversion met a decimal whose text it kept. */
interface DecimalsSeen {
  found: boolean;
}

/** The JSON form of a resource element (the document's root, a contained resource, a Bundle entry's resource). */
function readResource(element: XmlElement, at: string | undefined, decimals: DecimalsSeen): JsonObject {
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
  readElement(element, layout, element.local, json, decimals);
  return json;
}

/** Reads the attributes and children of a complex element into `json`, in the order the layout requires. */
function readElement(element: XmlElement, layout: TypeLayout, path: string, json: JsonObject, decimals: DecimalsSeen): void {
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
        `<${child.local}> in ${path} (line ${child.line}) is out of order: FHIR XML puts it before <${previous}>`,
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
    let text: string | undefined;
    if (type === 'xhtml') {
      value = divToJson(child, childPath);
    } else if (kind === 'primitive-type') {
      [value, extra, text] = readPrimitive(child, type, childPath, decimals);
    } else if (holdsResource(type)) {
      value = readContainedResource(child, childPath, decimals);
    } else {
      const childLayout = definition.children ?? layoutOf(type);
      if (!childLayout) throw errors.badRequest(`${childPath}: the type ${type} is not known`, childPath);
      const object: JsonObject = {};
      readElement(child, childLayout, childPath, object, decimals);
      value = object;
    }
    const keepText = typeof value === 'number' && text !== undefined && needsDecimalText(text);
    if (keepText) decimals.found = true;
    const primitive = kind === 'primitive-type' && type !== 'xhtml';
    if (!definition.repeats) {
      if (value !== null) json[name] = value;
      if (keepText) setDecimalText(json, name, text!);
      if (extra) json[`_${name}`] = extra;
      continue;
    }
    if (!list) {
      list = { values: [], extras: [], primitive };
      repeated.set(name, list);
      json[name] = list.values; // keeps the key where the element appears, as the JSON rendering orders it
    }
    if (keepText) setDecimalText(list.values, String(list.values.length), text!);
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

/** A primitive element: its value in the JSON type of the primitive, its id and extensions, and the value's text. */
function readPrimitive(
  element: XmlElement,
  type: string,
  path: string,
  decimals: DecimalsSeen,
): [unknown, JsonObject | null, string | undefined] {
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
    readElement(child, extensionLayout, `${path}.extension[${extensions.length}]`, extension, decimals);
    extensions.push(extension);
  }
  if (extensions.length > 0) extra.extension = extensions;
  if (text === undefined && extensions.length === 0) {
    throw errors.badRequest(`${path} has neither a value attribute nor extensions`, path);
  }
  const value = text === undefined ? null : primitiveValue(text, type, path);
  return [value, Object.keys(extra).length > 0 ? extra : null, text];
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
function readContainedResource(element: XmlElement, path: string, decimals: DecimalsSeen): JsonObject {
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
  const resource = readResource(inner, path, decimals);
  // A resource taken out of its container (a Bundle entry) is written on its own: it says so itself.
  if (decimals.found) markDecimalText(resource);
  return resource;
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
