/**
 * Every failure leaves the server as an OperationOutcome with the status the FHIR specification gives it.
 * Fastify's own errors (bad media type, body too large, malformed JSON) are translated here too, so a client
 * never sees Fastify's default error shape, and a 5xx never leaks internals (the detail goes to the log only).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { FhirError, errors, issue, operationOutcome } from '../fhir/outcome.js';
import { fhirErrorOfStoreFailure } from '../fhir/store-failures.js';
import { errorRepresentation, serializePayload } from './fhir-format.js';

/** Fastify error codes whose message is safe and useful to show, with the FHIR issue type that fits. */
const FASTIFY_ERRORS: Record<string, { status: number; code: 'invalid' | 'too-costly' | 'not-supported' | 'structure' }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'not-supported' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'too-costly' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'structure' },
  FST_ERR_BAD_URL: { status: 400, code: 'invalid' },
  FST_ERR_VALIDATION: { status: 400, code: 'invalid' },
};

export interface ErrorOptions {
  /** Resource types the server hosts, named in the 404 for an unknown type. */
  resourceTypes: readonly string[];
  /** FHIR base path ('' or '/fhir'), to recognise "/[base]/[Type]" requests. */
  basePath: string;
  bodyLimit: number;
}

function toFhirError(error: FastifyError, options: ErrorOptions, request: FastifyRequest): FhirError {
  if (error instanceof FhirError) return error;
  const storeFailure = fhirErrorOfStoreFailure(error);
  if (storeFailure) return storeFailure;
  const known = error.code ? FASTIFY_ERRORS[error.code] : undefined;
  if (known) {
    let diagnostics = error.message;
    if (known.status === 413) diagnostics = `The request body is larger than the limit of ${options.bodyLimit} bytes`;
    if (known.status === 415) {
      diagnostics = `Content-Type ${request.headers['content-type'] ?? '(none)'} is not supported; send application/fhir+json`;
    }
    return new FhirError(known.status, issue('error', known.code, diagnostics));
  }
  const status = error.statusCode ?? 500;
  // Fastify's own client errors describe the request; any other error's message may describe internals (an
  // upstream URL, a library's state), so it stays in the log and the client gets the status only.
  if (status >= 400 && status < 500) {
    const own = typeof error.code === 'string' && error.code.startsWith('FST_');
    return new FhirError(status, issue('error', 'invalid', own ? error.message : `The request could not be processed (HTTP ${status})`));
  }
  return errors.internal('The server could not complete the request; the incident was logged');
}

function notFound(request: FastifyRequest, options: ErrorOptions): FhirError {
  const path = request.url.split('?')[0];
  const relative = path.startsWith(options.basePath) ? path.slice(options.basePath.length) : path;
  const first = relative.split('/').filter(Boolean)[0];
  if (first && /^[A-Z][A-Za-z]+$/.test(first) && !options.resourceTypes.includes(first)) {
    return errors.notFound(`Resource type ${first} is not hosted by this server; ${options.basePath}/metadata lists the hosted types`);
  }
  return errors.notFound(`No FHIR interaction answers ${request.method} ${path}`);
}

/**
 * Errors the router raises before any route or hook runs (Fastify's `frameworkErrors`): a path that is not valid
 * percent-encoding, a path segment longer than the router takes. Answered as OperationOutcomes like every other.
 */
export function answerFrameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const fhirError =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new FhirError(
          414,
          issue(
            'error',
            'too-costly',
            `A path segment of the URL is longer than ${MAX_PATH_SEGMENT} characters (a FHIR id has at most 64)`,
          ),
        )
      : error.code === 'FST_ERR_BAD_URL'
        ? errors.badRequest('The URL path is not valid percent-encoding (RFC 3986): a "%" must be followed by two hexadecimal digits')
        : new FhirError(
            error.statusCode && error.statusCode < 500 ? error.statusCode : 400,
            issue('error', 'invalid', 'The request could not be routed'),
          );
  reply.code(fhirError.status).type('application/fhir+json; charset=utf-8').send(fhirError.outcome);
}

/** The longest path segment (route parameter) the router accepts; longer ones are answered 414 by answerFrameworkError. */
export const MAX_PATH_SEGMENT = 200;

async function errorPlugin(fastify: FastifyInstance, options: ErrorOptions): Promise<void> {
  // HTTP/1.1 requires Host (RFC 9112 §3.2): Node's own check would answer 400 with an empty body, so it is turned off
  // (http.requireHostHeader) and done here, where the answer can be an OperationOutcome.
  fastify.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      throw errors.badRequest('An HTTP/1.1 request must carry a Host header (RFC 9112, section 3.2)');
    }
  });

  fastify.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const fhirError = toFhirError(error, options, request);
    // The reason the client is given, for the request's AuditEvent.
    request.failure = fhirError.outcome.issue?.[0]?.diagnostics;
    if (fhirError.status >= 500 || !(error instanceof FhirError || String(error.code ?? '').startsWith('FST_')))
      request.log.error({ err: error }, 'request failed');
    else request.log.info({ status: fhirError.status, code: fhirError.outcome.issue?.[0]?.code }, 'request refused');
    // An error is an OperationOutcome in the format the client asked for: XML when it asked for XML, also when the
    // refusal came before the negotiation (a missing token); JSON when what it asked for is the problem. (Fastify
    // drops the reply's type before this runs.)
    const { type, pretty } = errorRepresentation(request);
    reply.type(`${type}; charset=utf-8`);
    reply.serializer((payload: unknown) => serializePayload(reply, payload, pretty));
    reply.code(fhirError.status).headers(fhirError.headers).send(fhirError.outcome);
  });

  fastify.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const fhirError = notFound(request, options);
    const { type, pretty } = errorRepresentation(request);
    reply.serializer((payload: unknown) => serializePayload(reply, payload, pretty));
    reply.code(404).type(`${type}; charset=utf-8`).send(fhirError.outcome);
  });
}

export default fp(errorPlugin, { name: 'fhir-errors' });

export { operationOutcome };
