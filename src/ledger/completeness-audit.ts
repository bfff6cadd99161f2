/**
 * The whole-database completeness audit: for a range of batches, is every version the ledger anchored still in
 * the database, unchanged, and is every version in the database anchored?
 *
 * $verify and the proof package check one resource; what they cannot see is a resource deleted with its whole
 * history, or a batch record deleted with everything it listed. This audit starts from the other end, the
 * ledger: it reads the topic's messages from a mirror node (recomputing the running-hash chain, as
 * ./verify-chain.ts does), and for each batch number n in the range compares them with the database:
 *
 *   1. the batch document `ledger_batches/n`: gone while the ledger has batch n -> "batch document removed"
 *      (with the versions whose claim still names n); its member list, leaves and size must agree, and its leaves
 *      folded into a Merkle tree (./merkle.ts) must give its root -> otherwise "batch does not add up"; its root,
 *      size, message and sequence number must be the ledger's -> otherwise "batch differs from the ledger"; the
 *      ledger's `prev` must be the ledger's root of n - 1 -> otherwise "chain link broken";
 *   2. its members, AUDIT_CHUNK keys per query: a member with no version document -> "version missing", or,
 *      when nothing of the resource is left (no version, no current-version record), "resource removed with all
 *      its versions", once per resource, naming every version any batch lists; a version whose commitment,
 *      recomputed from its stored resource (a deletion's tombstone included: what the write committed) and
 *      salt, is not its leaf -> "version altered after anchoring" (unless the leaf is the one that changed: then
 *      the batch does not add up, and the version is fine); a version whose own claim names another batch ->
 *      "claim disagrees";
 *   3. claims: one pass over every version before the batches (a projection of five small fields) counts the
 *      claims per batch and finds versions still pending after the grace period -> "present without an anchor";
 *      a batch whose claims outnumber its members that claim it is scanned for the extras -> "claims a batch that
 *      does not list it"; a claim naming a batch nobody has -> the same.
 *
 * Memory: one batch document (its member list and leaves, at most 15 MiB by construction, ./ledger-store.ts),
 * its Merkle tree (64 bytes per leaf), AUDIT_CHUNK version documents, a window of LEDGER_WINDOW mirror messages,
 * and per batch number in the range a claim count, a root and a result line — never anything per version, except
 * the findings themselves, of which at most `maxListedFindings` are kept (counts stay exact).
 */
import { BatchMessageError, decodeBatchMessage, type BatchMessage } from './batch-message.js';
import { computeCommitment } from './commitment.js';
import { parseVersionKey, type BatchDocument, type LedgerStore } from './ledger-store.js';
import { leafHash, merkleRoot } from './merkle.js';
import type { MirrorClient, MirrorTopicMessage } from './mirror-client.js';
import { RUNNING_HASH_VERSION, initialRunningHash } from './running-hash.js';
import { recomputeRunningHash } from './verify-chain.js';

export const AUDIT_REPORT_FORMAT = 'fhir-ledger-audit';
export const AUDIT_REPORT_VERSION = 1;

/** Mirror messages read per request window (ten pages of the mirror's 100). */
export const LEDGER_WINDOW = 1000;
/** Findings listed in a report; the counts per kind are exact beyond it. */
export const DEFAULT_MAX_LISTED_FINDINGS = 10_000;
/** Versions named in one finding's explanation (a removed batch may have had 100,000). */
const NAMED_IN_ONE_FINDING = 20;

export type FindingKind =
  | 'resource-removed'
  | 'version-missing'
  | 'version-altered'
  | 'claim-disagrees'
  | 'batch-does-not-add-up'
  | 'batch-differs-from-ledger'
  | 'chain-link-broken'
  | 'batch-document-removed'
  | 'batch-number-missing'
  | 'batch-not-on-ledger'
  | 'unanchored-version'
  | 'claim-not-listed'
  | 'ledger-inconsistent';

