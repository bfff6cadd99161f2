/**
 * Durability for a data directory: a snapshot plus an append-only journal.
 *
 *   snapshot.bson        full state at the start of journal generation G
 *   journal-<G>.log      every commit since, one record per commit
 *   mongod.lock          pid of the server using the directory
 *
 * Record framing (journal and snapshot alike): u32 payload length, u32
 * CRC-32C of the payload, payload (one BSON document). A record whose length
 * runs past the end of the file or whose checksum does not match is a torn
 * write from a crash: replay stops there and the file is cut back to the
 * last whole record.
 *
 * Commits are applied in memory and appended to a pending buffer in the same
 * synchronous step; `flush()` writes and fdatasyncs everything pending
 * (group commit) and a command replies only after its flush resolved, so an
 * acknowledged write is on disk. Compaction writes a new snapshot to a
 * temporary file, fsyncs it, renames it over the old one (atomic), fsyncs
 * the directory and only then deletes the superseded journal. Replay is
 * idempotent (full document images), so a crash at any point of that
 * sequence recovers the same state.
 */
import { mkdir, open, readFile, readdir, rename, rm, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Binary, UUID, type Document } from 'bson';
import { decodeDocument, documentSize, encodeDocument } from '../bson/codec.js';
import { crc32c } from '../wire/crc32c.js';
import type { JournalSink, StorageEngine } from './engine.js';
import type { StorageOp } from './ops.js';

const SNAPSHOT = 'snapshot.bson';
const LOCK_FILE = 'mongod.lock';
const SNAPSHOT_TMP = 'snapshot.bson.tmp';
const JOURNAL_RE = /^journal-(\d+)\.log$/;
const COMPACT_THRESHOLD_BYTES = 64 * 1024 * 1024;
const SNAPSHOT_CHUNK_BYTES = 4 * 1024 * 1024;

function journalName(gen: number): string {
  return `journal-${String(gen).padStart(8, '0')}.log`;
}

function frame(payload: Buffer): Buffer {
  const header = Buffer.allocUnsafe(8);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(crc32c(payload), 4);
  return Buffer.concat([header, payload]);
}

interface ReadResult {
  records: Document[];
  /** Bytes of whole, valid records from the start of the file. */
  validBytes: number;
  torn: boolean;
}

function readRecords(buf: Buffer): ReadResult {
  const records: Document[] = [];
  let offset = 0;
  while (offset < buf.length) {
    if (offset + 8 > buf.length) return { records, validBytes: offset, torn: true };
    const length = buf.readUInt32LE(offset);
    const crc = buf.readUInt32LE(offset + 4);
    const end = offset + 8 + length;
    if (length < 5 || end > buf.length || crc32c(buf, offset + 8, end) !== crc) {
      return { records, validBytes: offset, torn: true };
    }
    try {
      records.push(decodeDocument(buf.subarray(offset + 8, end)));
    } catch {
      return { records, validBytes: offset, torn: true };
    }
    offset = end;
  }
  return { records, validBytes: offset, torn: false };
}

function asUUID(v: unknown): UUID {
  if (v instanceof UUID) return v;
  if (v instanceof Binary) return v.toUUID();
  return new UUID();
}

/** Journal records hold StorageOps; BSON turns UUIDs into Binary, restored here. */
function opsFromRecord(record: Document): StorageOp[] {
  const ops = (record.ops ?? []) as StorageOp[];
  return ops.map((op) => (op.op === 'createCollection' ? { ...op, uuid: asUUID(op.uuid) } : op));
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Data directories open in this process (a lock file alone cannot tell two servers of one process apart). */
const openDirectories = new Set<string>();

async function processAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed child that its parent has not reaped yet is a zombie: it holds nothing.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return !/^\d+ \(.*\) Z/.test(stat);
}

/** Refuses a directory another live server uses; a lock left by a killed process is taken over. */
async function lockDirectory(dir: string): Promise<void> {
  const key = resolve(dir);
  if (openDirectories.has(key)) throw new Error(`embedded mongo: data directory ${dir} is already in use by this process`);
  const lockPath = join(dir, LOCK_FILE);
  const previous = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
  if (previous && previous !== process.pid && (await processAlive(previous))) {
    throw new Error(`embedded mongo: data directory ${dir} is in use by process ${previous}`);
  }
  await writeFile(lockPath, `${process.pid}\n`);
  openDirectories.add(key);
}

