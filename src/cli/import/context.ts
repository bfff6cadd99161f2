/** What every input's import shares: the target and what it can take, the report, the checkpoint, the settings. */
import type { ServerCapabilities } from './capabilities.js';
import type { Checkpoint } from './checkpoint.js';
import type { ImportReport } from './report.js';
import type { ImportTarget } from './target.js';

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
}
