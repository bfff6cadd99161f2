/**
 * The read side of the ledger, for the HTTP routes: $verify (recompute and compare against the mirror node),
 * $proof (proof packages) and the derived Provenance resources. It reads the version documents and the batch
 * documents, and the ledger only through a mirror node — never trusting a stored root or timestamp it can
 * check instead.
 *
 * A version's proof is not stored with the version: anchoring writes nothing to a version after its batch is
 * published. The batch that lists the version (its member list, found through the `members` index) gives the
 * leaf index; the batch's leaves give the audit path (./batch-trees.ts, computed on demand, recent trees cached);
 * the batch's receipt gives the topic, sequence number, consensus timestamp and running hash. The proof that
 * comes out is the same, field for field, as one stored per version would be, so proof packages and their
 * verification do not change.
 */
import type { Provenance } from '@medplum/fhirtypes';
import {
  HEADS_COLLECTION,
  SINGLE_VERSION_TYPES,
  VERSIONS_COLLECTION,
  type HeadDocument,
  type VersionDocument,
  versionKey,
} from '../store/resource-store.js';
import { BatchTrees } from './batch-trees.js';
import { canonicalJson } from './canonical-json.js';
import { auditCompleteness, auditedTopic, type AuditReport } from './completeness-audit.js';
import { computeCommitment } from './commitment.js';
import { readAnchor, parseVersionKey, type AnchorView, type BatchDocument, type LedgerStore, type VersionAnchor } from './ledger-store.js';
import { readLedgerEvidence } from './ledger-evidence.js';
import { MirrorClient, MirrorUnavailableError } from './mirror-client.js';
import { PUBLIC_MIRROR_URLS, hashscanLinks, isPublicNetworkLabel } from './network.js';
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
export function proofOf(
  anchor: AnchorView,
  batchMessage: Buffer | null = null,
  previousRunningHash: Buffer | null = null,
): AnchorProof | null {
  if (anchor.state !== 'anchored') return null;
  const {
    batch,
    leafIndex,
    treeSize,
    auditPath,
    root,
    topicId,
    sequenceNumber,
    consensusTimestamp,
    runningHash,
    runningHashVersion,
    transactionId,
  } = anchor;
  if (
    batch === undefined ||
    leafIndex === undefined ||
    treeSize === undefined ||
    !auditPath ||
    !root ||
    !topicId ||
    sequenceNumber === undefined ||
    !consensusTimestamp ||
    !runningHash ||
    runningHashVersion === undefined ||
    !transactionId
  ) {
    return null;
  }
  return {
    batch,
    leafIndex,
    treeSize,
    auditPath,
    root,
    batchMessage,
    topicId,
    sequenceNumber,
    consensusTimestamp,
    runningHash,
    runningHashVersion,
    transactionId,
    previousRunningHash,
  };
}

/** The batches that list versions of one resource, and where they list each. */
interface Placements {
  batches: BatchDocument[];
  /** versionId -> the batch whose member list names it, and its leaf index there */
  listed: Map<number, { batch: number; leafIndex: number }>;
  /** Batches whose member list does not have as many entries as their tree has leaves. */
  problems: string[];
}

interface ResourceHistory extends Placements {
  versions: VersionDocument[];
  /** The current-version record (none for single-version types: their version document is their current version). */
  head: HeadDocument | null;
  /** The current version: the head's, or for single-version types the newest version document's; null when none. */
  currentVersion: number | null;
  check: Check & { missing: number[] };
}

/** A version's anchor as readers see it, and what contradicts it (each a failed check for $verify). */
interface ResolvedAnchor {
  view: AnchorView;
  problems: string[];
}

export class LedgerService {
  private readonly mirrors = new Map<string, MirrorClient>();
  private readonly trees: BatchTrees;

