/**
 * Binary's raw content over HTTP (R4 http.html#binary): a Binary is read and written either as a FHIR resource or as
 * the content it holds, in that content's own media type.
 *
 * - read and vread: when no `_format` is given and the client's most preferred media type (Accept) is not a FHIR one
 *   (nor a wildcard; decided by the negotiation in fhir-format.ts), the answer is the bytes with the Binary's contentType, and the usual ETag and Last-Modified;
 * - create (POST /Binary, conditional included) and update (PUT /Binary/[id], PUT /Binary?criteria): a body whose
 *   Content-Type is not a FHIR one is the content; the stored Binary gets that media type, the bytes base64-encoded,
 *   and the `X-Security-Context` header as its securityContext. The answer is the Binary resource, as for any write.
 *
 * Everything else about these requests is the ordinary interaction (the same route, scope, audit event and ledger
 * commitment): the raw form only changes how the body and the answer are written.
 *
 * Content served raw comes from clients, under the API's origin: it is sent with a sandboxing Content-Security-Policy
 * and `nosniff`, so that an HTML or SVG document stored as a Binary cannot run script against the API.
 */
import type { Binary } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { binaryFromContent, contentOfBinary } from '../fhir/binary.js';
import { errors } from '../fhir/outcome.js';
import type { VersionView } from '../fhir/interactions/versions.js';

/** A request body that is a Binary's content rather than a resource (set by the Binary routes' parser). */
class RawContent {
  constructor(
    readonly contentType: string,
    readonly bytes: Buffer,
  ) {}
}

declare module 'fastify' {
  interface FastifyRequest {
    /** A read of a Binary that asked for its content rather than the resource (decided in onRequest). */
    binaryContent: boolean;
  }
}

const CONTENT_WRITE_ROUTES: Record<string, string[]> = { POST: ['/Binary'], PUT: ['/Binary', '/Binary/:id'] };
/** The media type the client named, parameters kept (a charset matters to the reader), spacing normalised. */
function mediaTypeOf(header: string | undefined): string {
  const parts = (header ?? '')
    .split(';')
    .map((part) => part.trim())
    .filter(Boolean);
  if (parts.length === 0) return 'application/octet-stream';
  return [parts[0].toLowerCase(), ...parts.slice(1)].join('; ');
}

function routeIs(request: FastifyRequest, routes: readonly string[]): boolean {
  const url = request.routeOptions.url ?? '';
  return routes.some((route) => url.endsWith(route));
}

/**
 * Installs, on the scope that holds Binary's routes, the parser that takes any non-FHIR body of a create or update
 * as content (Fastify's bodyLimit applies), and the hook that turns it into the Binary resource the interaction stores.
 */
export function acceptBinaryContent(scope: FastifyInstance): void {
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    if (!(CONTENT_WRITE_ROUTES[request.method] && routeIs(request, CONTENT_WRITE_ROUTES[request.method]))) {
      done(
        errors.unsupportedMediaType(
          `Content-Type ${request.headers['content-type'] ?? '(none)'} is not supported here; send application/fhir+json ` +
            "(a Binary's own content is accepted by POST /Binary and PUT /Binary/[id])",
        ),
      );
      return;
    }
    // FHIR XML types never reach this parser: the FHIR scope's own parser reads them as a Binary resource.
    const contentType = mediaTypeOf(request.headers['content-type']);
    done(null, new RawContent(contentType, body as Buffer));
  });
  scope.addHook('preValidation', async (request) => {
    if (!(request.body instanceof RawContent)) return;
    const header = request.headers['x-security-context'];
    const id = (request.params as { id?: string }).id;
    request.body = binaryFromContent({
      contentType: request.body.contentType,
      bytes: request.body.bytes,
      ...(typeof header === 'string' && header.trim() !== '' ? { securityContext: header.trim() } : {}),
      ...(id !== undefined ? { id } : {}),
    });
  });
}

/** Answers a read of a Binary with its content (the version headers are already set). */
export function sendBinaryContent(reply: FastifyReply, version: VersionView): FastifyReply {
  const { contentType, bytes } = contentOfBinary(version.resource as Binary);
  reply.header('content-security-policy', "sandbox; default-src 'none'");
  reply.header('x-content-type-options', 'nosniff');
  return reply.type(contentType).send(bytes);
}
