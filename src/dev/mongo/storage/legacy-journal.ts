/**
 * Data directories written before the engine moved to LMDB hold `snapshot.bson`
 * and `journal-<G>.log` files (records framed as u32 length, u32 CRC-32C,
 * BSON). On the first start with LMDB they are imported, in order, into the
 * new store, and kept renamed with an `.imported` suffix: an upgrade never
 * leaves acknowledged data behind, and a second start does not import twice.
 */
import { readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Binary, UUID, type Document } from 'bson';
import { decodeDocument } from '../bson/codec.js';
import { crc32c } from '../wire/crc32c.js';
import type { StorageEngine } from './engine.js';
import type { StorageOp } from './ops.js';

const SNAPSHOT = 'snapshot.bson';
const JOURNAL_RE = /^journal-(\d+)\.log$/;

/** Whole records up to the first torn one (a crash mid-append leaves one at the end). */
function readRecords(buf: Buffer): Document[] {
  const records: Document[] = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const length = buf.readUInt32LE(offset);
    const end = offset + 8 + length;
    if (length < 5 || end > buf.length || crc32c(buf, offset + 8, end) !== buf.readUInt32LE(offset + 4)) break;
    records.push(decodeDocument(buf.subarray(offset + 8, end)));
    offset = end;
  }
  return records;
}

function asUUID(v: unknown): UUID {
  if (v instanceof UUID) return v;
  if (v instanceof Binary) return v.toUUID();
  return new UUID();
}

function opsOf(record: Document): StorageOp[] {
  const ops = (record.ops ?? []) as StorageOp[];
  return ops.map((op) => (op.op === 'createCollection' ? { ...op, uuid: asUUID(op.uuid) } : op));
}

/** Imports a journal-format directory into the engine; returns how many records were applied (0: nothing to import). */
export async function importLegacyJournal(dir: string, engine: StorageEngine, log: (msg: string) => void): Promise<number> {
  const names = await readdir(dir);
  const journals = names
    .map((name) => ({ name, gen: Number(JOURNAL_RE.exec(name)?.[1] ?? NaN) }))
    .filter((j) => !Number.isNaN(j.gen))
    .sort((a, b) => a.gen - b.gen);
  const hasSnapshot = names.includes(SNAPSHOT);
  if (!hasSnapshot && journals.length === 0) return 0;
  let applied = 0;
  let snapshotGen = 0;
  if (hasSnapshot) {
    const records = readRecords(await readFile(join(dir, SNAPSHOT)));
    if (records[0]?.kind !== 'snapshot' || records.at(-1)?.kind !== 'end') {
      throw new Error(`embedded mongo: ${join(dir, SNAPSHOT)} (journal format) is damaged; refusing to import it`);
    }
    snapshotGen = Number(records[0].gen);
    for (const record of records.slice(1, -1)) {
      const ns = String(record.ns);
      if (record.kind === 'collection') {
        engine.apply([
          { op: 'createCollection', ns, options: (record.options as Document) ?? {}, uuid: asUUID(record.uuid) },
          ...((record.indexes as Document[]) ?? []).map((spec) => ({ op: 'createIndex' as const, ns, spec })),
        ]);
      } else if (record.kind === 'docs') {
        engine.apply(((record.docs as Document[]) ?? []).map((doc) => ({ op: 'insert' as const, ns, doc })));
      }
      applied++;
    }
  }
  for (const journal of journals) {
    if (journal.gen < snapshotGen) continue;
    for (const record of readRecords(await readFile(join(dir, journal.name)))) {
      engine.apply(opsOf(record));
      applied++;
    }
  }
  await engine.durable();
  for (const name of [...(hasSnapshot ? [SNAPSHOT] : []), ...journals.map((j) => j.name)])
    await rename(join(dir, name), join(dir, `${name}.imported`));
  log(`embedded mongo: imported ${applied} records of the journal-format data in ${dir} into LMDB; the old files are kept as *.imported`);
  return applied;
}