/** Titles a compliance officer reads, in the order the report lists the kinds. */
export const FINDING_TITLES: Record<FindingKind, string> = {
  'resource-removed': 'Record deleted with its whole history',
  'version-missing': 'Version deleted',
  'version-altered': 'Version changed after it was anchored',
  'claim-disagrees': "A version's anchoring record was changed",
  'batch-does-not-add-up': 'Batch record does not add up',
  'batch-differs-from-ledger': 'Batch record differs from the ledger',
  'chain-link-broken': 'Batches not chained on the ledger',
  'batch-document-removed': 'Batch record deleted',
  'batch-number-missing': 'Batch number missing',
  'batch-not-on-ledger': 'Batch never reached the ledger',
  'unanchored-version': 'Version present without an anchor',
  'claim-not-listed': 'Version claims a batch that does not list it',
  'ledger-inconsistent': "The mirror node's copy of the ledger is inconsistent",
};

export interface Finding {
  kind: FindingKind;
  /** The batch concerned; null for a finding about a version only. */
  batch: number | null;
  /** "Type/id"; null for a finding about a batch only. */
  resource: string | null;
  versionId: number | null;
  /** For "resource-removed": every version number the batches list. */
  versions?: number[];
  /** In plain words: what was found, and what it means. */
  explanation: string;
}

/**
 * ok: checked, nothing found; findings: see the findings; in-progress: not sealed or not sent yet (the worker is
 * at it); not-on-ledger-yet: the mirror does not show it (yet) and nothing after it; not-checked: recorded on
 * another topic than the one audited.
 */
export type BatchStatus = 'ok' | 'findings' | 'in-progress' | 'not-on-ledger-yet' | 'not-checked';

export interface BatchResult {
  batch: number;
  status: BatchStatus;
  /** Leaves, as the ledger says (or the database, when the ledger does not have it). */
  size: number | null;
  sequenceNumber: number | null;
  consensusTimestamp: string | null;
  findings: number;
}

export interface AuditProgress {
  phase: 'versions' | 'batches';
  batchesDone: number;
  batchesTotal: number;
  versionsScanned: number;
  versionsChecked: number;
  elapsedMs: number;
}

export interface AuditReport {
  format: typeof AUDIT_REPORT_FORMAT;
  formatVersion: typeof AUDIT_REPORT_VERSION;
  generatedAt: string;
  /** clean: nothing found and everything checked; findings: something found; incomplete: nothing found, but not all was checked. */
  outcome: 'clean' | 'findings' | 'incomplete';
  database: string;
  network: string | null;
  topicId: string | null;
  mirrorUrl: string;
  /** Why this mirror node was read, in words (it matters whom the comparison trusts). */
  mirrorNote: string;
  range: { from: number; to: number | null };
  graceMinutes: number;
  summary: {
    batchesChecked: number;
    batchesOnLedger: number;
    /** Member versions checked against their batch. */
    versionsChecked: number;
    /** Versions seen in the pass over the whole collection. */
    versionsScanned: number;
    findings: number;
    findingsByKind: Partial<Record<FindingKind, number>>;
    findingsListed: number;
    durationMs: number;
  };
  batches: BatchResult[];
  findings: Finding[];
  notes: string[];
}

export interface AuditOptions {
  store: LedgerStore;
  mirror: MirrorClient;
  /** The topic audited; null when nothing was ever anchored. */
  topicId: string | null;
  network: string | null;
  mirrorNote: string;
  from: number;
  /** null: every batch from `from` on, in the database or on the ledger. */
  to: number | null;
  /** A version pending longer than this is a finding. */
  graceMs: number;
  now?: () => number;
  /** A progress report every this many batches (and at the end of each phase). Default 100. */
  progressEvery?: number;
  onProgress?: (progress: AuditProgress) => void;
  maxListedFindings?: number;
}

/** A batch message as the ledger has it, with where it is. */
interface LedgerBatch {
  message: BatchMessage;
  bytes: Buffer;
  sequenceNumber: number;
  consensusTimestamp: string;
}

const hex = (b: Buffer | null | undefined): string => (b ? b.toString('hex') : '(none)');
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** Names a few of many keys: "Patient/a/1, Patient/b/2 and 98 more". */
function nameSome(keys: readonly string[], total: number): string {
  const shown = keys.slice(0, NAMED_IN_ONE_FINDING).join(', ');
  return total > NAMED_IN_ONE_FINDING ? `${shown} and ${total - NAMED_IN_ONE_FINDING} more` : shown;
}

