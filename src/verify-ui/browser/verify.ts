/**
 * The checks of the Node verifier (src/ledger/verify-version.ts, ledger-evidence.ts, verify-package.ts), in the
 * browser, RECOMPUTING everything: same steps, same check names, same details, same outcome rules.
 *
 *   1. commitment          SHA-256(salt || JCS(version)), equal to the commitment the package records
 *   2. audit-path          the RFC 9162 fold of leafHash(commitment) along the path, to the proof's root
 *   3. published-root      the HCS message at (topic, sequence number) on the chosen mirror is a batch message with
 *                          that root, tree size and batch number (and, byte for byte, the proof's copy of it)
 *   4. consensus-timestamp the proof's consensus timestamp is the mirror's
 *   5. running-hash        the proof's running hash (and version) is the mirror's
 *   6. running-hash-chain  the mirror's running hash recomputed (HCS v3) from the previous message's
 *   and, for a package of every version, history: no version number missing.
 *
 * One deliberate difference: the previous message's running hash (step 6) is read from the mirror first, and the
 * package's copy is used only when the mirror does not have that message; the CLI prefers the package's copy. The
 * verdict is the same either way (a wrong copy can only make the recomputed hash differ from the mirror's), but a
 * page meant to trust the server for nothing should not start from the server's number when the ledger has it.
 */
import { entityNumbers, parseConsensusTimestamp } from '../../ledger/hedera-ids.js';
import { BatchMessageError, decodeBatchMessage } from './batch-message.js';
import { base64ToBytes, bytesToHex, equalBytes } from './bytes.js';
import { computeCommitment } from './commitment.js';
import { leafHash, rootFromInclusionPath } from './merkle.js';
import { type MirrorClient, MirrorUnavailableError, type MirrorTopicMessage } from './mirror.js';
import type { AnchorProof, ProofPackage } from './proof-package.js';
import { RUNNING_HASH_VERSION, computeRunningHashV3, initialRunningHash } from './running-hash.js';

export type VerificationStatus = 'anchored' | 'pending' | 'failed';
export type CheckName =
  'commitment' | 'audit-path' | 'published-root' | 'consensus-timestamp' | 'running-hash' | 'running-hash-chain' | 'history';

export interface Check {
  name: CheckName;
  ok: boolean;
  detail: string;
}

export interface VersionEvidence {
  resource: object;
  salt: Uint8Array;
  recordedCommitment: Uint8Array | null;
  proof: AnchorProof | null;
}

export interface LedgerEvidence {
  message: MirrorTopicMessage | null;
  previousRunningHash: Uint8Array | null;
  /** Where previousRunningHash came from, for the chain check's detail. */
  previousSource: 'mirror' | 'package' | 'initial' | null;
  now: number;
  messageAtTimestamp?: MirrorTopicMessage | null;
}

/** As in src/ledger/verify-version.ts: a message this fresh that the mirror lacks is "not yet", not "never". */
export const MIRROR_LAG_TOLERANCE_MS = 120_000;

export interface Published {
  root: Uint8Array;
  treeSize: number;
  batch: number;
  consensusTimestamp: string;
  runningHash: Uint8Array;
  runningHashVersion: number;
  sequenceNumber: number;
  topicId: string;
  payer: string;
}

export interface VersionVerification {
  status: VerificationStatus;
  reasons: string[];
  checks: Check[];
  commitment: Uint8Array | null;
  computedRoot: Uint8Array | null;
  published: Published | null;
}

const short = bytesToHex;

