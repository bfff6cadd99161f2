/**
 * The read side of the ledger, for the HTTP routes: $verify (recompute and compare against the mirror node),
 * $proof (proof packages) and the derived Provenance resources. It reads the version documents and the batch
 * documents, and the ledger only through a mirror node — never trusting a stored root or timestamp it can
 * check instead.
 */
import type { Provenance } from '@medplum/fhirtypes';
import { HEADS_COLLECTION, SINGLE_VERSION_TYPES, VERSIONS_COLLECTION, type HeadDocument, type VersionDocument, versionKey } from '../store/resource-store.js';
import { canonicalJson } from './canonical-json.js';
import { computeCommitment } from './commitment.js';
import { bytes, readAnchor, parseVersionKey, type AnchorView, type BatchDocument, type LedgerStore } from './ledger-store.js';
import { readLedgerEvidence } from './ledger-evidence.js';
import { MirrorClient, MirrorUnavailableError } from './mirror-client.js';
import { hashscanLinks, isPublicNetworkLabel } from './network.js';
import {
  PROOF_ALGORITHM,
  PROOF_PACKAGE_FORMAT,
  PROOF_PACKAGE_VERSION,
  hex,
  type AnchorProof,
  type ProofPackageJson,
  type VersionEntryJson,
} from './proof-package.js';
import { provenanceOf } from './provenance.js';
import { initialRunningHash } from './running-hash.js';
import { DEFAULT_MIRROR_URLS } from '../config.js';
import {
  checkHistory,
  verifyAgainstLedger,
  verifyLocally,
  type Check,
  type HistoryEvidence,
  type VersionVerification,
} from './verify-version.js';

export interface LedgerServiceOptions {
  store: LedgerStore;
  /** The label of the network this server anchors on ("testnet", "local (not Hedera)", ...). */
  network: string;
  /** The mirror node of that network. */
  mirrorUrl: string | null;
  baseUrl: string;
  /** Name of this software, for Provenance.agent. */
  software: string;
  now?: () => number;
}

/** What $verify answers for one version. */
export interface VersionReport {
  type: string;
  id: string;
  versionId: number;
  verification: VersionVerification;
  history: Check & { missing: number[] };
  anchor: AnchorView | null;
  /** Set when the ledger could not be read; the status then rests on the local checks only. */
  mirrorUnavailable: string | null;
  network: string;
  mirrorUrl: string | null;
  hashscan: { transaction: string; topic: string } | null;
}

/** The proof fields of an anchored anchor; null if any is missing (then the version is not verifiable). */
export function proofOf(anchor: AnchorView, batchMessage: Buffer | null = null, previousRunningHash: Buffer | null = null): AnchorProof | null {
  if (anchor.state !== 'anchored') return null;
  const { batch, leafIndex, treeSize, auditPath, root, topicId, sequenceNumber, consensusTimestamp, runningHash, runningHashVersion, transactionId } = anchor;
  if (
    batch === undefined || leafIndex === undefined || treeSize === undefined || !auditPath || !root || !topicId ||
    sequenceNumber === undefined || !consensusTimestamp || !runningHash || runningHashVersion === undefined || !transactionId
  ) {
    return null;
  }
  return { batch, leafIndex, treeSize, auditPath, root, batchMessage, topicId, sequenceNumber, consensusTimestamp, runningHash, runningHashVersion, transactionId, previousRunningHash };
}

interface ResourceHistory {
  versions: VersionDocument[];
  /** The current-version record (none for single-version types: their version document is their current version). */
  head: HeadDocument | null;
  /** The current version: the head's, or for single-version types the newest version document's; null when none. */
  currentVersion: number | null;
  batches: BatchDocument[];
  /** versionId -> where the batch member lists put it */
  listed: Map<number, { batch: number; leafIndex: number }>;
  check: Check & { missing: number[] };
}

export class LedgerService {
  private readonly mirrors = new Map<string, MirrorClient>();

  constructor(private readonly options: LedgerServiceOptions) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The mirror to check a proof against: ours for our network, the public default for another public one. */
  private mirrorFor(network: string | undefined): MirrorClient | null {
    let url: string | null = this.options.mirrorUrl;
    if (network && network !== this.options.network) url = isPublicNetworkLabel(network) ? DEFAULT_MIRROR_URLS[network] : null;
    if (!url) return null;
    let client = this.mirrors.get(url);
    if (!client) {
      client = new MirrorClient(url, { timeoutMs: 5000 });
      this.mirrors.set(url, client);
    }
    return client;
  }

