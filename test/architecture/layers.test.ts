/**
 * The layer rules of DESIGN.md, checked on the source: FHIR semantics (src/fhir) know neither HTTP nor MongoDB, every
 * query of the resource store lives in src/store, and the store and the ledger never reach up into HTTP. A file that
 * breaks a rule is named with the offending line, so the fix is where it points.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** `file:line: text` for every line of the files under `dir` (minus `except`) that matches `pattern`. */
function offenders(dir: string, pattern: RegExp, except: (file: string) => boolean = () => false): string[] {
  const found: string[] = [];
  for (const file of sourceFiles(dir)) {
    if (except(file)) continue;
    readFileSync(join(ROOT, file), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (pattern.test(line)) found.push(`${relative(ROOT, join(ROOT, file))}:${i + 1}: ${line.trim()}`);
      });
  }
  return found;
}

const importOf = (modules: string): RegExp => new RegExp(`(?:from|import)\\s*\\(?\\s*'(?:${modules})(?:/[^']*)?'`);

t.test('src/fhir imports neither MongoDB (nor BSON) nor Fastify', async (t) => {
  t.same(offenders('src/fhir', importOf('mongodb|bson|fastify|@fastify')), []);
});

t.test('src/fhir does not reach the database handle', async (t) => {
  t.same(offenders('src/fhir', /\bstore\.db\b/), []);
});

t.test("no code outside src/store reaches the resource store's collections", async (t) => {
  // store.heads / store.versions are the store's own; the ledger keeps its own collections in ledger/ledger-store.ts.
  t.same(
    offenders(
      'src',
      /\bstore\.(?:heads|versions)\b/,
      (file) => file.startsWith(join('src', 'store')) || file.startsWith(join('src', 'dev')),
    ),
    [],
  );
});

t.test('src/store and src/ledger do not reach up into HTTP', async (t) => {
  const up = /from\s+'(?:fastify|@fastify\/[^']*|(?:\.\.\/)+http\/[^']*)'/;
  t.same(offenders('src/store', up), []);
  t.same(offenders('src/ledger', up), []);
});

t.test('a rule can fail: the checker finds an import it is shown', async (t) => {
  t.ok(importOf('mongodb').test("import type { Document } from 'mongodb';"));
  t.ok(importOf('fastify|@fastify').test("import cors from '@fastify/cors';"));
  t.notOk(importOf('mongodb').test("import { x } from '../store/mongodb-helpers.js';"));
});
