/**
 * $validate (FHIR R4 resource-operation-validate): POST [type]/$validate and POST [type]/[id]/$validate.
 * The body is the resource, or a Parameters with `resource`, `mode` (create | update | delete) and `profile`.
 * The answer is an OperationOutcome with status 200 whether or not the resource is valid (the operation
 * itself succeeded); only input the operation cannot work with (no resource, an unknown mode or profile) is 4xx.
 */
import type { OperationOutcome, OperationOutcomeIssue, Parameters, Resource } from '@medplum/fhirtypes';
import type { FhirContext } from '../context.js';
import { errors, issue, operationOutcome } from '../outcome.js';
import { checkReferences } from './references.js';
import { requireResourceBody } from './versions.js';
import { requireReadable } from './visibility.js';

export type ValidateMode = 'create' | 'update' | 'delete';

interface ValidateRequest {
  resource?: Resource;
  mode?: ValidateMode;
  profile?: string;
}

const OPERATION_PARAMETERS = new Set(['resource', 'mode', 'profile']);

/**
 * Whether the body is the operation's own Parameters rather than the resource to validate. For every type but
 * Parameters a Parameters body is the operation's; validating a Parameters, the body is the operation's only when it
 * names a resource to validate and nothing but the operation's parameters.
 */
function isOperationParameters(body: unknown, type: string): body is Parameters {
  if (body === null || typeof body !== 'object' || (body as Resource).resourceType !== 'Parameters') return false;
  if (type !== 'Parameters') return true;
  const parameters = (body as Parameters).parameter ?? [];
  return (
    parameters.some((p) => p.name === 'resource' && p.resource !== undefined) &&
    parameters.every((p) => OPERATION_PARAMETERS.has(p.name ?? ''))
  );
}

function parseRequest(body: unknown, type: string): ValidateRequest {
  if (isOperationParameters(body, type)) {
    const request: ValidateRequest = {};
    for (const parameter of body.parameter ?? []) {
      if (parameter.name === 'resource') request.resource = requireResourceBody(parameter.resource, type);
      else if (parameter.name === 'mode') {
        const mode = parameter.valueCode ?? parameter.valueString;
        if (mode !== 'create' && mode !== 'update' && mode !== 'delete') {
          throw errors.badRequest(`mode=${String(mode)} is not one of create, update, delete`, 'Parameters.parameter');
        }
        request.mode = mode;
      } else if (parameter.name === 'profile') request.profile = parameter.valueUri ?? parameter.valueCanonical ?? parameter.valueString;
      else throw errors.badRequest(`$validate has no parameter named ${String(parameter.name)}`, 'Parameters.parameter');
    }
    return request;
  }
  return { resource: requireResourceBody(body, type) };
}

export async function validateOperation(
  ctx: FhirContext,
  type: string,
  id: string | undefined,
  body: unknown,
  query: { mode?: string; profile?: string },
): Promise<OperationOutcome> {
  const request = parseRequest(body, type);
  const mode = request.mode ?? query.mode;
  if (mode !== undefined && mode !== 'create' && mode !== 'update' && mode !== 'delete') {
    throw errors.badRequest(`mode=${mode} is not one of create, update, delete`);
  }
  const profile = request.profile ?? query.profile;
  if (profile !== undefined && !ctx.validator.profiles.has(profile)) {
    throw errors.badRequest(`Profile ${profile} is not known to this server; see CapabilityStatement supportedProfile`);
  }

  // An instance-level $validate names a stored resource: only a caller who may see it learns anything about it
  // (otherwise the answer would tell a token confined to one patient whether another patient's resource exists).
  const head = id !== undefined ? await ctx.store.readCurrent(type, id, ctx.session) : null;
  if (head) await requireReadable(ctx, head);

  const issues: OperationOutcomeIssue[] = [];
  if (mode === 'delete') {
    if (!id) throw errors.badRequest('mode=delete needs an instance: POST [type]/[id]/$validate');
    if (!head || head.deleted) issues.push(issue('error', 'not-found', `${type}/${id} has no current version to delete`));
  } else {
    if (!request.resource) throw errors.badRequest('$validate needs a resource in the body (or a Parameters with a resource)');
    const resource = request.resource;
    if (id !== undefined && resource.id !== undefined && resource.id !== id) {
      issues.push(issue('error', 'invalid', `The resource's id "${resource.id}" does not match the URL's "${id}"`, `${type}.id`));
    }
    if (mode === 'update' && resource.id === undefined && id === undefined) {
      issues.push(issue('error', 'required', 'mode=update needs a resource with an id', `${type}.id`));
    }
    issues.push(...ctx.validator.validate(resource, profile ? { profile } : undefined));
    issues.push(...(await checkReferences(ctx, resource)));
  }
  if (!issues.some((i) => i.severity === 'error' || i.severity === 'fatal')) {
    issues.unshift(issue('information', 'informational', `Validation passed${profile ? ` (including ${profile})` : ''}`));
  }
  return operationOutcome(issues);
}
