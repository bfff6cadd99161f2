import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  buildTree,
  consistencyProof,
  emptyRoot,
  inclusionProof,
  leafHash,
  merkleRoot,
  nodeHash,
  verifyConsistency,
  verifyInclusion,
} from '../../src/ledger/merkle.js';

// ---------------------------------------------------------------------------------------------
// Known-answer vectors (Certificate Transparency / Trillian 8-leaf tree); see the fixture's source.

interface Vectors {
  hasher: {
    emptyRoot: string;
    emptyLeaf: { data: string; leafHash: string };
    leaf: { dataAscii: string; leafHash: string };
    node: { leftAscii: string; rightAscii: string; nodeHash: string };
  };
  leaves: string[];
  roots: string[];
  inclusionProofs: Array<{ index: number; size: number; path: string[] }>;
  consistencyProofs: Array<{ m: number; n: number; proof: string[] }>;
}
const V = JSON.parse(readFileSync(new URL('../fixtures/ledger/merkle/rfc6962-vectors.json', import.meta.url), 'utf8')) as Vectors;
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const hexes = (a: readonly Buffer[]): string[] => a.map((b) => b.toString('hex'));
const vLeafHashes = V.leaves.map((d) => leafHash(hex(d)));
const vRoot = (size: number): Buffer => hex(V.roots[size - 1]!);

const sha = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const SOME_HASH = hex('abacaba000000000000000000000000000000000000000000060061e00123456');

t.test('hasher vectors', async (t) => {
  t.equal(emptyRoot().toString('hex'), V.hasher.emptyRoot, 'empty tree = SHA-256("")');
  t.equal(merkleRoot([]).toString('hex'), V.hasher.emptyRoot, 'merkleRoot([])');
  t.equal(buildTree([]).root.toString('hex'), V.hasher.emptyRoot, 'buildTree([]).root');
  t.equal(leafHash(hex(V.hasher.emptyLeaf.data)).toString('hex'), V.hasher.emptyLeaf.leafHash, 'empty leaf');
  t.equal(leafHash(Buffer.from(V.hasher.leaf.dataAscii)).toString('hex'), V.hasher.leaf.leafHash, 'leaf');
  t.equal(
    nodeHash(Buffer.from(V.hasher.node.leftAscii), Buffer.from(V.hasher.node.rightAscii)).toString('hex'),
    V.hasher.node.nodeHash,
    'node',
  );
  t.notSame(leafHash(Buffer.alloc(0)), emptyRoot(), 'empty leaf differs from empty tree');
  // Domain separation: a leaf over (left || right) does not collide with the node over them.
  const [a, b] = [vLeafHashes[0]!, vLeafHashes[1]!];
  t.notSame(leafHash(Buffer.concat([a, b])), nodeHash(a, b));
  t.notSame(nodeHash(a, b), nodeHash(b, a), 'order matters');
});

t.test('roots of the trees over the first 1..8 vector leaves', async (t) => {
  for (let size = 1; size <= 8; size++) {
    const leaves = vLeafHashes.slice(0, size);
    t.equal(merkleRoot(leaves).toString('hex'), V.roots[size - 1], `merkleRoot size ${size}`);
    const tree = buildTree(leaves);
    t.equal(tree.size, size);
    t.equal(tree.root.toString('hex'), V.roots[size - 1], `buildTree size ${size}`);
  }
});

