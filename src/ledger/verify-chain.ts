/**
 * Checks a topic's running-hash chain over a range of sequence numbers against any mirror node: each message's
 * running hash must be what HCS v3 gives from the previous running hash and the message itself (./running-hash.ts,
 * the same function the local network uses to produce them). A mirror serving an altered, dropped or reordered
 * message cannot keep the chain intact, so a chain that holds from a running hash you trust (e.g. one in a
 * receipt, or the 48 zero bytes before message 1) vouches for every message after it.
 *
 * For messages that are batch messages it also checks the batches: one root per batch number (a resubmission
 * of the same root is fine, a different root is not), and each batch's `prev` equal to the root of the batch
 * before it when that batch is in the range.
 */
import { decodeBatchMessage, type BatchMessage } from './batch-message.js';
import { entityNumbers, parseConsensusTimestamp } from './hedera-ids.js';
import type { MirrorClient, MirrorTopicMessage } from './mirror-client.js';
import { RUNNING_HASH_VERSION, computeRunningHashV3, initialRunningHash } from './running-hash.js';

export interface ChainEntry {
  sequenceNumber: number;
  consensusTimestamp: string;
  /** ok: recomputed = published; broken: differs; unchecked: no previous hash or another running-hash version. */
  runningHash: 'ok' | 'broken' | 'unchecked';
  batch: BatchMessage | null;
  notes: string[];
}

export interface ChainVerification {
  entries: ChainEntry[];
  problems: string[];
  /** The mirror has no messages beyond this sequence number (when the range went past it). */
  lastAvailable: number | null;
  /**
   * intact: every running hash of the range recomputed and equal; broken: one differs, a message is missing inside
   * the range, or the batches disagree; incomplete: the mirror has not got the end of the range (yet); unchecked:
   * nothing contradicts the chain, but some running hash could not be recomputed (the mirror withheld the message
   * before the range, or a message uses another running-hash version), so the range is not vouched for.
   */
  outcome: 'intact' | 'broken' | 'incomplete' | 'unchecked';
}

/** HCS v3 running hash of message `m` after `previous`; null when the message's ids or timestamp are malformed. */
export function recomputeRunningHash(previous: Buffer, m: MirrorTopicMessage): Buffer | null {
  const payer = entityNumbers(m.payer_account_id);
  const topic = entityNumbers(m.topic_id);
  const time = parseConsensusTimestamp(m.consensus_timestamp);
  if (!payer || !topic || !time) return null;
  return computeRunningHashV3({
    previousRunningHash: previous,
    payer,
    topic,
    consensusSeconds: time.seconds,
    consensusNanos: time.nanos,
    sequenceNumber: m.sequence_number,
    message: Buffer.from(m.message, 'base64'),
  });
}

/** Verifies messages from..to (inclusive) of `topicId`. Throws MirrorUnavailableError when the mirror cannot be read. */
export async function verifyChain(mirror: MirrorClient, topicId: string, from: number, to: number): Promise<ChainVerification> {
  const start = Math.max(1, from - 1);
  const messages = await mirror.topicMessages(topicId, start, to);
  const bySequence = new Map(messages.map((m) => [m.sequence_number, m]));
  let previous: Buffer | null =
    from === 1 ? initialRunningHash() : bySequence.has(from - 1) ? Buffer.from(bySequence.get(from - 1)!.running_hash, 'base64') : null;
  const entries: ChainEntry[] = [];
  const problems: string[] = [];
  const roots = new Map<number, Buffer>();
  let lastAvailable: number | null = null;
  const highest = messages.length > 0 ? Math.max(...messages.map((m) => m.sequence_number)) : from - 1;

  for (let seq = from; seq <= to; seq++) {
    const m = bySequence.get(seq);
    if (!m) {
      if (seq > highest) {
        lastAvailable = highest;
        break;
      }
      problems.push(`message ${seq} is missing between ${seq - 1} and ${seq + 1}`);
      previous = null;
      continue;
    }
    const notes: string[] = [];
    const published = Buffer.from(m.running_hash, 'base64');
    let runningHash: ChainEntry['runningHash'] = 'unchecked';
    if (previous && m.running_hash_version === RUNNING_HASH_VERSION) {
      const recomputed = recomputeRunningHash(previous, m);
      runningHash = recomputed && recomputed.equals(published) ? 'ok' : 'broken';
      if (runningHash === 'broken') {
        problems.push(
          `message ${seq}: the running hash recomputed from message ${seq - 1} is ${recomputed?.toString('hex') ?? '(malformed message)'}, the mirror says ${published.toString('hex')}`,
        );
      }
    } else if (!previous) {
      notes.push(`not checked: no running hash before message ${seq}`);
    } else {
      notes.push(`not checked: running hash version ${m.running_hash_version}`);
    }
    previous = published;

    let batch: BatchMessage | null = null;
    try {
      batch = decodeBatchMessage(Buffer.from(m.message, 'base64'));
    } catch {
      notes.push('not a batch message');
    }
    if (batch) {
      const seen = roots.get(batch.batchNumber);
      if (seen && !seen.equals(batch.root)) {
        problems.push(
          `batch ${batch.batchNumber} appears twice with different roots (${seen.toString('hex')} and ${batch.root.toString('hex')})`,
        );
      } else if (seen) {
        notes.push(`batch ${batch.batchNumber} again with the same root (a resubmission after a restart)`);
      }
      const before = roots.get(batch.batchNumber - 1);
      if (before && batch.previousRoot && !before.equals(batch.previousRoot)) {
        problems.push(
          `batch ${batch.batchNumber} says the previous root was ${batch.previousRoot.toString('hex')}, but batch ${batch.batchNumber - 1} published ${before.toString('hex')}`,
        );
      }
      if (!seen) roots.set(batch.batchNumber, batch.root);
    }
    entries.push({ sequenceNumber: seq, consensusTimestamp: m.consensus_timestamp, runningHash, batch, notes });
  }
  const outcome =
    problems.length > 0
      ? 'broken'
      : lastAvailable !== null
        ? 'incomplete'
        : entries.some((e) => e.runningHash === 'unchecked')
          ? 'unchecked'
          : 'intact';
  return { entries, problems, lastAvailable, outcome };
}
