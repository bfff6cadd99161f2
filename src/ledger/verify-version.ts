/**
 * Checking one version against the ledger, RECOMPUTING everything that can be recomputed: the server's $verify
 * operation and the fhir-ledger-verify CLI both call this, the first with what its database holds, the second
 * with what a proof package holds; the ledger side always comes from a mirror node.
 *
 *   1. commitment   SHA-256(salt || JCS(version)) — and, when a commitment was recorded, equal to it
 *   2. audit path   the RFC 9162 fold of leafHash(commitment) along the path, giving a root
 *   3. published    that root, the tree size and the batch number equal those in the HCS message at
 *                   (topic, sequence number), read from the mirror node and decoded strictly
 *   4. ledger facts the consensus timestamp and running hash recorded with the proof equal the mirror's
 *   5. chain        the mirror's running hash recomputed (HCS v3) from the previous message's running hash
 *
 * A failed check is a finding (the version, its salt, its proof, or the ledger copy does not match); a mirror
 * node that cannot be reached is not — callers report it separately (MirrorUnavailableError).
 */
import { timingSafeEqual } from 'node:crypto';
import { BatchMessageError, decodeBatchMessage } from './batch-message.js';
import { computeCommitment } from './commitment.js';
import { entityNumbers, parseConsensusTimestamp } from './hedera-ids.js';
import { leafHash, rootFromInclusionPath } from './merkle.js';
import type { MirrorTopicMessage } from './mirror-client.js';
import type { AnchorProof } from './proof-package.js';
import { RUNNING_HASH_VERSION, computeRunningHashV3 } from './running-hash.js';

export type VerificationStatus = 'anchored' | 'pending' | 'failed';

export interface Check {
  name: 'commitment' | 'audit-path' | 'published-root' | 'consensus-timestamp' | 'running-hash' | 'running-hash-chain' | 'history';
  ok: boolean;
  detail: string;
}

export interface VersionEvidence {
  /** The version exactly as served. */
  resource: object;
  salt: Buffer;
  /** The commitment recorded when the version was written (database) or carried by the package. */
  recordedCommitment: Buffer | null;
  /** null: not anchored yet. */
  proof: AnchorProof | null;
}

export interface LedgerEvidence {
  /** The mirror's message at (proof.topicId, proof.sequenceNumber); null when the mirror has none. */
  message: MirrorTopicMessage | null;
  /** Running hash after message sequenceNumber - 1 (48 zero bytes for message 1); null when unavailable. */
  previousRunningHash: Buffer | null;
  /** Now, in ms since the epoch (a message reached consensus moments ago may not be on the mirror yet). */
  now?: number;
  /** When `message` is null: the mirror's message at the proof's consensus timestamp (null: none there either). */
  messageAtTimestamp?: MirrorTopicMessage | null;
}

/** Mirror nodes trail consensus by seconds; a message this fresh that the mirror lacks is "not yet", not "never". */
export const MIRROR_LAG_TOLERANCE_MS = 120_000;

export interface VersionVerification {
  status: VerificationStatus;
  /** One sentence per failed check (empty unless status is failed). */
  reasons: string[];
  checks: Check[];
  /** Recomputed from the version and its salt. */
  commitment: Buffer | null;
  /** Where the audit path leads (null without a proof, or for a malformed one). */
  computedRoot: Buffer | null;
  /** What the mirror node published (null without a message). */
  published: {
    root: Buffer;
    treeSize: number;
    batch: number;
    consensusTimestamp: string;
    runningHash: Buffer;
    runningHashVersion: number;
    sequenceNumber: number;
    topicId: string;
    payer: string;
  } | null;
}

const same = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b);
const short = (b: Buffer): string => b.toString('hex');

/** Step 1 and 2 only: what can be checked without the ledger. */
export function verifyLocally(evidence: VersionEvidence): VersionVerification {
  const checks: Check[] = [];
  let commitment: Buffer | null = null;
  try {
    commitment = computeCommitment(evidence.resource, evidence.salt);
  } catch (error) {
    checks.push({ name: 'commitment', ok: false, detail: `the commitment cannot be computed: ${(error as Error).message}` });
  }
  if (commitment) {
    if (evidence.recordedCommitment && !same(commitment, evidence.recordedCommitment)) {
      checks.push({
        name: 'commitment',
        ok: false,
        detail:
          `the version or its salt changed after it was written: SHA-256(salt || JCS(version)) is ${short(commitment)}, ` +
          `but the commitment recorded at write time is ${short(evidence.recordedCommitment)}`,
      });
    } else {
      checks.push({ name: 'commitment', ok: true, detail: `SHA-256(salt || JCS(version)) = ${short(commitment)}` });
    }
  }
  let computedRoot: Buffer | null = null;
  const proof = evidence.proof;
  if (proof && commitment) {
    computedRoot = rootFromInclusionPath(leafHash(commitment), proof.leafIndex, proof.treeSize, proof.auditPath);
    if (!computedRoot) {
      checks.push({
        name: 'audit-path',
        ok: false,
        detail: `the audit path (${proof.auditPath.length} hashes) does not fit leaf ${proof.leafIndex} of a tree of ${proof.treeSize} leaves`,
      });
    } else if (!same(computedRoot, proof.root)) {
      checks.push({
        name: 'audit-path',
        ok: false,
        detail: `leaf ${proof.leafIndex} of ${proof.treeSize} folds along its audit path to ${short(computedRoot)}, not to the batch root ${short(proof.root)} recorded with the proof`,
      });
    } else {
      checks.push({
        name: 'audit-path',
        ok: true,
        detail: `leaf ${proof.leafIndex} of ${proof.treeSize} folds along ${proof.auditPath.length} hashes to ${short(computedRoot)}`,
      });
    }
  }
  const failed = checks.filter((c) => !c.ok);
  return {
    status: failed.length > 0 ? 'failed' : 'pending',
    reasons: failed.map((c) => c.detail),
    checks,
    commitment,
    computedRoot,
    published: null,
  };
}

