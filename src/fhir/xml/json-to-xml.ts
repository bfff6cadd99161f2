/**
 * FHIR JSON → FHIR XML (R4 xml.html), driven by the type layouts read from the StructureDefinitions: elements in
 * the definition's order, `id`/`url` as attributes, primitives as `value` attributes with their `_name` id and
 * extensions, repeating primitives from their parallel arrays, resources nested in their container element, the
 * narrative div as XHTML.
 *
 * Input is a resource this server holds or produced (validated); a property no definition knows is a defect, and
 * is thrown as an Error rather than written or dropped silently.
 */
import { decimalTextOf } from '../decimal-text.js';
import { holdsResource, JSON_NUMBER_TYPES, layoutOf, typeKind, type ElementLayout, type TypeLayout } from './layout.js';
import { divToXml, escapeAttribute } from './xhtml.js';
import { FHIR_NS } from './xml-tree.js';

type JsonObject = Record<string, unknown>;

export interface XmlWriteOptions {
  /** Indent nested elements (the `_pretty` parameter). */
  readonly pretty?: boolean;
}

export class XmlConversionError extends Error {}

/** The XML document of a resource in its JSON form. */
export function resourceToXml(resource: JsonObject, options: XmlWriteOptions = {}): string {
  const writer = new XmlWriter(options.pretty === true);
  writer.raw('<?xml version="1.0" encoding="UTF-8"?>');
  writeResource(writer, resource, `xmlns="${FHIR_NS}"`);
  return writer.text();
}

class XmlWriter {
  private readonly parts: string[] = [];
  private depth = 0;
  constructor(private readonly pretty: boolean) {}
  raw(text: string): void {
    this.parts.push(text);
  }
  /** A new line at the current depth, when pretty printing. */
  line(): void {
    if (this.pretty) this.parts.push(`\n${'  '.repeat(this.depth)}`);
  }
  open(name: string, attributes: string): void {
    this.line();
    this.parts.push(`<${name}${attributes ? ` ${attributes}` : ''}>`);
    this.depth++;
  }
  close(name: string): void {
    this.depth--;
    this.line();
    this.parts.push(`</${name}>`);
  }
  empty(name: string, attributes: string): void {
    this.line();
    this.parts.push(`<${name}${attributes ? ` ${attributes}` : ''}/>`);
  }
  text(): string {
    return this.parts.join('');
  }
}

