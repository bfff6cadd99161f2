/**
 * create: the server assigns the id (any id in the body is ignored, as the specification says), versionId 1 and
 * lastUpdated.
 */
import type { FhirContext } from '../context.js';
import { requireResourceBody, storeNextVersion, validateForWrite, type WriteResult } from './versions.js';

export async function createResource(ctx: FhirContext, type: string, body: unknown): Promise<WriteResult> {
  const input = requireResourceBody(body, type);
  const id = ctx.newId();
  const resource = { ...input, id };
  const warnings = await validateForWrite(ctx, resource);
  const version = await storeNextVersion(ctx, { type, id, previous: null, resource, deleted: false, method: 'POST' });
  return { version, created: true, changed: true, warnings };
}
