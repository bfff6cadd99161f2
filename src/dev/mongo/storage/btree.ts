/**
 * In-memory B+tree of (key, id) entries ordered by key then id, both key
 * strings from bson/keystring.ts: the index table of scratch collections.
 * Leaves are linked both ways for forward and backward range scans. Deletes
 * never rebalance: an index only shrinks through deletes, and an underfull
 * leaf costs a little memory, never correctness.
 */

export interface IndexEntry {
  readonly key: string;
  readonly id: string;
}

const MAX_LEAF = 128;
const MAX_CHILDREN = 64;

function compareEntries(a: IndexEntry, b: IndexEntry): number {
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return 0;
}

class Leaf {
  entries: IndexEntry[] = [];
  next: Leaf | null = null;
  prev: Leaf | null = null;
}

class Inner {
  /** seps[i] is the smallest entry reachable through children[i + 1]. */
  seps: IndexEntry[] = [];
  children: Array<Leaf | Inner> = [];
}

type Node = Leaf | Inner;

/** Number of separators <= probe, i.e. the child to descend into. */
function childIndex(node: Inner, probe: IndexEntry): number {
  let lo = 0;
  let hi = node.seps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareEntries(node.seps[mid]!, probe) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lowerBound(entries: IndexEntry[], probe: IndexEntry): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareEntries(entries[mid]!, probe) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface Split {
  sep: IndexEntry;
  right: Node;
}

/** Position of one entry; `leaf` null means past either end. */
interface Position {
  leaf: Leaf | null;
  pos: number;
}

export class BTree {
  private root: Node = new Leaf();
  private count = 0;

  get size(): number {
    return this.count;
  }

  insert(entry: IndexEntry): boolean {
    const split = this.insertInto(this.root, entry);
    if (split === false) return false;
    if (split) {
      const root = new Inner();
      root.children = [this.root, split.right];
      root.seps = [split.sep];
      this.root = root;
    }
    this.count++;
    return true;
  }

  /** Returns false when absent, a split when the node overflowed, undefined otherwise. */
  private insertInto(node: Node, entry: IndexEntry): Split | undefined | false {
    if (node instanceof Leaf) {
      const pos = lowerBound(node.entries, entry);
      const existing = node.entries[pos];
      if (existing && compareEntries(existing, entry) === 0) return false;
      node.entries.splice(pos, 0, entry);
      if (node.entries.length <= MAX_LEAF) return undefined;
      const right = new Leaf();
      right.entries = node.entries.splice(node.entries.length >> 1);
      right.next = node.next;
      if (right.next) right.next.prev = right;
      right.prev = node;
      node.next = right;
      return { sep: right.entries[0]!, right };
    }
    const idx = childIndex(node, entry);
    const split = this.insertInto(node.children[idx]!, entry);
    if (!split) return split;
    node.seps.splice(idx, 0, split.sep);
    node.children.splice(idx + 1, 0, split.right);
    if (node.children.length <= MAX_CHILDREN) return undefined;
    const mid = node.seps.length >> 1;
    const right = new Inner();
    const promoted = node.seps[mid]!;
    right.seps = node.seps.splice(mid + 1);
    node.seps.pop();
    right.children = node.children.splice(mid + 1);
    return { sep: promoted, right };
  }

  delete(entry: IndexEntry): boolean {
    let node = this.root;
    while (node instanceof Inner) node = node.children[childIndex(node, entry)]!;
    const pos = lowerBound(node.entries, entry);
    const existing = node.entries[pos];
    if (!existing || compareEntries(existing, entry) !== 0) return false;
    node.entries.splice(pos, 1);
    this.count--;
    return true;
  }

  clear(): void {
    this.root = new Leaf();
    this.count = 0;
  }

  /** First entry whose key is >= `key` (null key: the very first entry). */
  private seek(key: string | null): Position {
    const probe: IndexEntry = { key: key ?? '', id: '' };
    let node = this.root;
    while (node instanceof Inner) node = node.children[childIndex(node, probe)]!;
    const pos = key === null ? 0 : lowerBound(node.entries, probe);
    return this.normalizeForward({ leaf: node, pos });
  }

  private normalizeForward(p: Position): Position {
    let { leaf, pos } = p;
    while (leaf && pos >= leaf.entries.length) {
      leaf = leaf.next;
      pos = 0;
    }
    return { leaf, pos };
  }

  private lastPosition(): Position {
    let node = this.root;
    while (node instanceof Inner) node = node.children[node.children.length - 1]!;
    return this.normalizeBackward({ leaf: node, pos: node.entries.length - 1 });
  }

  private normalizeBackward(p: Position): Position {
    let { leaf, pos } = p;
    while (leaf && pos < 0) {
      leaf = leaf.prev;
      pos = leaf ? leaf.entries.length - 1 : 0;
    }
    return { leaf, pos };
  }

  /**
   * Entries with start <= key < end in key order (either bound may be null
   * for unbounded), forward or backward.
   */
  *range(start: string | null, end: string | null, backward = false): Generator<IndexEntry> {
    if (!backward) {
      let p = this.seek(start);
      while (p.leaf) {
        const entry = p.leaf.entries[p.pos]!;
        if (end !== null && entry.key >= end) return;
        yield entry;
        p = this.normalizeForward({ leaf: p.leaf, pos: p.pos + 1 });
      }
      return;
    }
    let p: Position;
    if (end === null) {
      p = this.lastPosition();
    } else {
      const after = this.seek(end);
      p = after.leaf ? this.normalizeBackward({ leaf: after.leaf, pos: after.pos - 1 }) : this.lastPosition();
    }
    while (p.leaf) {
      const entry = p.leaf.entries[p.pos]!;
      if (start !== null && entry.key < start) return;
      yield entry;
      p = this.normalizeBackward({ leaf: p.leaf, pos: p.pos - 1 });
    }
  }

  /** Ids stored under exactly `key` (the hot path of unique checks, so no generator). */
  idsWithKey(key: string): string[] {
    const out: string[] = [];
    let p = this.seek(key);
    while (p.leaf) {
      const entries = p.leaf.entries;
      for (let i = p.pos; i < entries.length; i++) {
        const entry = entries[i]!;
        if (entry.key !== key) return out;
        out.push(entry.id);
      }
      p = this.normalizeForward({ leaf: p.leaf.next, pos: 0 });
    }
    return out;
  }
}
