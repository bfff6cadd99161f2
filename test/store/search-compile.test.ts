/**
 * Query compilation, checked against the FHIR definitions by brute force: compiled filters are evaluated with
 * mingo (MongoDB query semantics in memory) over many generated values and compared with a direct reading of
 * the spec's table (search.html#prefix), for scalar and array layouts; keyset conditions against a sort.
 */
import { Query } from 'mingo';
import t from 'tap';
import { compileCondition, fullSort, keysetAfter, type SortValue } from '../../src/store/search/compile.js';
import type { Comparator, Condition, SortKey } from '../../src/store/search/query.js';
import { successorOf } from '../../src/store/search/strings.js';

const CMPS: Comparator[] = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'];

/** A small deterministic PRNG, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

const matches = (filter: object, doc: object): boolean => new Query(filter as Record<string, unknown>).test(doc as Record<string, unknown>);

/** The spec's table, directly: target [lo, hi] against the search range [qlo, qhi]. */
function dateSpec(cmp: Comparator, lo: number, hi: number, qlo: number, qhi: number): boolean {
  const contains = lo >= qlo && hi <= qhi;
  const overlapsAbove = hi > qhi; // the range above the search value overlaps the target
  const overlapsBelow = lo < qlo;
  switch (cmp) {
    case 'eq':
      return contains;
    case 'ne':
      return !contains;
    case 'gt':
      return overlapsAbove;
    case 'lt':
      return overlapsBelow;
    case 'ge':
      return overlapsAbove || contains;
    case 'le':
      return overlapsBelow || contains;
    case 'sa':
      return lo > qhi;
    case 'eb':
      return hi < qlo;
    case 'ap':
      return lo <= qhi && hi >= qlo;
  }
}

t.test('date prefixes over ranges: compiled filters agree with the spec table (scalar and array layouts)', async (t) => {
  const random = rng(42);
  const point = () => Math.floor(random() * 40);
  let checked = 0;
  let mismatches = 0;
  for (let i = 0; i < 400; i++) {
    const qlo = point();
    const qhi = qlo + Math.floor(random() * 6);
    const ranges = Array.from({ length: 1 + Math.floor(random() * 3) }, () => {
      const lo = point();
      return { lo, hi: lo + Math.floor(random() * 8) };
    });
    for (const cmp of CMPS) {
      const asDate = (n: number) => new Date(Date.UTC(2000, 0, 1) + n * 86_400_000);
      const stored = ranges.map((r) => ({ lo: asDate(r.lo), hi: asDate(r.hi) }));
      const scalar: Condition = { op: 'date', field: 'idx.d', layout: 'scalar', cmp, lo: asDate(qlo), hi: asDate(qhi) };
      const array: Condition = { ...scalar, layout: 'array' } as Condition;
      const expectedScalar = dateSpec(cmp, ranges[0].lo, ranges[0].hi, qlo, qhi);
      const expectedArray = ranges.some((r) => dateSpec(cmp, r.lo, r.hi, qlo, qhi));
      if (matches(compileCondition(scalar), { idx: { d: stored[0] } }) !== expectedScalar) mismatches++;
      if (matches(compileCondition(array), { idx: { d: stored } }) !== expectedArray) mismatches++;
      const pointCondition: Condition = { op: 'date', field: 'lastUpdated', layout: 'point', cmp, lo: asDate(qlo), hi: asDate(qhi) };
      if (matches(compileCondition(pointCondition), { lastUpdated: stored[0].lo }) !== dateSpec(cmp, ranges[0].lo, ranges[0].lo, qlo, qhi))
        mismatches++;
      checked += 3;
    }
  }
  t.equal(mismatches, 0, `${checked} generated cases`);
  t.notOk(
    matches(compileCondition({ op: 'date', field: 'idx.d', layout: 'scalar', cmp: 'eq', lo: new Date(0), hi: new Date(10) }), {}),
    'a missing value never matches',
  );
});

t.test('numbers and quantities: precision range for eq/ne/ap, the value for the others', async (t) => {
  const random = rng(7);
  let mismatches = 0;
  const spec = (cmp: Comparator, v: number, value: number, lo: number, hi: number): boolean =>
    ({
      eq: v >= lo && v < hi,
      ne: !(v >= lo && v < hi),
      gt: v > value,
      sa: v > value,
      lt: v < value,
      eb: v < value,
      ge: v >= value,
      le: v <= value,
      ap: v >= lo && v <= hi,
    })[cmp];
  for (let i = 0; i < 300; i++) {
    const value = Math.floor(random() * 20);
    const [lo, hi] = [value - 0.5, value + 0.5];
    const stored = Array.from({ length: 1 + Math.floor(random() * 3) }, () => Math.floor(random() * 40) / 2);
    for (const cmp of CMPS) {
      const base = { op: 'number' as const, cmp, value, lo, hi };
      if (matches(compileCondition({ ...base, field: 'n', layout: 'scalar' }), { n: stored[0] }) !== spec(cmp, stored[0], value, lo, hi))
        mismatches++;
      if (
        matches(compileCondition({ ...base, field: 'n', layout: 'array' }), { n: stored }) !==
        stored.some((v) => spec(cmp, v, value, lo, hi))
      )
        mismatches++;
      const quantities = stored.map((v, k) => ({ v, s: 'http://unitsofmeasure.org', c: k % 2 ? 'mg' : 'g', u: k % 2 ? 'mg' : 'g' }));
      const expected = quantities.some((q) => q.c === 'mg' && spec(cmp, q.v, value, lo, hi));
      const quantity: Condition = { ...base, field: 'q', layout: 'array', quantity: { system: 'http://unitsofmeasure.org', code: 'mg' } };
      if (matches(compileCondition(quantity), { q: quantities }) !== expected) mismatches++;
      const byUnit: Condition = { ...base, field: 'q', layout: 'array', quantity: { code: 'mg' } };
      if (matches(compileCondition(byUnit), { q: quantities }) !== expected) mismatches++;
    }
  }
  t.equal(mismatches, 0);
});