  /** Versions, head and batch listings of one resource, and whether its history has gaps. */
  private async history(type: string, id: string): Promise<ResourceHistory> {
    const { store } = this.options;
    // Single-version types (the audit trail) have no head: their one version document is their current version.
    const singleVersion = SINGLE_VERSION_TYPES.has(type);
    const [versions, head, batches] = await Promise.all([
      store.versionsOf(type, id),
      singleVersion ? null : store.db.collection<HeadDocument>(HEADS_COLLECTION).findOne({ _id: `${type}/${id}` }),
      store.batchesOfResource(type, id),
    ]);
    const listed = new Map<number, { batch: number; leafIndex: number }>();
    const sizeProblems: string[] = [];
    for (const batch of batches) {
      if (batch.members.length !== batch.size) sizeProblems.push(`batch ${batch._id} lists ${batch.members.length} versions but its tree has ${batch.size} leaves`);
      batch.members.forEach((key, leafIndex) => {
        const parsed = parseVersionKey(key);
        if (parsed && parsed.type === type && parsed.id === id) listed.set(parsed.versionId, { batch: batch._id, leafIndex });
      });
    }
    const currentVersion = singleVersion ? (versions.at(-1)?.versionId ?? null) : (head?.versionId ?? null);
    const evidence: HistoryEvidence = {
      resource: `${type}/${id}`,
      present: versions.map((v) => v.versionId),
      currentVersion,
      anchored: [...listed].map(([versionId, at]) => ({ versionId, batch: at.batch })),
    };
    let check = checkHistory(evidence);
    const problems = [...sizeProblems, ...(singleVersion ? [] : headProblems(`${type}/${id}`, versions, head))];
    if (problems.length > 0) check = { ...check, ok: false, detail: `${check.ok ? '' : `${check.detail}; `}${problems.join('; ')}` };
    return { versions, head, currentVersion, batches, listed, check };
  }

  /** Running hash of the message before `sequenceNumber` on the topic: ours if we sent it, else the mirror's. */
  private async previousRunningHash(topicId: string, sequenceNumber: number, mirror: MirrorClient | null): Promise<Buffer | null> {
    if (sequenceNumber === 1) return initialRunningHash();
    const ours = await this.options.store.batches.findOne(
      { topicId, 'receipt.sequenceNumber': sequenceNumber - 1 },
      { projection: { 'receipt.runningHash': 1 } },
    );
    const stored = bytes(ours?.receipt?.runningHash);
    if (stored) return stored;
    if (!mirror) return null;
    const message = await mirror.topicMessage(topicId, sequenceNumber - 1);
    return message ? Buffer.from(message.running_hash, 'base64') : null;
  }

