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
  /** A bug in the verifier itself (the stack trace goes to stderr); says nothing about the record. */
  INTERNAL_ERROR: 70,
} as const;

/** Where the commands write; process.stdout/stderr in the bins, buffers in tests. */
export interface Output {
  write(text: string): unknown;
}
