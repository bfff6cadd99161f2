/**
 * The test vectors of docs/trust-model.md ("Test vectors") checked against the code, read from the page itself, so
 * that what a reader implements from the page and what the verifiers do cannot drift apart. The running-hash
 * vectors are real testnet messages (test/fixtures/hedera), so the byte layout the page spells out is Hedera's.
 */
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { decodeBatchMessage, encodeBatchMessage } from '../../src/ledger/batch-message.js';
import { canonicalJson } from '../../src/ledger/canonical-json.js';
import { computeCommitment } from '../../src/ledger/commitment.js';
import { entityNumbers, parseConsensusTimestamp } from '../../src/ledger/hedera-ids.js';
import { leafHash, merkleRoot, verifyInclusion } from '../../src/ledger/merkle.js';
import { computeRunningHashV3, runningHashV3Stream, type RunningHashV3Input } from '../../src/ledger/running-hash.js';

interface Vectors {
  commitment: { resource: Record<string, unknown>; canonical: string; salt: string; commitment: string };
  merkle: {
    commitments: string[];
    leafHashes: string[];
    root: string;
    proofs: Array<{ leafIndex: number; treeSize: number; auditPath: string[]; valid: boolean; why?: string }>;
  };
  batchMessage: { batch: number; size: number; root: string; prev: string | null; text: string };
  runningHash: Array<{
    source: string;
    previousRunningHash: string;
    payer: string;
    topic: string;
    consensusTimestamp: string;
    sequenceNumber: number;
    messageUtf8: string;
    stream?: string;
    runningHash: string;
  }>;
}

const page = await readFile(new URL('../../docs/trust-model.md', import.meta.url), 'utf8');
const block = /<!-- test-vectors:begin -->\s*```json\n([\s\S]*?)```\s*<!-- test-vectors:end -->/.exec(page);
const hex = (value: string): Buffer => Buffer.from(value, 'hex');

t.test('docs/trust-model.md carries its vectors', async (t) => {
  t.ok(block, 'the JSON block between the test-vectors markers');
});

const vectors = JSON.parse(block?.[1] ?? '{}') as Vectors;

t.test('commitment = SHA-256(salt || JCS(version))', async (t) => {
  const v = vectors.commitment;
  t.equal(canonicalJson(v.resource), v.canonical);
  t.equal(computeCommitment(v.resource, hex(v.salt)).toString('hex'), v.commitment);
});

t.test('leaves, root and audit paths, with RFC 9162 guards', async (t) => {
  const v = vectors.merkle;
  const leaves = v.commitments.map((c) => leafHash(hex(c)));
  t.same(
    leaves.map((l) => l.toString('hex')),
    v.leafHashes,
  );
  t.equal(merkleRoot(leaves).toString('hex'), v.root);
  t.equal(v.commitments[0], vectors.commitment.commitment, "the first leaf is the commitment vector's");
  for (const proof of v.proofs) {
    const leaf = leaves[Math.min(proof.leafIndex, leaves.length - 1)];
    t.equal(
      verifyInclusion(leaf, proof.leafIndex, proof.treeSize, proof.auditPath.map(hex), hex(v.root)),
      proof.valid,
      proof.why ?? `leaf ${proof.leafIndex}`,
    );
  }
  t.ok(
    v.proofs.some((p) => !p.valid && /outlasts/.test(p.why ?? '')) && v.proofs.some((p) => !p.valid && /below/.test(p.why ?? '')),
    'both guards have a vector',
  );
});

t.test('the first batch message: prev is null', async (t) => {
  const v = vectors.batchMessage;
  const encoded = encodeBatchMessage({
    version: 1,
    batchNumber: v.batch,
    treeSize: v.size,
    root: hex(v.root),
    previousRoot: v.prev === null ? null : hex(v.prev),
  });
  t.equal(encoded.toString('utf8'), v.text);
  t.equal(decodeBatchMessage(Buffer.from(v.text)).previousRoot, null);
});

t.test('running hash v3: the 211 bytes and their SHA-384, from real testnet messages', async (t) => {
  t.equal(vectors.runningHash.length, 2);
  for (const v of vectors.runningHash) {
    const time = parseConsensusTimestamp(v.consensusTimestamp)!;
    const input: RunningHashV3Input = {
      previousRunningHash: hex(v.previousRunningHash),
      payer: entityNumbers(v.payer)!,
      topic: entityNumbers(v.topic)!,
      consensusSeconds: time.seconds,
      consensusNanos: time.nanos,
      sequenceNumber: v.sequenceNumber,
      message: Buffer.from(v.messageUtf8, 'utf8'),
    };
    const stream = runningHashV3Stream(input);
    t.equal(stream.length, 211, `${v.source}: 211 bytes`);
    if (v.stream) t.equal(stream.toString('hex'), v.stream, `${v.source}: the stream, byte by byte`);
    t.equal(computeRunningHashV3(input).toString('hex'), v.runningHash, `${v.source}: the running hash`);
  }
  // The page's vectors are the fixture's real messages, as the mirror served them.
  const fixture = JSON.parse(await readFile(new URL('../fixtures/hedera/testnet-topic-0.0.4603900.json', import.meta.url), 'utf8')) as {
    messages: Array<{ sequence_number: number; running_hash: string; consensus_timestamp: string }>;
  };
  for (const v of vectors.runningHash) {
    const real = fixture.messages.find((m) => m.sequence_number === v.sequenceNumber)!;
    t.equal(Buffer.from(real.running_hash, 'base64').toString('hex'), v.runningHash, `${v.source}: as the testnet mirror served it`);
    t.equal(real.consensus_timestamp, v.consensusTimestamp);
  }
});
