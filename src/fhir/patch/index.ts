/**
 * The FHIR `patch` interaction's document semantics (FHIR R4 http.html#patch), as pure functions:
 * JSON Patch (application/json-patch+json, RFC 6902) and FHIRPath Patch (a Parameters resource,
 * fhirpatch.html). XML Patch (application/xml-patch+xml) is not supported.
 *
 * Both kinds:
 * - never mutate their input and return a new object;
 * - are atomic: operations apply in order to a working copy and the first failure throws, so a patch
 *   either applies completely or not at all (RFC 6902 §5; FHIR: "the server SHALL process its own copy");
 * - report failures as FhirError with an OperationOutcome naming the operation (its index, op/type and
 *   path) and the reason: 400 for a malformed patch document, 422 for a well-formed patch that cannot be
 *   applied to this resource (the rule, and why, is in problems.ts);
 * - must leave the same resource: FHIR processes the patched document as an update of the resource the
 *   patch was sent to (http.html#patch: "When the operations have all been processed, the server processes
 *   the resulting document as an Update operation"), and an update may not change the resource's type or id
 *   (http.html#update: the id in the body must match the URL). A patch that changes or removes resourceType
 *   or id is refused with 422.
 * The caller still validates the result as for any update (FHIR: "Servers SHALL return an error if the
 * outcome of the patch operation is not a valid resource") and sets meta.versionId/lastUpdated.
 */
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { applyFhirPathPatch } from './fhirpath-patch.js';
import { applyJsonPatch } from './json-patch.js';
import { brief, isJsonObject, malformed, unprocessable } from './problems.js';

export type PatchDocument = { kind: 'json-patch'; operations: unknown } | { kind: 'fhirpath-patch'; parameters: Parameters };

/** Returns the patched resource (a new object; the input is not mutated) or throws FhirError (from ../outcome.js) with status 400 or 422 and an OperationOutcome whose issue says which operation failed and why. */
export function applyPatch(resource: Resource, patch: PatchDocument): Resource {
  let result: unknown;
  switch (patch?.kind) {
    case 'json-patch':
      result = applyJsonPatch(resource, patch.operations);
      break;
    case 'fhirpath-patch':
      result = applyFhirPathPatch(resource, patch.parameters);
      break;
    default:
      throw malformed(`Unknown patch kind ${brief((patch as { kind?: unknown } | undefined)?.kind)}`);
  }
  checkSameResource(resource, result);
  return result as Resource;
}

function checkSameResource(before: Resource, after: unknown): void {
  if (!isJsonObject(after)) {
    throw unprocessable(
      'The patch must leave a resource (a JSON object), not replace it with another kind of value',
      undefined,
      'business-rule',
    );
  }
  const beforeRecord = before as unknown as Record<string, unknown>;
  for (const key of ['resourceType', 'id'] as const) {
    if (after[key] !== beforeRecord[key]) {
      throw unprocessable(
        `The patch may not change the resource's ${key} (from ${brief(beforeRecord[key])} to ${brief(after[key])}): ` +
          'a patched resource must still be the same resource',
        key === 'id' ? `${String(beforeRecord['resourceType'])}.id` : undefined,
        'business-rule',
      );
    }
  }
}
