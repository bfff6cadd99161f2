// The on-demand proof trees: built from a batch's stored leaves, kept in a bounded LRU keyed by the leaves'
// digest, never answered from memory once the stored leaves change, and only for anchored batches.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { BatchTrees, type BatchLeaves } from '../../src/ledger/batch-trees.js';
import { buildTree, leafHash, verifyInclusion } from '../../src/ledger/merkle.js';

function batchOf(size: number): BatchLeaves {
  const leaves = randomBytes(32 * size);
  const root = buildTree(Array.from({ length: size }, (_, i) => leafHash(leaves.subarray(i * 32, (i + 1) * 32)))).root;
  return { root, size, leaves };
}

t.test('proofs from stored leaves; cached; rebuilt when the leaves change; bounded', async (t) => {
  const stored = new Map<number, BatchLeaves>([1, 2, 3, 4].map((n) => [n, batchOf(5 + n)]));
  let loads = 0;
  const trees = new BatchTrees(async (n) => {
    loads++;
    const b = stored.get(n);
    return b ? { ...b, leaves: Buffer.from(b.leaves) } : null;
  }, 2);

  const one = (await trees.tree({ _id: 1, state: 'anchored' }))!;
  t.ok(one.leavesGiveRoot);
  const b1 = stored.get(1)!;
  for (let i = 0; i < b1.size; i++) {
    const leaf = leafHash(b1.leaves.subarray(i * 32, (i + 1) * 32));
    t.ok(verifyInclusion(leaf, i, b1.size, one.tree.inclusionProof(i), b1.root), `leaf ${i}: its proof verifies against the stored root`);
  }
  t.equal(trees.built, 1);
  await trees.tree({ _id: 1, state: 'anchored' });
  t.equal(trees.built, 1, 'asked again: answered from the cache');
  t.equal(loads, 2, 'but the leaves are read each time');

  // The stored leaves change (a restore, or tampering): a new tree, which says it no longer gives the root.
  const changed = Buffer.from(b1.leaves);
  changed[0] = changed[0]! ^ 0xff;
  stored.set(1, { ...b1, leaves: changed });
  const after = (await trees.tree({ _id: 1, state: 'anchored' }))!;
  t.equal(trees.built, 2, 'rebuilt');
  t.notOk(after.leavesGiveRoot, 'the changed leaves do not give the stored root');

  t.equal(await trees.tree({ _id: 2, state: 'submitted' }), null, 'a batch not anchored yet has no proofs');
  t.equal(await trees.tree({ _id: 9, state: 'anchored' }), null, 'nor a batch that is gone');
  stored.set(5, { ...batchOf(3), size: 4 });
  t.equal(await trees.tree({ _id: 5, state: 'anchored' }), null, 'nor one whose leaves do not fit its size');

  for (const n of [2, 3, 4]) await trees.tree({ _id: n, state: 'anchored' });
  t.equal(trees.size, 2, 'at most `capacity` trees are held');
  await trees.tree({ _id: 4, state: 'anchored' });
  t.equal(trees.built, 5, 'the most recent one is still held');
  await trees.tree({ _id: 2, state: 'anchored' });
  t.equal(trees.built, 6, 'the least recently used one was let go');
});
