/**
 * Decoded documents most recently read or written, bounded by their BSON
 * size. Decoding BSON is most of what a read of a stored document costs; a
 * working set that fits the budget is served from the heap, the rest from
 * LMDB's mapped pages. Documents are immutable once stored, so a cached
 * object is shared by every reader. Least recently used entries go first
 * (a Map keeps insertion order; a hit re-inserts its entry at the end).
 */
import type { Document } from 'bson';

interface Entry {
  doc: Document;
  bytes: number;
}

export class DocumentCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly budgetBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): Document | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.doc;
  }

  /** Without refreshing its place (scans must not push the working set out). */
  peek(key: string): Document | undefined {
    return this.entries.get(key)?.doc;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  set(key: string, doc: Document, bytes: number): void {
    this.delete(key);
    if (bytes > this.budgetBytes / 8) return;
    this.entries.set(key, { doc, bytes });
    this.bytes += bytes;
    if (this.bytes <= this.budgetBytes) return;
    for (const [oldest, entry] of this.entries) {
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
      if (this.bytes <= this.budgetBytes) break;
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }

  deletePrefix(prefix: string): void {
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
