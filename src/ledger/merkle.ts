/**
 * Merkle trees exactly as RFC 9162 (Certificate Transparency v2) section 2.1, with SHA-256:
 *
 *   MTH({})       = SHA-256()                                  (empty tree: hash of the empty string)
 *   MTH({d(0)})   = SHA-256(0x00 || d(0))                      (leaf hash)
 *   MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  for n > 1,
 *                   k = the largest power of two smaller than n.
 *
 * In this ledger the leaf data d(i) is the 32-byte commitment of one resource version
 * (./commitment.ts), so callers pass leaf *hashes* (leafHash(commitment)) to the tree functions.
 *
 * Proofs:
 *   - inclusionProof = PATH(m, D[n])          (2.1.3.1), verified by verifyInclusion   (2.1.3.2)
 *   - consistencyProof = PROOF(m, D[n])       (2.1.4.1), verified by verifyConsistency (2.1.4.2)
 * Both lists are ordered as in the RFC: from the leaves towards the root.
 *
 * Efficiency: buildTree() hashes every node exactly once (n - 1 node hashes) and stores each level
 * contiguously. A node of the tree, MTH(D[lo:hi]), is then an O(1) lookup: in this layout an
 * unpaired last node is carried up unchanged, which reproduces the RFC's split at the largest power
 * of two, and the node covering [lo, hi) sits on level ceil(log2(hi - lo)) at index lo >> level.
 * Every proof is O(log n) lookups with no hashing, so all n inclusion proofs of a batch cost
 * O(n log n) in total.
 *
 * The verifiers take untrusted input: they never throw, and return false on anything malformed
 * (hashes that are not 32 bytes, non-integer or out-of-range sizes and indices, wrong path length).
 * Their "bit tricks" (LSB, right shift) are done with arithmetic on safe integers, because JS
 * bitwise operators truncate to 32 bits while tree sizes here may go up to 2^53 - 1.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export const HASH_BYTES = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);
/** buildTree() keeps levels in single Buffers; 2^26 leaves (2 GiB of hashes) is far above any batch. */
export const MAX_TREE_LEAVES = 2 ** 26;

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

const EMPTY_TREE_HASH = sha256();

/** MTH({}) = SHA-256 of the empty string. */
export function emptyRoot(): Buffer {
  return Buffer.from(EMPTY_TREE_HASH);
}

/** RFC 9162 leaf hash: SHA-256(0x00 || data). `data` is the leaf data (here a 32-byte commitment). */
export function leafHash(data: Buffer): Buffer {
  if (!(data instanceof Uint8Array)) throw new TypeError('leafHash: data must be a Buffer');
  return sha256(LEAF_PREFIX, data);
}

/** RFC 9162 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Buffer, right: Buffer): Buffer {
  if (!(left instanceof Uint8Array) || !(right instanceof Uint8Array)) {
    throw new TypeError('nodeHash: children must be Buffers');
  }
  return sha256(NODE_PREFIX, left, right);
}

function isHash(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array && x.length === HASH_BYTES;
}

function isSize(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function hashEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Largest power of two strictly smaller than n, for 2 <= n <= 2^31. */
function splitPoint(n: number): number {
  return 2 ** (31 - Math.clz32(n - 1));
}

// RFC 9162 bit operations on non-negative safe integers.
const lsb = (x: number): boolean => x % 2 === 1;
const shr = (x: number): number => Math.floor(x / 2);
function isPowerOfTwo(x: number): boolean {
  if (x < 1) return false;
  while (x % 2 === 0) x /= 2;
  return x === 1;
}

/** A Merkle tree over a fixed list of leaf hashes, able to produce any proof without rehashing. */
export class MerkleTree {
  /** Number of leaves. */
  readonly size: number;
  /** levels[0] = leaf hashes; levels[l] holds ceil(size / 2^l) nodes of 32 bytes, contiguously. */
  readonly #levels: Buffer[];

  constructor(leafHashes: readonly Buffer[]) {
    if (!Array.isArray(leafHashes)) throw new TypeError('buildTree: leafHashes must be an array');
    const n = leafHashes.length;
    if (n > MAX_TREE_LEAVES) throw new RangeError(`buildTree: more than ${MAX_TREE_LEAVES} leaves`);
    this.size = n;
    this.#levels = [];
    if (n === 0) return;

    let level = Buffer.allocUnsafe(n * HASH_BYTES);
    for (let i = 0; i < n; i++) {
      const h: unknown = leafHashes[i];
      if (!isHash(h)) throw new TypeError(`buildTree: leaf hash ${i} is not a ${HASH_BYTES}-byte Buffer`);
      level.set(h, i * HASH_BYTES);
    }
    this.#levels.push(level);

    let count = n;
    while (count > 1) {
      const nextCount = Math.ceil(count / 2);
      const next = Buffer.allocUnsafe(nextCount * HASH_BYTES);
      for (let j = 0; j < nextCount; j++) {
        const left = level.subarray(2 * j * HASH_BYTES, (2 * j + 1) * HASH_BYTES);
        if (2 * j + 1 < count) {
          const right = level.subarray((2 * j + 1) * HASH_BYTES, (2 * j + 2) * HASH_BYTES);
          next.set(sha256(NODE_PREFIX, left, right), j * HASH_BYTES);
        } else {
          next.set(left, j * HASH_BYTES); // unpaired right-edge node: carried up unchanged
        }
      }
      this.#levels.push(next);
      level = next;
      count = nextCount;
    }
  }

