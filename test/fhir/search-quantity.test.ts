/**
 * Quantity search with UCUM unit conversion (FHIR R4 search.html#quantity), through the HTTP API on
 * Encounter.length (a Duration, the hosted types' one quantity parameter): every prefix, the precision range of
 * eq/ne, conversion in both directions, the calendar units as UCUM defines them, the fallback to an exact
 * system|code match for units that do not convert, codes without a system, and values indexed before
 * canonical values existed (found by their exact unit until a reindex adds them).
 */
import type { Encounter } from '@medplum/fhirtypes';
import { Query } from 'mingo';
import t from 'tap';
import type { QuantityValue } from '../../src/fhir/search/extract.js';
import { compileCondition } from '../../src/store/search/compile.js';
import type { Comparator, Condition } from '../../src/store/search/query.js';
import { reindex } from '../../src/fhir/search/reindex.js';
import { canonicalUnit, toCanonical } from '../../src/fhir/search/units.js';
import { startTestApp, stopMongoAtEnd, TEST_CONFIG } from '../helpers/app.js';
import { create, ids, search, sorted } from './search/helpers.js';

stopMongoAtEnd(t);

const UCUM = 'http://unitsofmeasure.org';

t.test('UCUM conversion factors (units.ts)', async (t) => {
  const inBase = (value: number, code: string): [number, string] | undefined => {
    const unit = canonicalUnit(code);
    return unit ? [toCanonical(value, unit), unit.unit] : undefined;
  };
  t.same(inBase(90, 'min'), [5400, 's']);
  t.same(inBase(1.5, 'h'), [5400, 's']);
  t.same(inBase(1, 'wk'), [604800, 's']);
  t.same(inBase(1, 'mo'), [30.4375 * 86400, 's'], 'UCUM: mo = a/12 (Julian month, 30.4375 d)');
  t.same(inBase(1, 'a'), [365.25 * 86400, 's'], 'UCUM: a = 365.25 d (Julian year)');
  t.same(inBase(5, 'ug'), inBase(0.005, 'mg'), '5 ug = 0.005 mg, equal after rounding');
  t.same(inBase(1, 'kg'), [1000, 'g']);
  t.same(inBase(250, 'mL'), inBase(0.25, 'L'));
  t.same(inBase(12, 'cm'), inBase(120, 'mm'));
  t.same(inBase(1, 'mg/dL'), [10, 'g.m-3']);
  t.equal(inBase(1, 'Cel'), undefined, 'special units are not converted');
  t.equal(inBase(1, '[IU]'), undefined, 'arbitrary units are not converted');
  t.equal(inBase(1, 'hours'), undefined, 'not UCUM');
  t.equal(inBase(1, 'MIN'), undefined, 'UCUM codes are case-sensitive');
  t.equal(inBase(1, ''), undefined);
});

t.test('compiled quantity conditions with conversion, by brute force (mingo, scalar and array layouts)', async (t) => {
  const CMPS: Comparator[] = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'];
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
  const matches = (filter: object, doc: object): boolean =>
    new Query(filter as Record<string, unknown>).test(doc as Record<string, unknown>);
  const codes = ['mg', 'g', 'ug', '[IU]'];
  const stored = (v: number, code: string): QuantityValue => {
    const unit = canonicalUnit(code);
    return { v, s: UCUM, c: code, ...(unit ? { cv: toCanonical(v, unit), cc: unit.unit } : {}) };
  };
  let mismatches = 0;
  let seed = 11;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 200; i++) {
    const value = Math.floor(random() * 20);
    const code = codes[Math.floor(random() * codes.length)];
    const values = Array.from({ length: 1 + Math.floor(random() * 3) }, () =>
      stored(Math.floor(random() * 40) * 50, codes[Math.floor(random() * codes.length)]),
    );
    for (const cmp of CMPS) {
      const [lo, hi] = cmp === 'ap' ? [value * 0.9, value * 1.1] : [value - 0.5, value + 0.5];
      const unit = canonicalUnit(code);
      const canonical = unit
        ? { unit: unit.unit, value: toCanonical(value, unit), lo: toCanonical(lo, unit), hi: toCanonical(hi, unit) }
        : undefined;
      const one = (q: QuantityValue): boolean =>
        canonical && q.cc === canonical.unit
          ? spec(cmp, q.cv!, canonical.value, canonical.lo, canonical.hi)
          : q.c === code && spec(cmp, q.v, value, lo, hi);
      const condition = (layout: 'scalar' | 'array'): Condition => ({
        op: 'number',
        field: 'q',
        layout,
        cmp,
        value,
        lo,
        hi,
        quantity: { system: UCUM, code, ...(canonical ? { canonical } : {}) },
      });
      if (matches(compileCondition(condition('scalar')), { q: values[0] }) !== one(values[0])) mismatches++;
      if (matches(compileCondition(condition('array')), { q: values }) !== values.some(one)) mismatches++;
    }
  }
  t.equal(mismatches, 0);
});

