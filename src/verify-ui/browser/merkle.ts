/**
 * The RFC 9162 audit-path fold of src/ledger/merkle.ts (rootFromInclusionPath), on WebCrypto: the same steps, the
 * same refusals (an index not below the tree size, a path that outlasts the tree or ends before reaching the root,
 * a hash that is not 32 bytes), in the same order.
 *
 *   leaf hash = SHA-256(0x00 || commitment)        node hash = SHA-256(0x01 || left || right)
 */
import { sha256 } from './bytes.js';

export const HASH_BYTES = 32;
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

// As in src/ledger/merkle.ts: arithmetic instead of bit operators, which would truncate sizes above 2^31.
const lsb = (x: number): boolean => x % 2 === 1;
const shr = (x: number): number => Math.floor(x / 2);
const isHash = (x: unknown): x is Uint8Array => x instanceof Uint8Array && x.length === HASH_BYTES;
const isSize = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

export function leafHash(data: Uint8Array): Promise<Uint8Array> {
  return sha256(LEAF_PREFIX, data);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(NODE_PREFIX, left, right);
}

/**
 * The root that `path` leads to from `leaf` (a leaf hash) at `index` in a tree of `treeSize` leaves
 * (RFC 9162 2.1.3.2 steps 1-5, returning the root instead of comparing it); null where the RFC's check fails
 * before the comparison. Never throws.
 */
export async function rootFromInclusionPath(
  leaf: Uint8Array,
  index: number,
  treeSize: number,
  path: readonly Uint8Array[],
): Promise<Uint8Array | null> {
  if (!isHash(leaf) || !isSize(index) || !isSize(treeSize)) return null;
  if (!Array.isArray(path) || !path.every(isHash)) return null;
  if (index >= treeSize) return null;
  let fn = index;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return null; // the path is longer than the tree is deep
    if (lsb(fn) || fn === sn) {
      r = await nodeHash(p, r);
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) {
          fn = shr(fn);
          sn = shr(sn);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = shr(fn);
    sn = shr(sn);
  }
  return sn === 0 ? r : null;
}
