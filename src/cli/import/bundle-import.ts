/**
 * One Bundle file (a transaction or batch, e.g. a Synthea patient), parsed whole — fine up to a few hundred MB;
 * larger data belongs in NDJSON. Its entries are narrowed to the hosted types (see bundle-filter.ts) and sent as
 * POST [base]. Resumption is per Bundle: it is recorded done only after the server's 200, because its POST entries
 * would create duplicates if sent again (but not a batch that stored nothing because its entries were refused for
 * access: 401/403/429, see ACCESS_REFUSALS).
 */
import { keepDecimalText } from '../../fhir/json-text.js';
import { readFile } from 'node:fs/promises';
import type { Bundle } from '@medplum/fhirtypes';
import { entryType, filterBundle } from './bundle-filter.js';
import type { ImportContext } from './context.js';
import { diagnosticsOf } from './report.js';
import { isAccessRefusal, statusOf, verdictOf } from './send.js';

/** Server messages number the entries of the Bundle it received; the report numbers those of the file. */
function renumber(text: string, originalIndex: number[]): string {
  return text.replace(/\bentry\[(\d+)\]/g, (whole, n: string) => {
    const original = originalIndex[Number(n)];
    return original === undefined ? whole : `entry[${original}]`;
  });
}

export async function importBundleFile(ctx: ImportContext, file: string, size: number, fromDirectory = false): Promise<void> {
  const name = ctx.displayName(file);
  if (ctx.checkpoint.progress(file, size)?.done) {
    ctx.report.resumed.push(`${name}: done in an earlier run`);
    ctx.advance(size);
    return;
  }
  const rejectFile = (diagnostics: string, counted = true): void => {
    ctx.report.reject({ file: name, resourceType: 'Bundle', diagnostics: [diagnostics] }, counted);
    ctx.advance(size);
  };

  let bundle: Bundle;
  try {
    const text = await readFile(file, 'utf8');
    bundle = JSON.parse(text) as Bundle;
    keepDecimalText(text, bundle);
  } catch (error) {
    return rejectFile(`The file is not valid JSON: ${(error as Error).message}`);
  }
  const resourceType = (bundle as { resourceType?: unknown } | null)?.resourceType;
  if (typeof resourceType !== 'string' && fromDirectory) {
    ctx.report.ignored.push(`${name} (JSON without a resourceType: not FHIR)`);
    ctx.advance(size);
    return;
  }
  if (resourceType !== 'Bundle' || (bundle.type !== 'transaction' && bundle.type !== 'batch')) {
    const what =
      resourceType === 'Bundle'
        ? `a Bundle of type ${String(bundle.type)}`
        : typeof resourceType === 'string'
          ? `a ${resourceType}`
          : 'JSON without a resourceType';
    return rejectFile(`The file holds ${what}; only transaction and batch Bundles are imported (and NDJSON files)`);
  }
  if (!Array.isArray(bundle.entry)) bundle.entry = [];

  const filtered = filterBundle(bundle, ctx.capabilities.hostedTypes);
  for (const [type, count] of filtered.dropped) ctx.report.count(type, 'skipped', count);
  ctx.report.addRewrites(filtered.rewrites);
  const kept = filtered.bundle.entry ?? [];
  const done = async (): Promise<void> => {
    await ctx.checkpoint.record(file, { size, done: true });
    ctx.advance(size);
    ctx.afterChunk?.();
  };
  if (kept.length === 0) return done();
  if (!ctx.capabilities[bundle.type]) {
    for (const entry of kept) ctx.report.count(entryType(entry) ?? '(unknown)', 'rejected');
    return rejectFile(`The server's CapabilityStatement declares no ${bundle.type} interaction, so this Bundle cannot be sent`, false);
  }

  const response = await ctx.target.request('POST', '', filtered.bundle);
  const answer = response.body as Bundle | undefined;
  if (response.status === 200 && answer?.resourceType === 'Bundle' && answer.entry?.length === kept.length) {
    let refusedAccess = false;
    let stored = false;
    answer.entry.forEach((entry, i) => {
      const type = entryType(kept[i]) ?? '(unknown)';
      const verdict = verdictOf(statusOf(entry.response), entry.response?.outcome);
      if (isAccessRefusal(verdict)) refusedAccess = true;
      if (verdict.outcome === 'imported') stored = true;
      if (verdict.outcome !== 'rejected') return ctx.report.count(type, verdict.outcome);
      ctx.report.reject({
        file: name,
        entry: filtered.originalIndex[i],
        resourceType: type,
        id: kept[i].resource?.id,
        status: verdict.status,
        diagnostics: verdict.diagnostics.map((d) => renumber(d, filtered.originalIndex)),
      });
    });
    // A batch whose entries were refused for access (401/403/429) and that stored nothing is sent again by the next
    // run (with a valid token); once some entry was stored, sending it again could create duplicates: done.
    if (refusedAccess && !stored) {
      ctx.advance(size);
      return;
    }
    return done();
  }

  // A transaction failed as a whole (or the answer was not a Bundle): nothing of it was stored.
  const diagnostics = diagnosticsOf(response.body, `HTTP ${response.status}`).map((d) => renumber(d, filtered.originalIndex));
  const failing = /\bentry\[(\d+)\]/.exec(diagnostics.join(' '));
  const failingIndex = failing ? Number(failing[1]) : undefined;
  const failingKept = failingIndex === undefined ? -1 : filtered.originalIndex.indexOf(failingIndex);
  kept.forEach((entry, i) => {
    if (i !== failingKept) ctx.report.count(entryType(entry) ?? '(unknown)', 'rejected');
  });
  ctx.report.reject(
    {
      file: name,
      entry: failingIndex,
      resourceType: failingKept >= 0 ? entryType(kept[failingKept]) : 'Bundle',
      id: failingKept >= 0 ? kept[failingKept].resource?.id : undefined,
      status: response.status,
      diagnostics: [`The ${bundle.type} was refused; none of its ${kept.length} entries was stored: ${diagnostics.join('; ')}`],
    },
    failingKept >= 0,
  );
  ctx.advance(size);
}
