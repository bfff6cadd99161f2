/**
 * Content negotiation for the FHIR base: which bodies we parse (Content-Type), which representation we answer
 * (Accept and _format), and pretty printing (_pretty). Registered inside the FHIR scope only.
 *
 * The server speaks FHIR JSON and FHIR XML. Everything inside works on the JSON form: an XML body is converted
 * when it is parsed, and a resource is written as XML by the reply's serializer (src/fhir/xml, driven by the R4
 * StructureDefinitions). Answers that are not FHIR resources (a proof package, a Bulk Data manifest) stay JSON.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../fhir/outcome.js';
import { stringifyFhirJson } from '../fhir/decimal-text.js';
import { parseJsonText } from '../fhir/json-text.js';
import { resourceToXml } from '../fhir/xml/json-to-xml.js';
import { resourceFromXmlText } from '../fhir/xml/xml-to-json.js';

export const FHIR_JSON = 'application/fhir+json';
export const FHIR_XML = 'application/fhir+xml';
export const JSON_PATCH = 'application/json-patch+json';
const JSON_TYPES = new Set([FHIR_JSON, 'application/json', 'application/json+fhir']);
const XML_TYPES = new Set([FHIR_XML, 'application/xml', 'text/xml', 'application/xml+fhir']);

/** A media type (without parameters) that means FHIR XML. */
export function isXmlMediaType(type: string): boolean {
  return XML_TYPES.has(type);
}

/** The FHIR versions this server speaks, as the `fhirVersion` media type parameter names them (http.html#version-parameter). */
const FHIR_VERSIONS = /^4\.0(\.\d+)?$/;
/** _format shorthands defined by the FHIR specification (http.html#mime-type). */
const FORMAT_SHORTHANDS: ReadonlyMap<string, string> = new Map([
  ['json', FHIR_JSON],
  ['xml', 'application/fhir+xml'],
  ['ttl', 'text/turtle'],
]);

declare module 'fastify' {
  interface FastifyRequest {
    /** The media type the response is written in, decided by negotiation. */
    responseType: string;
    /** Whether the client asked for indented JSON (_pretty=true). */
    pretty: boolean;
  }
}

interface AcceptEntry {
  type: string;
  q: number;
}

/** A media type's `fhirVersion` parameter, when it names one (`application/fhir+xml; fhirVersion=4.0`). */
function fhirVersionOf(params: readonly string[]): string | undefined {
  for (const param of params) {
    const [key, value] = param.trim().split('=');
    if (key?.trim().toLowerCase() === 'fhirversion' && value !== undefined) return value.trim().replace(/^"|"$/g, '');
  }
  return undefined;
}

/** Accept entries by preference; a type asking for another FHIR version than R4 is one we cannot give. */
function parseAccept(header: string): AcceptEntry[] {
  return header
    .split(',')
    .map((part) => {
      const [type, ...params] = part.trim().split(';');
      let q = 1;
      for (const param of params) {
        const [key, value] = param.trim().split('=');
        if (key === 'q' && value !== undefined) q = Number(value);
      }
      const version = fhirVersionOf(params);
      if (version !== undefined && !FHIR_VERSIONS.test(version)) q = 0;
      return { type: type.trim().toLowerCase(), q: Number.isFinite(q) ? q : 0 };
    })
    .filter((entry) => entry.type.length > 0 && entry.q > 0)
    .sort((a, b) => b.q - a.q);
}

/** Media types that ask for a FHIR representation (or leave the choice to us). */
function asksForFhir(type: string): boolean {
  return JSON_TYPES.has(type) || XML_TYPES.has(type) || type === '*/*' || type === 'application/*';
}

/** A read or vread of a Binary (binary-content.ts), which may answer with the Binary's content. */
function readsBinary(request: FastifyRequest): boolean {
  const url = request.routeOptions.url ?? '';
  return (
    (request.method === 'GET' || request.method === 'HEAD') && (url.endsWith('/Binary/:id') || url.endsWith('/Binary/:id/_history/:vid'))
  );
}

/**
 * A read of a Binary asks for its content (binary-content.ts) when no _format is given and the client's most
 * preferred media type is not a FHIR one: `Accept: image/png`, `application/pdf, *\/*;q=0.1`, a browser's text/html.
 */
function asksForBinaryContent(format: string | undefined, accept: string | undefined): boolean {
  if ((format !== undefined && format !== '') || accept === undefined) return false;
  const preferred = parseAccept(accept)[0];
  return preferred !== undefined && !asksForFhir(preferred.type);
}

/**
 * The media type answered for a requested FHIR type: the FHIR types as such, and the generic ones (application/json,
 * application/xml, text/xml) echoed, as clients asking for them expect to get what they asked for.
 */
function answeredType(requested: string): string | undefined {
  if (JSON_TYPES.has(requested)) return requested === 'application/json' ? requested : FHIR_JSON;
  if (XML_TYPES.has(requested)) return requested === 'application/xml' || requested === 'text/xml' ? requested : FHIR_XML;
  if (requested === '*/*' || requested === 'application/*') return FHIR_JSON;
  return undefined;
}

/** Picks the response media type, or throws 406 naming what we can produce. */
export function negotiateResponseType(format: string | undefined, accept: string | undefined): string {
  if (format !== undefined && format !== '') {
    const [type, ...params] = (FORMAT_SHORTHANDS.get(format) ?? format).split(';');
    const requested = type.trim().toLowerCase();
    const version = fhirVersionOf(params);
    const answered = requested === '*/*' || requested === 'application/*' ? undefined : answeredType(requested);
    if (answered && (version === undefined || FHIR_VERSIONS.test(version))) return answered;
    throw errors.notAcceptable(
      `_format=${format} is not supported: this server answers FHIR R4 (4.0) in JSON (_format=json, application/fhir+json, ` +
        'application/json) or XML (_format=xml, application/fhir+xml, application/xml, text/xml)',
    );
  }
  if (accept === undefined || accept.trim() === '') return FHIR_JSON;
  for (const { type } of parseAccept(accept)) {
    const answered = answeredType(type);
    if (answered) return answered;
  }
  throw errors.notAcceptable(
    `Accept: ${accept} cannot be satisfied: this server answers FHIR R4 (fhirVersion=4.0) as application/fhir+json, ` +
      'application/json, application/fhir+xml, application/xml or text/xml',
  );
}

