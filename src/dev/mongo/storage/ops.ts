/**
 * The unit of change of the committed state. A commit is a list of these;
 * the journal stores exactly these lists, so replay and live writes go
 * through the same code. Document changes carry full images, which makes
 * replay idempotent (replaying a journal over a snapshot that already
 * contains some of its effects converges to the same state).
 */
import type { Document, UUID } from 'bson';

export type StorageOp =
  | { op: 'insert'; ns: string; doc: Document }
  /** `changed`: the dotted paths at which `doc` can differ from the stored document (undefined: anywhere). */
  | { op: 'replace'; ns: string; doc: Document; changed?: readonly string[] }
  | { op: 'delete'; ns: string; id: unknown }
  | { op: 'createCollection'; ns: string; options: Document; uuid: UUID }
  | { op: 'dropCollection'; ns: string }
  | { op: 'createIndex'; ns: string; spec: Document }
  | { op: 'dropIndex'; ns: string; name: string }
  | { op: 'renameCollection'; from: string; to: string }
  | { op: 'dropDatabase'; db: string }
  /** collMod: the collection's complete new options and the complete new specs of changed indexes. */
  | { op: 'collMod'; ns: string; options: Document; indexSpecs: Document[] };