t.test('inclusion proof vectors: generation, verification, and corrupted probes fail', async (t) => {
  for (const v of V.inclusionProofs) {
    const leaves = vLeafHashes.slice(0, v.size);
    const name = `leaf ${v.index} of ${v.size}`;
    t.same(hexes(inclusionProof(v.index, leaves)), v.path, `${name}: PATH`);
    t.same(hexes(buildTree(leaves).inclusionProof(v.index)), v.path, `${name}: tree.inclusionProof`);
    const path = v.path.map(hex);
    const lh = vLeafHashes[v.index]!;
    const root = vRoot(v.size);
    t.equal(verifyInclusion(lh, v.index, v.size, path, root), true, `${name}: verifies`);

    // Same probes as the upstream verifier tests (transparency-dev/merkle proof/verify_test.go).
    const probes: Array<[string, Buffer, number, number, Buffer[], Buffer]> = [
      ['index - 1', lh, v.index - 1, v.size, path, root],
      ['index + 1', lh, v.index + 1, v.size, path, root],
      ['index ^ 2', lh, v.index ^ 2, v.size, path, root],
      ['size * 2', lh, v.index, v.size * 2, path, root],
      ['size / 2', lh, v.index, Math.floor(v.size / 2), path, root],
      ['wrong leaf', Buffer.from('WrongLeaf'), v.index, v.size, path, root],
      ['other leaf', sha(Buffer.from('x')), v.index, v.size, path, root],
      ['empty root', lh, v.index, v.size, path, emptyRoot()],
      ['random root', lh, v.index, v.size, path, SOME_HASH],
      ['trailing garbage', lh, v.index, v.size, [...path, Buffer.alloc(0)], root],
      ['trailing root', lh, v.index, v.size, [...path, root], root],
      ['preceding garbage', lh, v.index, v.size, [Buffer.alloc(0), ...path], root],
      ['preceding root', lh, v.index, v.size, [root, ...path], root],
    ];
    path.forEach((_, i) => {
      const wrong = path.map((p) => Buffer.from(p));
      wrong[i]![0]! ^= 8;
      probes.push([`modified path[${i}] bit 3`, lh, v.index, v.size, wrong, root]);
    });
    if (path.length > 0) probes.push(['removed component', lh, v.index, v.size, path.slice(0, -1), root]);
    if (path.length > 1) {
      probes.push(['inserted component', lh, v.index, v.size, [path[0]!, SOME_HASH, ...path.slice(1)], root]);
    }
    for (const [desc, l, i, s, p, r] of probes) {
      t.equal(verifyInclusion(l, i, s, p, r), false, `${name}: ${desc} rejected`);
    }
  }
});

t.test('consistency proof vectors: generation, verification, and corrupted probes fail', async (t) => {
  for (const v of V.consistencyProofs) {
    const leaves = vLeafHashes.slice(0, v.n);
    const name = `${v.m} -> ${v.n}`;
    t.same(hexes(consistencyProof(v.m, leaves)), v.proof, `${name}: PROOF`);
    t.same(hexes(buildTree(leaves).consistencyProof(v.m)), v.proof, `${name}: tree.consistencyProof`);
    const proof = v.proof.map(hex);
    const r1 = vRoot(v.m);
    const r2 = vRoot(v.n);
    t.equal(verifyConsistency(v.m, v.n, r1, r2, proof), true, `${name}: verifies`);
    if (proof.length === 0) continue;

    const probes: Array<[string, number, number, Buffer, Buffer, Buffer[]]> = [
      ['m - 1', v.m - 1, v.n, r1, r2, proof],
      ['m + 1', v.m + 1, v.n, r1, r2, proof],
      ['m ^ 2', v.m ^ 2, v.n, r1, r2, proof],
      ['n * 2', v.m, v.n * 2, r1, r2, proof],
      ['n / 2', v.m, Math.floor(v.n / 2), r1, r2, proof],
      ['wrong old root', v.m, v.n, SOME_HASH, r2, proof],
      ['wrong new root', v.m, v.n, r1, SOME_HASH, proof],
      ['swapped roots', v.m, v.n, r2, r1, proof],
      ['empty proof', v.m, v.n, r1, r2, []],
      ['trailing garbage', v.m, v.n, r1, r2, [...proof, Buffer.alloc(0)]],
      ['trailing old root', v.m, v.n, r1, r2, [...proof, r1]],
      ['trailing new root', v.m, v.n, r1, r2, [...proof, r2]],
      ['preceding garbage', v.m, v.n, r1, r2, [Buffer.alloc(0), ...proof]],
      ['preceding old root', v.m, v.n, r1, r2, [r1, ...proof]],
      ['preceding new root', v.m, v.n, r1, r2, [r2, ...proof]],
      ['preceding proof[0]', v.m, v.n, r1, r2, [proof[0]!, ...proof]],
      ['truncated proof', v.m, v.n, r1, r2, proof.slice(0, -1)],
    ];
    proof.forEach((_, i) => {
      const wrong = proof.map((p) => Buffer.from(p));
      wrong[i]![0]! ^= 16;
      probes.push([`modified proof[${i}] bit 4`, v.m, v.n, r1, r2, wrong]);
    });
    for (const [desc, m, n, a, b, p] of probes) {
      t.equal(verifyConsistency(m, n, a, b, p), false, `${name}: ${desc} rejected`);
    }
  }
});