export async function verifyLocally(evidence: VersionEvidence): Promise<VersionVerification> {
  const checks: Check[] = [];
  let commitment: Uint8Array | null = null;
  try {
    commitment = await computeCommitment(evidence.resource, evidence.salt);
  } catch (error) {
    checks.push({ name: 'commitment', ok: false, detail: `the commitment cannot be computed: ${(error as Error).message}` });
  }
  if (commitment) {
    if (evidence.recordedCommitment && !equalBytes(commitment, evidence.recordedCommitment)) {
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
  let computedRoot: Uint8Array | null = null;
  const proof = evidence.proof;
  if (proof && commitment) {
    computedRoot = await rootFromInclusionPath(await leafHash(commitment), proof.leafIndex, proof.treeSize, proof.auditPath);
    if (!computedRoot) {
      checks.push({
        name: 'audit-path',
        ok: false,
        detail: `the audit path (${proof.auditPath.length} hashes) does not fit leaf ${proof.leafIndex} of a tree of ${proof.treeSize} leaves`,
      });
    } else if (!equalBytes(computedRoot, proof.root)) {
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

export async function verifyAgainstLedger(
  evidence: VersionEvidence,
  local: VersionVerification,
  ledger: LedgerEvidence,
): Promise<VersionVerification> {
  const proof = evidence.proof;
  if (!proof) return local;
  const checks = [...local.checks];
  let published: Published | null = null;
  const message = ledger.message;
  const consensus = parseConsensusTimestamp(proof.consensusTimestamp);
  const ageMs = consensus ? ledger.now - Number(consensus.seconds) * 1000 : Infinity;
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
    const bytes = base64ToBytes(message.message);
    const runningHash = base64ToBytes(message.running_hash);
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
      if (!local.computedRoot || !equalBytes(published.root, local.computedRoot)) {
        problems.push(
          `it publishes root ${short(published.root)}, but the version's audit path leads to ${local.computedRoot ? short(local.computedRoot) : '(nothing)'}`,
        );
      }
      if (proof.batchMessage && !equalBytes(proof.batchMessage, bytes)) {
        problems.push('the copy of the batch message in the proof differs from the one on the ledger');
      }
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
      const hashOk = equalBytes(runningHash, proof.runningHash) && message.running_hash_version === proof.runningHashVersion;
      checks.push(
        hashOk
          ? { name: 'running-hash', ok: true, detail: `running hash (v${message.running_hash_version}) ${short(runningHash)}` }
          : {
              name: 'running-hash',
              ok: false,
              detail: `the proof's running hash (v${proof.runningHashVersion}) ${short(proof.runningHash)} differs from the mirror's (v${message.running_hash_version}) ${short(runningHash)}`,
            },
      );
      checks.push(await chainCheck(message, bytes, runningHash, ledger));
    }
  }
  const failed = checks.filter((c) => !c.ok);
  return { ...local, status: failed.length > 0 ? 'failed' : 'anchored', reasons: failed.map((c) => c.detail), checks, published };
}

async function chainCheck(message: MirrorTopicMessage, bytes: Uint8Array, runningHash: Uint8Array, ledger: LedgerEvidence): Promise<Check> {
  const previous = ledger.previousRunningHash;
  if (!previous) return { name: 'running-hash-chain', ok: true, detail: 'not checked: the previous message is not available' };
  if (message.running_hash_version !== RUNNING_HASH_VERSION) {
    return { name: 'running-hash-chain', ok: true, detail: `not checked: running hash version ${message.running_hash_version}` };
  }
  const payer = entityNumbers(message.payer_account_id);
  const topic = entityNumbers(message.topic_id);
  const time = parseConsensusTimestamp(message.consensus_timestamp);
  if (!payer || !topic || !time)
    return { name: 'running-hash-chain', ok: false, detail: 'the mirror message has malformed ids or timestamp' };
  const recomputed = await computeRunningHashV3({
    previousRunningHash: previous,
    payer,
    topic,
    consensusSeconds: time.seconds,
    consensusNanos: time.nanos,
    sequenceNumber: message.sequence_number,
    message: bytes,
  });
  const from =
    message.sequence_number === 1
      ? "the topic's initial (zero) running hash"
      : `message ${message.sequence_number - 1}` +
        (ledger.previousSource === 'package'
          ? ' (its running hash as the package carries it: the mirror does not serve that message)'
          : '');
  return equalBytes(recomputed, runningHash)
    ? { name: 'running-hash-chain', ok: true, detail: `running hash recomputed from ${from}: matches` }
    : {
        name: 'running-hash-chain',
        ok: false,
        detail: `running hash recomputed from ${from} is ${short(recomputed)}, the mirror says ${short(runningHash)}`,
      };
}

// ---- history (src/ledger/verify-version.ts checkHistory)

export interface HistoryEvidence {
  resource: string;
  present: number[];
  currentVersion: number | null;
  anchored: Array<{ versionId: number; batch: number }>;
}

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

// ---- the package (src/ledger/verify-package.ts, src/ledger/ledger-evidence.ts)

export type PackageOutcome = 'verified' | 'tampered' | 'pending' | 'mirror-unreachable';

export interface VersionResult {
  versionId: number;
  verification: VersionVerification;
  mirrorUnavailable: string | null;
}

export interface PackageVerification {
  versions: VersionResult[];
  history: (Check & { missing: number[] }) | null;
  outcome: PackageOutcome;
}

async function readLedgerEvidence(mirror: MirrorClient, proof: AnchorProof, now: number): Promise<LedgerEvidence> {
  const message = await mirror.topicMessage(proof.topicId, proof.sequenceNumber);
  let previousRunningHash: Uint8Array | null = null;
  let previousSource: LedgerEvidence['previousSource'] = null;
  if (proof.sequenceNumber === 1) {
    previousRunningHash = initialRunningHash();
    previousSource = 'initial';
  } else {
    const previous = await mirror.topicMessage(proof.topicId, proof.sequenceNumber - 1);
    if (previous) {
      previousRunningHash = base64ToBytes(previous.running_hash);
      previousSource = 'mirror';
    } else if (proof.previousRunningHash) {
      previousRunningHash = proof.previousRunningHash;
      previousSource = 'package';
    }
  }
  const messageAtTimestamp = message ? undefined : await mirror.topicMessageAt(proof.consensusTimestamp);
  return { message, previousRunningHash, previousSource, messageAtTimestamp, now };
}

export async function verifyPackage(
  pkg: ProofPackage,
  mirror: MirrorClient | null,
  now: number = Date.now(),
  progress: (done: number, total: number) => void = () => {},
): Promise<PackageVerification> {
  const listed = new Map(pkg.history.anchoredVersions.map((a) => [a.versionId, a]));
  const versions: VersionResult[] = [];
  for (const version of pkg.versions) {
    progress(versions.length, pkg.versions.length);
    const evidence: VersionEvidence = {
      resource: version.resource,
      salt: version.salt,
      recordedCommitment: version.commitment,
      proof: version.proof,
    };
    const local = await verifyLocally(evidence);
    const at = listed.get(version.versionId);
    if (version.proof && at && (at.batch !== version.proof.batch || at.leafIndex !== version.proof.leafIndex)) {
      const detail = `the proof places version ${version.versionId} in batch ${version.proof.batch} at leaf ${version.proof.leafIndex}, but the history lists batch ${at.batch} leaf ${at.leafIndex}`;
      local.checks.push({ name: 'audit-path', ok: false, detail });
      local.reasons.push(detail);
      local.status = 'failed';
    }
    let verification = local;
    let mirrorUnavailable: string | null = null;
    if (version.proof) {
      try {
        if (!mirror) throw new MirrorUnavailableError('(none)', 'no mirror node URL (choose one)');
        const ledger = await readLedgerEvidence(mirror, version.proof, now);
        verification = await verifyAgainstLedger(evidence, local, ledger);
      } catch (error) {
        if (!(error instanceof MirrorUnavailableError)) throw error;
        mirrorUnavailable = error.message;
      }
    }
    versions.push({ versionId: version.versionId, verification, mirrorUnavailable });
  }
  progress(versions.length, pkg.versions.length);
  const history =
    pkg.scope === 'all'
      ? checkHistory({
          resource: `${pkg.resource.type}/${pkg.resource.id}`,
          present: pkg.versions.map((v) => v.versionId),
          currentVersion: pkg.history.currentVersion,
          anchored: pkg.history.anchoredVersions,
        })
      : null;
  let outcome: PackageOutcome = 'verified';
  if (versions.some((v) => v.verification.status === 'failed') || (history && !history.ok)) outcome = 'tampered';
  else if (versions.some((v) => v.mirrorUnavailable !== null)) outcome = 'mirror-unreachable';
  else if (versions.some((v) => v.verification.status === 'pending') || versions.length === 0) outcome = 'pending';
  return { versions, history, outcome };
}