/**
 * How an error is written: in the type the request asked for (`_format`, `Accept`), or FHIR JSON when it asked for
 * nothing we write; indented on `_pretty=true`. Read from the request itself, since a refusal may come before the
 * negotiation hook ran (a missing access token).
 */
export function errorRepresentation(request: FastifyRequest): { type: string; pretty: boolean } {
  const query = (request.query ?? {}) as Record<string, unknown>;
  let type = FHIR_JSON;
  try {
    type = negotiateResponseType(typeof query._format === 'string' ? query._format : undefined, request.headers.accept);
  } catch {
    // what was asked for is itself the problem: JSON
  }
  return { type, pretty: isTrue(query._pretty) };
}

/** Whether a Content-Type or reply type header names FHIR XML. */
function namesXml(header: string | undefined): boolean {
  return header !== undefined && XML_TYPES.has(header.split(';')[0].trim().toLowerCase());
}

/** The `fhirVersion` a request body declares must be R4's: a body of another version would be misread. */
function checkBodyVersion(contentType: string | undefined): void {
  if (contentType === undefined) return;
  const version = fhirVersionOf(contentType.split(';').slice(1));
  if (version !== undefined && !FHIR_VERSIONS.test(version)) {
    throw errors.unsupportedMediaType(`Content-Type ${contentType}: this server speaks FHIR R4 (fhirVersion=4.0)`);
  }
}

/**
 * Writes a reply payload in the type the reply declares at that moment: a FHIR resource as XML when that type is
 * XML, anything else (and everything under a JSON type) as JSON. Deciding at serialization time keeps the two in
 * step when a route or the error handler sets its own type (a proof package is JSON whatever was asked).
 */
export function serializePayload(reply: FastifyReply, payload: unknown, pretty: boolean): string {
  const type = reply.getHeader('content-type');
  if (namesXml(typeof type === 'string' ? type : undefined) && isResource(payload)) return resourceToXml(payload, { pretty });
  return stringifyFhirJson(payload, pretty);
}

function isResource(payload: unknown): payload is Record<string, unknown> {
  return typeof payload === 'object' && payload !== null && typeof (payload as { resourceType?: unknown }).resourceType === 'string';
}

/**
 * Requests whose FHIR interaction has no body: DELETE (instance and conditional), OPTIONS, and POST [type]/_search,
 * whose parameters may all be in the URL. Fastify parses a body for these methods whenever a Content-Type is sent,
 * and FHIR clients and test suites send theirs on every request: with an empty body that header is dropped, so an
 * empty body is no body instead of a 400 "empty JSON" or a 415. (GET and HEAD are never parsed.)
 */
function takesNoBody(request: FastifyRequest): boolean {
  if (request.method === 'DELETE' || request.method === 'OPTIONS') return true;
  if (request.method !== 'POST') return false;
  const path = (request.raw.url ?? request.url).split('?')[0] ?? '';
  return path.endsWith('/_search');
}

function hasEmptyBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

function isTrue(value: unknown): boolean {
  return value === 'true' || value === '';
}

/**
 * Installs the FHIR body parsers and negotiation hook on an (encapsulated) instance: called by the FHIR scope,
 * so /healthz and other non-FHIR routes keep Fastify's defaults.
 */
export function registerFhirFormat(fastify: FastifyInstance, options: { bodyLimit: number }): void {
  fastify.removeAllContentTypeParsers();
  // Bodies are read as text (within BODY_LIMIT) and parsed by the FHIR layer: JSON, or XML converted to its JSON form.
  const textParser =
    (parse: (text: string) => unknown) =>
    (_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void => {
      try {
        done(null, parse(typeof body === 'string' ? body : body.toString('utf8')));
      } catch (error) {
        done(error as Error);
      }
    };
  const asText = { parseAs: 'string' as const, bodyLimit: options.bodyLimit };
  fastify.addContentTypeParser([...JSON_TYPES, JSON_PATCH], asText, textParser(parseJsonText));
  fastify.addContentTypeParser([...XML_TYPES], asText, textParser(resourceFromXmlText));

  fastify.decorateRequest('responseType', FHIR_JSON);
  fastify.decorateRequest('pretty', false);
  fastify.decorateRequest('binaryContent', false);

  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (takesNoBody(request) && hasEmptyBody(request)) delete request.headers['content-type'];
    const query = request.query as Record<string, unknown>;
    const format = typeof query._format === 'string' ? query._format : undefined;
    request.pretty = isTrue(query._pretty);
    // Set before negotiating, so that a 406 is itself rendered in the server's default format.
    reply.type(`${FHIR_JSON}; charset=utf-8`);
    // Errors (a 404, a 403) are still OperationOutcomes in JSON.
    if (readsBinary(request) && asksForBinaryContent(format, request.headers.accept)) {
      request.binaryContent = true;
      return;
    }
    request.responseType = negotiateResponseType(format, request.headers.accept);
    reply.type(`${request.responseType}; charset=utf-8`);
    const pretty = request.pretty;
    reply.serializer((payload: unknown) => serializePayload(reply, payload, pretty));
    checkBodyVersion(request.headers['content-type']);
  });
}