t.test('consistency edge cases', async (t) => {
  const r = vRoot(3);
  t.equal(verifyConsistency(0, 0, emptyRoot(), emptyRoot(), []), true, '0 -> 0');
  t.equal(verifyConsistency(0, 3, emptyRoot(), r, []), true, 'empty tree is a prefix of every tree');
  t.equal(verifyConsistency(0, 3, SOME_HASH, r, []), false, '0 -> n needs the empty-tree root');
  t.equal(verifyConsistency(0, 3, emptyRoot(), r, [SOME_HASH]), false, '0 -> n needs an empty proof');
  t.equal(verifyConsistency(3, 3, r, r, []), true, 'n -> n, same root');
  t.equal(verifyConsistency(3, 3, r, SOME_HASH, []), false, 'n -> n, different roots');
  t.equal(verifyConsistency(3, 3, r, r, [r]), false, 'n -> n with a non-empty proof');
  t.equal(verifyConsistency(4, 3, vRoot(4), r, []), false, 'm > n');
  t.equal(verifyConsistency(1, 2, vRoot(1), vRoot(2), []), false, 'm < n with empty proof');
  t.same(consistencyProof(0, vLeafHashes), [], 'PROOF(0, D[n]) = {}');
  t.same(consistencyProof(8, vLeafHashes), [], 'PROOF(n, D[n]) = {}');
});

// ---------------------------------------------------------------------------------------------
// Reference oracle: the RFC 9162 2.1 definitions transcribed literally (recursive, slicing).

function refMTH(d: Buffer[]): Buffer {
  if (d.length === 0) return sha();
  if (d.length === 1) return d[0]!; // d holds leaf hashes: MTH({d0}) = leaf hash
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return sha(Buffer.from([1]), refMTH(d.slice(0, k)), refMTH(d.slice(k)));
}
function refPATH(m: number, d: Buffer[]): Buffer[] {
  if (d.length === 1) return [];
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return m < k ? [...refPATH(m, d.slice(0, k)), refMTH(d.slice(k))] : [...refPATH(m - k, d.slice(k)), refMTH(d.slice(0, k))];
}
function refSUBPROOF(m: number, d: Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [refMTH(d)];
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return m <= k
    ? [...refSUBPROOF(m, d.slice(0, k), b), refMTH(d.slice(k))]
    : [...refSUBPROOF(m - k, d.slice(k), false), refMTH(d.slice(0, k))];
}

function leavesFor(seed: string, n: number): Buffer[] {
  // Leaf data = a 32-byte pseudo-commitment, as in the ledger.
  return Array.from({ length: n }, (_, i) => leafHash(sha(Buffer.from(`${seed}:${i}`))));
}

t.test('tree matches the literal RFC definitions (MTH, PATH, PROOF) for sizes 1..70', async (t) => {
  const all = leavesFor('oracle', 70);
  let mismatches = 0;
  let checks = 0;
  for (let n = 1; n <= 70; n++) {
    const d = all.slice(0, n);
    const tree = buildTree(d);
    if (!tree.root.equals(refMTH(d))) mismatches++;
    for (let i = 0; i < n; i++) {
      checks++;
      if (hexes(tree.inclusionProof(i)).join() !== hexes(refPATH(i, d)).join()) mismatches++;
      if (!tree.leafHash(i).equals(d[i]!)) mismatches++;
    }
    for (let m = 1; m < n; m++) {
      checks++;
      if (hexes(tree.consistencyProof(m)).join() !== hexes(refSUBPROOF(m, d, true)).join()) mismatches++;
    }
  }
  t.equal(mismatches, 0, `${checks} proofs identical to the reference`);
});

// ---------------------------------------------------------------------------------------------
// Properties over random trees of sizes 1..130 (past the 128 power-of-two boundary).

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const flipRandomByte = (b: Buffer, r: () => number): Buffer => {
  const c = Buffer.from(b);
  c[Math.floor(r() * c.length)]! ^= 1 + Math.floor(r() * 255);
  return c;
};

