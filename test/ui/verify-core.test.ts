// The verification page's modules (src/verify-ui/browser), run in Node against the Node verifier (src/ledger) on the
// same inputs: the page is only trustworthy if it reaches the CLI's results, byte for byte and message for message.
// Node 20 has WebCrypto as globalThis.crypto, so the browser code runs here unchanged.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import * as nodeBatch from '../../src/ledger/batch-message.js';
import { computeCommitment as nodeCommitment } from '../../src/ledger/commitment.js';
import { entityNumbers, parseConsensusTimestamp } from '../../src/ledger/hedera-ids.js';
import { buildTree, leafHash as nodeLeafHash, rootFromInclusionPath as nodeRoot } from '../../src/ledger/merkle.js';
import { ProofPackageError as NodeProofPackageError, parseProofPackage as nodeParse } from '../../src/ledger/proof-package.js';
import { computeRunningHashV3 as nodeRunningHash } from '../../src/ledger/running-hash.js';
import { checkHistory as nodeCheckHistory } from '../../src/ledger/verify-version.js';
import { decodeBatchMessage } from '../../src/verify-ui/browser/batch-message.js';
import { base64ToBytes, bytesToHex } from '../../src/verify-ui/browser/bytes.js';
import { computeCommitment } from '../../src/verify-ui/browser/commitment.js';
import { humanConsensusTime } from '../../src/verify-ui/browser/format.js';
import { jsonDiff } from '../../src/verify-ui/browser/json-diff.js';
import { leafHash, rootFromInclusionPath } from '../../src/verify-ui/browser/merkle.js';
import { parseProofPackage } from '../../src/verify-ui/browser/proof-package.js';
import { computeRunningHashV3, initialRunningHash } from '../../src/verify-ui/browser/running-hash.js';
import { checkHistory } from '../../src/verify-ui/browser/verify.js';
import { bundleScript } from '../../src/verify-ui/build-page.js';

const hexOf = (b: Uint8Array | null): string | null => (b ? Buffer.from(b).toString('hex') : null);

t.test('base64 is decoded as leniently as Buffer.from(text, "base64")', async (t) => {
  const samples = ['', 'TWVzc2FnZSAx', 'TWVzc2FnZSAx\n', 'TW Vz', 'TWVzc2E=', 'TWVzc2E=AAAA', '-_-_', 'a', 'ab', 'abc', '%%%', '!TWVz!'];
  for (let i = 0; i < 50; i++) samples.push(randomBytes(i).toString('base64'), randomBytes(i).toString('base64url'));
  for (const s of samples) t.equal(bytesToHex(base64ToBytes(s)), Buffer.from(s, 'base64').toString('hex'), JSON.stringify(s));
});

t.test('commitment: the same bytes as src/ledger/commitment.ts', async (t) => {
  const resources = [
    { resourceType: 'Patient', id: 'a', meta: { versionId: '1', lastUpdated: '2025-01-01T00:00:00.000Z' }, name: [{ family: 'Müller' }] },
    { resourceType: 'Observation', valueQuantity: { value: 1.5e-7 }, note: [{ text: '€ \u2028 😀' }], z: 1, a: [true, null, 10] },
  ];
  for (const resource of resources) {
    const salt = randomBytes(32);
    t.equal(hexOf(await computeCommitment(resource, salt)), hexOf(nodeCommitment(resource, salt)));
  }
  await t.rejects(computeCommitment({}, new Uint8Array(31)), /exactly 32 bytes/);
  await t.rejects(computeCommitment({ s: '\ud800' }, new Uint8Array(32)), /lone surrogate/);
});

t.test('Merkle audit path: the same root, or the same refusal, as src/ledger/merkle.ts', async (t) => {
  let compared = 0;
  for (let size = 1; size <= 19; size++) {
    const leaves = Array.from({ length: size }, () => nodeLeafHash(randomBytes(32)));
    const tree = buildTree(leaves);
    for (let index = 0; index < size; index++) {
      const path = tree.inclusionProof(index);
      const cases: Array<[number, number, Buffer[]]> = [
        [index, size, path],
        [index, size, [...path, randomBytes(32)]], // outlasts the tree
        [index, size, path.slice(0, -1)], // ends before the root
        [size, size, path], // index not below the size
        [index, size + 1, path],
        [index, Math.max(1, size - 1), path],
      ];
      for (const [i, n, p] of cases) {
        const expected = nodeRoot(leaves[index]!, i, n, p);
        t.equal(hexOf(await rootFromInclusionPath(leaves[index]!, i, n, p)), hexOf(expected), `leaf ${i} of ${n}, ${p.length} hashes`);
        compared++;
      }
      t.equal(hexOf(await rootFromInclusionPath(leaves[index]!, index, size, path)), hexOf(tree.root));
    }
  }
  const c = randomBytes(32);
  t.equal(hexOf(await leafHash(c)), hexOf(nodeLeafHash(c)), 'leaf hash');
  t.ok(compared > 500);
});