t.test('string prefixes: ranges on scalars, anchored patterns on arrays, one element at a time', async (t) => {
  t.equal(successorOf('abc'), 'abd');
  t.equal(successorOf('a\u{1F600}'), 'a\u{1F601}', 'supplementary code points');
  t.equal(successorOf('a\ud7ff'), 'a\ue000', 'skips the surrogate range');
  const scalar = compileCondition({ op: 'prefix', field: 'f', layout: 'scalar', prefixes: ['smi'] });
  t.same(scalar, { f: { $gte: 'smi', $lt: 'smj' } });
  for (const value of ['smi', 'smith', 'smi\u{1F600}', 'smi\uffff']) t.ok(matches(scalar, { f: value }), value);
  for (const value of ['sm', 'smj', 'asmith']) t.notOk(matches(scalar, { f: value }), value);
  const array = compileCondition({ op: 'prefix', field: 'f', layout: 'array', prefixes: ['smi'] });
  t.notOk(matches(array, { f: ['aaa', 'zzz'] }), 'no element starts with it (a plain range would match: aaa < smj, zzz >= smi)');
  t.ok(matches(array, { f: ['aaa', 'smith'] }));
  const special = compileCondition({ op: 'prefix', field: 'f', layout: 'array', prefixes: ['a.b(c'] });
  t.ok(matches(special, { f: ['a.b(cd'] }));
  t.notOk(matches(special, { f: ['axb(cd'] }), 'regex characters are literal');
  const contains = compileCondition({ op: 'contains', field: 'f', fragments: ['mit', 'x*'] });
  t.ok(matches(contains, { f: ['smith'] }));
  t.ok(matches(contains, { f: ['ax*b'] }));
  t.notOk(matches(contains, { f: ['axxb'] }));
});

t.test('keyset: the entries after a position are exactly those that follow it in the sort order', async (t) => {
  const random = rng(99);
  const values: SortValue[] = ['a', 'b', 'c', null];
  const docs = Array.from({ length: 60 }, (_, i) => {
    const doc: Record<string, unknown> = { _id: `P/${String(i).padStart(3, '0')}` };
    const x = values[Math.floor(random() * values.length)];
    const y = values[Math.floor(random() * values.length)];
    if (x !== null) doc.x = x;
    if (y !== null) doc.y = y;
    return doc;
  });
  // MongoDB's order for one type plus missing: missing first ascending.
  const rank = (v: unknown) => (v === undefined || v === null ? -1 : values.indexOf(v as SortValue));
  const sorts: SortKey[][] = [
    [],
    [{ field: 'x', direction: 1 }],
    [{ field: 'x', direction: -1 }],
    [
      { field: 'x', direction: -1 },
      { field: 'y', direction: 1 },
    ],
    [
      { field: 'y', direction: 1 },
      { field: 'x', direction: 1 },
    ],
  ];
  let mismatches = 0;
  for (const sort of sorts) {
    const full = fullSort(sort);
    const ordered = [...docs].sort((a, b) => {
      for (const key of full) {
        const [va, vb] = [a[key.field], b[key.field]];
        const c = key.field === '_id' ? String(va).localeCompare(String(vb)) : rank(va) - rank(vb);
        if (c !== 0) return c * key.direction;
      }
      return 0;
    });
    for (let k = 0; k < ordered.length; k++) {
      const position = full.map((key) => (ordered[k][key.field] ?? null) as SortValue);
      const filter = keysetAfter(full, position);
      const after = ordered.filter((d) => matches(filter, d)).map((d) => d._id);
      if (JSON.stringify(after) !== JSON.stringify(ordered.slice(k + 1).map((d) => d._id))) mismatches++;
    }
  }
  t.equal(mismatches, 0);
  t.same(
    fullSort([
      { field: '_id', direction: -1 },
      { field: 'x', direction: 1 },
    ]),
    [{ field: '_id', direction: -1 }],
    'nothing after the unique key',
  );
  t.same(fullSort([{ field: 'x', direction: -1 }]), [
    { field: 'x', direction: -1 },
    { field: '_id', direction: -1 },
  ]);
});
