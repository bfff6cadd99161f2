/**
 * The HCS running hash v3 lives in src/ledger/running-hash.ts: the local network produces running hashes with
 * it and the proof verifiers recompute them with it, so both sides share one copy. Re-exported here so the
 * local network's modules and their tests keep their import path.
 */
export { RUNNING_HASH_BYTES, RUNNING_HASH_VERSION, computeRunningHashV3, initialRunningHash } from '../../ledger/running-hash.js';
export type { EntityNumbers, RunningHashV3Input } from '../../ledger/running-hash.js';
