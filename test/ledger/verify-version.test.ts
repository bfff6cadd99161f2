// The pure verification steps, one tampering at a time, without a network: a batch of five versions, its HCS
// message as a mirror node would serve it, and the checks $verify and the CLI share.
import t from 'tap';
import { encodeBatchMessage } from '../../src/ledger/batch-message.js';
import { computeCommitment, newSalt } from '../../src/ledger/commitment.js';
import { Backoff } from '../../src/ledger/backoff.js';
import {
  consensusTimestampToInstant,
  mirrorTransactionId,
  transactionPayer,
  transactionValidStartMs,
} from '../../src/ledger/hedera-ids.js';
import { buildTree, leafHash, rootFromInclusionPath, verifyInclusion } from '../../src/ledger/merkle.js';
import { hashscanLinks, networkLabel } from '../../src/ledger/network.js';
import type { MirrorTopicMessage } from '../../src/ledger/mirror-client.js';
import { parseProofPackage, ProofPackageError, type AnchorProof } from '../../src/ledger/proof-package.js';
import { computeRunningHashV3, initialRunningHash } from '../../src/ledger/running-hash.js';
import { checkHistory, verifyAgainstLedger, verifyLocally, type VersionEvidence } from '../../src/ledger/verify-version.js';

const TOPIC = '0.0.1001';
const TIMESTAMP = '1700000000.123456789';
const NOW = 1_700_000_000_000 + 10 * 60_000;

const versions = [1, 2, 3, 4, 5].map((i) => ({
  resource: {
    resourceType: 'Patient',
    id: `p${i}`,
    meta: { versionId: '1', lastUpdated: '2023-11-14T22:13:20.000Z' },
    name: [{ family: `F${i}` }],
  },
  salt: newSalt(),
}));
const commitments = versions.map((v) => computeCommitment(v.resource, v.salt));
const tree = buildTree(commitments.map(leafHash));
const message = encodeBatchMessage({ version: 1, batchNumber: 1, treeSize: 5, root: tree.root, previousRoot: null });
const runningHash = computeRunningHashV3({
  previousRunningHash: initialRunningHash(),
  payer: { shard: 0, realm: 0, num: 2 },
  topic: { shard: 0, realm: 0, num: 1001 },
  consensusSeconds: 1700000000n,
  consensusNanos: 123456789,
  sequenceNumber: 1,
  message,
});
const mirrorMessage: MirrorTopicMessage = {
  consensus_timestamp: TIMESTAMP,
  message: message.toString('base64'),
  payer_account_id: '0.0.2',
  running_hash: runningHash.toString('base64'),
  running_hash_version: 3,
  sequence_number: 1,
  topic_id: TOPIC,
  chunk_info: null,
};

function proofFor(i: number): AnchorProof {
  return {
    batch: 1,
    leafIndex: i,
    treeSize: 5,
    auditPath: tree.inclusionProof(i),
    root: tree.root,
    batchMessage: message,
    topicId: TOPIC,
    sequenceNumber: 1,
    consensusTimestamp: TIMESTAMP,
    runningHash,
    runningHashVersion: 3,
    transactionId: '0.0.2@1699999990.000000001',
    previousRunningHash: null,
  };
}

function evidence(i: number, change: Partial<VersionEvidence> = {}): VersionEvidence {
  return { resource: versions[i]!.resource, salt: versions[i]!.salt, recordedCommitment: commitments[i]!, proof: proofFor(i), ...change };
}

function run(e: VersionEvidence, ledger: Partial<Parameters<typeof verifyAgainstLedger>[2]> = {}) {
  return verifyAgainstLedger(e, verifyLocally(e), {
    message: mirrorMessage,
    previousRunningHash: initialRunningHash(),
    now: NOW,
    ...ledger,
  });
}

