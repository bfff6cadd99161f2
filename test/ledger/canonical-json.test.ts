import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { canonicalJson, canonicalJsonBytes, CanonicalJsonError, MAX_DEPTH } from '../../src/ledger/canonical-json.js';

const JCS_DIR = new URL('../fixtures/ledger/jcs/', import.meta.url);
const read = (rel: string): string => readFileSync(new URL(rel, JCS_DIR), 'utf8');

interface NumberRow {
  ieee: string;
  json: string | null;
  comment: string;
}
interface Vectors {
  sampleUtf8Hex: { hex: string };
  sortingOrder: { values: string[] };
  numbers: { rows: NumberRow[] };
}
const vectors = JSON.parse(read('rfc8785-vectors.json')) as Vectors;

t.test('RFC 8785 / reference test data: input -> exact canonical output', async (t) => {
  const names = readdirSync(new URL('output/', JCS_DIR)).filter((f) => f.endsWith('.json'));
  t.ok(names.length >= 6, 'fixture files present');
  for (const name of names) {
    const input: unknown = JSON.parse(read(`input/${name}`));
    const expected = read(`output/${name}`);
    t.equal(canonicalJson(input), expected, name);
    // Canonicalization is idempotent.
    t.equal(canonicalJson(JSON.parse(expected)), expected, `${name} (idempotent)`);
  }
});

t.test('RFC 8785 3.2.4: UTF-8 bytes of the sample', async (t) => {
  const out = canonicalJsonBytes(JSON.parse(read('input/rfc8785-sample.json')));
  t.equal(out.toString('hex'), vectors.sampleUtf8Hex.hex);
});

t.test('RFC 8785 3.2.3: property sorting by UTF-16 code units (non-BMP key)', async (t) => {
  const out = canonicalJson(JSON.parse(read('input/rfc8785-sorting.json')));
  const positions = vectors.sortingOrder.values.map((v) => out.indexOf(JSON.stringify(v)));
  t.notOk(positions.includes(-1), 'all values present');
  t.same(
    [...positions].sort((a, b) => a - b),
    positions,
    `values in RFC order: ${out}`,
  );
  // U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16 although it is after it in code points.
  t.ok(out.indexOf('\u{1F600}') < out.indexOf('\uFB33'));
});

t.test('RFC 8785 Appendix B: ECMAScript number serialization', async (t) => {
  t.equal(vectors.numbers.rows.length, 26);
  for (const row of vectors.numbers.rows) {
    const value = Buffer.from(row.ieee, 'hex').readDoubleBE(0);
    if (row.json === null) {
      t.throws(() => canonicalJson(value), CanonicalJsonError, `${row.ieee} (${row.comment}) rejected`);
      t.throws(() => canonicalJson([value]), CanonicalJsonError, `${row.ieee} in array rejected`);
    } else {
      t.equal(canonicalJson(value), row.json, `${row.ieee} ${row.comment}`);
      t.equal(canonicalJson({ n: value }), `{"n":${row.json}}`, `${row.ieee} as member`);
    }
  }
});

t.test('numbers called out by the brief', async (t) => {
  t.equal(canonicalJson(1e21), '1e+21');
  t.equal(canonicalJson(1e20), '100000000000000000000');
  t.equal(canonicalJson(-0), '0');
  t.equal(canonicalJson(5e-324), '5e-324');
  t.equal(canonicalJson(JSON.parse('333333333.33333329')), '333333333.3333333');
  t.equal(canonicalJson(JSON.parse('[1.0, 1E2, 0.10, -0.0]')), '[1,100,0.1,0]');
});

t.test('string escaping', async (t) => {
  t.equal(canonicalJson('\u0000\u0001\u001f'), '"\\u0000\\u0001\\u001f"', 'controls as lowercase \\u00xx');
  t.equal(canonicalJson('\b\t\n\f\r'), '"\\b\\t\\n\\f\\r"', 'short escapes');
  t.equal(canonicalJson('"\\/'), '"\\"\\\\/"', 'quote and backslash escaped, solidus not');
  t.equal(canonicalJson('\u007f\u0080\u2028\u2029'), '"\u007f\u0080\u2028\u2029"', 'DEL, C1, separators as is');
  t.equal(canonicalJson('é€😀'), '"é€😀"', 'non-ASCII and non-BMP as is');
  t.equal(canonicalJsonBytes('😀').toString('hex'), '22f09f988022', 'UTF-8 output of a surrogate pair');
  t.equal(canonicalJson('\u1e0d\u0307'), '"\u1e0d\u0307"', 'no Unicode normalization');
});

t.test('key ordering independent of insertion order, nested and in arrays', async (t) => {
  const a = { b: 1, a: { z: [{ y: 1, x: 2 }], y: null }, '10': true, '9': false, '': 0 };
  const b = { '': 0, '9': false, '10': true, a: { y: null, z: [{ x: 2, y: 1 }] }, b: 1 };
  t.equal(canonicalJson(a), canonicalJson(b));
  t.equal(canonicalJson(a), '{"":0,"10":true,"9":false,"a":{"y":null,"z":[{"x":2,"y":1}]},"b":1}');
  t.equal(canonicalJson({ a: 1, A: 2, _: 3, aa: 4, ab: 5 }), '{"A":2,"_":3,"a":1,"aa":4,"ab":5}');
  t.equal(canonicalJson(Object.assign(Object.create(null) as object, { b: 2, a: 1 })), '{"a":1,"b":2}', 'null-prototype object');
});