const MAX_N = 130;
const ALL = leavesFor('property', MAX_N);
const OUTSIDER = leavesFor('outsider', 1)[0]!;
const PREFIX_ROOTS = [emptyRoot(), ...Array.from({ length: MAX_N }, (_, i) => merkleRoot(ALL.slice(0, i + 1)))];

t.test('every inclusion proof verifies; any change to leaf, path, index or root fails (n = 1..130)', async (t) => {
  const r = rng(9162);
  let verified = 0;
  const failures: string[] = [];
  const expectFalse = (ok: boolean, what: string): void => {
    if (ok) failures.push(what);
  };
  for (let n = 1; n <= MAX_N; n++) {
    const tree = buildTree(ALL.slice(0, n));
    const root = tree.root;
    if (!root.equals(PREFIX_ROOTS[n]!)) failures.push(`root n=${n}`);
    for (let i = 0; i < n; i++) {
      const path = tree.inclusionProof(i);
      const lh = ALL[i]!;
      if (!verifyInclusion(lh, i, n, path, root)) {
        failures.push(`valid proof rejected: ${i}/${n}`);
        continue;
      }
      verified++;
      // Mutations: for every leaf of trees up to 40 leaves, a 10% sample of leaves above.
      if (n > 40 && r() > 0.1) continue;
      const at = `${i}/${n}`;
      expectFalse(verifyInclusion(flipRandomByte(lh, r), i, n, path, root), `leaf byte ${at}`);
      expectFalse(verifyInclusion(lh, i, n, path, flipRandomByte(root, r)), `root byte ${at}`);
      for (let k = 0; k < path.length; k++) {
        const p = path.slice();
        p[k] = flipRandomByte(p[k]!, r);
        expectFalse(verifyInclusion(lh, i, n, p, root), `path[${k}] byte ${at}`);
      }
      // Any other index, exhaustively for small trees, sampled for larger ones.
      const others = n <= 64 ? Array.from({ length: n + 2 }, (_, j) => j) : [i - 1, i + 1, i ^ 1, i ^ 2, n, Math.floor(r() * n)];
      for (const j of others) if (j !== i) expectFalse(verifyInclusion(lh, j, n, path, root), `index ${j} for ${at}`);
      if (path.length > 0) expectFalse(verifyInclusion(lh, i, n, path.slice(0, -1), root), `truncated ${at}`);
      expectFalse(verifyInclusion(lh, i, n, [...path, ALL[0]!], root), `extended ${at}`);
      expectFalse(verifyInclusion(OUTSIDER, i, n, path, root), `leaf not in the tree ${at}`);
    }
  }
  t.equal(verified, (MAX_N * (MAX_N + 1)) / 2, `${verified} inclusion proofs verified`);
  t.same(failures.slice(0, 20), [], `no accepted mutation (${failures.length} failures)`);
});

t.test('every byte of leaf, path and root matters (exhaustive flips on selected trees)', async (t) => {
  let rejected = 0;
  const accepted: string[] = [];
  for (const n of [1, 2, 3, 5, 7, 8, 9, 13, 127, 128, 129]) {
    const tree = buildTree(ALL.slice(0, n));
    const root = tree.root;
    for (const i of new Set([0, 1, Math.floor(n / 2), n - 2, n - 1].filter((x) => x >= 0 && x < n))) {
      const path = tree.inclusionProof(i);
      const lh = ALL[i]!;
      const targets: Array<[string, Buffer, (b: Buffer) => boolean]> = [
        ['leaf', lh, (b) => verifyInclusion(b, i, n, path, root)],
        ['root', root, (b) => verifyInclusion(lh, i, n, path, b)],
        ...path.map((p, k): [string, Buffer, (b: Buffer) => boolean] => [
          `path[${k}]`,
          p,
          (b) =>
            verifyInclusion(
              lh,
              i,
              n,
              path.map((q, kk) => (kk === k ? b : q)),
              root,
            ),
        ]),
      ];
      for (const [name, buf, check] of targets) {
        for (let byte = 0; byte < buf.length; byte++) {
          const c = Buffer.from(buf);
          c[byte]! ^= 0x01;
          if (check(c)) accepted.push(`${name} byte ${byte} of ${i}/${n}`);
          else rejected++;
        }
      }
    }
  }
  t.same(accepted, [], `${rejected} single-byte flips all rejected`);
});