class Findings {
  readonly listed: Finding[] = [];
  readonly byKind: Partial<Record<FindingKind, number>> = {};
  total = 0;
  constructor(private readonly max: number) {}
  add(finding: Finding): void {
    this.total++;
    this.byKind[finding.kind] = (this.byKind[finding.kind] ?? 0) + 1;
    if (this.listed.length < this.max) this.listed.push(finding);
  }
}

/**
 * The topic's batch messages in sequence order, read a window at a time, with the running-hash chain recomputed
 * as they come. Asked for batch n, it reads on until it has seen a batch numbered n or higher (or the mirror's
 * end); what was before n is forgotten, except each batch's root (for the `prev` links).
 */
class LedgerReader {
  private readonly waiting = new Map<number, LedgerBatch>();
  /** The root each batch number has on the ledger (the first one seen; a second, different one is a finding). */
  readonly roots = new Map<number, Buffer>();
  private next: number;
  private previousHash: Buffer | null = null;
  private highestBatch = 0;
  exhausted = false;
  /** Batch messages read (resubmissions counted once). */
  batchesSeen = 0;

  constructor(
    private readonly mirror: MirrorClient,
    private readonly topicId: string,
    start: number,
    private readonly findings: Findings,
  ) {
    this.next = Math.max(1, start);
  }

  async open(): Promise<void> {
    if (this.next === 1) this.previousHash = initialRunningHash();
    else {
      const before = await this.mirror.topicMessage(this.topicId, this.next - 1);
      this.previousHash = before ? Buffer.from(before.running_hash, 'base64') : null;
      // The batch before the range, for the first batch's `prev` link.
      try {
        const message = before ? decodeBatchMessage(Buffer.from(before.message, 'base64')) : null;
        if (message) this.roots.set(message.batchNumber, message.root);
      } catch {
        // Not a batch message: the first batch's link stays unchecked.
      }
    }
  }

  /** Batch n as the ledger has it; null when the ledger does not (check `exhausted`: not yet, or not at all). */
  async batch(n: number): Promise<LedgerBatch | null> {
    while (!this.exhausted && this.highestBatch < n) await this.read();
    const found = this.waiting.get(n) ?? null;
    for (const number of this.waiting.keys()) if (number <= n) this.waiting.delete(number);
    return found;
  }

  private async read(): Promise<void> {
    const from = this.next;
    const to = from + LEDGER_WINDOW - 1;
    const messages = (await this.mirror.topicMessages(this.topicId, from, to)).sort((a, b) => a.sequence_number - b.sequence_number);
    let expected = from;
    for (const m of messages) {
      if (m.sequence_number !== expected) {
        this.ledgerInconsistent(
          `The mirror node skips message${m.sequence_number - expected > 1 ? 's' : ''} ${expected}${m.sequence_number - expected > 1 ? `-${m.sequence_number - 1}` : ''} ` +
            `of topic ${this.topicId}: a ledger copy that withholds messages cannot be relied on; compare with another mirror node.`,
        );
        this.previousHash = null;
      }
      this.take(m);
      expected = m.sequence_number + 1;
    }
    if (messages.length > 0) this.next = messages.at(-1)!.sequence_number + 1;
    // Fewer than asked for: the mirror has nothing after its last message (yet).
    if (messages.length === 0 || messages.at(-1)!.sequence_number < to) this.exhausted = true;
  }

  /** A finding about the mirror node's copy of the topic itself (not about the database). */
  private ledgerInconsistent(explanation: string, batch: number | null = null): void {
    this.findings.add({ kind: 'ledger-inconsistent', batch, resource: null, versionId: null, explanation });
  }

