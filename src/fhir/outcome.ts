/**
 * OperationOutcome: how every error (and some successes) is told to a FHIR client.
 *
 * FhirError carries the HTTP status the FHIR specification assigns to the failure together with the
 * OperationOutcome that explains it, so code below the HTTP layer can say "this is a 412" without knowing HTTP.
 */
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

export type IssueSeverity = OperationOutcomeIssue['severity'];
export type IssueType = OperationOutcomeIssue['code'];

export function issue(
  severity: IssueSeverity,
  code: IssueType,
  diagnostics: string,
  expression?: string | string[],
): OperationOutcomeIssue {
  const result: OperationOutcomeIssue = { severity, code, diagnostics };
  if (expression !== undefined) result.expression = Array.isArray(expression) ? expression : [expression];
  return result;
}

export function operationOutcome(issues: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

/** An outcome with a single informational issue, e.g. for Prefer: return=OperationOutcome. */
export function informationOutcome(diagnostics: string): OperationOutcome {
  return operationOutcome([issue('information', 'informational', diagnostics)]);
}

export class FhirError extends Error {
  readonly outcome: OperationOutcome;
  /** Extra response headers the failure implies (e.g. Allow on 405). */
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    issues: OperationOutcomeIssue | OperationOutcomeIssue[],
    headers: Record<string, string> = {},
  ) {
    const list = Array.isArray(issues) ? issues : [issues];
    super(list.map((i) => i.diagnostics ?? i.code).join('; '));
    this.name = 'FhirError';
    this.outcome = operationOutcome(list);
    this.headers = headers;
  }
}

export const errors = {
  badRequest: (diagnostics: string, expression?: string) => new FhirError(400, issue('error', 'invalid', diagnostics, expression)),
  notFound: (diagnostics: string) => new FhirError(404, issue('error', 'not-found', diagnostics)),
  gone: (diagnostics: string) => new FhirError(410, issue('error', 'deleted', diagnostics)),
  methodNotAllowed: (method: string, path: string, allowed: string[], why?: string) =>
    new FhirError(
      405,
      issue('error', 'not-supported', `${method} is not allowed on ${path}${why ? ` (${why})` : ''}; allowed: ${allowed.join(', ')}`),
      {
        allow: allowed.join(', '),
      },
    ),
  notAcceptable: (diagnostics: string) => new FhirError(406, issue('error', 'not-supported', diagnostics)),
  conflict: (diagnostics: string) => new FhirError(409, issue('error', 'conflict', diagnostics)),
  preconditionFailed: (diagnostics: string) => new FhirError(412, issue('error', 'conflict', diagnostics)),
  payloadTooLarge: (diagnostics: string) => new FhirError(413, issue('error', 'too-costly', diagnostics)),
  unsupportedMediaType: (diagnostics: string) => new FhirError(415, issue('error', 'not-supported', diagnostics)),
  unprocessable: (diagnostics: string, expression?: string) => new FhirError(422, issue('error', 'business-rule', diagnostics, expression)),
  unavailable: (diagnostics: string) => new FhirError(503, issue('error', 'transient', diagnostics)),
  internal: (diagnostics: string) => new FhirError(500, issue('fatal', 'exception', diagnostics)),
};
