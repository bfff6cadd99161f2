/**
 * The anchor bookkeeping a version is born with: a fresh 32-byte salt and the commitment over the version as
 * served. It is written in the same document as the version, so no stored version can miss its anchor; the
 * anchoring worker later adds only its claim (state 'batched' and the batch number, before the batch is sent).
 * The inclusion proof and the consensus details are never written here: they are computed from the batch.
 */
import { computeCommitment, newSalt } from './commitment.js';

export interface PendingAnchor {
  state: 'pending';
  /** Kept off the ledger: without it the commitment reveals nothing, even about a guessable resource. */
  salt: Buffer;
  /** SHA-256(salt || JCS(version as served)). */
  commitment: Buffer;
}

export function pendingAnchorFor(versionAsServed: object): PendingAnchor {
  const salt = newSalt();
  return { state: 'pending', salt, commitment: computeCommitment(versionAsServed, salt) };
}
