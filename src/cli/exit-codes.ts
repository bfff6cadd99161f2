/**
 * Exit codes of the verification CLIs (documented in README "Trust model and verification" and
 * docs/trust-model.md), so scripts can tell a tampered record from a network problem.
 */
export const EXIT = {
  /** Everything checked out. */
  VERIFIED: 0,
  /** A mismatch: a version, salt, proof or history does not match the ledger (or a chain is broken). */
  MISMATCH: 1,
  /** Bad arguments, an unreadable file, or not a proof package. */
  USAGE: 2,
  /** Nothing contradicts the record, but something is not on the ledger (yet): pending versions, or messages past the mirror's last. */
  PENDING: 3,
  /** The mirror node could not be reached (or answered nonsense): nothing could be checked against the ledger. */
  MIRROR_UNREACHABLE: 4,
  /**
   * Nothing contradicts the record, but something could not be checked with what the mirror served (for the chain: a
   * running hash with no previous one to recompute it from). Never success: an unchecked range is not vouched for.
   */
  NOT_CHECKED: 5,
  /** The database could not be reached (fhir-ledger-audit): nothing could be checked. */
  DATABASE_UNREACHABLE: 6,
  /** A bug in the verifier itself (the stack trace goes to stderr); says nothing about the record. */
  INTERNAL_ERROR: 70,
} as const;

/** Where the commands write; process.stdout/stderr in the bins, buffers in tests. */
export interface Output {
  write(text: string): unknown;
}

/** Exit codes of fhir-import (README "Importing data"). */
export const IMPORT_EXIT = {
  /** Everything was imported or unchanged (resources of types the server does not host are skipped, not failures). */
  OK: 0,
  /** Some lines or entries were rejected (each is in the report); the rest was imported. */
  REJECTED: 1,
  /** Bad arguments, an unreadable input or checkpoint, or a target that is not a FHIR server. */
  USAGE: 2,
  /** The target (server URL or MongoDB) could not be reached; the checkpoint keeps what was done. */
  UNREACHABLE: 3,
  /** A bug in the importer itself (the stack trace goes to stderr). */
  INTERNAL_ERROR: 70,
  /** Interrupted (Ctrl-C): the chunks in flight were finished and recorded; run the same command to resume. */
  INTERRUPTED: 130,
} as const;