/** All five steps. `local` is verifyLocally's result for the same evidence (computed once by the caller). */
export function verifyAgainstLedger(evidence: VersionEvidence, local: VersionVerification, ledger: LedgerEvidence): VersionVerification {
  const proof = evidence.proof;
  if (!proof) return local;
  const checks = [...local.checks];
  let published: VersionVerification['published'] = null;
  const message = ledger.message;
  const consensus = parseConsensusTimestamp(proof.consensusTimestamp);
  const ageMs = consensus ? (ledger.now ?? Date.now()) - Number(consensus.seconds) * 1000 : Infinity;
  const elsewhere = ledger.messageAtTimestamp;
  if (!message && elsewhere) {
    checks.push({
      name: 'published-root',
      ok: false,
      detail: `the proof points at message ${proof.sequenceNumber} of topic ${proof.topicId}, which the mirror node does not have; at the proof's consensus time it shows message ${elsewhere.sequence_number} of topic ${elsewhere.topic_id}`,
    });
  } else if (!message && ageMs < MIRROR_LAG_TOLERANCE_MS) {
    checks.push({
      name: 'published-root',
      ok: true,
      detail: `reached consensus ${Math.max(0, Math.round(ageMs / 1000))} s ago; the mirror node does not show message ${proof.sequenceNumber} yet`,
    });
    const failedLocally = checks.filter((c) => !c.ok);
    return { ...local, status: failedLocally.length > 0 ? 'failed' : 'pending', reasons: failedLocally.map((c) => c.detail), checks };
  }
  if (!message && !elsewhere) {
    checks.push({
      name: 'published-root',
      ok: false,
      detail: `the mirror node has no message ${proof.sequenceNumber} on topic ${proof.topicId}`,
    });
  } else if (message) {
    const bytes = Buffer.from(message.message, 'base64');
    const runningHash = Buffer.from(message.running_hash, 'base64');
    try {
      if ((message.chunk_info?.total ?? 1) !== 1) throw new BatchMessageError('it is one chunk of a multi-chunk message');
      const decoded = decodeBatchMessage(bytes);
      published = {
        root: decoded.root,
        treeSize: decoded.treeSize,
        batch: decoded.batchNumber,
        consensusTimestamp: message.consensus_timestamp,
        runningHash,
        runningHashVersion: message.running_hash_version,
        sequenceNumber: message.sequence_number,
        topicId: message.topic_id,
        payer: message.payer_account_id,
      };
    } catch (error) {
      checks.push({
        name: 'published-root',
        ok: false,
        detail: `message ${proof.sequenceNumber} on topic ${proof.topicId} is not a batch message: ${(error as Error).message}`,
      });
    }
    if (published) {
      const problems: string[] = [];
      if (message.topic_id !== proof.topicId || message.sequence_number !== proof.sequenceNumber) {
        problems.push(`the mirror answered with message ${message.sequence_number} of topic ${message.topic_id}`);
      }
      if (published.batch !== proof.batch) problems.push(`it is batch ${published.batch}, not batch ${proof.batch}`);
      if (published.treeSize !== proof.treeSize) problems.push(`its tree has ${published.treeSize} leaves, not ${proof.treeSize}`);
      if (!local.computedRoot || !same(published.root, local.computedRoot)) {
        problems.push(
          `it publishes root ${short(published.root)}, but the version's audit path leads to ${local.computedRoot ? short(local.computedRoot) : '(nothing)'}`,
        );
      }
      if (proof.batchMessage && !same(proof.batchMessage, bytes))
        problems.push('the copy of the batch message in the proof differs from the one on the ledger');
      checks.push(
        problems.length > 0
          ? {
              name: 'published-root',
              ok: false,
              detail: `HCS message ${proof.sequenceNumber} on topic ${proof.topicId}: ${problems.join('; ')}`,
            }
          : {
              name: 'published-root',
              ok: true,
              detail: `HCS message ${proof.sequenceNumber} on topic ${proof.topicId} publishes batch ${published.batch} with root ${short(published.root)} and ${published.treeSize} leaves`,
            },
      );
      checks.push(
        message.consensus_timestamp === proof.consensusTimestamp
          ? { name: 'consensus-timestamp', ok: true, detail: `consensus timestamp ${message.consensus_timestamp}` }
          : {
              name: 'consensus-timestamp',
              ok: false,
              detail: `the proof says consensus timestamp ${proof.consensusTimestamp}, the mirror node says ${message.consensus_timestamp}`,
            },
      );
      const hashOk = same(runningHash, proof.runningHash) && message.running_hash_version === proof.runningHashVersion;
      checks.push(
        hashOk
          ? { name: 'running-hash', ok: true, detail: `running hash (v${message.running_hash_version}) ${short(runningHash)}` }
          : {
              name: 'running-hash',
              ok: false,
              detail: `the proof's running hash (v${proof.runningHashVersion}) ${short(proof.runningHash)} differs from the mirror's (v${message.running_hash_version}) ${short(runningHash)}`,
            },
      );
      checks.push(chainCheck(message, bytes, runningHash, ledger.previousRunningHash));
    }
  }
  const failed = checks.filter((c) => !c.ok);
  return {
    ...local,
    status: failed.length > 0 ? 'failed' : 'anchored',
    reasons: failed.map((c) => c.detail),
    checks,
    published,
  };
}

