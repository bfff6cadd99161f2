/**
 * fhir-ledger-verify-chain --topic 0.0.x --from N --to M --mirror URL
 *
 * Recomputes a topic's running-hash chain over messages N..M from any mirror node, and checks the batch
 * messages in it (one root per batch number, each `prev` matching the batch before). Plain text out; the exit
 * code says the outcome (./exit-codes.ts).
 */
import { parseArgs } from 'node:util';
import { consensusTimestampToInstant, isEntityId } from '../ledger/hedera-ids.js';
import { MirrorClient, MirrorUnavailableError } from '../ledger/mirror-client.js';
import { verifyChain } from '../ledger/verify-chain.js';
import { EXIT, type Output } from './exit-codes.js';

export const CHAIN_USAGE = `Usage: fhir-ledger-verify-chain --topic 0.0.x --from N --to M --mirror URL

Recomputes the HCS running hash of every message N..M of a topic (HCS running hash version 3) from the
mirror node's data, and checks the batch messages among them.

  --topic ID     the topic, e.g. 0.0.1234
  --from N       first sequence number (>= 1); message N-1 is read too, to start the chain
  --to M         last sequence number (>= N, at most N + 99999)
  --mirror URL   mirror node REST base URL, e.g. https://testnet.mirrornode.hedera.com
  -h, --help     this text

Exit codes: 0 chain intact (every running hash of N..M recomputed), 1 chain broken or batches
inconsistent, 2 usage error, 3 the mirror has not got all of N..M (yet), 4 mirror node unreachable,
5 not checked: some running hash could not be recomputed (e.g. the mirror withheld message N-1).`;

const MAX_RANGE = 100_000;

function positive(value: string | undefined, name: string): number {
  if (value === undefined || !/^[1-9]\d{0,15}$/.test(value)) throw new Error(`--${name} must be a sequence number >= 1`);
  return Number(value);
}

export async function runVerifyChain(argv: string[], out: Output, err: Output): Promise<number> {
  let topic: string;
  let from: number;
  let to: number;
  let mirrorUrl: string;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        topic: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        mirror: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      out.write(`${CHAIN_USAGE}\n`);
      return EXIT.VERIFIED;
    }
    if (!values.topic || !isEntityId(values.topic)) throw new Error('--topic must be a topic id such as 0.0.1234');
    topic = values.topic;
    from = positive(values.from, 'from');
    to = positive(values.to, 'to');
    if (to < from) throw new Error('--to must not be below --from');
    if (to - from >= MAX_RANGE) throw new Error(`at most ${MAX_RANGE} messages per run`);
    if (!values.mirror || !/^https?:\/\/\S+$/.test(values.mirror)) throw new Error('--mirror must be the http(s) URL of a mirror node');
    mirrorUrl = values.mirror;
  } catch (error) {
    err.write(`fhir-ledger-verify-chain: ${(error as Error).message}\n\n${CHAIN_USAGE}\n`);
    return EXIT.USAGE;
  }

  const mirror = new MirrorClient(mirrorUrl);
  out.write(`fhir-ledger-verify-chain: topic ${topic}, messages ${from}..${to}, mirror ${mirror.baseUrl}\n\n`);
  let result;
  try {
    result = await verifyChain(mirror, topic, from, to);
  } catch (error) {
    if (!(error instanceof MirrorUnavailableError)) throw error;
    out.write(`RESULT: MIRROR UNREACHABLE: ${error.message} (exit ${EXIT.MIRROR_UNREACHABLE})\n`);
    return EXIT.MIRROR_UNREACHABLE;
  }
  for (const e of result.entries) {
    const batch = e.batch ? `batch ${e.batch.batchNumber} root ${e.batch.root.toString('hex')} size ${e.batch.treeSize}` : '';
    const time = consensusTimestampToInstant(e.consensusTimestamp) ?? e.consensusTimestamp;
    out.write(`#${e.sequenceNumber}  ${time}  running hash ${e.runningHash}  ${batch}\n`);
    for (const note of e.notes) out.write(`    ${note}\n`);
  }
  for (const problem of result.problems) out.write(`FAIL ${problem}\n`);
  if (result.outcome === 'broken') {
    out.write(`\nRESULT: BROKEN (exit ${EXIT.MISMATCH})\n`);
    return EXIT.MISMATCH;
  }
  if (result.outcome === 'incomplete') {
    out.write(`\nRESULT: INCOMPLETE: the mirror has messages only up to ${result.lastAvailable} (exit ${EXIT.PENDING})\n`);
    return EXIT.PENDING;
  }
  const unchecked = result.entries.filter((e) => e.runningHash === 'unchecked').length;
  const recomputed = result.entries.length - unchecked;
  if (result.outcome === 'unchecked') {
    out.write(
      `\nRESULT: NOT CHECKED: ${unchecked} of ${result.entries.length} running hashes could not be recomputed ` +
        `(${recomputed} were); nothing contradicts the chain, but the range is not vouched for (exit ${EXIT.NOT_CHECKED})\n`,
    );
    return EXIT.NOT_CHECKED;
  }
  out.write(`\nRESULT: INTACT: ${recomputed} running hashes recomputed (exit ${EXIT.VERIFIED})\n`);
  return EXIT.VERIFIED;
}
