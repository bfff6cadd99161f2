/**
 * One NDJSON file (Bulk Data output: a resource per line), streamed line by line: lines are gathered into chunks
 * of `batchSize` resources of hosted types, up to `concurrency` chunks are in flight, and the checkpoint advances
 * over the prefix of chunks all acknowledged. Lines of types the server does not host are skipped and counted;
 * a line that is not a JSON resource is rejected with its line number without being sent.
 *
 * A chunk with a line refused for access (401, 403, 429: see ACCESS_REFUSALS) stops the checkpoint for the rest of
 * the file: the remaining chunks are still sent (each line gets its verdict in the report), but the file is not
 * recorded as done past that chunk, so running the same command again with a valid token imports what was refused.
 * (Lines without an id that were created in those chunks are created again by that run; Bulk Data output has ids.)
 */
import { keepDecimalText } from '../../fhir/json-text.js';
import type { Resource } from '@medplum/fhirtypes';
import { rewriteReferences } from './bundle-filter.js';
import type { ImportContext } from './context.js';
import { readLines } from './lines.js';
import type { ReferenceRewrites, Rejection } from './report.js';
import { isUnresolvedReference, MAX_DEFERRED_LINES } from './deferred.js';
import { isAccessRefusal, sendItems, type Item } from './send.js';

interface Chunk {
  items: Item[];
  skipped: Map<string, number>;
  localRejections: Rejection[];
  rewrites: ReferenceRewrites;
  /** Where the checkpoint may point once this chunk and all before it are acknowledged. */
  end: number;
  nextLine: number;
  /** Lines read into this chunk (blank, skipped and rejected ones included). */
  lines: number;
  acknowledged: boolean;
  /** A line of it was refused for access (401/403/429): the checkpoint must not pass this chunk. */
  refusedAccess: boolean;
  /** A line of it waits for a reference to resolve (deferred.ts): the checkpoint must not pass it before then. */
  deferredLines: boolean;
}

const NO_ENTRIES = new Map<string, never>();
/** Lines per chunk, as a multiple of the batch size, when most are skipped or rejected locally. */
const SKIPPED_LINES_PER_SEND = 20;

function newChunk(end: number, nextLine: number): Chunk {
  const rewrites = { logical: 0, typeOnly: 0, conditional: 0 };
  return {
    items: [],
    skipped: new Map(),
    localRejections: [],
    rewrites,
    end,
    nextLine,
    lines: 0,
    acknowledged: false,
    refusedAccess: false,
    deferredLines: false,
  };
}

/** The line as a resource, or why it is not one. */
function parseLine(text: string): { resource: Resource } | { problem: string; resourceType?: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: `not valid JSON: ${(error as Error).message}` };
  }
  keepDecimalText(text, value);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { problem: 'not a JSON object' };
  const resourceType = (value as { resourceType?: unknown }).resourceType;
  if (typeof resourceType !== 'string' || resourceType === '') return { problem: 'not a FHIR resource (no resourceType)' };
  return { resource: value as Resource };
}