t.test('running hash v3: reproduces Hedera testnet messages and src/ledger/running-hash.ts', async (t) => {
  const fixture = JSON.parse(readFileSync(new URL('../fixtures/hedera/testnet-topic-0.0.4603900.json', import.meta.url), 'utf8')) as {
    messages: Array<{
      consensus_timestamp: string;
      message: string;
      payer_account_id: string;
      running_hash: string;
      sequence_number: number;
      topic_id: string;
    }>;
  };
  let previous = initialRunningHash();
  for (const m of fixture.messages) {
    const time = parseConsensusTimestamp(m.consensus_timestamp)!;
    const input = {
      previousRunningHash: previous,
      payer: entityNumbers(m.payer_account_id)!,
      topic: entityNumbers(m.topic_id)!,
      consensusSeconds: time.seconds,
      consensusNanos: time.nanos,
      sequenceNumber: m.sequence_number,
      message: base64ToBytes(m.message),
    };
    const recomputed = await computeRunningHashV3(input);
    t.equal(Buffer.from(recomputed).toString('base64'), m.running_hash, `testnet message ${m.sequence_number}`);
    t.equal(hexOf(recomputed), hexOf(nodeRunningHash(input)));
    previous = recomputed;
  }
});

t.test('batch message: accepts what the server writes, refuses what src/ledger refuses, with the same words', async (t) => {
  const root = randomBytes(32);
  const prev = randomBytes(32);
  const good = nodeBatch.encodeBatchMessage({ version: 1, batchNumber: 7, treeSize: 12, root, previousRoot: prev });
  const decoded = decodeBatchMessage(good);
  t.same([decoded.batchNumber, decoded.treeSize, hexOf(decoded.root), hexOf(decoded.previousRoot)], [7, 12, hexOf(root), hexOf(prev)]);
  const text = good.toString('utf8');
  const bad = [
    text.replace('{', '{ '),
    text.replace('"v":1', '"v":2'),
    text.replace('"size":12', '"size":12.0'),
    text.replace('"batch":7', '"batch":1'),
    text.replace('"root":"', '"root":"A').slice(0, -1),
    text.replace(',"v":1}', ',"v":1,"x":0}'),
    '[]',
    'not json',
    `\ufeff${text}`,
    'x'.repeat(1025),
  ];
  for (const b of bad) {
    let expected = '';
    let actual = '';
    try {
      nodeBatch.decodeBatchMessage(Buffer.from(b, 'utf8'));
    } catch (error) {
      expected = (error as Error).message;
    }
    try {
      decodeBatchMessage(new TextEncoder().encode(b));
    } catch (error) {
      actual = (error as Error).message;
    }
    t.not(expected, '', `the server refuses ${JSON.stringify(b.slice(0, 40))}`);
    t.equal(actual, expected, JSON.stringify(b.slice(0, 40)));
  }
});