  /** MTH(D[n]) (a copy). The empty tree's root is SHA-256(""). */
  get root(): Buffer {
    return this.size === 0 ? emptyRoot() : Buffer.from(this.#node(0, this.size));
  }

  /** The leaf hash at `index` (a copy). */
  leafHash(index: number): Buffer {
    this.#checkIndex(index);
    return Buffer.from(this.#node(index, index + 1));
  }

  /**
   * RFC 9162 2.1.3.1 PATH(index, D[n]): the audit path for leaf `index`, leaf level first.
   * Throws RangeError unless 0 <= index < size.
   */
  inclusionProof(index: number): Buffer[] {
    this.#checkIndex(index);
    // Descend from the root; each step records the sibling subtree at that level.
    const topDown: Buffer[] = [];
    let lo = 0;
    let hi = this.size;
    while (hi - lo > 1) {
      const k = splitPoint(hi - lo);
      if (index < lo + k) {
        topDown.push(this.#node(lo + k, hi)); // PATH(m, D[0:k]) : MTH(D[k:n])
        hi = lo + k;
      } else {
        topDown.push(this.#node(lo, lo + k)); // PATH(m - k, D[k:n]) : MTH(D[0:k])
        lo += k;
      }
    }
    return topDown.reverse().map((h) => Buffer.from(h));
  }

  /**
   * RFC 9162 2.1.4.1 PROOF(m, D[n]): proves that the first m leaves of this tree form the tree
   * whose root is MTH(D[0:m]). Empty for m = 0 and m = size. Throws RangeError unless 0 <= m <= size.
   */
  consistencyProof(m: number): Buffer[] {
    if (!isSize(m) || m > this.size) {
      throw new RangeError(`consistencyProof: m must be an integer in [0, ${this.size}]`);
    }
    if (m === 0 || m === this.size) return [];
    // SUBPROOF(m, D[lo:hi], b), unrolled: each step appends one subtree hash after the
    // recursive part, so collect them top-down and emit them in reverse.
    const topDown: Buffer[] = [];
    let lo = 0;
    let hi = this.size;
    let rel = m; // m relative to lo
    let b = true;
    while (rel !== hi - lo) {
      const k = splitPoint(hi - lo);
      if (rel <= k) {
        topDown.push(this.#node(lo + k, hi)); // SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
        hi = lo + k;
      } else {
        topDown.push(this.#node(lo, lo + k)); // SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
        lo += k;
        rel -= k;
        b = false;
      }
    }
    const proof = b ? [] : [this.#node(lo, hi)]; // SUBPROOF(m, D[m], false) = {MTH(D[m])}
    for (let i = topDown.length - 1; i >= 0; i--) proof.push(topDown[i]!);
    return proof.map((h) => Buffer.from(h));
  }

  #checkIndex(index: number): void {
    if (!isSize(index) || index >= this.size) {
      throw new RangeError(`leaf index must be an integer in [0, ${this.size})`);
    }
  }

  /** MTH(D[lo:hi]) for a node [lo, hi) of this tree (a view into the level buffer). */
  #node(lo: number, hi: number): Buffer {
    const span = hi - lo;
    const level = span === 1 ? 0 : 32 - Math.clz32(span - 1); // ceil(log2(span))
    const offset = (lo / 2 ** level) * HASH_BYTES;
    return this.#levels[level]!.subarray(offset, offset + HASH_BYTES);
  }
}

/** Hash every node of the tree once; the result produces any root/inclusion/consistency proof. */
export function buildTree(leafHashes: readonly Buffer[]): MerkleTree {
  return new MerkleTree(leafHashes);
}

/** MTH over the given leaf hashes (SHA-256("") for none). */
export function merkleRoot(leafHashes: readonly Buffer[]): Buffer {
  return buildTree(leafHashes).root;
}

/** PATH(index, D[n]) over the given leaf hashes. For many proofs, use buildTree() once instead. */
export function inclusionProof(index: number, leafHashes: readonly Buffer[]): Buffer[] {
  return buildTree(leafHashes).inclusionProof(index);
}

/** PROOF(m, D[n]) over the given leaf hashes (n = leafHashes.length). */
export function consistencyProof(m: number, leafHashes: readonly Buffer[]): Buffer[] {
  return buildTree(leafHashes).consistencyProof(m);
}

/**
 * RFC 9162 2.1.3.2: does `path` prove that `leafHash` is leaf `index` of the tree of `treeSize`
 * leaves whose root is `root`? Never throws.
 *
 * As in RFC 9162, `treeSize` and `root` must come together from one trusted source (here: the same
 * HCS batch message). The root binds the tree; the path alone does not pin the size (the leftmost
 * leaf's path has the same shape in trees of 5..8 leaves, say), so a mismatched size is not
 * guaranteed to be detected.
 */
export function verifyInclusion(leafHash: Buffer, index: number, treeSize: number, path: readonly Buffer[], root: Buffer): boolean {
  if (!isHash(leafHash) || !isHash(root) || !isSize(index) || !isSize(treeSize)) return false;
  if (!Array.isArray(path) || !path.every(isHash)) return false;
  // 1. leaf_index >= tree_size: fail.
  if (index >= treeSize) return false;
  // 2.-3.
  let fn = index;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leafHash);
  // 4.
  for (const p of path) {
    if (sn === 0) return false; // a.
    if (lsb(fn) || fn === sn) {
      r = sha256(NODE_PREFIX, p, r); // b.i.
      if (!lsb(fn)) {
        // b.ii. right-shift until LSB(fn) is set or fn is 0
        while (!lsb(fn) && fn !== 0) {
          fn = shr(fn);
          sn = shr(sn);
        }
      }
    } else {
      r = sha256(NODE_PREFIX, r, p); // otherwise
    }
    fn = shr(fn); // c.
    sn = shr(sn);
  }
  // 5.
  return sn === 0 && hashEqual(r, root);
}

/**
 * RFC 9162 2.1.4.2: does `proof` show that the tree of size m with root `oldRoot` is a prefix of
 * the tree of size n with root `newRoot`? Never throws.
 *
 * The RFC algorithm covers 0 < m < n. The edge cases are decided as follows: m > n fails; m = n
 * holds iff the proof is empty and the roots are equal; m = 0 holds iff the proof is empty and
 * `oldRoot` is the empty-tree hash (every tree extends the empty tree).
 */
export function verifyConsistency(m: number, n: number, oldRoot: Buffer, newRoot: Buffer, proof: readonly Buffer[]): boolean {
  if (!isSize(m) || !isSize(n) || !isHash(oldRoot) || !isHash(newRoot)) return false;
  if (!Array.isArray(proof) || !proof.every(isHash)) return false;
  if (m > n) return false;
  if (m === n) return proof.length === 0 && hashEqual(oldRoot, newRoot);
  if (m === 0) return proof.length === 0 && hashEqual(oldRoot, EMPTY_TREE_HASH);

  // 1. empty consistency_path: fail.
  if (proof.length === 0) return false;
  // 2. first an exact power of 2: prepend first_hash.
  const path: readonly Uint8Array[] = isPowerOfTwo(m) ? [oldRoot, ...proof] : proof;
  // 3.
  let fn = m - 1;
  let sn = n - 1;
  // 4.
  while (lsb(fn)) {
    fn = shr(fn);
    sn = shr(sn);
  }
  // 5.
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  // 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false; // a.
    if (lsb(fn) || fn === sn) {
      fr = sha256(NODE_PREFIX, c, fr); // b.i.
      sr = sha256(NODE_PREFIX, c, sr); // b.ii.
      if (!lsb(fn)) {
        // b.iii.
        while (!lsb(fn) && fn !== 0) {
          fn = shr(fn);
          sn = shr(sn);
        }
      }
    } else {
      sr = sha256(NODE_PREFIX, sr, c); // otherwise
    }
    fn = shr(fn); // c.
    sn = shr(sn);
  }
  // 7.
  return hashEqual(fr, oldRoot) && hashEqual(sr, newRoot) && sn === 0;
}

/**
 * The root that `path` leads to from `leafHash` at `index` in a tree of `treeSize` leaves: the same fold as
 * verifyInclusion (RFC 9162 2.1.3.2 steps 1-5), returning the computed root instead of comparing it, so that a
 * verifier can show which root a proof leads to and compare it with the root published on the ledger. Returns
 * null where verifyInclusion would fail before comparing (malformed input, index out of range, wrong path
 * length). Never throws.
 */
export function rootFromInclusionPath(leafHash: Buffer, index: number, treeSize: number, path: readonly Buffer[]): Buffer | null {
  if (!isHash(leafHash) || !isSize(index) || !isSize(treeSize)) return null;
  if (!Array.isArray(path) || !path.every(isHash)) return null;
  if (index >= treeSize) return null;
  let fn = index;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leafHash);
  for (const p of path) {
    if (sn === 0) return null;
    if (lsb(fn) || fn === sn) {
      r = sha256(NODE_PREFIX, p, r);
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) {
          fn = shr(fn);
          sn = shr(sn);
        }
      }
    } else {
      r = sha256(NODE_PREFIX, r, p);
    }
    fn = shr(fn);
    sn = shr(sn);
  }
  return sn === 0 ? r : null;
}
