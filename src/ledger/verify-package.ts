/**
 * Checks a proof package against a mirror node, with nothing from the server: what fhir-ledger-verify runs.
 * Each version goes through verify-version.ts (commitment, audit path, published root, ledger facts, running
 * hash chain); then, for a package of every version, the history: no version number may be missing, and each
 * version's proof must sit where the batch member lists put it.
 */
import { readLedgerEvidence } from './ledger-evidence.js';
import { type MirrorClient, MirrorUnavailableError } from './mirror-client.js';
import type { ProofPackage } from './proof-package.js';
import { initialRunningHash } from './running-hash.js';
import { checkHistory, verifyAgainstLedger, verifyLocally, type Check, type VersionVerification } from './verify-version.js';

export type PackageOutcome = 'verified' | 'tampered' | 'pending' | 'mirror-unreachable';

export interface PackageVerification {
  versions: Array<{ versionId: number; verification: VersionVerification; mirrorUnavailable: string | null }>;
  /** null for a one-version package (a history cannot be judged from one version). */
  history: (Check & { missing: number[] }) | null;
  outcome: PackageOutcome;
}

async function previousRunningHash(
  mirror: MirrorClient,
  topicId: string,
  sequenceNumber: number,
  carried: Buffer | null,
): Promise<Buffer | null> {
  if (carried) return carried;
  if (sequenceNumber === 1) return initialRunningHash();
  const previous = await mirror.topicMessage(topicId, sequenceNumber - 1);
  return previous ? Buffer.from(previous.running_hash, 'base64') : null;
}

export async function verifyPackage(
  pkg: ProofPackage,
  mirror: MirrorClient | null,
  now: number = Date.now(),
): Promise<PackageVerification> {
  const listed = new Map(pkg.history.anchoredVersions.map((a) => [a.versionId, a]));
  const versions: PackageVerification['versions'] = [];
  for (const version of pkg.versions) {
    const evidence = { resource: version.resource, salt: version.salt, recordedCommitment: version.commitment, proof: version.proof };
    const local = verifyLocally(evidence);
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
        if (!mirror) throw new MirrorUnavailableError('(none)', 'no mirror node URL (give --mirror)');
        const proof = version.proof;
        const ledger = await readLedgerEvidence(
          mirror,
          proof,
          () => previousRunningHash(mirror, proof.topicId, proof.sequenceNumber, proof.previousRunningHash),
          now,
        );
        verification = verifyAgainstLedger(evidence, local, ledger);
      } catch (error) {
        if (!(error instanceof MirrorUnavailableError)) throw error;
        mirrorUnavailable = error.message;
      }
    }
    versions.push({ versionId: version.versionId, verification, mirrorUnavailable });
  }
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
