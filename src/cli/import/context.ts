/** What every input's import shares: the target and what it can take, the report, the checkpoint, the settings. */
import type { ServerCapabilities } from './capabilities.js';
import type { Checkpoint } from './checkpoint.js';
import type { ImportReport } from './report.js';
import type { ImportTarget } from './target.js';
import type { Item, Verdict } from './send.js';

/**
 * A line the server refused only because a reference in it did not resolve yet (REFERENCE_POLICY=strict): what it
 * names may come later in the same file or in another one, so it is sent again after every input (deferred.ts).
 */
export interface DeferredLine {
  file: string;
  /** The report's name of the file. */
  name: string;
  item: Item;
  verdict: Extract<Verdict, { outcome: 'rejected' }>;
}

export interface ImportContext {
  target: ImportTarget;
  capabilities: ServerCapabilities;
  report: ImportReport;
  checkpoint: Checkpoint;
  /** Resources per batch Bundle (and per checkpoint). */
  batchSize: number;
  /** Chunks in flight at once. */
  concurrency: number;
  /** Aborted: finish the chunks in flight, record them, start no more. */
  signal?: AbortSignal;
  /** Bytes of input now done (added to the progress bar). */
  advance(bytes: number): void;
  /** Called after each acknowledged chunk or Bundle (tests use it to interrupt after N). */
  afterChunk?: () => void;
  /** How a file is named in the report: as the user gave it. */
  displayName(file: string): string;
  /** Lines to send again once every input was read (unresolved references); at most MAX_DEFERRED_LINES. */
  deferred: DeferredLine[];
  /** Files read to the end whose checkpoint waits for their deferred lines (file -> its final position). */
  awaitingDeferred: Map<string, { size: number; line: number }>;
}
