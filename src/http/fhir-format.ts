/**
 * Content negotiation for the FHIR base: which bodies we parse (Content-Type), which representation we answer
 * (Accept and _format), and pretty printing (_pretty). Registered inside the FHIR scope only.
 *
 * The server speaks JSON. XML is refused with 406 (and the CapabilityStatement lists JSON only) because no
 * well-kept JavaScript library converts R4 JSON and XML faithfully; a lossy conversion would corrupt records.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../fhir/outcome.js';
import { parseJsonText } from '../fhir/json-text.js';

export const FHIR_JSON = 'application/fhir+json';
export const JSON_PATCH = 'application/json-patch+json';
const JSON_TYPES = new Set([FHIR_JSON, 'application/json', 'application/json+fhir']);
const XML_TYPES = new Set(['application/fhir+xml', 'application/xml', 'text/xml', 'application/xml+fhir']);

/** FHIR XML, which this server does not read yet (a Binary's content included: it would be taken for a resource). */
export function isXmlMediaType(type: string): boolean {
  return XML_TYPES.has(type);
}
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

/** Picks the response media type, or throws 406 naming what we can produce. */
export function negotiateResponseType(format: string | undefined, accept: string | undefined): string {
  if (format !== undefined && format !== '') {
    const requested = (FORMAT_SHORTHANDS.get(format) ?? format).split(';')[0].trim().toLowerCase();
    if (JSON_TYPES.has(requested)) return requested === 'application/json' ? requested : FHIR_JSON;
    throw errors.notAcceptable(
      `_format=${format} is not supported: this server answers in JSON only (_format=json, application/fhir+json or application/json)`,
    );
  }
  if (accept === undefined || accept.trim() === '') return FHIR_JSON;
  for (const { type } of parseAccept(accept)) {
    if (type === FHIR_JSON || type === 'application/json+fhir') return FHIR_JSON;
    if (type === 'application/json') return type;
    if (type === '*/*' || type === 'application/*') return FHIR_JSON;
  }
  const xml = parseAccept(accept).some((entry) => XML_TYPES.has(entry.type));
  throw errors.notAcceptable(
    `${xml ? 'XML is not supported' : `Accept: ${accept} cannot be satisfied`}: this server answers in application/fhir+json or application/json`,
  );
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
  fastify.addContentTypeParser(
    [...JSON_TYPES, JSON_PATCH],
    { parseAs: 'string', bodyLimit: options.bodyLimit },
    (_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => {
      try {
        done(null, parseJsonText(typeof body === 'string' ? body : body.toString('utf8')));
      } catch (error) {
        done(error as Error);
      }
    },
  );

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
    if (request.pretty) reply.serializer((payload: unknown) => JSON.stringify(payload, null, 2));
  });
}
