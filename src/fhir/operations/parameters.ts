/**
 * Operation parameters given in a POST body: a Parameters resource read as name=value pairs, the same shape as a
 * query string, so one parser serves GET and POST. Only primitive values (and references, as their text) are
 * meaningful to the operations here.
 */
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { errors } from '../outcome.js';

/** The value of a Parameters entry as text: a primitive as written, a Reference by its reference. */
function parameterText(parameter: ParametersParameter): string | undefined {
  for (const [name, value] of Object.entries(parameter as unknown as Record<string, unknown>)) {
    if (!name.startsWith('value')) continue;
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (name === 'valueReference' && value && typeof value === 'object') return (value as { reference?: string }).reference ?? '';
    return JSON.stringify(value);
  }
  return undefined;
}

/** name=value pairs of a Parameters body (none for an empty body); 400 for any other body. */
export function parametersBody(body: unknown, operation: string): Array<[string, string]> {
  if (body === undefined || body === null || body === '') return [];
  if (typeof body !== 'object' || (body as { resourceType?: unknown }).resourceType !== 'Parameters') {
    throw errors.badRequest(`A POST ${operation} takes a Parameters resource as its body`);
  }
  const pairs: Array<[string, string]> = [];
  for (const parameter of (body as Parameters).parameter ?? []) {
    const value = parameter && typeof parameter === 'object' ? parameterText(parameter) : undefined;
    if (typeof parameter?.name !== 'string' || value === undefined) {
      throw errors.badRequest(`Each Parameters.parameter of ${operation} needs a name and a value[x]`, 'Parameters.parameter');
    }
    pairs.push([parameter.name, value]);
  }
  return pairs;
}