  private take(m: MirrorTopicMessage): void {
    const published = Buffer.from(m.running_hash, 'base64');
    if (this.previousHash && m.running_hash_version === RUNNING_HASH_VERSION) {
      const recomputed = recomputeRunningHash(this.previousHash, m);
      if (!recomputed || !recomputed.equals(published)) {
        this.ledgerInconsistent(
          `Message ${m.sequence_number} of topic ${this.topicId} does not chain to the message before it (its running hash, recomputed, ` +
            `is ${hex(recomputed)}; the mirror node says ${hex(published)}): this mirror node's copy was altered; compare with another.`,
        );
      }
    }
    this.previousHash = published;
    const bytes = Buffer.from(m.message, 'base64');
    let message: BatchMessage;
    try {
      if ((m.chunk_info?.total ?? 1) !== 1) throw new BatchMessageError('it is one chunk of a multi-chunk message');
      message = decodeBatchMessage(bytes);
    } catch (error) {
      this.ledgerInconsistent(
        `Message ${m.sequence_number} of topic ${this.topicId} is not a batch message of this server (${(error as Error).message}); only this server can post to the topic.`,
      );
      return;
    }
    const n = message.batchNumber;
    const seen = this.roots.get(n);
    if (seen) {
      if (!seen.equals(message.root)) {
        this.ledgerInconsistent(
          `Batch ${n} appears on the ledger twice with different roots (${hex(seen)}, and ${hex(message.root)} in message ${m.sequence_number}): a batch number must have one root.`,
          n,
        );
      }
      // The same root again is a resubmission after a restart: the first message counts.
      return;
    }
    this.roots.set(n, message.root);
    this.batchesSeen++;
    this.highestBatch = Math.max(this.highestBatch, n);
    this.waiting.set(n, { message, bytes, sequenceNumber: m.sequence_number, consensusTimestamp: m.consensus_timestamp });
  }
}