t.test('proof package: the same acceptance and the same error messages as src/ledger/proof-package.ts', async (t) => {
  const proof = {
    algorithm: 'RFC9162-SHA256',
    batch: 1,
    leafIndex: 0,
    treeSize: 1,
    auditPath: [],
    root: 'a'.repeat(64),
    batchMessage: '{}',
    topicId: '0.0.1001',
    sequenceNumber: 1,
    consensusTimestamp: '1700000000.000000001',
    runningHash: 'b'.repeat(96),
    runningHashVersion: 3,
    transactionId: '0.0.2@1700000000.000000000',
    previousRunningHash: null,
    hashscan: null,
  };
  const good = {
    format: 'fhir-ledger-proof',
    formatVersion: 1,
    generatedAt: '2025-01-01T00:00:00.000Z',
    generatedBy: 'http://x',
    network: 'testnet',
    mirrorUrl: null,
    resource: { type: 'Patient', id: 'p' },
    scope: 'all',
    history: { currentVersion: 1, anchoredVersions: [{ versionId: 1, batch: 1, leafIndex: 0 }] },
    versions: [
      { versionId: 1, resource: { resourceType: 'Patient' }, salt: 'c'.repeat(64), commitment: 'd'.repeat(64), status: 'anchored', proof },
    ],
  };
  const variants: Array<[string, unknown]> = [
    ['good', good],
    ['not an object', []],
    ['format', { ...good, format: 'x' }],
    ['formatVersion', { ...good, formatVersion: 2 }],
    ['uppercase salt', { ...good, versions: [{ ...good.versions[0], salt: 'C'.repeat(64) }] }],
    ['anchored without proof', { ...good, versions: [{ ...good.versions[0], proof: null }] }],
    ['audit path hash', { ...good, versions: [{ ...good.versions[0], proof: { ...proof, auditPath: ['ab'] } }] }],
    ['negative leaf', { ...good, versions: [{ ...good.versions[0], proof: { ...proof, leafIndex: -1 } }] }],
    ['running hash length', { ...good, versions: [{ ...good.versions[0], proof: { ...proof, runningHash: 'b'.repeat(64) } }] }],
    ['history', { ...good, history: { currentVersion: 0, anchoredVersions: [] } }],
    ['no network', { ...good, network: '' }],
  ];
  for (const [label, json] of variants) {
    let expected = 'accepted';
    let actual = 'accepted';
    try {
      nodeParse(json);
    } catch (error) {
      t.ok(error instanceof NodeProofPackageError);
      expected = (error as Error).message;
    }
    try {
      const parsed = parseProofPackage(json);
      if (label === 'good') t.equal(bytesToHex(parsed.versions[0]!.salt), 'c'.repeat(64));
    } catch (error) {
      actual = (error as Error).message;
    }
    t.equal(actual, expected, label);
  }
});

t.test('history check: the same verdicts and words as src/ledger/verify-version.ts', async (t) => {
  const cases = [
    { resource: 'Patient/p', present: [1, 2, 3], currentVersion: 3, anchored: [] },
    { resource: 'Patient/p', present: [1, 3], currentVersion: 3, anchored: [{ versionId: 2, batch: 4 }] },
    { resource: 'Patient/p', present: [1], currentVersion: 3, anchored: [] },
    { resource: 'Patient/p', present: [2], currentVersion: null, anchored: [] },
    { resource: 'Patient/p', present: [], currentVersion: null, anchored: [] },
  ];
  for (const c of cases) t.same(checkHistory(c), nodeCheckHistory(c), JSON.stringify(c));
});

t.test('json diff: added, removed and changed paths with old and new values', async (t) => {
  const before = { name: [{ family: 'Original', given: ['Test'] }], meta: { versionId: '1' }, gender: 'female', 'odd-key': 1 };
  const after = { name: [{ family: 'Second', given: ['Test', 'Two'] }], meta: { versionId: '2' }, birthDate: '1980-01-02', 'odd-key': 1 };
  t.same(jsonDiff(before, after), [
    { path: 'birthDate', kind: 'added', after: '1980-01-02' },
    { path: 'gender', kind: 'removed', before: 'female' },
    { path: 'meta.versionId', kind: 'changed', before: '1', after: '2' },
    { path: 'name[0].family', kind: 'changed', before: 'Original', after: 'Second' },
    { path: 'name[0].given[1]', kind: 'added', after: 'Two' },
  ]);
  t.same(jsonDiff({ a: { 'x y': 1 } }, { a: { 'x y': [1] } }), [{ path: 'a["x y"]', kind: 'changed', before: 1, after: [1] }]);
  t.same(jsonDiff(before, structuredClone(before)), []);
});

t.test('consensus time for people: UTC, all nine digits', async (t) => {
  t.equal(humanConsensusTime('1700000000.123456789'), 'Tuesday 14 November 2023, 22:13:20.123456789 UTC');
  t.equal(humanConsensusTime('1700000000.5'), null);
});

t.test('the bundle is browser code: no Node built-ins, no Buffer, no require', async (t) => {
  const script = await bundleScript();
  t.notMatch(script, /\bBuffer\b/);
  t.notMatch(script, /\brequire\(/);
  t.notMatch(script, /\bprocess\./);
  t.notMatch(script, /["']node:/);
  t.notMatch(script, /<\/script|<!--/i, 'can be inlined in <script>');
});