  /**
   * $verify: null when neither the version nor any trace of it exists. A version whose document is gone but which
   * a batch member list still names, or which lies at or below the version the current-version record names, was
   * deleted: that is reported (status failed), not answered with "not found". (A single-version resource, an
   * AuditEvent, has no current-version record: once anchored, the batch member list is what remains of it.)
   */
  async verifyVersion(type: string, id: string, versionId: number): Promise<VersionReport | null> {
    const history = await this.history(type, id);
    const doc = history.versions.find((v) => v.versionId === versionId) ?? null;
    const base = { type, id, versionId, history: history.check, network: this.options.network, mirrorUrl: this.options.mirrorUrl };
    if (!doc) {
      const listed = history.listed.get(versionId);
      const current = history.head?.versionId;
      if (!listed && (current === undefined || versionId > current)) return null;
      const trace = listed
        ? `batch ${listed.batch} anchored it as leaf ${listed.leafIndex}`
        : `the current-version record of ${type}/${id} says version ${current} exists (the version was deleted before it was anchored)`;
      const detail = `${type}/${id} version ${versionId} is missing from the database, but ${trace}`;
      return {
        ...base,
        verification: { status: 'failed', reasons: [detail], checks: [{ name: 'history', ok: false, detail }], commitment: null, computedRoot: null, published: null },
        anchor: null,
        mirrorUnavailable: null,
        hashscan: null,
      };
    }
    const anchor = readAnchor(doc.anchor);
    if (!anchor) {
      const detail = `${type}/${id} version ${versionId} has no readable anchor (salt and commitment)`;
      return {
        ...base,
        verification: { status: 'failed', reasons: [detail], checks: [{ name: 'commitment', ok: false, detail }], commitment: null, computedRoot: null, published: null },
        anchor: null,
        mirrorUnavailable: null,
        hashscan: null,
      };
    }
    const proof = proofOf(anchor);
    const evidence = { resource: doc.resource, salt: anchor.salt, recordedCommitment: anchor.commitment, proof };
    const local = verifyLocally(evidence);
    const fail = (detail: string): void => {
      local.checks.push({ name: 'audit-path', ok: false, detail });
      local.reasons.push(detail);
      local.status = 'failed';
    };
    if (anchor.state === 'anchored' && !proof) fail('the version is marked anchored but its proof fields are incomplete');
    const listed = history.listed.get(versionId);
    const listedBatch = listed ? history.batches.find((b) => b._id === listed.batch) : undefined;
    if (listed && listedBatch?.state === 'anchored' && anchor.state !== 'anchored') {
      fail(`the version's anchor says "${anchor.state}", but batch ${listed.batch} anchored it as leaf ${listed.leafIndex}`);
    }
    const receipt = listedBatch?.receipt;
    if (proof && receipt && listedBatch && (proof.sequenceNumber !== receipt.sequenceNumber || proof.topicId !== listedBatch.topicId)) {
      fail(`the proof points at message ${proof.sequenceNumber} of topic ${proof.topicId}, but batch ${listedBatch._id} went out as message ${receipt.sequenceNumber} of topic ${listedBatch.topicId}`);
    }
    if (listed && proof && (proof.batch !== listed.batch || proof.leafIndex !== listed.leafIndex)) {
      fail(`the proof places the version in batch ${proof.batch} at leaf ${proof.leafIndex}, but batch ${listed.batch} lists it as leaf ${listed.leafIndex}`);
    }
    let verification = local;
    let mirrorUnavailable: string | null = null;
    const mirror = this.mirrorFor(anchor.network);
    if (proof) {
      try {
        if (!mirror) throw new MirrorUnavailableError('(none)', `no mirror node is known for network ${anchor.network ?? '(unknown)'}`);
        const ledger = await readLedgerEvidence(mirror, proof, () => this.previousRunningHash(proof.topicId, proof.sequenceNumber, mirror), this.now());
        verification = verifyAgainstLedger(evidence, local, ledger);
      } catch (error) {
        if (!(error instanceof MirrorUnavailableError)) throw error;
        mirrorUnavailable = error.message;
      }
    }
    if (!history.check.ok) {
      verification = { ...verification, status: 'failed', reasons: [...verification.reasons, history.check.detail], checks: [...verification.checks, history.check] };
    } else {
      verification = { ...verification, checks: [...verification.checks, history.check] };
    }
    const hashscan = proof && anchor.network ? hashscanLinks(anchor.network, proof.topicId, verification.published?.consensusTimestamp ?? proof.consensusTimestamp) : null;
    return { ...base, verification, anchor, mirrorUnavailable, hashscan, network: anchor.network ?? this.options.network, mirrorUrl: mirror?.baseUrl ?? null };
  }