/** Step 5: the mirror's running hash is what HCS v3 gives for this message after the previous one. */
function chainCheck(message: MirrorTopicMessage, bytes: Buffer, runningHash: Buffer, previous: Buffer | null): Check {
  if (!previous) return { name: 'running-hash-chain', ok: true, detail: 'not checked: the previous message is not available' };
  if (message.running_hash_version !== RUNNING_HASH_VERSION) {
    return { name: 'running-hash-chain', ok: true, detail: `not checked: running hash version ${message.running_hash_version}` };
  }
  const payer = entityNumbers(message.payer_account_id);
  const topic = entityNumbers(message.topic_id);
  const time = parseConsensusTimestamp(message.consensus_timestamp);
  if (!payer || !topic || !time)
    return { name: 'running-hash-chain', ok: false, detail: 'the mirror message has malformed ids or timestamp' };
  const recomputed = computeRunningHashV3({
    previousRunningHash: previous,
    payer,
    topic,
    consensusSeconds: time.seconds,
    consensusNanos: time.nanos,
    sequenceNumber: message.sequence_number,
    message: bytes,
  });
  return same(recomputed, runningHash)
    ? {
        name: 'running-hash-chain',
        ok: true,
        detail: `running hash recomputed from ${message.sequence_number === 1 ? "the topic's initial (zero) running hash" : `message ${message.sequence_number - 1}`}: matches`,
      }
    : {
        name: 'running-hash-chain',
        ok: false,
        detail: `running hash recomputed from message ${message.sequence_number - 1} is ${short(recomputed)}, the mirror says ${short(runningHash)}`,
      };
}

// ---- history

export interface HistoryEvidence {
  /** "Patient/123" */
  resource: string;
  /** Version numbers present (in the database, or in the package). */
  present: number[];
  /** The current version per the head record; null when unknown. */
  currentVersion: number | null;
  /** Versions the batch member lists name, with their batch. */
  anchored: Array<{ versionId: number; batch: number }>;
}

/**
 * A version deleted from history leaves traces: the batch that anchored it still lists it, the head record may
 * still count past it, and later versions leave a gap. Any version number in 1..max that is not present is
 * reported with its evidence. It cannot see a deleted LAST version whose batch listing and head were rewritten
 * too — see docs/trust-model.md ("what a proof does not prove").
 */
export function checkHistory(evidence: HistoryEvidence): Check & { missing: number[] } {
  const present = new Set(evidence.present);
  const listed = new Map(evidence.anchored.map((a) => [a.versionId, a.batch]));
  const max = Math.max(0, evidence.currentVersion ?? 0, ...evidence.present, ...listed.keys());
  const missing: number[] = [];
  const why: string[] = [];
  for (let v = 1; v <= max; v++) {
    if (present.has(v)) continue;
    missing.push(v);
    const batch = listed.get(v);
    why.push(
      batch !== undefined
        ? `version ${v} is missing, but batch ${batch} anchored it`
        : evidence.currentVersion !== null && v <= evidence.currentVersion
          ? `version ${v} is missing below the current version ${evidence.currentVersion}`
          : `version ${v} is missing before version ${max}`,
    );
  }
  return missing.length > 0
    ? { name: 'history', ok: false, detail: `${evidence.resource}: ${why.join('; ')}`, missing }
    : { name: 'history', ok: true, detail: `${evidence.resource}: versions 1..${max} all present`, missing };
}