function writeResource(writer: XmlWriter, resource: JsonObject, attributes = ''): void {
  const type = resource.resourceType;
  const layout = typeof type === 'string' && typeKind(type) === 'resource' ? layoutOf(type) : undefined;
  if (!layout || typeof type !== 'string') throw new XmlConversionError(`not a resource: resourceType ${JSON.stringify(type)}`);
  writeComplex(writer, type, resource, layout, type, attributes);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A complex element: its attribute elements on the start tag, then its elements in the layout's order. The order
 * comes from the JSON's own keys (sorted by their position in the definition), not from walking the definition:
 * an ElementDefinition has over a hundred possible names (`defaultValue[x]` alone has fifty) and uses a few.
 */
function writeComplex(writer: XmlWriter, name: string, json: JsonObject, layout: TypeLayout, path: string, extraAttributes = ''): void {
  let attributes = extraAttributes;
  const present: { key: string; index: number; type: string; element: ElementLayout }[] = [];
  for (const key of Object.keys(json)) {
    if (key === 'resourceType' && path.indexOf('.') === -1) continue;
    const bare = key.charCodeAt(0) === 0x5f /* _ */ ? key.slice(1) : key;
    const entry = layout.byName.get(bare);
    if (entry) {
      // A value and its `_` companion are one element: keep the first seen.
      if (bare === key || json[bare] === undefined)
        present.push({ key: bare, index: entry.index, type: entry.type, element: entry.element });
      continue;
    }
    const attribute = bare === key ? layout.attributes.find((candidate) => candidate.name === key) : undefined;
    if (!attribute) throw new XmlConversionError(`${path}.${key} is not an element FHIR defines there`);
    const value = json[key];
    if (typeof value !== 'string') throw new XmlConversionError(`${path}.${key} is not a string`);
    attributes += `${attributes ? ' ' : ''}${key}="${escapeAttribute(value)}"`;
  }
  if (present.length === 0) {
    writer.empty(name, attributes);
    return;
  }
  present.sort((a, b) => a.index - b.index);
  writer.open(name, attributes);
  for (const { key, type, element } of present) writeElement(writer, json, key, type, element, path);
  writer.close(name);
}

function writeElement(writer: XmlWriter, json: JsonObject, key: string, type: string, element: ElementLayout, path: string): void {
  const value = json[key];
  const extra = json[`_${key}`];
  const childPath = `${path}.${key}`;
  if (value === undefined && extra === undefined) return;
  if (type === 'xhtml') {
    if (typeof value !== 'string') throw new XmlConversionError(`${childPath} is not a string`);
    writer.line();
    writer.raw(divToXml(value, childPath));
    return;
  }
  if (typeKind(type) === 'primitive-type') {
    if (element.repeats) {
      const values = Array.isArray(value) ? value : [];
      const extras = Array.isArray(extra) ? extra : [];
      const count = Math.max(values.length, extras.length);
      for (let i = 0; i < count; i++) writePrimitive(writer, key, type, values[i], extras[i], `${childPath}[${i}]`, [values, String(i)]);
    } else {
      writePrimitive(writer, key, type, value, extra, childPath, [json, key]);
    }
    return;
  }
  if (extra !== undefined) throw new XmlConversionError(`${path}._${key}: only primitives have a _ companion`);
  const items = element.repeats ? (Array.isArray(value) ? value : []) : [value];
  if (!element.repeats && Array.isArray(value)) throw new XmlConversionError(`${childPath} is an array but does not repeat`);
  items.forEach((item, i) => {
    const itemPath = element.repeats ? `${childPath}[${i}]` : childPath;
    if (!isObject(item)) throw new XmlConversionError(`${itemPath} is not an object`);
    if (holdsResource(type)) {
      writer.open(key, '');
      writeResource(writer, item);
      writer.close(key);
      return;
    }
    const layout = element.children ?? layoutOf(type);
    if (!layout) throw new XmlConversionError(`${itemPath}: the type ${type} is not known`);
    writeComplex(writer, key, item, layout, itemPath);
  });
}

/** `at`: the object or array holding the value, and its key there (where a decimal's written text is kept). */
function writePrimitive(
  writer: XmlWriter,
  name: string,
  type: string,
  value: unknown,
  extra: unknown,
  path: string,
  at: [object, string],
): void {
  if ((value === undefined || value === null) && (extra === undefined || extra === null)) return;
  let attributes = '';
  const companion = isObject(extra) ? extra : {};
  if (typeof companion.id === 'string') attributes += `id="${escapeAttribute(companion.id)}"`;
  if (value !== undefined && value !== null) {
    attributes += `${attributes ? ' ' : ''}value="${escapeAttribute(primitiveText(value, type, path, at))}"`;
  }
  const extensions = Array.isArray(companion.extension) ? companion.extension : [];
  for (const key of Object.keys(companion)) {
    if (key !== 'id' && key !== 'extension') throw new XmlConversionError(`${path}: _${name}.${key} is not an element of a primitive`);
  }
  if (extensions.length === 0) {
    writer.empty(name, attributes);
    return;
  }
  writer.open(name, attributes);
  const extensionLayout = layoutOf('Extension');
  if (!extensionLayout) throw new XmlConversionError('the Extension type is not known');
  extensions.forEach((extension, i) => {
    if (!isObject(extension)) throw new XmlConversionError(`${path}.extension[${i}] is not an object`);
    writeComplex(writer, 'extension', extension, extensionLayout, `${path}.extension[${i}]`);
  });
  writer.close(name);
}

/** The XML text of a JSON primitive value: a number in the digits it was written with, when they were kept. */
function primitiveText(value: unknown, type: string, path: string, at: [object, string]): string {
  if (type === 'boolean') {
    if (typeof value !== 'boolean') throw new XmlConversionError(`${path} is not a boolean`);
    return String(value);
  }
  if (JSON_NUMBER_TYPES.has(type)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new XmlConversionError(`${path} is not a number`);
    return decimalTextOf(at[0], at[1], value) ?? String(value);
  }
  if (typeof value !== 'string') throw new XmlConversionError(`${path} is not a string`);
  return value;
}
