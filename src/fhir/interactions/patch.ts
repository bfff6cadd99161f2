/**
 * patch: PATCH [type]/[id] with a JSON Patch or a FHIRPath Patch. The patch is applied to the current version,
 * the result validated like an update and stored as the next version. If-Match is honoured; without it, a
 * concurrent change makes the patch re-apply to the newer version (a patch states a change, not a whole
 * resource, so this is what the client asked for).
 */
import type { FhirContext } from '../context.js';
import { errors } from '../outcome.js';
import { applyPatch, type PatchDocument } from '../patch/index.js';
import { writeUpdate } from './update.js';
import { ID_PATTERN, validateForWrite, type WriteResult } from './versions.js';

export async function patchResource(
  ctx: FhirContext,
  type: string,
  id: string,
  patch: PatchDocument,
  options: { ifMatch?: number } = {},
): Promise<WriteResult> {
  if (!ID_PATTERN.test(id)) throw errors.notFound(`${type}/${id} is not known`);
  return writeUpdate(
    ctx,
    type,
    id,
    async (head) => {
      if (!head) throw errors.notFound(`${type}/${id} is not known`);
      if (head.deleted) throw errors.gone(`${type}/${id} was deleted (version ${head.versionId}); a patch needs a current version`);
      const resource = applyPatch(head.resource, patch);
      return { resource, warnings: await validateForWrite(ctx, resource) };
    },
    { ifMatch: options.ifMatch, method: 'PATCH' },
  );
}
