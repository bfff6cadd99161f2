/**
 * The resumption state of an import: per input file, how far it is done. NDJSON files record the byte offset and
 * line number after the last acknowledged chunk (chunks finish out of order under concurrency; only the prefix
 * of chunks all acknowledged counts); Bundle files are done or not, and done only after the server's 200.
 * Written atomically (a temporary file, then rename) after every acknowledged chunk, so a crash leaves either the
 * old state or the new one, never half a file.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';

export interface FileProgress {
  /** The file's size when the state was written: a different size means a different file, started over. */
  size: number;
  /** NDJSON: byte offset to resume reading at, and the number of the line found there. */
  offset?: number;
  line?: number;
  done: boolean;
}

interface CheckpointFile {
  format: 'fhir-import-checkpoint';
  version: 1;
  files: Record<string, FileProgress>;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export class Checkpoint {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly files: Record<string, FileProgress>,
  ) {}

  /** The state at `path`, or an empty one when the file does not exist (or `restart` is set). */
  static async load(path: string, restart: boolean): Promise<Checkpoint> {
    if (restart) return new Checkpoint(path, {});
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Checkpoint(path, {});
      throw new CheckpointError(`cannot read the checkpoint ${path}: ${(error as Error).message}`);
    }
    let parsed: CheckpointFile;
    try {
      parsed = JSON.parse(text) as CheckpointFile;
    } catch {
      throw new CheckpointError(`${path} is not JSON; delete it or pass --restart to start over`);
    }
    if (parsed?.format !== 'fhir-import-checkpoint' || parsed.version !== 1 || typeof parsed.files !== 'object') {
      throw new CheckpointError(`${path} is not an import checkpoint; delete it or pass --restart to start over`);
    }
    return new Checkpoint(path, parsed.files);
  }

  /** The recorded progress of `file` (an absolute path) if it was recorded for a file of this size. */
  progress(file: string, size: number): FileProgress | undefined {
    const progress = this.files[file];
    return progress && progress.size === size ? progress : undefined;
  }

  /** Writes the state as it is, so an unwritable location is found before any work is done. */
  async ensureWritable(): Promise<void> {
    try {
      await this.persist();
    } catch (error) {
      throw new CheckpointError(
        `cannot write the checkpoint ${this.path}: ${(error as Error).message}; choose another place with --checkpoint or --state-dir`,
      );
    }
  }

  /** Records progress and persists it; writes are queued, so the file always holds the latest state written. */
  record(file: string, progress: FileProgress): Promise<void> {
    this.files[file] = progress;
    return this.persist();
  }

  private persist(): Promise<void> {
    const snapshot: CheckpointFile = { format: 'fhir-import-checkpoint', version: 1, files: { ...this.files } };
    this.writing = this.writing.then(async () => {
      const temporary = `${this.path}.${process.pid}.tmp`;
      await writeFile(temporary, `${JSON.stringify(snapshot, null, 2)}\n`);
      await rename(temporary, this.path);
    });
    return this.writing;
  }
}
