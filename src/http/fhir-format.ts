/**
 * Content negotiation for the FHIR base: which bodies we parse (Content-Type), which representation we answer
 * (Accept and _format), and pretty printing (_pretty). Registered inside the FHIR scope only.
 *
 * The server speaks JSON. XML is refused with 406 (and the CapabilityStatement lists JSON only) because no
 * well-kept JavaScript library converts R4 JSON and XML faithfully; a lossy conversion would corrupt records.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import secureJson from 'secure-json-parse';
import { errors } from '../fhir/outcome.js';

export const FHIR_JSON = 'application/fhir+json';
export const JSON_PATCH = 'application/json-patch+json';
const JSON_TYPES = new Set([FHIR_JSON, 'application/json', 'application/json+fhir']);
const XML_TYPES = new Set(['application/fhir+xml', 'application/xml', 'text/xml', 'application/xml+fhir']);
/** _format shorthands defined by the FHIR specification (http.html#mime-type). */
const FORMAT_SHORTHANDS: Record<string, string> = { json: FHIR_JSON, xml: 'application/fhir+xml', ttl: 'text/turtle' };

/** Nesting deeper than this is refused before JSON.parse sees it: no FHIR resource comes close. */
export const MAX_JSON_DEPTH = 100;

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

/** Picks the response media type, or throws 406 naming what we can produce. */
export function negotiateResponseType(format: string | undefined, accept: string | undefined): string {
  if (format !== undefined && format !== '') {
    const requested = (FORMAT_SHORTHANDS[format] ?? format).split(';')[0].trim().toLowerCase();
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

/** Throws 400 when JSON text nests deeper than the limit, scanning once without recursion. */
export function checkJsonDepth(text: string, limit = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > limit) throw errors.badRequest(`JSON nests deeper than ${limit} levels`);
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
}

/** Parses a JSON request body; keys that could pollute prototypes are refused rather than silently dropped. */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw errors.badRequest('The request body is empty; a JSON document was expected');
  checkJsonDepth(text);
  try {
    return secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/prototype|__proto__|constructor/i.test(message)) {
      throw errors.badRequest('The JSON body contains a forbidden key (__proto__ or constructor.prototype)');
    }
    throw errors.badRequest(`The body is not valid JSON: ${message}`);
  }
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
        done(null, parseJsonBody(typeof body === 'string' ? body : body.toString('utf8')));
      } catch (error) {
        done(error as Error);
      }
    },
  );

  fastify.decorateRequest('responseType', FHIR_JSON);
  fastify.decorateRequest('pretty', false);

  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const query = request.query as Record<string, unknown>;
    const format = typeof query._format === 'string' ? query._format : undefined;
    request.pretty = isTrue(query._pretty);
    // Set before negotiating, so that a 406 is itself rendered in the server's default format.
    reply.type(`${FHIR_JSON}; charset=utf-8`);
    request.responseType = negotiateResponseType(format, request.headers.accept);
    reply.type(`${request.responseType}; charset=utf-8`);
    if (request.pretty) reply.serializer((payload: unknown) => JSON.stringify(payload, null, 2));
  });
}