/** Runs the audit. Throws MirrorUnavailableError when the mirror node cannot be read (nothing can be said then). */
export async function auditCompleteness(options: AuditOptions): Promise<AuditReport> {
  const { store, mirror, topicId, from, to } = options;
  const now = options.now ?? Date.now;
  const started = now();
  const every = Math.max(1, options.progressEvery ?? 100);
  const findings = new Findings(options.maxListedFindings ?? DEFAULT_MAX_LISTED_FINDINGS);
  const notes: string[] = [];
  const inRange = (n: number): boolean => n >= from && (to === null || n <= to);
  const lastDocument = await store.lastBatchNumber();
  let batchesTotal = Math.max(0, (to ?? lastDocument) - from + 1);
  let versionsScanned = 0;
  let versionsChecked = 0;
  const progress = (phase: AuditProgress['phase'], batchesDone: number): void =>
    options.onProgress?.({ phase, batchesDone, batchesTotal, versionsScanned, versionsChecked, elapsedMs: now() - started });

  // ---- 1. one pass over every version: claims per batch, and versions left pending
  const cutoff = now() - options.graceMs;
  const claims = new Map<number, number>();
  for await (const row of store.versionAnchors()) {
    versionsScanned++;
    if (versionsScanned % (every * 1000) === 0) progress('versions', 0);
    if (row.state === null) {
      const parsed = parseVersionKey(row.key);
      findings.add({
        kind: 'unanchored-version',
        batch: null,
        resource: parsed ? `${parsed.type}/${parsed.id}` : row.key,
        versionId: parsed?.versionId ?? null,
        explanation: `${row.key} has no anchoring record at all (no salt, no commitment): it can never be proven, and was either written around this server or had its record removed.`,
      });
    } else if (row.state === 'pending' && row.lastUpdated && row.lastUpdated.getTime() < cutoff) {
      const parsed = parseVersionKey(row.key);
      findings.add({
        kind: 'unanchored-version',
        batch: null,
        resource: parsed ? `${parsed.type}/${parsed.id}` : row.key,
        versionId: parsed?.versionId ?? null,
        explanation:
          `${row.key} (last updated ${row.lastUpdated.toISOString()}) is still waiting to be anchored, longer than the ` +
          `${Math.round(options.graceMs / 60_000)}-minute grace period: no batch has taken it, so nothing on the ledger vouches for it.`,
      });
    }
    if (row.batch !== null && inRange(row.batch)) claims.set(row.batch, (claims.get(row.batch) ?? 0) + 1);
  }
  progress('versions', 0);

  // ---- 2. batch by batch
  let reader: LedgerReader | null = null;
  if (topicId) {
    // Batch `from` is message `from` or later (each batch before it took at least one message), unless the topic
    // changed on the way: then its receipt says where it is.
    const recorded = from > 1 ? (await store.auditedBatch(from))?.receipt?.sequenceNumber : undefined;
    reader = new LedgerReader(mirror, topicId, Math.min(from, recorded ?? from), findings);
    await reader.open();
  }
  const results: BatchResult[] = [];
  const removedResources = new Set<string>();
  const visited = new Set<number>();
  let batchesOnLedger = 0;
  let n = from;
  for (; to === null || n <= to; n++) {
    const doc = await store.auditedBatch(n);
    const onLedger = reader ? await reader.batch(n) : null;
    if (to === null && !doc && !onLedger && n > lastDocument && (!reader || reader.exhausted)) break;
    if (to === null) batchesTotal = Math.max(batchesTotal, n - from + 1);
    visited.add(n);
    if (onLedger) batchesOnLedger++;
    const before = findings.total;
    const add = (f: Omit<Finding, 'batch'>): void => findings.add({ batch: n, ...f });
    const result: BatchResult = {
      batch: n,
      status: 'ok',
      size: onLedger?.message.treeSize ?? doc?.size ?? null,
      sequenceNumber: onLedger?.sequenceNumber ?? null,
      consensusTimestamp: onLedger?.consensusTimestamp ?? null,
      findings: 0,
    };

    if (!doc) {
      if (onLedger) {
        const claimants: string[] = [];
        let claimantCount = 0;
        for await (const key of store.claimsOf(n)) {
          claimantCount++;
          if (claimants.length < NAMED_IN_ONE_FINDING) claimants.push(key);
        }
        add({
          kind: 'batch-document-removed',
          resource: null,
          versionId: null,
          explanation:
            `Batch ${n} is on the ledger (message ${onLedger.sequenceNumber}, ${plural(onLedger.message.treeSize, 'version')}), but its record in the ` +
            'database, which lists the versions it anchored, was deleted: none of them can be proven any more, and versions deleted with it ' +
            `would go unnoticed. ${claimantCount > 0 ? `${plural(claimantCount, 'version')} still say they belong to it: ${nameSome(claimants, claimantCount)}.` : 'No version says it belongs to it any more.'}`,
        });
      } else if (reader && !reader.exhausted) {
        add({
          kind: 'batch-number-missing',
          resource: null,
          versionId: null,
          explanation: `Batch number ${n} is neither in the database nor on the ledger, although later batches are: batch numbers run without gaps.`,
        });
      } else if (n <= lastDocument) {
        add({
          kind: 'batch-number-missing',
          resource: null,
          versionId: null,
          explanation: `Batch number ${n} has no record in the database, although later batches have: batch numbers run without gaps.`,
        });
      } else {
        // Past the last batch anyone has: asked for, but not there (yet).
        result.status = 'not-on-ledger-yet';
      }
    } else if (topicId && doc.topicId !== topicId) {
      result.status = 'not-checked';
      notes.push(`Batch ${n} was recorded on topic ${doc.topicId}, not on ${topicId}: audit that topic with --topic ${doc.topicId}.`);
    } else {
      versionsChecked += await checkBatch(n, doc, onLedger, reader, store, claims.get(n) ?? 0, removedResources, add);
      if (!onLedger) {
        if (doc.state === 'claiming' || doc.state === 'prepared') result.status = 'in-progress';
        else if (reader?.exhausted) result.status = doc.state === 'anchored' ? 'not-on-ledger-yet' : 'in-progress';
        else if (doc.state === 'anchored')
          add({
            kind: 'batch-not-on-ledger',
            resource: null,
            versionId: null,
            explanation: `The database records batch ${n} as anchored, but the ledger does not have it, although it has later batches: its versions are not vouched for by the ledger.`,
          });
        else result.status = 'in-progress';
      }
    }
    result.findings = findings.total - before;
    if (result.findings > 0) result.status = 'findings';
    results.push(result);
    if ((n - from + 1) % every === 0) progress('batches', n - from + 1);
  }
  if (results.length % every !== 0) progress('batches', results.length);

  // ---- 3. claims naming batches in the range that were not visited (past the last batch anyone has)
  for (const [number] of claims) {
    if (visited.has(number)) continue;
    // A batch inserted since the audit started is being claimed right now: not a finding.
    if (await store.auditedBatch(number)) continue;
    for await (const key of store.claimsOf(number)) {
      const parsed = parseVersionKey(key);
      findings.add({
        kind: 'claim-not-listed',
        batch: number,
        resource: parsed ? `${parsed.type}/${parsed.id}` : key,
        versionId: parsed?.versionId ?? null,
        explanation: `${key} says it was anchored in batch ${number}, but there is no batch ${number}, neither in the database nor on the ledger: nothing vouches for it.`,
      });
    }
  }

  const incomplete = results.some((r) => r.status === 'not-on-ledger-yet' || r.status === 'not-checked');
  return {
    format: AUDIT_REPORT_FORMAT,
    formatVersion: AUDIT_REPORT_VERSION,
    generatedAt: new Date(now()).toISOString(),
    outcome: findings.total > 0 ? 'findings' : incomplete ? 'incomplete' : 'clean',
    database: store.db.databaseName,
    network: options.network,
    topicId,
    mirrorUrl: mirror.baseUrl,
    mirrorNote: options.mirrorNote,
    range: { from, to: to ?? (results.length > 0 ? results.at(-1)!.batch : null) },
    graceMinutes: Math.round(options.graceMs / 60_000),
    summary: {
      batchesChecked: results.length,
      batchesOnLedger,
      versionsChecked,
      versionsScanned,
      findings: findings.total,
      findingsByKind: findings.byKind,
      findingsListed: findings.listed.length,
      durationMs: now() - started,
    },
    batches: results,
    findings: findings.listed,
    notes: [
      ...(findings.total > findings.listed.length
        ? [`Only the first ${findings.listed.length} of ${findings.total} findings are listed; the counts per kind are complete.`]
        : []),
      ...notes,
    ],
  };
}