async function unlockDirectory(dir: string): Promise<void> {
  openDirectories.delete(resolve(dir));
  await rm(join(dir, LOCK_FILE), { force: true });
}

export class Persistence implements JournalSink {
  private handle: FileHandle | undefined;
  private gen = 1;
  private size = 0;
  private pending: Buffer[] = [];
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly engine: StorageEngine,
    private readonly log: (msg: string) => void,
  ) {}

  /** Loads the directory into the engine and attaches the journal to it. */
  static async open(dir: string, engine: StorageEngine, log: (msg: string) => void): Promise<Persistence> {
    await mkdir(dir, { recursive: true });
    await lockDirectory(dir);
    const p = new Persistence(dir, engine, log);
    let replayed: boolean;
    try {
      replayed = await p.recover();
    } catch (err) {
      await unlockDirectory(dir);
      throw err;
    }
    engine.journal = p;
    if (replayed) {
      await p.compactNow();
    } else {
      await p.openJournal(p.gen, false);
    }
    return p;
  }

  private async recover(): Promise<boolean> {
    let snapshotGen = 0;
    const snapshot = await readFile(join(this.dir, SNAPSHOT)).catch(() => undefined);
    if (snapshot) {
      const { records, torn } = readRecords(snapshot);
      const header = records[0];
      if (!header || header.kind !== 'snapshot' || torn || records.at(-1)?.kind !== 'end') {
        throw new Error(`embedded mongo: ${join(this.dir, SNAPSHOT)} is damaged; refusing to start on it`);
      }
      snapshotGen = Number(header.gen);
      for (const record of records.slice(1, -1)) this.loadSnapshotRecord(record);
    }
    await rm(join(this.dir, SNAPSHOT_TMP), { force: true });
    const journals = (await readdir(this.dir))
      .map((name) => ({ name, gen: Number(JOURNAL_RE.exec(name)?.[1] ?? NaN) }))
      .filter((j) => !Number.isNaN(j.gen))
      .sort((a, b) => a.gen - b.gen);
    let replayedRecords = 0;
    this.gen = Math.max(snapshotGen, 1);
    for (const j of journals) {
      const path = join(this.dir, j.name);
      if (j.gen < snapshotGen) {
        await rm(path, { force: true });
        continue;
      }
      const buf = await readFile(path);
      const { records, validBytes, torn } = readRecords(buf);
      for (const record of records) this.engine.apply(opsFromRecord(record), { journal: false });
      replayedRecords += records.length;
      if (torn) {
        this.log(`journal ${j.name}: ignoring a torn record at byte ${validBytes} of ${buf.length}`);
        await truncate(path, validBytes);
      }
      this.gen = Math.max(this.gen, j.gen);
    }
    if (snapshot || replayedRecords) {
      this.log(`recovered ${this.dir}: snapshot generation ${snapshotGen}, ${replayedRecords} journal records replayed`);
    }
    return replayedRecords > 0;
  }

  private loadSnapshotRecord(record: Document): void {
    if (record.kind === 'collection') {
      const ns = String(record.ns);
      const ops: StorageOp[] = [{ op: 'createCollection', ns, options: (record.options as Document) ?? {}, uuid: asUUID(record.uuid) }];
      for (const spec of (record.indexes as Document[]) ?? []) ops.push({ op: 'createIndex', ns, spec });
      this.engine.apply(ops, { journal: false });
    } else if (record.kind === 'docs') {
      const ns = String(record.ns);
      this.engine.apply(
        ((record.docs as Document[]) ?? []).map((doc) => ({ op: 'insert', ns, doc })),
        { journal: false },
      );
    }
  }

  private async openJournal(gen: number, fresh: boolean): Promise<void> {
    const path = join(this.dir, journalName(gen));
    this.handle = await open(path, fresh ? 'w' : 'a');
    this.size = (await this.handle.stat()).size;
    this.gen = gen;
    await fsyncDirectory(this.dir);
  }

  append(ops: StorageOp[]): void {
    const buf = frame(encodeDocument({ ops }));
    this.pending.push(buf);
  }

  /** Resolves once everything appended before the call is on disk. */
  flush(): Promise<void> {
    const step = this.chain.then(() => this.writePending());
    this.chain = step.catch(() => undefined);
    return step;
  }

  private async writePending(): Promise<void> {
    if (this.pending.length === 0 || !this.handle) return;
    const data = Buffer.concat(this.pending);
    this.pending = [];
    try {
      await this.handle.write(data, 0, data.length, null);
      await this.handle.datasync();
      this.size += data.length;
    } catch (err) {
      // Never leave a partial record in front of later ones.
      await this.handle.truncate(this.size).catch(() => undefined);
      throw err;
    }
    if (this.size > COMPACT_THRESHOLD_BYTES && !this.closed) await this.compactInChain();
  }

  /** Writes a snapshot of the current state and starts a new journal generation. */
  compact(): Promise<void> {
    const step = this.chain.then(() => this.compactInChain());
    this.chain = step.catch(() => undefined);
    return step;
  }

  private async compactNow(): Promise<void> {
    await this.compactInChain();
  }

  private async compactInChain(): Promise<void> {
    // Both taken in one synchronous step: the snapshot is exactly the state
    // after the commits in `older`, and later commits go to the new journal.
    const older = this.pending;
    this.pending = [];
    const snapshot = this.serializeState(this.gen + 1);
    const oldHandle = this.handle;
    const oldGen = this.gen;
    if (oldHandle && older.length) {
      const data = Buffer.concat(older);
      await oldHandle.write(data, 0, data.length, null);
      await oldHandle.datasync();
    }
    const tmp = join(this.dir, SNAPSHOT_TMP);
    const out = await open(tmp, 'w');
    try {
      for (const chunk of snapshot) await out.write(chunk, 0, chunk.length, null);
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmp, join(this.dir, SNAPSHOT));
    await fsyncDirectory(this.dir);
    await oldHandle?.close();
    await this.openJournal(oldGen + 1, true);
    for (const name of await readdir(this.dir)) {
      const gen = Number(JOURNAL_RE.exec(name)?.[1] ?? NaN);
      if (gen < this.gen) await rm(join(this.dir, name), { force: true });
    }
  }

  private serializeState(gen: number): Buffer[] {
    const chunks: Buffer[] = [frame(encodeDocument({ kind: 'snapshot', version: 1, gen, createdAt: new Date() }))];
    const collections = this.engine.catalog.allCollections();
    for (const coll of collections) {
      chunks.push(
        frame(
          encodeDocument({
            kind: 'collection',
            ns: coll.ns,
            options: coll.options,
            uuid: coll.uuid,
            indexes: coll.indexes.filter((i) => !i.isIdIndex).map((i) => i.spec),
          }),
        ),
      );
      let batch: Document[] = [];
      let bytes = 0;
      for (const doc of coll.docs.values()) {
        batch.push(doc);
        bytes += documentSize(doc);
        if (bytes >= SNAPSHOT_CHUNK_BYTES) {
          chunks.push(frame(encodeDocument({ kind: 'docs', ns: coll.ns, docs: batch })));
          batch = [];
          bytes = 0;
        }
      }
      if (batch.length) chunks.push(frame(encodeDocument({ kind: 'docs', ns: coll.ns, docs: batch })));
    }
    chunks.push(frame(encodeDocument({ kind: 'end', collections: collections.length })));
    return chunks;
  }

  async close(): Promise<void> {
    await this.flush().catch((err: unknown) => this.log(`journal flush on close failed: ${String(err)}`));
    this.closed = true;
    await this.compact().catch((err: unknown) => this.log(`compaction on close failed: ${String(err)}`));
    await this.chain;
    await this.handle?.close();
    this.handle = undefined;
    if (this.engine.journal === this) this.engine.journal = null;
    await unlockDirectory(this.dir);
  }
}
