/**
 * XML text from a client, read into a small element tree the way every FHIR input must be read: strictly
 * well-formed (saxes, a conformant non-validating parser), with namespaces resolved, and safe.
 *
 * Why it is safe: a document type declaration is refused outright, so no entity can be declared: no external
 * entity is ever fetched or read from a file (XXE) and no entity expands into another (billion laughs). saxes
 * itself never reads a DTD or a file; without a DTD it knows only the five predefined entities and character
 * references, and an undefined entity is a well-formedness error. Nesting is bounded as JSON's is, and the body
 * size by the same limit before any of this runs. Processing instructions other than the XML declaration (e.g. a
 * stylesheet) are ignored: nothing here acts on them. Comments are
 * kept in the tree (a narrative keeps them) and skipped by everything else.
 */
import { SaxesParser } from 'saxes';
import { errors } from '../outcome.js';
import { MAX_JSON_DEPTH } from '../json-text.js';

export const FHIR_NS = 'http://hl7.org/fhir';
export const XHTML_NS = 'http://www.w3.org/1999/xhtml';

/** XML nests one level more than JSON where a primitive carries extensions; the bound is JSON's, with room. */
export const MAX_XML_DEPTH = MAX_JSON_DEPTH + 50;

export interface XmlAttribute {
  readonly name: string;
  readonly prefix: string;
  readonly local: string;
  readonly uri: string;
  readonly value: string;
}

export interface XmlElement {
  readonly kind: 'element';
  /** The namespace the element is in ('' for none). */
  readonly uri: string;
  readonly local: string;
  readonly prefix: string;
  /** Attributes other than namespace declarations. */
  readonly attributes: readonly XmlAttribute[];
  readonly children: XmlNode[];
  /** Written as `<name/>` rather than with an end tag. */
  readonly selfClosing: boolean;
  /** Where its start tag ends in the text (1-based), for messages. */
  readonly line: number;
}

export interface XmlText {
  readonly kind: 'text';
  readonly text: string;
}

/** Comments are kept in the tree only for the narrative, whose XHTML is carried as written. */
export interface XmlComment {
  readonly kind: 'comment';
  readonly text: string;
}

export type XmlNode = XmlElement | XmlText | XmlComment;

const UTF8 = /^utf-?8$/i;

/** Parses XML text into its root element; throws a 400 FhirError saying what is wrong, with the line. */
export function parseXmlText(text: string): XmlElement {
  if (text.trim() === '') throw errors.badRequest('The request body is empty; an XML document was expected');
  const parser = new SaxesParser({ xmlns: true, position: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let refusal: Error | undefined;
  const refuse = (message: string): void => {
    refusal ??= errors.badRequest(message);
    throw refusal;
  };

  parser.on('xmldecl', (decl) => {
    if (decl.encoding !== undefined && !UTF8.test(decl.encoding)) {
      refuse(`FHIR XML is UTF-8; the XML declaration names encoding "${decl.encoding}"`);
    }
  });
  parser.on('doctype', () =>
    refuse('A document type declaration (<!DOCTYPE ...>) is not accepted in FHIR XML: no DTDs, no entity declarations'),
  );
  parser.on('opentag', (tag) => {
    if (stack.length >= MAX_XML_DEPTH) refuse(`XML nests deeper than ${MAX_XML_DEPTH} levels`);
    const attributes: XmlAttribute[] = [];
    for (const attribute of Object.values(tag.attributes)) {
      if (attribute.prefix === 'xmlns' || attribute.name === 'xmlns') continue;
      attributes.push({
        name: attribute.name,
        prefix: attribute.prefix,
        local: attribute.local,
        uri: attribute.uri,
        value: attribute.value,
      });
    }
    const element: XmlElement = {
      kind: 'element',
      uri: tag.uri,
      local: tag.local,
      prefix: tag.prefix,
      attributes,
      children: [],
      selfClosing: tag.isSelfClosing,
      line: parser.line,
    };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(element);
    else root = element;
    stack.push(element);
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  const addText = (value: string): void => {
    const parent = stack[stack.length - 1];
    if (!parent) return; // whitespace around the root element
    const last = parent.children[parent.children.length - 1];
    if (last?.kind === 'text') parent.children[parent.children.length - 1] = { kind: 'text', text: last.text + value };
    else parent.children.push({ kind: 'text', text: value });
  };
  parser.on('text', addText);
  parser.on('comment', (comment) => stack[stack.length - 1]?.children.push({ kind: 'comment', text: comment }));
  parser.on('cdata', addText);

  try {
    parser.write(text).close();
  } catch (error) {
    if (refusal) throw refusal;
    const message = error instanceof Error ? error.message : String(error);
    throw errors.badRequest(`The body is not well-formed XML: ${message}`);
  }
  if (!root) throw errors.badRequest('The body holds no XML element');
  return root;
}

/** The value of an attribute in no namespace, by name. */
export function attributeValue(element: XmlElement, local: string): string | undefined {
  for (const attribute of element.attributes) if (attribute.local === local && attribute.uri === '') return attribute.value;
  return undefined;
}