/** Checks one batch document against the ledger and its members; returns how many members were checked. */
async function checkBatch(
  n: number,
  doc: BatchDocument,
  onLedger: LedgerBatch | null,
  reader: LedgerReader | null,
  store: LedgerStore,
  claimCount: number,
  removedResources: Set<string>,
  add: (f: Omit<Finding, 'batch'>) => void,
): Promise<number> {
  const batchFinding = (kind: FindingKind, explanation: string): void => add({ kind, resource: null, versionId: null, explanation });

  // The record's own arithmetic: as many members as leaves as its size, and the leaves giving its root.
  const leafCount = doc.leaves.length % 32 === 0 ? doc.leaves.length / 32 : -1;
  if (doc.members.length !== doc.size || leafCount !== doc.size) {
    batchFinding(
      'batch-does-not-add-up',
      `Batch ${n}'s record says its tree has ${doc.size} leaves, but it lists ${plural(doc.members.length, 'version')} and ` +
        `${leafCount < 0 ? `${doc.leaves.length} bytes of` : leafCount} commitments: entries were removed or added after anchoring.`,
    );
  }
  const leaf = (i: number): Buffer | null => (i < leafCount ? doc.leaves.subarray(i * 32, (i + 1) * 32) : null);
  let leavesGiveRoot = false;
  if (leafCount > 0) {
    const hashes: Buffer[] = [];
    for (let i = 0; i < leafCount; i++) hashes.push(leafHash(leaf(i)!));
    const computed = merkleRoot(hashes);
    leavesGiveRoot = computed.equals(doc.root);
    const ledgerRoot = onLedger?.message.root;
    if (!leavesGiveRoot) {
      batchFinding(
        'batch-does-not-add-up',
        `The commitments stored with batch ${n} no longer give its root (they give ${hex(computed)}, the record says ${hex(doc.root)}` +
          `${ledgerRoot ? `, the ledger ${hex(ledgerRoot)}` : ''}): a stored commitment or the root was changed after anchoring, and the ` +
          "proofs computed from this record would fail. The versions' own commitments tell which entry changed (below, when one does).",
      );
    }
  }

  // The record against the ledger.
  if (onLedger) {
    const m = onLedger.message;
    const differences: string[] = [];
    if (!doc.root.equals(m.root)) differences.push(`its root is ${hex(doc.root)}, the ledger's ${hex(m.root)}`);
    if (doc.size !== m.treeSize) differences.push(`it has ${doc.size} leaves, the ledger's batch ${m.treeSize}`);
    if (!doc.message.equals(onLedger.bytes)) differences.push('its copy of the message differs from the one on the ledger');
    if (doc.receipt && doc.receipt.sequenceNumber !== onLedger.sequenceNumber)
      differences.push(`it says it is message ${doc.receipt.sequenceNumber}, the ledger has it as message ${onLedger.sequenceNumber}`);
    if (doc.receipt && doc.receipt.consensusTimestamp !== onLedger.consensusTimestamp)
      differences.push(`it says consensus time ${doc.receipt.consensusTimestamp}, the ledger ${onLedger.consensusTimestamp}`);
    const previous = doc.previousRoot;
    if ((previous === null) !== (m.previousRoot === null) || (previous && m.previousRoot && !previous.equals(m.previousRoot)))
      differences.push(`it names ${hex(previous)} as the previous root, the ledger ${hex(m.previousRoot)}`);
    if (differences.length > 0)
      batchFinding(
        'batch-differs-from-ledger',
        `Batch ${n}'s record in the database does not match the ledger: ${differences.join('; ')}.`,
      );
    const before = reader?.roots.get(n - 1);
    if (n > 1 && before && m.previousRoot && !before.equals(m.previousRoot)) {
      batchFinding(
        'chain-link-broken',
        `On the ledger, batch ${n} says the batch before it had root ${hex(m.previousRoot)}, but batch ${n - 1} published ${hex(before)}: the chain of batches is broken.`,
      );
    }
  }

  // A claiming batch may still be cut down: its members are checked once it is sealed.
  if (doc.state === 'claiming') return 0;

  // Members, a slice at a time.
  let checked = 0;
  let claimingMembers = 0;
  const changedLeaves: string[] = [];
  for (let start = 0; start < doc.members.length; start += 1000) {
    const keys = doc.members.slice(start, start + 1000);
    const versions = await store.auditedVersions(keys);
    const missing: string[] = [];
    for (let j = 0; j < keys.length; j++) {
      const key = keys[j]!;
      const index = start + j;
      const parsed = parseVersionKey(key);
      const resource = parsed ? `${parsed.type}/${parsed.id}` : key;
      const versionId = parsed?.versionId ?? null;
      const version = versions.get(key);
      checked++;
      if (!version) {
        missing.push(key);
        continue;
      }
      const anchor = version.anchor;
      if (!anchor) {
        add({
          kind: 'version-altered',
          resource,
          versionId,
          explanation: `${key} was anchored in batch ${n} as leaf ${index}, but its salt and commitment were removed or damaged: it can no longer be proven.`,
        });
        continue;
      }
      if (anchor.batch === n) claimingMembers++;
      else
        add({
          kind: 'claim-disagrees',
          resource,
          versionId,
          explanation: `Batch ${n} lists ${key} as leaf ${index}, but the version's own record says ${anchor.state === 'pending' ? 'it is still waiting to be anchored' : `it belongs to batch ${anchor.batch ?? '(none)'}`}: its anchoring record was changed.`,
        });
      let recomputed: Buffer | null = null;
      try {
        recomputed = computeCommitment(version.resource, anchor.salt);
      } catch {
        recomputed = null;
      }
      const stored = leaf(index);
      if (recomputed && stored && recomputed.equals(stored)) continue;
      if (recomputed && stored && !leavesGiveRoot && recomputed.equals(anchor.commitment)) {
        // The version is as written; the batch's copy of its commitment is what changed.
        changedLeaves.push(`leaf ${index} (${key})`);
        continue;
      }
      add({
        kind: 'version-altered',
        resource,
        versionId,
        explanation:
          `${key} is not the version that was anchored in batch ${n}: its content (or salt), as stored now, gives a different commitment ` +
          `(${hex(recomputed)}) from the one the ledger vouches for (${hex(stored)}). It was changed after it was written.`,
      });
    }
    for (const key of missing) await reportMissing(n, key, store, removedResources, add);
  }
  if (changedLeaves.length > 0) {
    add({
      kind: 'batch-does-not-add-up',
      resource: null,
      versionId: null,
      explanation: `Batch ${n}'s stored commitment${changedLeaves.length > 1 ? 's' : ''} for ${nameSome(changedLeaves, changedLeaves.length)} no longer match${changedLeaves.length > 1 ? '' : 'es'} the version (which is unchanged): the batch record was edited.`,
    });
  }

  // Versions that claim this batch without being listed by it.
  if (claimCount > claimingMembers) {
    const members = new Set(doc.members);
    for await (const key of store.claimsOf(n)) {
      if (members.has(key)) continue;
      const parsed = parseVersionKey(key);
      add({
        kind: 'claim-not-listed',
        resource: parsed ? `${parsed.type}/${parsed.id}` : key,
        versionId: parsed?.versionId ?? null,
        explanation: `${key} says it was anchored in batch ${n}, but batch ${n} does not list it: nothing on the ledger vouches for it (it was added around this server, or removed from the batch's list).`,
      });
    }
  }
  return checked;
}