/** True when the whole file is done; false when interrupted. */
export async function importNdjson(ctx: ImportContext, file: string, size: number): Promise<boolean> {
  const name = ctx.displayName(file);
  const saved = ctx.checkpoint.progress(file, size);
  if (saved?.done) {
    ctx.report.resumed.push(`${name}: done in an earlier run`);
    ctx.advance(size);
    return true;
  }
  const startOffset = saved?.offset ?? 0;
  const startLine = saved?.line ?? 1;
  if (startOffset > 0) {
    ctx.report.resumed.push(`${name}: from line ${startLine} (byte ${startOffset})`);
    ctx.advance(startOffset);
  }

  const queue: Chunk[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  /** The offset the progress bar shows (it moves on past a checkpoint held back by a refusal of access). */
  let shown = startOffset;
  /** A chunk refused for access reached the head: the checkpoint stays where it is for the rest of the file. */
  let held = false;
  /** A chunk with deferred lines reached the head: the checkpoint waits for the deferred passes. */
  let waiting = false;

  const acknowledge = async (chunk: Chunk, verdicts: Awaited<ReturnType<typeof sendItems>>): Promise<void> => {
    for (const [type, count] of chunk.skipped) ctx.report.count(type, 'skipped', count);
    for (const rejection of chunk.localRejections) ctx.report.reject(rejection);
    ctx.report.addRewrites(chunk.rewrites);
    chunk.items.forEach((item, i) => {
      const verdict = verdicts[i];
      const type = item.resource.resourceType;
      if (isAccessRefusal(verdict)) chunk.refusedAccess = true;
      if (verdict.outcome === 'rejected' && isUnresolvedReference(verdict) && ctx.deferred.length < MAX_DEFERRED_LINES) {
        chunk.deferredLines = true;
        ctx.deferred.push({ file, name, item, verdict });
      } else if (verdict.outcome === 'rejected') {
        ctx.report.reject({
          file: name,
          line: item.line,
          resourceType: type,
          id: item.resource.id,
          status: verdict.status,
          diagnostics: verdict.diagnostics,
        });
      } else ctx.report.count(type, verdict.outcome);
    });
    chunk.acknowledged = true;
    let head: Chunk | undefined;
    let last: Chunk | undefined;
    while (queue[0]?.acknowledged) {
      last = queue.shift()!;
      if (last.refusedAccess) held = true;
      if (last.deferredLines) waiting = true;
      if (!held && !waiting) head = last;
    }
    if (last) {
      ctx.advance(last.end - shown);
      shown = last.end;
    }
    if (head) {
      await ctx.checkpoint.record(file, { size, offset: head.end, line: head.nextLine, done: false });
    }
    ctx.afterChunk?.();
  };

  const dispatch = async (chunk: Chunk): Promise<void> => {
    queue.push(chunk);
    const running = sendItems(ctx.target, ctx.capabilities, chunk.items)
      .then((verdicts) => acknowledge(chunk, verdicts))
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => inFlight.delete(running));
    inFlight.add(running);
    while (inFlight.size >= ctx.concurrency) await Promise.race(inFlight);
  };

  let chunk = newChunk(startOffset, startLine);
  let interrupted = false;
  for await (const line of readLines(file, startOffset, startLine)) {
    if (failure !== undefined) break;
    if (ctx.signal?.aborted) {
      interrupted = true;
      break;
    }
    chunk.end = line.end;
    chunk.nextLine = line.number + 1;
    chunk.lines++;
    if (line.text.trim() === '') continue;
    const parsed = parseLine(line.text);
    if ('problem' in parsed) {
      chunk.localRejections.push({ file: name, line: line.number, diagnostics: [`Line ${line.number} is ${parsed.problem}`] });
    } else if (!ctx.capabilities.hostedTypes.has(parsed.resource.resourceType)) {
      const type = parsed.resource.resourceType;
      chunk.skipped.set(type, (chunk.skipped.get(type) ?? 0) + 1);
    } else {
      // Bulk output (Synthea's among others) refers to Practitioner/Organization by conditional reference, which
      // only a transaction can resolve and this server cannot for types it does not host: made logical, as in Bundles.
      rewriteReferences(parsed.resource, NO_ENTRIES, ctx.capabilities.hostedTypes, chunk.rewrites);
      chunk.items.push({ resource: parsed.resource, line: line.number });
    }
    // Long runs of skipped lines also close a chunk, so the checkpoint moves through them too.
    if (chunk.items.length >= ctx.batchSize || chunk.lines >= ctx.batchSize * SKIPPED_LINES_PER_SEND) {
      await dispatch(chunk);
      chunk = newChunk(line.end, line.number + 1);
    }
  }
  if (!interrupted && failure === undefined && ctx.signal?.aborted) interrupted = true;
  if (!interrupted && failure === undefined && chunk.lines > 0) await dispatch(chunk);
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  if (interrupted) return false;
  ctx.advance(size - shown);
  // Refused for access: the checkpoint stays before the first such chunk (recorded above), and the file is not done.
  // With deferred lines, it is done once they are imported (command.ts, after the deferred passes).
  if (!held && !waiting) await ctx.checkpoint.record(file, { size, offset: size, line: chunk.nextLine, done: true });
  if (!held && waiting) ctx.awaitingDeferred.set(file, { size, line: chunk.nextLine });
  return true;
}
