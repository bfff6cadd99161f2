// src/ledger holds pure primitives: no I/O, and never fastify or mongodb.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';

const SRC = new URL('../../src/ledger/', import.meta.url);
const ALLOWED = new Set(['node:crypto', 'canonicalize']);
const FILES = ['canonical-json.ts', 'commitment.ts', 'merkle.ts', 'batch-message.ts'];

t.test('primitive modules import only node:crypto, canonicalize and each other', async (t) => {
  const present = readdirSync(SRC);
  for (const file of FILES) {
    t.ok(present.includes(file), `${file} exists`);
    const text = readFileSync(new URL(file, SRC), 'utf8');
    const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
    const dynamic = [...text.matchAll(/\b(?:import|require)\s*\(/g)];
    t.equal(dynamic.length, 0, `${file}: no dynamic import/require`);
    for (const s of specifiers) {
      const ok = ALLOWED.has(s) || /^\.\/[a-z-]+\.js$/.test(s);
      t.ok(ok, `${file}: import '${s}' allowed`);
      t.notMatch(s, /fastify|mongodb/, `${file}: '${s}' is not fastify/mongodb`);
    }
  }
});