/** A member whose version document is gone: one version, or — when nothing of its resource is left — the whole resource. */
async function reportMissing(
  n: number,
  key: string,
  store: LedgerStore,
  removedResources: Set<string>,
  add: (f: Omit<Finding, 'batch'>) => void,
): Promise<void> {
  const parsed = parseVersionKey(key);
  if (!parsed) {
    add({
      kind: 'version-missing',
      resource: null,
      versionId: null,
      explanation: `Batch ${n} lists "${key}", which is not a version key: the batch record was edited.`,
    });
    return;
  }
  const resource = `${parsed.type}/${parsed.id}`;
  if (removedResources.has(resource)) return;
  const remains = await store.remainsOf(parsed.type, parsed.id);
  if (remains.versions === 0 && !remains.head) {
    removedResources.add(resource);
    const listed = await store.listedVersionsOf(parsed.type, parsed.id);
    const versions = [...new Set(listed.map((l) => l.versionId))];
    const batches = [...new Set(listed.map((l) => l.batch))];
    add({
      kind: 'resource-removed',
      resource,
      versionId: null,
      versions,
      explanation:
        `${resource} was deleted from the database with its whole history: ${versions.length === 1 ? 'its only version' : `all ${versions.length} versions`} ` +
        `(${versions.join(', ')}) and its current record are gone, yet ${batches.length === 1 ? `batch ${batches[0]}` : `batches ${batches.join(', ')}`} ` +
        'anchored them on the ledger. A deletion through the FHIR API keeps the history; this one did not go through it.',
    });
    return;
  }
  add({
    kind: 'version-missing',
    resource,
    versionId: parsed.versionId,
    explanation: `Version ${parsed.versionId} of ${resource} was anchored in batch ${n}, but it is missing from the database (${plural(remains.versions, 'other version')} of ${resource} remain): history was removed.`,
  });
}

/**
 * Which topic to audit, and on which network: the one given, or the one this database's worker recorded
 * (`ledger_state`). `network` narrows the choice to one network's topic (the server knows its own). Null topic:
 * nothing was ever anchored. Throws when the choice is ambiguous (several topics recorded, none given).
 */
export async function auditedTopic(
  store: LedgerStore,
  given: string | undefined,
  network?: string,
): Promise<{ topicId: string | null; network: string | null }> {
  const topics = (await store.topics()).filter((t) => network === undefined || t.network === network);
  if (given !== undefined) {
    const recorded = topics.find((t) => t.topicId === given)?.network ?? (await store.lastBatch())?.network ?? network ?? null;
    return { topicId: given, network: recorded };
  }
  if (topics.length > 1) {
    throw new Error(`this database anchored on several topics (${topics.map((t) => `${t.topicId} on ${t.network}`).join(', ')}): name one`);
  }
  if (topics.length === 1) return { topicId: topics[0]!.topicId, network: topics[0]!.network };
  // No recorded topic, but batches (a topic pinned with HEDERA_TOPIC_ID before it was recorded): the batches say.
  const last = await store.lastBatch();
  return last ? { topicId: last.topicId, network: last.network } : { topicId: null, network: network ?? null };
}
