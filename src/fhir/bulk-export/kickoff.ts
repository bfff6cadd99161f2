/**
 * The Bulk Data kick-off request (Bulk Data Access IG 2.0.0, export.html): headers and parameters, from a query
 * string (GET) or a Parameters resource (POST), checked into what a job needs.
 *
 * - Prefer: respond-async is required (the export only runs asynchronously).
 * - Accept names the format of an OperationOutcome answer: application/fhir+json. A missing Accept, * / * and
 *   application/json are taken as that (curl sends * / *); anything else is a 400.
 * - _outputFormat: application/fhir+ndjson, application/ndjson or ndjson (all the same NDJSON); others 400.
 * - _since: a FHIR instant (a date or dateTime is taken from its first moment); resources changed after it.
 * - _type: comma-separated, repeatable. Following the IG, a type that is not exported here (or any parameter this
 *   server does not support: _typeFilter, _elements, patient, includeAssociatedData, _until, ...) is a 400, unless
 *   the client sent Prefer: handling=lenient, in which case it is ignored and reported as a warning (in the 202
 *   answer and in an OperationOutcome file of the manifest's `error` list).
 */
import type { ExportJobParams, ExportLevel } from '../../store/export-jobs.js';
import { parseDateRange } from '../dates.js';
import { FhirError, errors, issue } from '../outcome.js';
import { parametersBody } from '../operations/parameters.js';

export const NDJSON = 'application/fhir+ndjson';
const OUTPUT_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson']);
const ACCEPTABLE = new Set(['application/fhir+json', 'application/json+fhir', 'application/json', '*/*', 'application/*']);
/** Parameters that are HTTP-level (negotiation), not export parameters. */
const TRANSPARENT = new Set(['_format', '_pretty']);

export interface KickoffRequest {
  level: ExportLevel;
  /** Query string parameters, in order. */
  query: Array<[string, string]>;
  /** The POST body (a Parameters resource), if any. */
  body?: unknown;
  prefer: string;
  accept: string | undefined;
}

export interface KickoffPlan {
  params: ExportJobParams;
  /** The request named its types (_type): a type the caller may not export is then refused, not left out. */
  typesNamed: boolean;
  /** Parameters ignored under handling=lenient. */
  warnings: string[];
}

export interface ExportableTypes {
  system: readonly string[];
  patient: readonly string[];
}

function preferTokens(prefer: string): string[] {
  return prefer
    .split(/[,;]/)
    .map((p) =>
      p
        .trim()
        .toLowerCase()
        .replace(/\s*=\s*/, '=')
        .replace(/"/g, ''),
    )
    .filter(Boolean);
}

function checkAccept(accept: string | undefined): void {
  if (accept === undefined || accept.trim() === '') return;
  const types = accept.split(',').map((part) => part.split(';')[0].trim().toLowerCase());
  if (types.some((type) => ACCEPTABLE.has(type))) return;
  throw errors.badRequest(`Accept: ${accept} cannot be used for a bulk export kick-off; send Accept: application/fhir+json`);
}

/** Checks a kick-off request and turns it into job parameters; throws 400 OperationOutcomes for what it refuses. */
export function parseKickoff(request: KickoffRequest, exportable: ExportableTypes): KickoffPlan {
  const prefer = preferTokens(request.prefer);
  if (!prefer.includes('respond-async')) {
    throw errors.badRequest('A bulk export runs asynchronously: send the header Prefer: respond-async');
  }
  const lenient = prefer.includes('handling=lenient');
  checkAccept(request.accept);

  const available = request.level === 'system' ? exportable.system : exportable.patient;
  const params: ExportJobParams = { level: request.level, types: [...available], outputFormat: NDJSON };
  const unsupported: string[] = [];
  const requested: string[] = [];
  let typeGiven = false;
  const once = new Set<string>();
  for (const [name, value] of [...request.query, ...parametersBody(request.body, 'kick-off')]) {
    if (TRANSPARENT.has(name)) continue;
    if (name === '_outputFormat' || name === '_since') {
      if (once.has(name)) throw errors.badRequest(`${name} is given more than once`, name);
      once.add(name);
    }
    switch (name) {
      case '_outputFormat':
        if (!OUTPUT_FORMATS.has(value.trim().toLowerCase())) {
          throw errors.badRequest(
            `_outputFormat=${value} is not supported: use application/fhir+ndjson (or application/ndjson, ndjson)`,
            name,
          );
        }
        break;
      case '_since': {
        const range = parseDateRange(value);
        if (!range) throw errors.badRequest(`_since=${value} is not a FHIR instant such as 2024-01-31T12:00:00Z`, name);
        params.since = range.low;
        break;
      }
      case '_type':
        typeGiven = true;
        for (const type of value
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean)) {
          if (available.includes(type)) {
            if (!requested.includes(type)) requested.push(type);
          } else {
            unsupported.push(`_type=${type} (this export offers ${available.join(', ')})`);
          }
        }
        break;
      default:
        unsupported.push(`${name} (not supported by this server)`);
    }
  }
  if (typeGiven) params.types = available.filter((t) => requested.includes(t));
  if (unsupported.length > 0 && !lenient) {
    throw new FhirError(
      400,
      unsupported.map((u) => issue('error', 'not-supported', `${u}; remove it, or send Prefer: handling=lenient to have it ignored`)),
    );
  }
  return { params, typesNamed: typeGiven, warnings: unsupported.map((u) => `Ignored ${u}`) };
}
