/**
 * Writing FHIR responses: version headers (ETag, Last-Modified, Location), conditional reads (If-None-Match,
 * If-Modified-Since), and the Prefer header's return preference.
 */
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseVersionTag, writeSummary, type VersionView, type WriteResult } from '../fhir/interactions/versions.js';
import { issue, operationOutcome } from '../fhir/outcome.js';

export type ReturnPreference = 'minimal' | 'representation' | 'OperationOutcome';

/** Prefer: return=… (RFC 7240 as FHIR uses it); representation when absent or unrecognised. */
export function returnPreference(request: FastifyRequest): ReturnPreference {
  const header = request.headers.prefer;
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  const match = /(?:^|[,;\s])return\s*=\s*"?(minimal|representation|OperationOutcome)"?/i.exec(value);
  if (!match) return 'representation';
  const chosen = match[1].toLowerCase();
  return chosen === 'minimal' ? 'minimal' : chosen === 'operationoutcome' ? 'OperationOutcome' : 'representation';
}

export function versionUrl(baseUrl: string, version: VersionView): string {
  return `${baseUrl}/${version.type}/${version.id}/_history/${version.versionId}`;
}

export function setVersionHeaders(reply: FastifyReply, version: VersionView): void {
  reply.header('etag', `W/"${version.versionId}"`);
  reply.header('last-modified', version.lastUpdated.toUTCString());
}

/** True when the client's cached copy is current (If-None-Match wins over If-Modified-Since, as in RFC 9110). */
export function notModified(request: FastifyRequest, version: VersionView): boolean {
  const ifNoneMatch = request.headers['if-none-match'];
  if (typeof ifNoneMatch === 'string') {
    return ifNoneMatch
      .split(',')
      .map((tag) => tag.trim())
      .some((tag) => tag === '*' || tag.replace(/^W\//, '') === `"${version.versionId}"`);
  }
  const ifModifiedSince = request.headers['if-modified-since'];
  if (typeof ifModifiedSince === 'string') {
    const since = Date.parse(ifModifiedSince);
    // HTTP dates have whole seconds: compare at that precision.
    if (!Number.isNaN(since)) return Math.floor(version.lastUpdated.getTime() / 1000) * 1000 <= since;
  }
  return false;
}

/** Answers a create, update or patch: status, version headers, Location, and the body the client preferred. */
export function sendWriteResult(request: FastifyRequest, reply: FastifyReply, baseUrl: string, result: WriteResult): FastifyReply {
  const { version } = result;
  setVersionHeaders(reply, version);
  reply.header('location', versionUrl(baseUrl, version));
  reply.code(result.created ? 201 : 200);
  const preference = returnPreference(request);
  if (preference === 'minimal') return reply.send();
  if (preference === 'OperationOutcome') {
    const summary = writeSummary(result);
    const issues: OperationOutcomeIssue[] = [issue('information', 'informational', summary), ...result.warnings];
    return reply.send(operationOutcome(issues));
  }
  return reply.send(version.resource as Resource);
}

/** If-Match W/"n" (update, patch, delete, conditional writes): the version the client based its change on. */
export function ifMatchOf(request: FastifyRequest): number | undefined {
  const header = request.headers['if-match'];
  return typeof header === 'string' ? parseVersionTag(header, 'If-Match') : undefined;
}
