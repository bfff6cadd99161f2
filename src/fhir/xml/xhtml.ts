/**
 * The narrative `div`: XHTML inside FHIR XML, a string in FHIR JSON. Both directions go through the element tree,
 * so what the XML side writes is always well-formed and in the XHTML namespace, whatever string JSON held.
 */
import { errors } from '../outcome.js';
import { parseXmlText, XHTML_NS, type XmlElement } from './xml-tree.js';

/**
 * Text content; quotes too, as the specification's own renderings of a div write them. In an XML document a
 * carriage return is written as a reference (`xmlDocument`), since XML parsers turn a literal CR LF into LF.
 */
export function escapeText(text: string, xmlDocument = false): string {
  return text.replace(xmlDocument ? /[&<>"\r]/g : /[&<>"]/g, (c) => TEXT_ESCAPES[c] ?? c);
}

const TEXT_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\r': '&#13;' };

/**
 * Attribute values: quotes, markup, and in an XML document the whitespace characters XML parsers would otherwise
 * normalise to spaces.
 */
export function escapeAttribute(text: string, xmlDocument = true): string {
  return text.replace(xmlDocument ? /[&<>"\n\r\t]/g : /[&<>"]/g, (c) => ATTRIBUTE_ESCAPES[c] ?? c);
}

const ATTRIBUTE_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  '\n': '&#10;',
  '\r': '&#13;',
  '\t': '&#9;',
};

/**
 * Writes an XHTML element as text: unprefixed, the XHTML namespace declared on the outermost element (and again
 * only where a child leaves it, e.g. embedded SVG), attributes in document order.
 */
export function writeXhtml(element: XmlElement, xmlDocument: boolean, parentUri = ''): string {
  let out = `<${element.local}`;
  if (element.uri !== parentUri) out += ` xmlns="${escapeAttribute(element.uri, xmlDocument)}"`;
  for (const attribute of element.attributes) {
    const name = attribute.uri === 'http://www.w3.org/XML/1998/namespace' ? `xml:${attribute.local}` : attribute.local;
    out += ` ${name}="${escapeAttribute(attribute.value, xmlDocument)}"`;
  }
  // An element written empty (`<br/>`) stays so, and one written with an end tag (`<td></td>`) keeps it.
  if (element.children.length === 0 && element.selfClosing) return `${out}/>`;
  out += '>';
  for (const child of element.children) {
    if (child.kind === 'text') out += escapeText(child.text, xmlDocument);
    else if (child.kind === 'comment') out += `<!--${child.text}-->`;
    else out += writeXhtml(child, xmlDocument, element.uri);
  }
  return `${out}</${element.local}>`;
}

/** The JSON string of a narrative div read from FHIR XML. */
export function divToJson(element: XmlElement, path: string): string {
  if (element.uri !== XHTML_NS || element.local !== 'div') {
    throw errors.badRequest(`${path} must be an XHTML <div> in the namespace ${XHTML_NS}`, path);
  }
  return writeXhtml(element, false);
}

/** The XML of a narrative div held as a JSON string; a string that is not one XHTML div is refused. */
export function divToXml(text: string, path: string): string {
  const element = parseXmlText(/[\r\n\t]/.test(text) ? keepWhitespace(text) : text);
  if (element.uri !== XHTML_NS && element.uri !== '') {
    throw errors.badRequest(`${path} must be an XHTML <div> in the namespace ${XHTML_NS}`, path);
  }
  return writeXhtml(element.uri === '' ? inXhtml(element) : element, true);
}

/** A div written without its namespace declaration, read as XHTML (FHIR JSON sometimes omits it). */
function inXhtml(element: XmlElement): XmlElement {
  return {
    ...element,
    uri: element.uri === '' ? XHTML_NS : element.uri,
    children: element.children.map((child) => (child.kind === 'element' ? inXhtml(child) : child)),
  };
}

/**
 * A JSON div's whitespace where an XML parser would not keep it, as character references: a carriage return in text
 * (parsers turn CR LF into LF) and line breaks and tabs in attribute values (parsers turn them into spaces). So
 * JSON → XML → JSON gives back the same string. Whitespace between a tag's attributes is left as it is.
 */
function keepWhitespace(text: string): string {
  let out = '';
  let inTag = false;
  let quote = '';
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = '';
      out += c === '\n' ? '&#10;' : c === '\r' ? '&#13;' : c === '\t' ? '&#9;' : c;
    } else if (inTag) {
      if (c === '"' || c === "'") quote = c;
      else if (c === '>') inTag = false;
      out += c;
    } else if (c === '\r') {
      out += '&#13;';
    } else {
      if (c === '<') inTag = true;
      out += c;
    }
  }
  return out;
}