  constructor(private readonly options: LedgerServiceOptions) {
    this.trees = new BatchTrees((batch) => options.store.batchLeaves(batch));
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The mirror to check a proof against: ours for our network, the public default for another public one. */
  private mirrorFor(network: string | undefined): MirrorClient | null {
    let url: string | null = this.options.mirrorUrl;
    if (network && network !== this.options.network) url = isPublicNetworkLabel(network) ? PUBLIC_MIRROR_URLS[network] : null;
    if (!url) return null;
    let client = this.mirrors.get(url);
    if (!client) {
      client = new MirrorClient(url, { timeoutMs: 5000 });
      this.mirrors.set(url, client);
    }
    return client;
  }

  /** Which batches list versions of Type/id, and at which leaf. */
  private async placements(type: string, id: string): Promise<Placements> {
    const batches = await this.options.store.batchesOfResource(type, id);
    const listed = new Map<number, { batch: number; leafIndex: number }>();
    const problems: string[] = [];
    for (const batch of batches) {
      if (batch.members.length !== batch.size)
        problems.push(`batch ${batch._id} lists ${batch.members.length} versions but its tree has ${batch.size} leaves`);
      batch.members.forEach((key, leafIndex) => {
        const parsed = parseVersionKey(key);
        if (parsed && parsed.type === type && parsed.id === id) listed.set(parsed.versionId, { batch: batch._id, leafIndex });
      });
    }
    return { batches, listed, problems };
  }

  /** Versions, head and batch listings of one resource, and whether its history has gaps. */
  private async history(type: string, id: string): Promise<ResourceHistory> {
    const { store } = this.options;
    // Single-version types (the audit trail) have no head: their one version document is their current version.
    const singleVersion = SINGLE_VERSION_TYPES.has(type);
    const [versions, head, placements] = await Promise.all([
      store.versionsOf(type, id),
      singleVersion ? null : store.headOf(type, id),
      this.placements(type, id),
    ]);
    const currentVersion = singleVersion ? (versions.at(-1)?.versionId ?? null) : (head?.versionId ?? null);
    const evidence: HistoryEvidence = {
      resource: `${type}/${id}`,
      present: versions.map((v) => v.versionId),
      currentVersion,
      anchored: [...placements.listed].map(([versionId, at]) => ({ versionId, batch: at.batch })),
    };
    let check = checkHistory(evidence);
    const problems = [...placements.problems, ...(singleVersion ? [] : headProblems(`${type}/${id}`, versions, head))];
    if (problems.length > 0) check = { ...check, ok: false, detail: `${check.ok ? '' : `${check.detail}; `}${problems.join('; ')}` };
    return { ...placements, versions, head, currentVersion, check };
  }

  /**
   * A version's anchor, resolved against the batch that lists it: anchored (with its inclusion proof computed
   * from the batch's leaves and the batch's consensus details) once that batch is; batched while it is not;
   * pending when no batch lists it. The version's own claim must agree with the listing.
   */
  private async resolve(versionId: number, own: VersionAnchor, placements: Placements): Promise<ResolvedAnchor> {
    const view: AnchorView = { state: own.state, salt: own.salt, commitment: own.commitment };
    if (own.batch !== undefined) view.batch = own.batch;
    const problems: string[] = [];
    const listed = placements.listed.get(versionId);
    const batch = listed ? placements.batches.find((b) => b._id === listed.batch) : undefined;
    if (!listed || !batch) {
      if (own.state === 'batched' && own.batch !== undefined) {
        // Claimed, but no batch lists it: fine while that batch is being prepared, a finding once it is anchored.
        const claimedBy = await this.options.store.batchState(own.batch);
        if (claimedBy === 'anchored')
          problems.push(`the version's anchor names batch ${own.batch}, but that batch was anchored without it`);
      }
      return { view, problems };
    }
    view.batch = batch._id;
    if (own.state === 'batched' && own.batch !== batch._id) {
      problems.push(
        `the version's anchor names batch ${own.batch ?? '(none)'}, but batch ${batch._id} lists it as leaf ${listed.leafIndex}`,
      );
    }
    if (batch.state !== 'anchored' || !batch.receipt) {
      view.state = 'batched';
      return { view, problems };
    }
    // Every member of a batch is claimed before the batch is sealed, so a member of an anchored batch that still
    // says pending was changed afterwards.
    if (own.state === 'pending')
      problems.push(`the version's anchor says "pending", but batch ${batch._id} anchored it as leaf ${listed.leafIndex}`);
    const built = await this.trees.tree(batch);
    if (!built || listed.leafIndex >= built.tree.size) {
      problems.push(
        `batch ${batch._id} is anchored, but its stored leaves are missing or do not fit its ${batch.size} leaves: no inclusion proof can be computed`,
      );
      view.state = 'batched';
      return { view, problems };
    }
    if (!built.leavesGiveRoot)
      problems.push(`the leaves stored with batch ${batch._id} no longer give its root (the batch document was changed)`);
    const receipt = batch.receipt;
    return {
      view: {
        ...view,
        state: 'anchored',
        leafIndex: listed.leafIndex,
        treeSize: batch.size,
        auditPath: built.tree.inclusionProof(listed.leafIndex),
        root: batch.root,
        topicId: batch.topicId,
        sequenceNumber: receipt.sequenceNumber,
        consensusTimestamp: receipt.consensusTimestamp,
        runningHash: receipt.runningHash,
        runningHashVersion: receipt.runningHashVersion,
        transactionId: receipt.transactionId,
        network: batch.network,
      },
      problems,
    };
  }

  /** Running hash of the message before `sequenceNumber` on the topic: ours if we sent it, else the mirror's. */
  private async previousRunningHash(topicId: string, sequenceNumber: number, mirror: MirrorClient | null): Promise<Buffer | null> {
    if (sequenceNumber === 1) return initialRunningHash();
    const stored = await this.options.store.runningHashAfter(topicId, sequenceNumber - 1);
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
        verification: {
          status: 'failed',
          reasons: [detail],
          checks: [{ name: 'history', ok: false, detail }],
          commitment: null,
          computedRoot: null,
          published: null,
        },
        anchor: null,
        mirrorUnavailable: null,
        hashscan: null,
      };
    }
    const own = readAnchor(doc.anchor);
    if (!own) {
      const detail = `${type}/${id} version ${versionId} has no readable anchor (salt and commitment)`;
      return {
        ...base,
        verification: {
          status: 'failed',
          reasons: [detail],
          checks: [{ name: 'commitment', ok: false, detail }],
          commitment: null,
          computedRoot: null,
          published: null,
        },
        anchor: null,
        mirrorUnavailable: null,
        hashscan: null,
      };
    }
    const { view: anchor, problems } = await this.resolve(versionId, own, history);
    const proof = proofOf(anchor);
    const evidence = { resource: doc.resource, salt: anchor.salt, recordedCommitment: anchor.commitment, proof };
    const local = verifyLocally(evidence);
    for (const detail of problems) {
      local.checks.push({ name: 'audit-path', ok: false, detail });
      local.reasons.push(detail);
      local.status = 'failed';
    }
    let verification = local;
    let mirrorUnavailable: string | null = null;
    const mirror = this.mirrorFor(anchor.network);
    if (proof) {
      try {
        if (!mirror) throw new MirrorUnavailableError('(none)', `no mirror node is known for network ${anchor.network ?? '(unknown)'}`);
        const ledger = await readLedgerEvidence(
          mirror,
          proof,
          () => this.previousRunningHash(proof.topicId, proof.sequenceNumber, mirror),
          this.now(),
        );
        verification = verifyAgainstLedger(evidence, local, ledger);
      } catch (error) {
        if (!(error instanceof MirrorUnavailableError)) throw error;
        mirrorUnavailable = error.message;
      }
    }
    if (!history.check.ok) {
      verification = {
        ...verification,
        status: 'failed',
        reasons: [...verification.reasons, history.check.detail],
        checks: [...verification.checks, history.check],
      };
    } else {
      verification = { ...verification, checks: [...verification.checks, history.check] };
    }
    const hashscan =
      proof && anchor.network
        ? hashscanLinks(anchor.network, proof.topicId, verification.published?.consensusTimestamp ?? proof.consensusTimestamp)
        : null;
    return {
      ...base,
      verification,
      anchor,
      mirrorUnavailable,
      hashscan,
      network: anchor.network ?? this.options.network,
      mirrorUrl: mirror?.baseUrl ?? null,
    };
  }

  /** The highest batch number recorded (0 before the first). */
  lastBatchNumber(): Promise<number> {
    return this.options.store.lastBatchNumber();
  }

  /**
   * $ledger-audit: the completeness audit (./completeness-audit.ts) of batches from..to of this server's topic,
   * against the mirror node of its network. Throws MirrorUnavailableError when the mirror cannot be read.
   */
  async completenessAudit(from: number, to: number | null, graceMs: number): Promise<AuditReport> {
    const mirror = this.mirrorFor(this.options.network);
    if (!mirror) throw new MirrorUnavailableError('(none)', `no mirror node is known for network ${this.options.network}`);
    const { topicId, network } = await auditedTopic(this.options.store, undefined, this.options.network);
    return auditCompleteness({
      store: this.options.store,
      mirror,
      topicId,
      network,
      mirrorNote: isPublicNetworkLabel(this.options.network)
        ? `the mirror node this server is configured with; fhir-ledger-audit --mirror reads one you choose`
        : `the mirror of the server's own ${this.options.network} ledger (not independent of it)`,
      from,
      to,
      graceMs,
      now: () => this.now(),
    });
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
      const own = readAnchor(doc.anchor);
      if (!own) continue;
      const { view: anchor } = await this.resolve(doc.versionId, own, history);
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
        anchoredVersions: [...history.listed]
          .map(([v, at]) => ({ versionId: v, batch: at.batch, leafIndex: at.leafIndex }))
          .sort((a, b) => a.versionId - b.versionId),
      },
      versions,
    };
  }

  /** Provenance for every version of a resource, or for one. */
  async provenance(type: string, id: string, versionId?: number): Promise<Provenance[]> {
    const { store } = this.options;
    const [docs, placements] = await Promise.all([
      versionId === undefined
        ? store.versionsOf(type, id)
        : store.version(versionKey(type, id, versionId)).then((doc) => (doc ? [doc] : [])),
      this.placements(type, id),
    ]);
    const out: Provenance[] = [];
    for (const doc of docs) {
      const own = readAnchor(doc.anchor);
      const anchor = own ? (await this.resolve(doc.versionId, own, placements)).view : null;
      out.push(
        provenanceOf(
          { type: doc.type, id: doc.id, versionId: doc.versionId, lastUpdated: doc.lastUpdated, method: doc.method, anchor },
          this.options.baseUrl,
          this.options.software,
        ),
      );
    }
    return out;
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
  if (versionMatches && !headMatches)
    return [`${differ}: the current-version record was changed after it was written (the version matches its commitment)`];
  if (headMatches && !versionMatches)
    return [`${differ}: the version document was changed after it was written (the current-version record still matches the commitment)`];
  return [
    `${differ}, and ${headMatches === undefined ? 'the version has no readable commitment to tell which was changed' : 'neither matches the commitment recorded when it was written'}`,
  ];
}

function sameContent(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}