t.test('an untouched version is anchored, every step recomputed', async (t) => {
  for (let i = 0; i < 5; i++) {
    const r = run(evidence(i));
    t.equal(r.status, 'anchored', `version ${i}`);
    t.same(r.reasons, []);
    t.same(r.computedRoot, tree.root);
    t.same(r.published?.root, tree.root);
  }
  const r = run(evidence(0));
  t.same(
    r.checks.map((c) => c.name),
    ['commitment', 'audit-path', 'published-root', 'consensus-timestamp', 'running-hash', 'running-hash-chain'],
  );
  t.match(r.checks.at(-1)!.detail, /initial \(zero\) running hash: matches/);
});

t.test('each kind of tampering fails with its reason', async (t) => {
  const edited = run(evidence(1, { resource: { ...versions[1]!.resource, name: [{ family: 'Forged' }] } }));
  t.equal(edited.status, 'failed');
  t.match(edited.reasons[0], /changed after it was written/);

  t.match(run(evidence(1, { salt: newSalt() })).reasons[0], /changed after it was written/);

  const path = proofFor(2);
  path.auditPath[0] = Buffer.alloc(32, 9);
  t.match(run(evidence(2, { proof: path })).reasons.join(), /folds along its audit path/);

  const index = { ...proofFor(2), leafIndex: 3 };
  t.equal(run(evidence(2, { proof: index })).status, 'failed', 'wrong leaf index');

  // Content, salt, commitment and root all rewritten consistently: only the ledger catches it.
  const forged = { ...versions[3]!.resource, name: [{ family: 'Rewritten' }] };
  const forgedCommitment = computeCommitment(forged, versions[3]!.salt);
  const forgedTree = buildTree(commitments.map((c, i) => leafHash(i === 3 ? forgedCommitment : c)));
  const rewritten = run({
    resource: forged,
    salt: versions[3]!.salt,
    recordedCommitment: forgedCommitment,
    proof: { ...proofFor(3), auditPath: forgedTree.inclusionProof(3), root: forgedTree.root },
  });
  t.equal(rewritten.status, 'failed');
  t.match(rewritten.reasons.join(), /publishes root .* but the version's audit path leads to/);

  t.match(
    run(evidence(0, { proof: { ...proofFor(0), consensusTimestamp: '1700000001.000000000' } })).reasons.join(),
    /consensus timestamp/,
  );
  t.match(run(evidence(0, { proof: { ...proofFor(0), runningHash: Buffer.alloc(48) } })).reasons.join(), /running hash/);
  t.match(run(evidence(0, { proof: { ...proofFor(0), treeSize: 6 } })).reasons.join(), /leaves|does not fit/);
});

t.test('a mirror serving something else, or nothing', async (t) => {
  const bad = { ...mirrorMessage, running_hash: Buffer.alloc(48, 1).toString('base64') };
  const chain = run(evidence(0, { proof: { ...proofFor(0), runningHash: Buffer.alloc(48, 1) } }), { message: bad });
  t.match(chain.reasons.join(), /recomputed from the topic's initial|recomputed/);
  t.equal(run(evidence(0), { message: { ...mirrorMessage, message: Buffer.from('hello').toString('base64') } }).status, 'failed');
  // Absent and recent: not yet on the mirror. Absent and old: failed. Something else at that time: failed.
  t.equal(run(evidence(0), { message: null, now: 1_700_000_000_000 + 30_000 }).status, 'pending');
  t.equal(run(evidence(0), { message: null }).status, 'failed');
  t.equal(
    run(evidence(0), { message: null, now: 1_700_000_000_000 + 30_000, messageAtTimestamp: { ...mirrorMessage, sequence_number: 7 } })
      .status,
    'failed',
  );
  // Not anchored yet: only the local checks.
  t.equal(verifyLocally(evidence(0, { proof: null })).status, 'pending');
});

t.test('history: missing versions are reported with their evidence', async (t) => {
  t.equal(checkHistory({ resource: 'Patient/x', present: [1, 2, 3], currentVersion: 3, anchored: [] }).ok, true);
  const gap = checkHistory({ resource: 'Patient/x', present: [1, 3], currentVersion: 3, anchored: [{ versionId: 2, batch: 4 }] });
  t.same(gap.missing, [2]);
  t.match(gap.detail, /version 2 is missing, but batch 4 anchored it/);
  const last = checkHistory({ resource: 'Patient/x', present: [1, 2], currentVersion: 2, anchored: [{ versionId: 3, batch: 9 }] });
  t.same(last.missing, [3], 'a deleted last version is seen through its batch listing');
  const head = checkHistory({ resource: 'Patient/x', present: [1], currentVersion: 2, anchored: [] });
  t.same(head.missing, [2], 'and through the head');
});

t.test('the fold gives the root exactly where RFC 9162 verification succeeds', async (t) => {
  for (let n = 1; n <= 20; n++) {
    const leaves = Array.from({ length: n }, (_, i) => leafHash(Buffer.from([i])));
    const tr = buildTree(leaves);
    for (let i = 0; i < n; i++) {
      const path = tr.inclusionProof(i);
      t.same(rootFromInclusionPath(leaves[i]!, i, n, path), tr.root);
      t.ok(verifyInclusion(leaves[i]!, i, n, path, tr.root));
    }
  }
  t.equal(rootFromInclusionPath(Buffer.alloc(32), 5, 5, []), null);
  t.equal(rootFromInclusionPath(Buffer.alloc(31), 0, 1, []), null);
});

t.test('Hedera id and timestamp forms', async (t) => {
  t.equal(mirrorTransactionId('0.0.2@1700000000.000000001'), '0.0.2-1700000000-000000001');
  t.equal(mirrorTransactionId('0.0.2-1700000000-000000001'), '0.0.2-1700000000-000000001');
  t.equal(mirrorTransactionId('nope'), null);
  t.equal(transactionPayer('0.0.1234@1700000000.5'), '0.0.1234');
  t.equal(transactionValidStartMs('0.0.2@1700000000.250000000'), 1_700_000_000_250);
  t.equal(consensusTimestampToInstant('1700000000.123456789'), '2023-11-14T22:13:20.123456789Z');
  t.equal(consensusTimestampToInstant('1700000000.1'), null, 'nine digits, exactly as the mirror writes them');
});

t.test('network labels and HashScan links', async (t) => {
  t.equal(networkLabel('local'), 'local (not Hedera)');
  t.equal(networkLabel('mainnet'), 'mainnet');
  t.same(hashscanLinks('testnet', '0.0.5', '1700000000.000000001'), {
    transaction: 'https://hashscan.io/testnet/transaction/1700000000.000000001',
    topic: 'https://hashscan.io/testnet/topic/0.0.5',
  });
  t.equal(hashscanLinks('local (not Hedera)', '0.0.5', '1700000000.000000001'), null, 'HashScan knows only public networks');
});

t.test('proof packages are checked before use', async (t) => {
  t.throws(() => parseProofPackage({ format: 'x' }), ProofPackageError);
  t.throws(() => parseProofPackage({ format: 'fhir-ledger-proof', formatVersion: 2 }), /formatVersion 2 is not supported/);
  const base = {
    format: 'fhir-ledger-proof',
    formatVersion: 1,
    network: 'testnet',
    mirrorUrl: null,
    resource: { type: 'Patient', id: 'p' },
    scope: 'all',
    history: { currentVersion: 1, anchoredVersions: [] },
    versions: [{ versionId: 1, resource: {}, salt: 'zz', commitment: '00'.repeat(32), status: 'pending', proof: null }],
  };
  t.throws(() => parseProofPackage(base), /salt must be 64 lowercase hex digits/);
  t.throws(
    () => parseProofPackage({ ...base, versions: [{ ...base.versions[0], salt: '00'.repeat(32), status: 'anchored' }] }),
    /anchored but has no proof/,
  );
  t.equal(parseProofPackage({ ...base, versions: [{ ...base.versions[0], salt: '00'.repeat(32) }] }).versions.length, 1);
});

t.test('backoff doubles to its ceiling and resets', async (t) => {
  const b = new Backoff(100, 1000, () => 1);
  t.same([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  t.equal(b.next(), 100);
  const jittered = new Backoff(100, 1000, () => 0);
  jittered.next();
  t.equal(jittered.next(), 100, 'jitter never goes below the minimum');
});
