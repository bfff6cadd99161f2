// computeRunningHashV3 against real testnet messages published by Hedera (see the fixture's note).
import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  RUNNING_HASH_VERSION,
  computeRunningHashV3,
  initialRunningHash,
  type EntityNumbers,
} from '../../../src/dev/hedera/running-hash.js';
import type { MirrorTopicMessage } from '../../../src/ledger/mirror-client.js';

/** The fixture holds messages exactly as the mirror node serves them. */
type FixtureMessage = MirrorTopicMessage;

const fixture = JSON.parse(readFileSync(new URL('../../fixtures/hedera/testnet-topic-0.0.4603900.json', import.meta.url), 'utf8')) as {
  topic_id: string;
  messages: FixtureMessage[];
};

function entity(text: string): EntityNumbers {
  const [shard, realm, num] = text.split('.').map(BigInt);
  return { shard: shard!, realm: realm!, num: num! };
}

function recompute(previous: Buffer, m: FixtureMessage): Buffer {
  const [seconds, nanos] = m.consensus_timestamp.split('.');
  return computeRunningHashV3({
    previousRunningHash: previous,
    payer: entity(m.payer_account_id),
    topic: entity(m.topic_id),
    consensusSeconds: BigInt(seconds!),
    consensusNanos: Number(nanos),
    sequenceNumber: m.sequence_number,
    message: Buffer.from(m.message, 'base64'),
  });
}

t.test('reproduces running_hash n from running_hash n-1 for real testnet messages', async (t) => {
  t.equal(fixture.messages.length, 3);
  for (let i = 1; i < fixture.messages.length; i++) {
    const prev = fixture.messages[i - 1]!;
    const m = fixture.messages[i]!;
    t.equal(m.sequence_number, prev.sequence_number + 1, 'consecutive');
    t.equal(m.running_hash_version, RUNNING_HASH_VERSION);
    t.equal(recompute(Buffer.from(prev.running_hash, 'base64'), m).toString('base64'), m.running_hash, `seq ${m.sequence_number}`);
  }
});

t.test('sequence number 1 chains from 48 zero bytes', async (t) => {
  const first = fixture.messages[0]!;
  t.equal(first.sequence_number, 1);
  t.equal(recompute(initialRunningHash(), first).toString('base64'), first.running_hash);
});

t.test('every input field changes the hash', async (t) => {
  const prev = Buffer.from(fixture.messages[0]!.running_hash, 'base64');
  const m = fixture.messages[1]!;
  const good = recompute(prev, m).toString('base64');
  const variants: Array<[string, FixtureMessage]> = [
    ['message', { ...m, message: Buffer.from('Message 3').toString('base64') }],
    ['payer', { ...m, payer_account_id: '0.0.2617921' }],
    ['topic', { ...m, topic_id: '0.0.4603901' }],
    ['seconds', { ...m, consensus_timestamp: '1683553061.092158003' }],
    ['nanos', { ...m, consensus_timestamp: '1683553060.092158004' }],
    ['sequence number', { ...m, sequence_number: 3 }],
  ];
  for (const [what, v] of variants) t.not(recompute(prev, v).toString('base64'), good, what);
  const otherPrev = Buffer.from(prev);
  otherPrev[0] = otherPrev[0]! ^ 1;
  t.not(recompute(otherPrev, m).toString('base64'), good, 'previous hash');
});

t.test('rejects out-of-range inputs', async (t) => {
  const base = {
    previousRunningHash: initialRunningHash(),
    payer: { shard: 0, realm: 0, num: 2 },
    topic: { shard: 0, realm: 0, num: 1001 },
    consensusSeconds: 1,
    consensusNanos: 0,
    sequenceNumber: 1,
    message: Buffer.from('x'),
  };
  t.equal(computeRunningHashV3(base).length, 48);
  t.throws(() => computeRunningHashV3({ ...base, consensusNanos: 1_000_000_000 }), RangeError);
  t.throws(() => computeRunningHashV3({ ...base, consensusNanos: 1.5 }), RangeError);
  t.throws(() => computeRunningHashV3({ ...base, sequenceNumber: 2n ** 63n }), RangeError);
});

// That the running hash is pure (node:crypto only) is checked where it now lives: test/ledger/running-hash-shared.test.ts.
