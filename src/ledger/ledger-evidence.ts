/**
 * What a verifier reads from the mirror node for one proof: the message at (topic, sequence number), the
 * running hash before it (to recompute the chain), and — only when that message is absent — the message at the
 * proof's consensus timestamp, which tells "the mirror is not there yet" (nothing at that time either) from
 * "the proof points at the wrong message" (something else is there).
 */
import type { MirrorClient } from './mirror-client.js';
import type { AnchorProof } from './proof-package.js';
import type { LedgerEvidence } from './verify-version.js';

export async function readLedgerEvidence(
  mirror: MirrorClient,
  proof: AnchorProof,
  previousRunningHash: () => Promise<Buffer | null>,
  now: number,
): Promise<LedgerEvidence> {
  const message = await mirror.topicMessage(proof.topicId, proof.sequenceNumber);
  const previous = await previousRunningHash();
  const atTimestamp = message ? undefined : await mirror.topicMessageAt(proof.consensusTimestamp);
  return { message, previousRunningHash: previous, messageAtTimestamp: atTimestamp, now };
}
