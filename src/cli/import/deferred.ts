/**
 * References that resolve later. Under REFERENCE_POLICY=strict the server refuses a resource whose reference to a
 * hosted type names nothing stored yet. Bulk Data output comes one file per type, and types refer to each other
 * both ways (an Encounter names its Conditions as diagnoses, a Condition its Encounter; Observations name other
 * Observations), so no order of files makes every reference resolve on the first pass. Such lines are therefore
 * held back and sent again after every input, pass after pass, while a pass still imports some; what is left then
 * refers to something the input does not contain, and is reported as rejected with the server's diagnostics.
 *
 * A file with held-back lines is not recorded as done in the checkpoint until they are imported, so an interrupted
 * run, started again, sends them again (PUT by id: what was imported meanwhile is answered "unchanged").
 */
import type { ImportContext, DeferredLine } from './context.js';
import { sendItems, type Verdict } from './send.js';

/** The most lines held back at once (they are kept in memory); beyond this a line is rejected at once. */
export const MAX_DEFERRED_LINES = 200_000;

/** A refusal that a later pass may turn into an import: every diagnostic is an unresolved reference. */
export function isUnresolvedReference(verdict: Verdict): boolean {
  return (
    verdict.outcome === 'rejected' &&
    verdict.status === 422 &&
    verdict.diagnostics.length > 0 &&
    verdict.diagnostics.every((d) => /^Reference .* does not resolve/.test(d))
  );
}

/**
 * Sends the held-back lines again until a pass imports none of them; reports each line's final verdict and returns
 * the files whose every held-back line was imported (their checkpoints may now say done).
 */
export async function sendDeferred(ctx: ImportContext): Promise<{ passes: number; resolvedFiles: Set<string> }> {
  let pending: DeferredLine[] = ctx.deferred.splice(0);
  const files = new Set(pending.map((line) => line.file));
  let passes = 0;
  while (pending.length > 0 && !ctx.signal?.aborted) {
    passes++;
    const still: DeferredLine[] = [];
    for (let start = 0; start < pending.length; start += ctx.batchSize) {
      const chunk = pending.slice(start, start + ctx.batchSize);
      const verdicts = await sendItems(
        ctx.target,
        ctx.capabilities,
        chunk.map((line) => line.item),
      );
      chunk.forEach((line, i) => {
        const verdict = verdicts[i];
        if (verdict.outcome === 'rejected' && isUnresolvedReference(verdict)) still.push({ ...line, verdict });
        else if (verdict.outcome === 'rejected') reportRejection(ctx, line, verdict);
        else ctx.report.count(line.item.resource.resourceType, verdict.outcome);
      });
    }
    const progressed = still.length < pending.length;
    pending = still;
    if (!progressed) break;
  }
  for (const line of pending) reportRejection(ctx, line, line.verdict);
  const unresolved = new Set(pending.map((line) => line.file));
  // Interrupted: what is left is neither imported nor rejected; the checkpoint sends it again next run.
  if (ctx.signal?.aborted) return { passes, resolvedFiles: new Set() };
  return { passes, resolvedFiles: new Set([...files].filter((file) => !unresolved.has(file))) };
}

function reportRejection(ctx: ImportContext, line: DeferredLine, verdict: Extract<Verdict, { outcome: 'rejected' }>): void {
  ctx.report.reject({
    file: line.name,
    line: line.item.line,
    resourceType: line.item.resource.resourceType,
    id: line.item.resource.id,
    status: verdict.status,
    diagnostics: verdict.diagnostics,
  });
}