t.test('consistency proofs for all 0 <= m <= n verify against the prefix roots (n = 1..130)', async (t) => {
  const r = rng(6962);
  let verified = 0;
  const failures: string[] = [];
  for (let n = 1; n <= MAX_N; n++) {
    const tree = buildTree(ALL.slice(0, n));
    const newRoot = tree.root;
    for (let m = 0; m <= n; m++) {
      const proof = tree.consistencyProof(m);
      const oldRoot = PREFIX_ROOTS[m]!;
      if (!verifyConsistency(m, n, oldRoot, newRoot, proof)) {
        failures.push(`valid proof rejected ${m}->${n}`);
        continue;
      }
      verified++;
      if (m === 0 || m === n) continue;
      // Mutations: all of them for n <= 40, a sample of m for larger trees.
      if (n > 40 && r() > 0.1) continue;
      const at = `${m}->${n}`;
      if (verifyConsistency(m, n, flipRandomByte(oldRoot, r), newRoot, proof)) failures.push(`old root byte ${at}`);
      if (verifyConsistency(m, n, oldRoot, flipRandomByte(newRoot, r), proof)) failures.push(`new root byte ${at}`);
      for (let k = 0; k < proof.length; k++) {
        const p = proof.slice();
        p[k] = flipRandomByte(p[k]!, r);
        if (verifyConsistency(m, n, oldRoot, newRoot, p)) failures.push(`proof[${k}] byte ${at}`);
      }
      for (const m2 of [m - 1, m + 1, m ^ 1, m ^ 2, 0, n]) {
        if (m2 !== m && verifyConsistency(m2, n, oldRoot, newRoot, proof)) failures.push(`m=${m2} for ${at}`);
      }
      if (verifyConsistency(m, n, oldRoot, newRoot, proof.slice(0, -1))) failures.push(`truncated ${at}`);
      if (verifyConsistency(m, n, oldRoot, newRoot, [...proof, ALL[0]!])) failures.push(`extended ${at}`);
      if (verifyConsistency(m, n, PREFIX_ROOTS[m - 1]!, newRoot, proof)) failures.push(`other old root ${at}`);
    }
  }
  t.equal(verified, (MAX_N * (MAX_N + 3)) / 2, `${verified} consistency proofs verified`);
  t.same(failures.slice(0, 20), [], `no accepted mutation (${failures.length} failures)`);
});

t.test('tree size is authenticated by the root, not by the proof shape', async (t) => {
  // RFC 9162 verifies (index, size, root) as a unit taken from a signed tree head. For a leftmost
  // leaf the audit path has the same shape in trees of 5..8 leaves, so the recomputed root is the
  // same: the verifier must take tree size and root from the same trusted source (the HCS message).
  const tree = buildTree(ALL.slice(0, 8));
  const path = tree.inclusionProof(0);
  t.equal(verifyInclusion(ALL[0]!, 0, 7, path, tree.root), true, 'documented behaviour');
  t.equal(verifyInclusion(ALL[0]!, 0, 4, path, tree.root), false, 'different path length fails');
});

t.test('verification uses arithmetic, not 32-bit bitwise ops: trees beyond 2^32 leaves', async (t) => {
  const size = 2 ** 40;
  const path = Array.from({ length: 40 }, (_, i) => sha(Buffer.from(`p${i}`)));
  const lh = ALL[0]!;
  // Leftmost leaf: every step hashes (r || p).
  let left = lh;
  for (const p of path) left = nodeHash(left, p);
  t.equal(verifyInclusion(lh, 0, size, path, left), true, 'index 0 of 2^40');
  // Rightmost leaf: every step hashes (p || r).
  let right = lh;
  for (const p of path) right = nodeHash(p, right);
  t.equal(verifyInclusion(lh, size - 1, size, path, right), true, 'index 2^40 - 1 of 2^40');
  t.equal(verifyInclusion(lh, size - 1, size, path, left), false);
  t.equal(verifyInclusion(lh, 2 ** 32, size, path, left), false, 'index 2^32 is not index 0');
  // Consistency m = 2^32 -> n = 2^33: the old tree is the left half; proof = [MTH(D[2^32:2^33])].
  const oldRoot = sha(Buffer.from('old'));
  const rightHalf = sha(Buffer.from('right'));
  t.equal(verifyConsistency(2 ** 32, 2 ** 33, oldRoot, nodeHash(oldRoot, rightHalf), [rightHalf]), true);
  t.equal(verifyConsistency(2 ** 31, 2 ** 33, oldRoot, nodeHash(oldRoot, rightHalf), [rightHalf]), false);
});

