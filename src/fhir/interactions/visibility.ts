/**
 * Whether the caller may see a stored resource, judged from the version itself: the access policy decides from
 * its index values (which patient's compartment it is in) and, for scopes with search parameters, from one lookup
 * of the version by key. A deletion carries no index values: it is judged by the version it deleted.
 */
import type { HeadDocument, VersionDocument } from '../../store/resource-store.js';
import type { FhirContext } from '../context.js';

export async function requireReadable(ctx: FhirContext, document: HeadDocument | VersionDocument): Promise<void> {
  if (ctx.access.unrestricted) return;
  let judged: HeadDocument | VersionDocument | null = document;
  if (document.deleted) {
    judged = document.versionId > 1 ? await ctx.store.readVersion(document.type, document.id, document.versionId - 1, ctx.session) : null;
  }
  if (!judged || judged.deleted) {
    ctx.access.require('r', document.type);
    return;
  }
  const version = judged;
  await ctx.access.requireVisible('r', version.type, version.id, version.idx, (condition) =>
    ctx.store.versionMatches(version.type, version.id, version.versionId, condition, ctx.session),
  );
}

/** A compartment search (Patient/[id]/...) is a look into one patient's record: that patient must be readable. */
export async function requireCompartmentReadable(ctx: FhirContext, patientId: string): Promise<void> {
  const head = /^[A-Za-z0-9\-.]{1,64}$/.test(patientId) ? await ctx.store.readCurrent('Patient', patientId, ctx.session) : null;
  if (head) ctx.audit?.touched(`Patient/${patientId}`, [`Patient/${patientId}`]);
  if (ctx.access.unrestricted) return;
  if (head) await requireReadable(ctx, head);
  else ctx.access.require('r', 'Patient');
}

/**
 * The caller may read `type/id` (one version of it, or its current one): the ledger's evidence about a version
 * ($verify, $proof, Provenance) is shown only to whoever may read the version. A version no longer in the
 * database is judged by the type alone.
 */
export async function requireVersionReadable(ctx: FhirContext, type: string, id: string, versionId?: number): Promise<void> {
  ctx.access.require('r', type);
  if (ctx.access.unrestricted) return;
  const document =
    versionId === undefined
      ? await ctx.store.readCurrent(type, id, ctx.session)
      : await ctx.store.readVersion(type, id, versionId, ctx.session);
  if (document) await requireReadable(ctx, document);
}
