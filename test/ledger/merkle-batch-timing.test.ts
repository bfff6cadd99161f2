// Proofs for a full batch of 10,000 leaves: correctness is asserted, timings are only reported
// (t.comment), never asserted, so a slow CI machine cannot make this test flaky.
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { buildTree, inclusionProof, leafHash, verifyInclusion } from '../../src/ledger/merkle.js';
import { computeCommitment, newSalt } from '../../src/ledger/commitment.js';

const N = 10_000;
const ms = (a: number, b: number): string => `${(b - a).toFixed(1)} ms`;

t.test(`all inclusion proofs for a batch of ${N} leaves`, async (t) => {
  const t0 = performance.now();
  const leaves = Array.from({ length: N }, (_, i) =>
    leafHash(computeCommitment({ resourceType: 'Patient', id: `p${i}`, meta: { versionId: '1' }, birthDate: '1970-01-01' }, newSalt())),
  );
  const t1 = performance.now();
  const tree = buildTree(leaves);
  const t2 = performance.now();
  const proofs = Array.from({ length: N }, (_, i) => tree.inclusionProof(i));
  const t3 = performance.now();
  const root = tree.root;
  let ok = 0;
  for (let i = 0; i < N; i++) if (verifyInclusion(leaves[i]!, i, N, proofs[i]!, root)) ok++;
  const t4 = performance.now();

  t.equal(ok, N, 'every proof verifies');
  // ceil(log2(10000)) = 14: no audit path is longer, and the leftmost one has exactly 14 elements.
  t.equal(Math.max(...proofs.map((p) => p.length)), 14);
  t.equal(proofs[0]!.length, 14);

  // The one-shot helper rebuilds the tree on each call (O(n) each): time a sample to show the gap.
  const sample = 50;
  const t5 = performance.now();
  for (let i = 0; i < sample; i++) {
    const p = inclusionProof(i * 199, leaves);
    if (p.length !== proofs[i * 199]!.length) t.fail('one-shot helper disagrees with the tree');
  }
  const t6 = performance.now();

  t.comment(`node ${process.version}, ${N} leaves`);
  t.comment(`commitments + leaf hashes: ${ms(t0, t1)}`);
  t.comment(`buildTree (all ${N - 1} node hashes): ${ms(t1, t2)}`);
  t.comment(`all ${N} inclusion proofs from the tree: ${ms(t2, t3)}`);
  t.comment(`verifying all ${N} proofs: ${ms(t3, t4)}`);
  t.comment(
    `one-shot inclusionProof(i, leaves): ${((t6 - t5) / sample).toFixed(2)} ms per call (x${N} = ~${((((t6 - t5) / sample) * N) / 1000).toFixed(1)} s)`,
  );
});
