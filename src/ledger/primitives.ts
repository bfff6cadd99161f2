/**
 * Pure cryptographic primitives of the ledger (no I/O): RFC 8785 canonical JSON, salted
 * per-version commitments, RFC 9162 Merkle trees and proofs, and the per-batch HCS message.
 */
export { canonicalJson, canonicalJsonBytes, CanonicalJsonError, MAX_DEPTH } from './canonical-json.js';
export { newSalt, computeCommitment, verifyCommitment, SALT_BYTES, COMMITMENT_BYTES } from './commitment.js';
export {
  HASH_BYTES,
  MAX_TREE_LEAVES,
  MerkleTree,
  buildTree,
  consistencyProof,
  emptyRoot,
  inclusionProof,
  leafHash,
  merkleRoot,
  nodeHash,
  rootFromInclusionPath,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';
export {
  BATCH_MESSAGE_MAX_BYTES,
  BATCH_MESSAGE_VERSION,
  BatchMessageError,
  FIRST_BATCH_NUMBER,
  decodeBatchMessage,
  encodeBatchMessage,
} from './batch-message.js';
export type { BatchMessage } from './batch-message.js';
