/**
 * Unit tests of the embedded server's building blocks (no driver involved).
 */
import t from 'tap';
import { Binary, Decimal128, Long, MaxKey, MinKey, ObjectId, Timestamp } from 'bson';
import { compareValues, encodedLength, encodeValue, invert } from '../../../src/dev/mongo/bson/keystring.js';
import { formatDocument } from '../../../src/dev/mongo/bson/format.js';
import { BTree } from '../../../src/dev/mongo/storage/btree.js';
import { prefixSuccessor } from '../../../src/dev/mongo/storage/record-keys.js';
import { Index } from '../../../src/dev/mongo/storage/index.js';
import { compositeRanges, extractPredicates, fieldBounds, passesChecks, scanBounds } from '../../../src/dev/mongo/query/bounds.js';
import { queryShape } from '../../../src/dev/mongo/query/shape.js';
import { crc32c } from '../../../src/dev/mongo/wire/crc32c.js';
import { MongoInstance } from '../../../src/dev/mongo/instance.js';
import { expireDocuments } from '../../../src/dev/mongo/storage/ttl.js';
import { MessageFramer, ProtocolError } from '../../../src/dev/mongo/wire/messages.js';

/** Small deterministic PRNG so randomized checks are reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

t.test('key strings follow mongod BSON order', async (t) => {
  const ordered: unknown[] = [
    new MinKey(),
    null,
    Number.NaN,
    -Infinity,
    -1e300,
    Long.fromString('-9223372036854775808'),
    -2.5,
    -0,
    Decimal128.fromString('0.5'),
    1,
    Long.fromString('9007199254740992'),
    Long.fromString('9007199254740993'),
    1e300,
    Infinity,
    '',
    'a',
    'a\u0000b',
    'ab',
    'b',
    {},
    { a: 1 },
    { a: 1, b: 1 },
    // Elements compare by type first, then field name, then value.
    { b: 0 },
    { a: 'x' },
    [],
    [1],
    [1, 2],
    [2],
    new Binary(Buffer.from([9])),
    new Binary(Buffer.from([1, 2])),
    new ObjectId('000000000000000000000000'),
    new ObjectId('ffffffffffffffffffffffff'),
    false,
    true,
    new Date(-1),
    new Date(0),
    new Date(1),
    new Timestamp({ t: 1, i: 2 }),
    new Timestamp({ t: 2, i: 1 }),
    /a/,
    /b/i,
    new MaxKey(),
  ];
  for (let i = 0; i + 1 < ordered.length; i++) {
    t.ok(encodeValue(ordered[i]) < encodeValue(ordered[i + 1]), `${i}: ${String(ordered[i])} < ${String(ordered[i + 1])}`);
  }
  t.equal(compareValues(1, Long.fromNumber(1)), 0, 'int and long compare equal');
  t.equal(compareValues(1, Decimal128.fromString('1.0')), 0, 'decimal equals number');
  t.equal(compareValues(0, -0), 0);
  t.equal(compareValues(new ObjectId('650000000000000000000001'), new ObjectId('650000000000000000000001')), 0);
  t.not(encodeValue({ a: 1, b: 2 }), encodeValue({ b: 2, a: 1 }), 'field order matters, as in mongod');
  const a = encodeValue('abc');
  const b = encodeValue('abd');
  t.ok(invert(a) > invert(b), 'complement reverses order');
});

t.test('B+tree matches a sorted reference under random inserts and deletes', async (t) => {
  const random = rng(42);
  const tree = new BTree();
  const reference = new Map<string, { key: string; id: string }>();
  let wrongReports = 0;
  for (let step = 0; step < 20_000; step++) {
    const key = encodeValue(Math.floor(random() * 500));
    const id = encodeValue(Math.floor(random() * 50));
    const entry = { key, id };
    if (random() < 0.7) {
      if (tree.insert(entry) !== !reference.has(key + '|' + id)) wrongReports++;
      reference.set(key + '|' + id, entry);
    } else if (tree.delete(entry) !== reference.delete(key + '|' + id)) {
      wrongReports++;
    }
    if (step % 5000 === 4999) {
      const sorted = [...reference.values()].sort((x, y) =>
        x.key < y.key ? -1 : x.key > y.key ? 1 : x.id < y.id ? -1 : x.id > y.id ? 1 : 0,
      );
      t.same([...tree.range(null, null)], sorted, `full scan at step ${step}`);
      t.same([...tree.range(null, null, true)], [...sorted].reverse(), 'backward scan');
      const lo = encodeValue(100);
      const hi = encodeValue(200);
      t.same(
        [...tree.range(lo, hi)],
        sorted.filter((e) => e.key >= lo && e.key < hi),
        'range scan',
      );
      t.same([...tree.range(lo, hi, true)], sorted.filter((e) => e.key >= lo && e.key < hi).reverse(), 'backward range');
      const k = encodeValue(123);
      t.same(
        tree.idsWithKey(k),
        sorted.filter((e) => e.key === k).map((e) => e.id),
        'ids by key',
      );
      t.equal(tree.size, sorted.length);
    }
  }
  t.equal(wrongReports, 0, 'insert/delete report novelty/presence correctly');
  t.equal(prefixSuccessor('a\uffff'), 'b');
  t.equal(prefixSuccessor('\uffff'), null);
});

t.test('B+tree inserts stay fast: 100k random keys', async (t) => {
  const random = rng(7);
  const tree = new BTree();
  const started = performance.now();
  for (let i = 0; i < 100_000; i++) tree.insert({ key: encodeValue(Math.floor(random() * 1e9)), id: encodeValue(i) });
  t.equal(tree.size, 100_000);
  t.comment(`100k B+tree inserts: ${(performance.now() - started).toFixed(0)} ms`);
});

t.test('multikey key generation and parallel arrays', async (t) => {
  const index = new Index({ v: 2, key: { 'idx.name': 1 }, name: 'n' });
  const keys = index.keysFor({ idx: [{ name: 'a' }, { name: 'b' }, { other: 1 }, { name: 'a' }] });
  t.same(
    keys.keys.map((k) => k.values[0]),
    ['a', 'b', null],
    'one key per element, missing as null, deduplicated',
  );
  const compound = new Index({ v: 2, key: { a: 1, b: 1 }, name: 'ab' });
  t.throws(() => compound.keysFor({ a: [1, 2], b: [3, 4] }), { code: 171 });
  const sameArray = new Index({ v: 2, key: { 'x.a': 1, 'x.b': 1 }, name: 'xab' });
  t.equal(
    sameArray.keysFor({
      x: [
        { a: 1, b: 2 },
        { a: 3, b: 4 },
      ],
    }).keys.length,
    4,
  );
  const partial = new Index({ v: 2, key: { a: 1 }, name: 'p', partialFilterExpression: { on: true } });
  t.same(partial.keysFor({ a: 1 }).keys, [], 'not covered by the partial filter');
  const sparse = new Index({ v: 2, key: { a: 1 }, name: 's', sparse: true });
  t.same(sparse.keysFor({ b: 1 }).keys, []);
  t.equal(sparse.keysFor({ a: null }).keys.length, 1, 'an explicit null is indexed by a sparse index');
});

t.test('index bounds for descending compound keys select exactly the matching keys', async (t) => {
  const index = new Index({ v: 2, key: { s: 1, d: -1 }, name: 'sd' });
  const docs = [];
  for (let i = 0; i < 200; i++) docs.push({ _id: i, s: i % 3, d: i % 17 });
  for (const d of docs) index.add(encodeValue(d._id), index.keysFor(d));
  const predicates = extractPredicates({ s: 1, d: { $gte: 5, $lt: 9 } });
  const bounds = index.fields.map((f) => fieldBounds(predicates.get(f.path), false));
  const ranges = compositeRanges(index, bounds);
  const found = new Set<string>();
  for (const r of ranges) for (const e of index.tree.range(r.start, r.end)) found.add(e.id);
  const expected = docs.filter((d) => d.s === 1 && d.d >= 5 && d.d < 9).map((d) => encodeValue(d._id));
  t.same([...found].sort(), expected.sort());
});

t.test('the length of one encoded value inside a compound key', async (t) => {
  const values: unknown[] = [
    new MinKey(),
    null,
    5,
    -2.5,
    Number.NaN,
    Long.fromString('9007199254740993'),
    Decimal128.fromString('1.5'),
    '',
    'abc',
    'a\u0000b',
    { a: 1, b: [1, 'x', { c: null }], '': 'e' },
    [],
    [1, [2, 3], 'four'],
    new Binary(Buffer.from([1, 2, 3]), 4),
    new ObjectId('650000000000000000000001'),
    true,
    new Date(0),
    new Timestamp({ t: 5, i: 6 }),
    /a.b/i,
    new MaxKey(),
  ];
  for (const v of values) {
    const enc = encodeValue(v);
    const key = enc + encodeValue('next field');
    t.equal(encodedLength(key, 0, false), enc.length, `ascending ${String(v)}`);
    t.equal(encodedLength(invert(key), 0, true), enc.length, `descending ${String(v)}`);
    t.equal(encodedLength(encodeValue('x') + key, encodeValue('x').length, false), enc.length, 'at an offset');
  }
  t.equal(encodedLength(encodeValue('abc').slice(0, 3), 0, false), -1, 'a truncated key holds no whole value');
});

t.test('checks on fields after the range field select exactly the matching keys', async (t) => {
  const index = new Index({ v: 2, key: { a: 1, b: -1, c: 1 }, name: 'abc' });
  const docs = [];
  for (let i = 0; i < 300; i++) docs.push({ _id: i, a: i % 10, b: `s${i % 7}`, c: i % 5 });
  for (const d of docs) index.add(encodeValue(d._id), index.keysFor(d));
  const predicates = extractPredicates({ a: { $gte: 2, $lt: 8 }, b: { $in: ['s1', 's4'] }, c: { $gt: 2 } });
  const bounds = index.fields.map((f) => fieldBounds(predicates.get(f.path), false));
  const { ranges, checks } = scanBounds(index, bounds);
  t.same(
    checks.map((c) => c.field),
    [1, 2],
  );
  const found = new Set<string>();
  for (const r of ranges) for (const e of index.tree.range(r.start, r.end)) if (passesChecks(e.key, index, checks)) found.add(e.id);
  const expected = docs.filter((d) => d.a >= 2 && d.a < 8 && (d.b === 's1' || d.b === 's4') && d.c > 2).map((d) => encodeValue(d._id));
  t.same([...found].sort(), expected.sort());
});

t.test('index bounds: which predicates are exact', async (t) => {
  const exact = (filter: Record<string, unknown>): boolean[] => [...extractPredicates(filter).values()].flat().map((p) => p.exact);
  t.same(exact({ a: /^abc/ }), [true], 'an anchored literal prefix');
  // eslint-disable-next-line no-useless-escape -- the escape is what is tested
  t.same(exact({ a: /^ab\.c\-d/ }), [true], 'escaped punctuation is literal');
  t.same(exact({ a: /^abc./ }), [false]);
  t.same(exact({ a: /^abc/i }), [false]);
  t.same(exact({ a: /^ab?c/ }), [false]);
  t.same(exact({ a: { $in: [/^x/, 'y'] } }), [true]);
  t.same(exact({ a: { $lt: 5 } }), [true], 'numbers from -Infinity: NaN is outside');
  t.same(exact({ a: { $gt: Number.NaN } }), [false], 'NaN compares false with everything');
  t.same(exact({ a: null }), [false]);
  t.same(exact({ a: { b: 1 } }), [false]);
  const [p] = extractPredicates({ a: /^ab\.c/ }).get('a')!;
  t.equal(p!.intervals[0]!.low.text, '"ab.c"');
});

t.test('query shapes abstract values, not structure', async (t) => {
  const shape = (filter: Record<string, unknown>, extra: Partial<Parameters<typeof queryShape>[0]> = {}): string =>
    queryShape({ filter, sort: [], skip: 0, limit: 0, countOnly: false, ...extra });
  t.equal(shape({ a: 1, b: { $gte: 2 } }), shape({ a: 7, b: { $gte: 9 } }));
  t.equal(shape({ a: { $in: [1, 2] } }), shape({ a: { $in: [3] } }));
  t.not(shape({ a: 1 }), shape({ a: 'x' }), 'type brackets differ');
  t.not(shape({ a: 1 }), shape({ a: null }), 'null also matches missing');
  t.not(shape({ a: /^x/ }), shape({ a: /x/ }), 'an anchored prefix bounds a scan');
  t.not(shape({ a: 1, b: 2 }), shape({ b: 2, a: 1 }));
  t.not(shape({ a: 1 }), shape({ a: 1 }, { limit: 5 }));
  t.not(shape({ a: 1 }), shape({ a: 1 }, { countOnly: true }));
  t.not(shape({ $or: [{ a: 1 }, { b: 2 }] }), shape({ $or: [{ a: 1 }, { b: 2 }, { c: 3 }] }));
});

t.test('wire helpers', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283, 'CRC-32C check value');
  const framer = new MessageFramer();
  const message = Buffer.alloc(20);
  message.writeInt32LE(20, 0);
  const stream = Buffer.concat([message, message]);
  t.same(framer.push(stream.subarray(0, 7)), []);
  t.equal(framer.push(stream.subarray(7, 25)).length, 1);
  t.equal(framer.push(stream.subarray(25)).length, 1);
  const bad = Buffer.alloc(8);
  bad.writeInt32LE(3, 0);
  let thrown: unknown;
  try {
    new MessageFramer().push(bad);
  } catch (err) {
    thrown = err;
  }
  t.ok(thrown instanceof ProtocolError, 'a length below 16 is a protocol error');
  t.equal(
    formatDocument({ a: 'x', b: 1, c: null, d: new ObjectId('650000000000000000000001') }),
    `{ a: "x", b: 1, c: null, d: ObjectId('650000000000000000000001') }`,
  );
});

t.test('TTL pass deletes expired documents only', async (t) => {
  const instance = new MongoInstance('127.0.0.1:0', () => undefined);
  const { coll } = instance.ensureCollection('app', 'sessions');
  instance.engine.apply([{ op: 'createIndex', ns: coll.ns, spec: { v: 2, key: { at: -1 }, name: 'at_-1', expireAfterSeconds: 60 } }]);
  const now = Date.UTC(2024, 0, 1, 12);
  instance.engine.apply([
    { op: 'insert', ns: coll.ns, doc: { _id: 'old', at: new Date(now - 120_000) } },
    { op: 'insert', ns: coll.ns, doc: { _id: 'fresh', at: new Date(now - 30_000) } },
    { op: 'insert', ns: coll.ns, doc: { _id: 'mixed', at: [new Date(now), new Date(now - 61_000)] } },
    { op: 'insert', ns: coll.ns, doc: { _id: 'nodate', at: 'yesterday' } },
  ]);
  t.equal(expireDocuments(instance.engine, instance.txns, now), 2);
  t.same([...coll.docs.values()].map((d) => d._id).sort(), ['fresh', 'nodate']);
});