  /** $proof: a proof package for every version (versionId undefined) or one; null when the resource is unknown. */
  async proofPackage(type: string, id: string, versionId?: number): Promise<ProofPackageJson | null> {
    const history = await this.history(type, id);
    const docs = versionId === undefined ? history.versions : history.versions.filter((v) => v.versionId === versionId);
    if (docs.length === 0 && history.listed.size === 0) return null;
    if (versionId !== undefined && docs.length === 0 && !history.listed.has(versionId)) return null;
    const batches = new Map(history.batches.map((b) => [b._id, b]));
    const mirror = this.mirrorFor(this.options.network);
    const previousCache = new Map<string, Buffer | null>();
    const versions: VersionEntryJson[] = [];
    for (const doc of docs) {
      const anchor = readAnchor(doc.anchor);
      if (!anchor) continue;
      const proof = proofOf(anchor);
      let proofJson: VersionEntryJson['proof'] = null;
      if (proof) {
        const key = `${proof.topicId}#${proof.sequenceNumber}`;
        if (!previousCache.has(key)) {
          const previous = await this.previousRunningHash(proof.topicId, proof.sequenceNumber, mirror).catch((error: unknown) => {
            if (error instanceof MirrorUnavailableError) return null;
            throw error;
          });
          previousCache.set(key, previous);
        }
        const previous = previousCache.get(key) ?? null;
        const batch = batches.get(proof.batch);
        proofJson = {
          algorithm: PROOF_ALGORITHM,
          batch: proof.batch,
          leafIndex: proof.leafIndex,
          treeSize: proof.treeSize,
          auditPath: proof.auditPath.map(hex),
          root: hex(proof.root),
          batchMessage: batch ? batch.message.toString('utf8') : '',
          topicId: proof.topicId,
          sequenceNumber: proof.sequenceNumber,
          consensusTimestamp: proof.consensusTimestamp,
          runningHash: hex(proof.runningHash),
          runningHashVersion: proof.runningHashVersion,
          transactionId: proof.transactionId,
          previousRunningHash: previous ? hex(previous) : null,
          hashscan: anchor.network ? hashscanLinks(anchor.network, proof.topicId, proof.consensusTimestamp) : null,
        };
      }
      versions.push({
        versionId: doc.versionId,
        resource: doc.resource as unknown as Record<string, unknown>,
        salt: hex(anchor.salt),
        commitment: hex(anchor.commitment),
        status: proof ? 'anchored' : 'pending',
        proof: proofJson,
      });
    }
    return {
      format: PROOF_PACKAGE_FORMAT,
      formatVersion: PROOF_PACKAGE_VERSION,
      generatedAt: new Date(this.now()).toISOString(),
      generatedBy: this.options.baseUrl,
      network: this.options.network,
      mirrorUrl: this.options.mirrorUrl,
      resource: { type, id },
      scope: versionId === undefined ? 'all' : 'version',
      history: {
        currentVersion: history.currentVersion,
        anchoredVersions: [...history.listed].map(([v, at]) => ({ versionId: v, batch: at.batch, leafIndex: at.leafIndex })).sort((a, b) => a.versionId - b.versionId),
      },
      versions,
    };
  }

  /** Provenance for every version of a resource, or for one. */
  async provenance(type: string, id: string, versionId?: number): Promise<Provenance[]> {
    const { store } = this.options;
    const docs =
      versionId === undefined
        ? await store.versionsOf(type, id)
        : await store.versions.find({ _id: versionKey(type, id, versionId) }).toArray();
    return docs.map((doc) =>
      provenanceOf(
        { type: doc.type, id: doc.id, versionId: doc.versionId, lastUpdated: doc.lastUpdated, method: doc.method, anchor: readAnchor(doc.anchor) },
        this.options.baseUrl,
        this.options.software,
      ),
    );
  }
}

/**
 * What the current-version record (`resources`, which read and search serve) says against the versions: it must
 * exist when any version does (a deleted resource keeps a tombstone), and it must be the version it names, as
 * stored (and committed). Editing or deleting it alone would change what the API serves while every version still
 * verified.
 */
function headProblems(resource: string, versions: VersionDocument[], head: HeadDocument | null): string[] {
  if (!head) {
    if (versions.length === 0) return [];
    const numbers = versions.map((v) => v.versionId);
    return [
      `${resource} has ${numbers.length === 1 ? 'version' : 'versions'} ${numbers.join(', ')} in ${VERSIONS_COLLECTION} but no current-version record in ` +
        `${HEADS_COLLECTION}: it was deleted (or, on a MongoDB without transactions, a write was cut short by a crash), so read and search no longer find it`,
    ];
  }
  const version = versions.find((v) => v.versionId === head.versionId);
  if (!version) return []; // reported by checkHistory (missing below the current version)
  if (head.deleted === version.deleted && sameContent(head.resource, version.resource)) return [];
  // Which of the two was changed: the one that no longer matches the commitment recorded when it was written.
  const anchor = readAnchor(version.anchor);
  const matches = (content: unknown): boolean | undefined => {
    if (!anchor) return undefined;
    try {
      return computeCommitment(content as object, anchor.salt).equals(anchor.commitment);
    } catch {
      return false;
    }
  };
  const headMatches = matches(head.resource);
  const versionMatches = matches(version.resource);
  const differ = `the current-version record of ${resource} (what read and search serve) and version ${head.versionId} in ${VERSIONS_COLLECTION} differ`;
  if (versionMatches && !headMatches) return [`${differ}: the current-version record was changed after it was written (the version matches its commitment)`];
  if (headMatches && !versionMatches) return [`${differ}: the version document was changed after it was written (the current-version record still matches the commitment)`];
  return [`${differ}, and ${headMatches === undefined ? 'the version has no readable commitment to tell which was changed' : 'neither matches the commitment recorded when it was written'}`];
}

function sameContent(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}