t.test('quantity search on Encounter.length', async (t) => {
  const { app, store } = await startTestApp(t);
  const enc = async (length: Encounter['length']): Promise<string> =>
    (await create<Encounter>(app, { resourceType: 'Encounter', status: 'in-progress', class: { code: 'AMB' }, length })).id;
  const min90 = await enc({ value: 90, unit: 'min', system: UCUM, code: 'min' });
  const h2 = await enc({ value: 2, unit: 'h', system: UCUM, code: 'h' });
  const h15 = await enc({ value: 1.5, unit: 'h', system: UCUM, code: 'h' });
  const d1 = await enc({ value: 1, unit: 'day', system: UCUM, code: 'd' });
  const mo1 = await enc({ value: 1, unit: 'month', system: UCUM, code: 'mo' });
  const a1 = await enc({ value: 1, unit: 'year', system: UCUM, code: 'a' });
  const iu3 = await enc({ value: 3, unit: 'IU', system: UCUM, code: '[IU]' });
  const noSystem = await enc({ value: 90, unit: 'min' });
  const q = (value: string) => ids(app, `/Encounter?status=in-progress&length=${encodeURIComponent(value)}`);
  const u = (text: string) => text.replaceAll('|U|', `|${UCUM}|`);

  await t.test('conversion both ways: a search in h finds minutes and a search in min finds hours', async (t) => {
    t.same(await q(u('gt1|U|h')), sorted([min90, h2, h15, d1, mo1, a1]), '90 min > 1 h');
    t.same(await q(u('120|U|min')), [h2], '120 min = 2 h');
    t.same(await q(u('90|U|min')), sorted([min90, h15]), '1.5 h = 90 min');
    t.same(await q(u('1.5|U|h')), sorted([min90, h15]));
    t.same(await q(u('1440|U|min')), [d1]);
    t.same(await q(u('30.4375|U|d')), [mo1], 'a UCUM month is 30.4375 days');
    t.same(await q(u('12|U|mo')), [a1], '12 months make a UCUM year');
    t.same(await q(u('1.5|U|h,1|U|d')), sorted([min90, h15, d1]), 'OR of values in different units');
  });

  await t.test('every prefix, compared in base units', async (t) => {
    t.same(await q(u('eq1.5|U|h')), sorted([min90, h15]), 'eq: [1.45, 1.55) h');
    t.same(await q(u('eq1|U|h')), [], 'eq 1 h is [0.5, 1.5) h: 90 min sits on the excluded upper bound');
    t.same(await q(u('eq92|U|min')), [], '[91.5, 92.5) min');
    t.same(await q(u('eq89.7|U|min')), [], '[89.65, 89.75) min does not hold 90 min');
    t.same(await q(u('eq1.50|U|h')), sorted([min90, h15]), '[1.495, 1.505) h');
    t.same(await q(u('ne1.5|U|h')), sorted([h2, d1, mo1, a1]), 'ne: outside [1.45, 1.55) h; other dimensions never match');
    t.same(await q(u('gt90|U|min')), sorted([h2, d1, mo1, a1]));
    t.same(await q(u('lt2|U|h')), sorted([min90, h15]));
    t.same(await q(u('ge90|U|min')), sorted([min90, h15, h2, d1, mo1, a1]));
    t.same(await q(u('le1.5|U|h')), sorted([min90, h15]));
    t.same(await q(u('sa1.5|U|h')), sorted([h2, d1, mo1, a1]));
    t.same(await q(u('eb2|U|h')), sorted([min90, h15]));
    t.same(await q(u('ap100|U|min')), sorted([min90, h15]), 'ap: within 10% ([90, 110] min)');
    t.same(await q(u('ap2|U|h')), [h2], '[1.8, 2.2] h');
    t.same(await q(u('ap24|U|h')), [d1]);
    t.same(await q(u('gt1|U|wk')), sorted([mo1, a1]));
  });

  await t.test('units that do not convert fall back to an exact system|code match', async (t) => {
    t.same(await q(u('3|U|[IU]')), [iu3]);
    t.same(await q(u('gt2|U|[IU]')), [iu3]);
    t.same(await q(u('3|U|h')), [], 'IU are not hours');
    t.same(await q(u('90|U|minutes')), [], 'not a UCUM code: no conversion, and no stored value has that code');
    t.same(await q('3|http://example.org/units|h'), [], 'another system never converts');
  });

  await t.test('without a system: the code matches code or unit, with no conversion', async (t) => {
    t.same(await q('90||min'), sorted([min90, noSystem]));
    t.same(await q('1.5||h'), [h15], 'a bare code is not taken for UCUM: 90 min is not found');
    t.same(await q('90'), sorted([min90, noSystem]), 'a bare number matches any unit');
    t.same(await q(u('90|U|min')), sorted([min90, h15]), 'a quantity without a system is not a UCUM quantity');
  });

  await t.test('malformed quantities: ignored and reported, 400 under handling=strict', async (t) => {
    const lenient = await search(app, `/Encounter?status=in-progress&length=${encodeURIComponent(u('x|U|h'))}`);
    t.equal(lenient.status, 200);
    t.equal(lenient.ids.length, 8);
    t.match(lenient.warnings.join('\n'), /length/);
    const strict = await app.inject({ url: '/Encounter?length=1|a|b|c', headers: { prefer: 'handling=strict' } });
    t.equal(strict.statusCode, 400);
    t.equal(strict.json().resourceType, 'OperationOutcome');
  });

  await t.test('_sort=length orders by the value in base units, then by the value as written', async (t) => {
    const ascending = await search(app, '/Encounter?status=in-progress&_sort=length&_count=3');
    // No base-unit value sorts first (as missing), then 1.5 h and 90 min (equal: the value as written decides).
    t.same(ascending.ids, [iu3, noSystem, h15]);
    const next = ascending.bundle.link?.find((l) => l.relation === 'next')?.url;
    t.ok(next, 'a next page');
    t.same((await search(app, next!)).ids, [min90, h2, d1]);
    const descending = await search(app, '/Encounter?status=in-progress&_sort=-length');
    t.same(descending.ids, [a1, mo1, d1, h2, min90, h15, noSystem, iu3]);
  });

  await t.test('values indexed before canonical values existed: exact unit until a reindex converts them', async (t) => {
    // What a head written by the previous extractor looks like: no cv/cc, an older idxVersion.
    await store.heads.updateOne(
      { type: 'Encounter', id: min90 },
      { $unset: { 'idx.length.cv': '', 'idx.length.cc': '' }, $set: { idxVersion: 1 } },
    );
    t.same(await q(u('90|U|min')), sorted([min90, h15]), 'found by its exact unit');
    t.same(await q(u('1.5|U|h')), [h15], 'not yet by conversion');
    const result = await reindex(store, TEST_CONFIG.baseUrl, { restart: true });
    t.equal(result.updated, 1, 'only the stale head is reindexed');
    t.same(await q(u('1.5|U|h')), sorted([min90, h15]), 'converted after the reindex');
    const head = await store.heads.findOne({ type: 'Encounter', id: min90 });
    t.match(head?.idx, { length: { v: 90, s: UCUM, c: 'min', cv: 5400, cc: 's' } });
  });
});
