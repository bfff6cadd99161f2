/**
 * The words around the checks: for each step, what was checked and how (shown whether it passed or not), and, when
 * it failed, what that means for someone who has to decide whether to rely on the record. The technical detail of
 * each check (hashes, numbers) comes from verify.ts, worded as the CLI words it.
 */
import type { AnchorProof } from './proof-package.js';
import type { Check, CheckName } from './verify.js';

/** The steps of one version, in the order they run (history is the whole record's). */
export const VERSION_STEPS: readonly CheckName[] = [
  'commitment',
  'audit-path',
  'published-root',
  'consensus-timestamp',
  'running-hash',
  'running-hash-chain',
];

export const STEP_TITLES: Record<CheckName, string> = {
  commitment: 'Record fingerprint',
  'audit-path': 'Place in the batch',
  'published-root': 'Batch on the ledger',
  'consensus-timestamp': 'Time on the ledger',
  'running-hash': "Ledger's chain value",
  'running-hash-chain': 'Ledger chain intact',
  history: 'Complete history',
};

export function describeCheck(name: CheckName, proof: AnchorProof | null, mirrorUrl: string | null): string {
  const mirror = mirrorUrl ?? 'the mirror node';
  switch (name) {
    case 'commitment':
      return (
        "This browser computed the record's fingerprint, SHA-256 of the version's secret salt followed by the version in " +
        'canonical JSON (RFC 8785), and compared it with the fingerprint (commitment) recorded when the version was written.'
      );
    case 'audit-path':
      return proof
        ? `This browser hashed the fingerprint into leaf ${proof.leafIndex} of a Merkle tree of ${proof.treeSize} leaves (RFC 9162) and ` +
            `combined it with the ${proof.auditPath.length} hash(es) of the audit path up to the tree's root, which must be the batch root the proof names.`
        : 'The Merkle audit path (RFC 9162) must lead from the fingerprint to the batch root.';
    case 'published-root':
      return proof
        ? `This browser read HCS message ${proof.sequenceNumber} of topic ${proof.topicId} from ${mirror}: it must be a batch message ` +
            `publishing the root computed above, a tree of ${proof.treeSize} leaves and batch number ${proof.batch}, byte for byte the message the proof carries.`
        : 'The batch message on the ledger must publish the root computed above.';
    case 'consensus-timestamp':
      return `The consensus timestamp ${mirror} gives for that message (the time Hedera's consensus recorded it) must be the one in the proof.`;
    case 'running-hash':
      return `The running hash ${mirror} gives for that message (a SHA-384 value chaining it to every earlier message of the topic) must be the one in the proof.`;
    case 'running-hash-chain':
      return (
        'This browser recomputed the running hash (HCS version 3, SHA-384) from the previous message\u2019s running hash ' +
        '(48 zero bytes for the first message) and this message; it must equal the mirror\u2019s, so the mirror cannot have altered, dropped or reordered the message.'
      );
    case 'history':
      return 'Every version number from 1 to the latest must be in the package, including every version a batch lists as anchored.';
  }
}

/** What a failed check means, in plain words. */
export function meaningOf(check: Check): string {
  switch (check.name) {
    case 'commitment':
      return check.detail.startsWith('the commitment cannot be computed')
        ? 'The record in the package cannot be fingerprinted (it is not plain JSON data), so it cannot be the record that was timestamped.'
        : 'The record shown is not the one that was timestamped: it (or its secret salt) was changed after anchoring.';
    case 'audit-path':
      return 'The proof does not tie this record to the batch it names: the proof was altered, or the record was changed together with its recorded fingerprint.';
    case 'published-root':
      return 'The ledger does not hold this batch message: the proof was altered or points at another topic.';
    case 'consensus-timestamp':
      return 'The time written in the proof is not the time the ledger recorded: the proof was altered.';
    case 'running-hash':
      return "The proof's copy of the ledger's chain value is not the ledger's: the proof was altered, or this mirror node serves a different ledger.";
    case 'running-hash-chain':
      return "This mirror node's copy of the ledger does not hold together: do not rely on it, and check again against another mirror node (for example Hedera's public one).";
    case 'history':
      return "Versions of this record are missing: a version that existed, and was timestamped, is no longer in the server's records.";
  }
}
