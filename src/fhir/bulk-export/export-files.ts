/**
 * Writing an export: for each type, the resources as they were at the transaction time, one JSON text per line
 * (the stored resource as JSON, its decimals in the digits they were written with, so an import reads back exactly
 * what was stored), in files of at
 * most `maxResourcesPerFile` lines.
 *
 * Memory stays flat: heads are read by keyset in batches along the _id index (each batch one query over the
 * type's key range), each batch becomes one chunk of text, and a chunk is written only when the file stream has
 * drained the previous one (backpressure).
 *
 * Consistency at the transaction time T:
 * - a head last changed at or before T is the version current at T: exported if live (and changed after _since);
 * - a head changed after T (written while the export runs, or after kick-off) is replaced by the newest version
 *   at or before T from resource_versions (one indexed lookup each): exported if that version exists, is live,
 *   and (Patient level) was then in a patient's compartment. A resource created after T has none and is left out.
 * Each resource is visited once (the key order cannot change under concurrent writes), so none is exported twice.
 */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { ExportFile, ExportLevel, ExportProgress } from '../../store/export-jobs.js';
import { countCurrent, exportPage, versionAt, type ExportHead } from '../../store/export-queries.js';
import type { HeadDocument, ResourceStore } from '../../store/resource-store.js';
import { stringifyFhirJson } from '../decimal-text.js';
import { compartmentMembership } from '../operations/everything.js';
import { searchRegistry } from '../search/registry.js';

export const DEFAULT_BATCH_SIZE = 1000;

export interface SnapshotExport {
  store: ResourceStore;
  /** Directory the files go to (it must exist). */
  dir: string;
  level: ExportLevel;
  types: string[];
  since?: Date;
  transactionTime: Date;
  maxResourcesPerFile: number;
  batchSize?: number;
  signal?: AbortSignal;
  /** Called when a type starts and after every batch; a rejection stops the export. */
  onProgress?: (progress: ExportProgress) => Promise<void>;
}

/** One NDJSON file being written, with backpressure. */
class NdjsonFile {
  private readonly stream: WriteStream;
  private failure: Error | undefined;
  count = 0;

  constructor(readonly path: string) {
    this.stream = createWriteStream(path, { flags: 'wx' });
    // Without a listener an I/O error would crash the process; it is raised at the next write instead.
    this.stream.on('error', (error) => {
      this.failure = error;
    });
  }

  async write(text: string, lines: number): Promise<void> {
    if (this.failure) throw this.failure;
    this.count += lines;
    if (!this.stream.write(text)) await once(this.stream, 'drain');
  }

  async close(): Promise<void> {
    if (this.failure) throw this.failure;
    this.stream.end();
    await finished(this.stream);
  }

  destroy(): void {
    this.stream.destroy();
  }
}

/** Whether a version's index values put it in some patient's compartment (for versions read from history). */
function inSomePatientCompartment(type: string, idx: HeadDocument['idx']): boolean {
  if (type === 'Patient') return true;
  for (const param of searchRegistry().patientCompartment.get(type) ?? []) {
    const value = idx?.[param] as unknown;
    const values = Array.isArray(value) ? value : [value];
    if (values.some((v) => typeof v === 'string' && v.startsWith('Patient/'))) return true;
  }
  return false;
}

/** One page of the type's heads by key: those current at T that qualify, and every head changed after T. */
function readHeads(args: SnapshotExport, type: string, afterKey: string | undefined, limit: number): Promise<ExportHead[]> {
  // At Patient level a head current at T must be in some patient's compartment (a version from history is checked below).
  const membership = args.level === 'patient' ? compartmentMembership(type, undefined) : undefined;
  return exportPage(args.store, { type, transactionTime: args.transactionTime, since: args.since, membership, afterKey, limit });
}

/** The resource as it was at T, for a head changed after T; undefined when it is not to be exported. */
async function resourceAtTransactionTime(args: SnapshotExport, head: Pick<HeadDocument, 'type' | 'id'>): Promise<Resource | undefined> {
  const version = await versionAt(args.store, head.type, head.id, args.transactionTime);
  if (!version || version.deleted) return undefined;
  if (args.since && version.lastUpdated <= args.since) return undefined;
  if (args.level === 'patient' && !inSomePatientCompartment(head.type, version.idx)) return undefined;
  return version.resource;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason ?? 'aborted'));
}

/** Writes the NDJSON files of an export into `dir`; returns them in order (types in the order asked). */
export async function exportSnapshot(args: SnapshotExport): Promise<ExportFile[]> {
  const batchSize = args.batchSize ?? DEFAULT_BATCH_SIZE;
  const files: ExportFile[] = [];
  let open: NdjsonFile | undefined;
  try {
    for (const type of args.types) {
      checkAborted(args.signal);
      const estimate = await countCurrent(args.store, type);
      let exported = 0;
      let fileNumber = 0;
      await args.onProgress?.({ type, exported, estimate, message: `exporting ${type}: 0 of ~${estimate}` });
      let afterKey: string | undefined;
      for (;;) {
        checkAborted(args.signal);
        const heads = await readHeads(args, type, afterKey, batchSize);
        if (heads.length === 0) break;
        afterKey = heads[heads.length - 1]._id;
        let chunk = '';
        let lines = 0;
        const flush = async (): Promise<void> => {
          if (lines === 0 || !open) return;
          await open.write(chunk, lines);
          chunk = '';
          lines = 0;
        };
        for (const head of heads) {
          const resource = head.lastUpdated <= args.transactionTime ? head.resource : await resourceAtTransactionTime(args, head);
          if (!resource) continue;
          if (!open || open.count + lines >= args.maxResourcesPerFile) {
            await flush();
            if (open) await open.close();
            const name = `${type}-${++fileNumber}.ndjson`;
            open = new NdjsonFile(join(args.dir, name));
            files.push({ type, file: name, count: 0 });
          }
          chunk += `${stringifyFhirJson(resource)}\n`;
          lines++;
          files[files.length - 1].count++;
          exported++;
        }
        await flush();
        await args.onProgress?.({ type, exported, estimate, message: `exporting ${type}: ${exported} of ~${estimate}` });
        if (heads.length < batchSize) break;
      }
      if (open) await open.close();
      open = undefined;
    }
  } catch (error) {
    open?.destroy();
    throw error;
  }
  return files;
}

/** Writes one NDJSON file holding one OperationOutcome (the warnings of a job), for the manifest's `error` list. */
export async function writeOutcomeFile(dir: string, name: string, outcome: OperationOutcome): Promise<ExportFile> {
  const file = new NdjsonFile(join(dir, name));
  await file.write(`${JSON.stringify(outcome)}\n`, 1);
  await file.close();
  return { type: 'OperationOutcome', file: name, count: 1 };
}