t.test('rejects non-JSON values with a clear error and location', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['undefined at top level', undefined, /undefined is not a JSON value at \$$/],
    ['undefined in array', [1, undefined], /undefined is not a JSON value at \$\[1\]/],
    ['undefined member', { a: { b: undefined } }, /undefined is not a JSON value at \$\.a\.b/],
    ['NaN', { x: [NaN] }, /NaN is not a JSON number .* at \$\.x\[0\]/],
    ['Infinity', Infinity, /Infinity is not a JSON number/],
    ['-Infinity', -Infinity, /-Infinity is not a JSON number/],
    ['function', { f: () => 1 }, /a function is not a JSON value at \$\.f/],
    ['function in array', [() => 1], /a function is not a JSON value at \$\[0\]/],
    ['symbol', { s: Symbol('x') }, /a symbol is not a JSON value at \$\.s/],
    ['bigint', { n: 10n }, /a bigint is not a JSON value at \$\.n/],
    ['Date', { d: new Date(0) }, /an instance of Date is not a plain JSON object at \$\.d/],
    ['Buffer', { b: Buffer.from('x') }, /an instance of Buffer is not a plain JSON object/],
    ['Map', new Map(), /an instance of Map is not a plain JSON object at \$$/],
    [
      'class instance',
      {
        c: new (class Foo {
          x = 1;
        })(),
      },
      /an instance of Foo is not a plain JSON object/,
    ],
    ['boxed string', { s: new String('x') }, /an instance of String/],
    ['sparse array', { arr: [1, , 3] }, /sparse array .* at \$\.arr\[1\]/], // eslint-disable-line no-sparse-arrays
    ['lone high surrogate', { s: 'a\ud800b' }, /lone surrogate .* at \$\.s/],
    ['lone low surrogate', ['\udc00'], /lone surrogate .* at \$\[0\]/],
    ['lone surrogate in key', { 'k\ud83d': 1 }, /property name contains a lone surrogate/],
    ['odd key path', { 'a b': [undefined] }, /at \$\["a b"\]\[0\]/],
  ];
  for (const [name, value, message] of cases) {
    t.throws(() => canonicalJson(value), message, name);
    t.throws(() => canonicalJson(value), CanonicalJsonError, `${name}: CanonicalJsonError`);
  }
});

t.test('rejects cycles, accepts shared (non-cyclic) references', async (t) => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = cyclic;
  t.throws(() => canonicalJson(cyclic), /circular reference at \$\.self/);
  const arr: unknown[] = [];
  arr.push({ back: arr });
  t.throws(() => canonicalJson(arr), /circular reference at \$\[0\]\.back/);
  const shared = { x: 1 };
  t.equal(canonicalJson({ a: shared, b: [shared, shared] }), '{"a":{"x":1},"b":[{"x":1},{"x":1}]}');
});

t.test('nesting depth limit', async (t) => {
  const nest = (depth: number): unknown => {
    let v: unknown = 0;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  };
  t.equal(canonicalJson(nest(MAX_DEPTH)).length, 2 * MAX_DEPTH + 1, `${MAX_DEPTH} levels accepted`);
  t.throws(() => canonicalJson(nest(MAX_DEPTH + 1)), /nesting deeper than/);
});

t.test('toJSON is not honoured: plain objects only', async (t) => {
  t.throws(() => canonicalJson({ toJSON: () => 'x' }), /a function is not a JSON value at \$\.toJSON/);
});

// Seeded PRNG (mulberry32) so failures are reproducible.
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

function randomJson(r: () => number, depth: number): unknown {
  const kind = Math.floor(r() * (depth > 3 ? 5 : 7));
  const str = (): string => {
    const alphabet = ['a', 'B', '1', ' ', '"', '\\', '\n', '\u0001', 'é', '€', '\ufb33', '😀', '\u0080', '\u2028'];
    let s = '';
    const len = Math.floor(r() * 6);
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(r() * alphabet.length)];
    return s;
  };
  switch (kind) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2: {
      const buf = Buffer.alloc(8);
      for (let i = 0; i < 8; i++) buf[i] = Math.floor(r() * 256);
      const d = buf.readDoubleBE(0);
      return Number.isFinite(d) ? d : Math.floor(r() * 1e6) / 7;
    }
    case 3:
      return str();
    case 4:
      return Math.floor((r() - 0.5) * 2 ** 40);
    case 5: {
      const n = Math.floor(r() * 4);
      return Array.from({ length: n }, () => randomJson(r, depth + 1));
    }
    default: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++) o[str()] = randomJson(r, depth + 1);
      return o;
    }
  }
}

function shuffleKeys(v: unknown, r: () => number): unknown {
  if (Array.isArray(v)) return v.map((x) => shuffleKeys(x, r));
  if (v === null || typeof v !== 'object') return v;
  const entries = Object.entries(v);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  return Object.fromEntries(entries.map(([k, x]) => [k, shuffleKeys(x, r)]));
}

t.test('properties over random JSON values', async (t) => {
  const r = rng(8785);
  let checked = 0;
  for (let i = 0; i < 2000; i++) {
    const v = randomJson(r, 0);
    const c = canonicalJson(v);
    // Valid JSON that parses back to the same data (-0 becomes 0, as RFC 8785 requires).
    const back: unknown = JSON.parse(c);
    if (!isDeepStrictEqual(back, JSON.parse(JSON.stringify(v)))) t.fail(`round trip changed data: ${c}`);
    // Idempotent and independent of member order.
    if (canonicalJson(back) !== c) t.fail(`not idempotent: ${c}`);
    if (canonicalJson(shuffleKeys(v, r)) !== c) t.fail(`depends on member order: ${c}`);
    checked++;
  }
  t.equal(checked, 2000, 'random values checked');
});