t.test('input validation', async (t) => {
  const tree = buildTree(vLeafHashes);
  t.throws(() => buildTree([Buffer.alloc(31)]), /leaf hash 0 is not a 32-byte Buffer/);
  t.throws(() => buildTree([vLeafHashes[0]!, 'x' as unknown as Buffer]), /leaf hash 1/);
  t.throws(() => buildTree('nope' as unknown as Buffer[]), /must be an array/);
  for (const bad of [-1, 8, 1.5, NaN, Infinity]) {
    t.throws(() => tree.inclusionProof(bad), RangeError, `inclusionProof(${bad})`);
    t.throws(() => tree.leafHash(bad), RangeError, `leafHash(${bad})`);
  }
  t.throws(() => buildTree([]).inclusionProof(0), RangeError, 'no proof in an empty tree');
  for (const bad of [-1, 9, 0.5, NaN]) t.throws(() => tree.consistencyProof(bad), RangeError, `consistencyProof(${bad})`);
  t.throws(() => leafHash('x' as unknown as Buffer), TypeError);
  t.throws(() => nodeHash(Buffer.alloc(1), null as unknown as Buffer), TypeError);

  const lh = vLeafHashes[1]!;
  const path = tree.inclusionProof(1);
  const root = tree.root;
  t.equal(verifyInclusion(lh, 1, 8, path, root), true);
  const malformed: Array<[string, () => boolean]> = [
    ['index NaN', () => verifyInclusion(lh, NaN, 8, path, root)],
    ['index 1.5', () => verifyInclusion(lh, 1.5, 8, path, root)],
    ['index -1', () => verifyInclusion(lh, -1, 8, path, root)],
    ['index "1"', () => verifyInclusion(lh, '1' as unknown as number, 8, path, root)],
    ['size 0', () => verifyInclusion(lh, 0, 0, [], root)],
    ['size 2^53', () => verifyInclusion(lh, 1, 2 ** 53, path, root)],
    ['index = size', () => verifyInclusion(lh, 8, 8, path, root)],
    ['short leaf hash', () => verifyInclusion(lh.subarray(1), 1, 8, path, root)],
    ['short root', () => verifyInclusion(lh, 1, 8, path, root.subarray(1))],
    ['path not an array', () => verifyInclusion(lh, 1, 8, 'x' as unknown as Buffer[], root)],
    ['path with a string', () => verifyInclusion(lh, 1, 8, [...path.slice(0, 2), 'x'.repeat(32) as unknown as Buffer], root)],
    ['consistency m NaN', () => verifyConsistency(NaN, 8, root, root, [])],
    ['consistency n -1', () => verifyConsistency(0, -1, emptyRoot(), root, [])],
    ['consistency short root', () => verifyConsistency(8, 8, root.subarray(1), root.subarray(1), [])],
    ['consistency proof not an array', () => verifyConsistency(3, 8, vRoot(3), root, null as unknown as Buffer[])],
  ];
  for (const [name, f] of malformed) t.equal(f(), false, `${name}: false, no throw`);
});

t.test('returned hashes are copies; the tree cannot be altered through them', async (t) => {
  const leaves = vLeafHashes.map((b) => Buffer.from(b));
  const tree = buildTree(leaves);
  const root = tree.root.toString('hex');
  tree.root.fill(0);
  tree.inclusionProof(3).forEach((p) => p.fill(0));
  tree.consistencyProof(3).forEach((p) => p.fill(0));
  tree.leafHash(2).fill(0);
  leaves[0]!.fill(0); // the caller's array is copied at build time
  t.equal(tree.root.toString('hex'), root);
  t.same(hexes(tree.inclusionProof(3)), hexes(refPATH(3, vLeafHashes)));
});
