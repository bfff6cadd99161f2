/**
 * Date, number and quantity search through the HTTP API: every prefix over ranges (FHIR R4 search.html#prefix),
 * the precision of stored and searched values, timezones, Periods with open ends, multi-valued dates (one
 * element must satisfy the whole condition), _lastUpdated, :missing.
 */
import type { Encounter, MedicationRequest, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { create, ids, search, sorted } from '../fhir/search/helpers.js';

stopMongoAtEnd(t);

t.test('date, number and quantity search', async (t) => {
  const { app } = await startTestApp(t);
  const year = await create<Patient>(app, { resourceType: 'Patient', birthDate: '1974' });
  const month = await create<Patient>(app, { resourceType: 'Patient', birthDate: '1974-12' });
  const day = await create<Patient>(app, { resourceType: 'Patient', birthDate: '1974-12-25' });
  const none = await create<Patient>(app, { resourceType: 'Patient', gender: 'unknown' });
  const Y = year.id;
  const M = month.id;
  const D = day.id;

  await t.test('prefixes over a date at year, month and day precision', async (t) => {
    const cases: Array<[string, string[]]> = [
      ['1974', [Y, M, D]], // eq: the search range contains the value's range
      ['eq1974-12', [M, D]],
      ['1974-12-25', [D]],
      ['1975', []],
      ['ne1974-12', [Y]],
      ['gt1974-12-24', [Y, M, D]], // the range above the value overlaps the target
      ['gt1974-12-25', [Y, M]],
      ['lt1974-12-25', [Y, M]],
      ['lt1974-01-01', []],
      ['ge1974-12-25', [Y, M, D]],
      ['ge1975', []],
      ['le1974-12-01', [Y]], // December starts exactly at the search day: neither below it nor inside it
      ['le1974-12-31', [Y, M, D]],
      ['sa1974-06', [M, D]], // starts after
      ['sa1974', []],
      ['eb1975', [Y, M, D]], // ends before
      ['eb1974-12-25', []],
      ['ap1974-12-25', [Y, M, D]], // approximately: 10% of the ~50 years between then and now
      ['ap2015', []],
    ];
    for (const [value, expected] of cases) {
      t.same(await ids(app, `/Patient?birthdate=${value}`), sorted(expected), `birthdate=${value}`);
    }
    t.same(
      await ids(app, '/Patient?birthdate=ge1974-06&birthdate=le1974-12-31'),
      sorted([Y, M, D]),
      'a range by two parameters (AND): 1974 overlaps it',
    );
    t.same(await ids(app, '/Patient?birthdate=ge1974-12-26&birthdate=le1974-12-31'), sorted([Y, M]), 'Christmas day ends before the 26th');
    t.same(await ids(app, '/Patient?birthdate=1974-12-25,1974-12'), sorted([M, D]), 'OR');
    t.same(await ids(app, '/Patient?birthdate:missing=true'), [none.id]);
    t.same(await ids(app, '/Patient?birthdate:missing=false'), sorted([Y, M, D]));
    t.same(await ids(app, '/Patient?birthdate=1974-12-25T10:00:00Z'), [], 'a second inside the day does not contain the day');
  });

  await t.test('timezones: values and queries compared as instants; no timezone means UTC', async (t) => {
    const base = {
      resourceType: 'MedicationRequest' as const,
      status: 'active' as const,
      intent: 'order' as const,
      subject: { reference: `Patient/${D}` },
      medicationCodeableConcept: { text: 'x' },
    };
    const late = await create<MedicationRequest>(app, { ...base, authoredOn: '2024-03-10T23:30:00-05:00' }); // 2024-03-11T04:30Z
    const early = await create<MedicationRequest>(app, { ...base, authoredOn: '2024-03-11T01:30:00+14:00' }); // 2024-03-10T11:30Z
    t.same(await ids(app, '/MedicationRequest?authoredon=2024-03-11'), [late.id], 'the UTC day of the instant');
    t.same(await ids(app, '/MedicationRequest?authoredon=2024-03-10'), [early.id]);
    t.same(await ids(app, '/MedicationRequest?authoredon=ge2024-03-10T23:00:00-05:00'), [late.id], 'a query with an offset');
    t.same(await ids(app, '/MedicationRequest?authoredon=lt2024-03-11T06:00:00%2B01:00'), sorted([late.id, early.id]), '+01:00 encoded');
    t.same(
      await ids(app, '/MedicationRequest?authoredon=lt2024-03-11T06:00:00+01:00'),
      sorted([late.id, early.id]),
      'an unencoded + (read as a space) still works',
    );
    t.same(await ids(app, '/MedicationRequest?authoredon=2024-03-11T04:30:00Z'), [late.id], 'second precision');
    t.same(await ids(app, '/MedicationRequest?authoredon=2024-03-11T04:30Z'), [late.id], 'minute precision');
    t.same(await ids(app, '/MedicationRequest?authoredon=2024-03-11T04:30:00.500Z'), [], 'a millisecond range inside the stored second');
    t.same(await ids(app, '/MedicationRequest?authoredon=2024-03-10T23:30:00'), [], 'no timezone in the query: UTC, a different instant');
  });

  await t.test('periods with open ends; multi-valued dates match element by element', async (t) => {
    const enc = (period: Encounter['period']) =>
      create<Encounter>(app, {
        resourceType: 'Encounter',
        status: 'finished',
        class: { code: 'AMB' },
        subject: { reference: `Patient/${D}` },
        period,
      });
    const closed = (await enc({ start: '2024-01-01', end: '2024-01-03' })).id;
    const open = (await enc({ start: '2024-02-01T09:00:00Z' })).id;
    const before = (await enc({ end: '2023-12-31' })).id;
    const cases: Array<[string, string[]]> = [
      ['2024-01-02', []], // the period is longer than the day: not contained
      ['2024-01', [closed]],
      ['2024', [closed]], // an open end is never contained
      ['ge2024-01-02', [closed, open]],
      ['gt2030', [open]],
      ['lt2024', [before]],
      ['le2023-06', [before]],
      ['sa2023', [closed, open]],
      ['eb2024-02', [closed, before]],
      ['ne2024-01', [open, before]],
    ];
    for (const [value, expected] of cases) {
      t.same(await ids(app, `/Encounter?date=${value}`), sorted(expected), `date=${value}`);
    }
    t.same(await ids(app, '/Encounter?date=ge2024-01-01&date=le2024-01-31'), [closed], 'within January');

    const timing = await create<MedicationRequest>(app, {
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      subject: { reference: `Patient/${D}` },
      medicationCodeableConcept: { text: 'timed' },
      dosageInstruction: [{ timing: { event: ['2024-05-01T08:00:00Z', '2024-05-03'] } }],
    });
    t.same(await ids(app, '/MedicationRequest?date=2024-05-03'), [timing.id]);
    t.same(await ids(app, '/MedicationRequest?date=2024-05-01'), [timing.id]);
    t.same(
      await ids(app, '/MedicationRequest?date=2024-05-02'),
      [],
      'no single event lies in May 2 (one starts after it, another ends before it: not a match)',
    );
    t.same(await ids(app, '/MedicationRequest?date=2024-05'), [timing.id]);
    t.same(await ids(app, '/MedicationRequest?date=sa2024-05-02'), [timing.id], 'one event starts after');
    t.same(await ids(app, '/MedicationRequest?date=eb2024-05-01'), [], 'none ends before');
  });

  await t.test('_lastUpdated compares the instant of each version', async (t) => {
    const first = await create<Patient>(app, { resourceType: 'Patient', gender: 'other' });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = await create<Patient>(app, { resourceType: 'Patient', gender: 'other' });
    const at = first.meta!.lastUpdated!;
    t.same(await ids(app, `/Patient?gender=other&_lastUpdated=${at}`), [first.id]);
    t.same(await ids(app, `/Patient?gender=other&_lastUpdated=gt${at}`), [second.id]);
    t.same(await ids(app, `/Patient?gender=other&_lastUpdated=le${at}`), [first.id]);
    t.same(await ids(app, `/Patient?gender=other&_lastUpdated=ge${at.slice(0, 4)}`), sorted([first.id, second.id]));
    t.same(await ids(app, `/Patient?gender=other&_lastUpdated:missing=true`), []);
  });

  await t.test('numbers: precision of the search value, prefixes (Medplum priority-order)', async (t) => {
    const base = {
      resourceType: 'MedicationRequest' as const,
      status: 'draft' as const,
      intent: 'proposal' as const,
      subject: { reference: `Patient/${Y}` },
      medicationCodeableConcept: { text: 'n' },
    };
    const stat = (await create<MedicationRequest>(app, { ...base, priority: 'stat' })).id; // 50
    const urgent = (await create<MedicationRequest>(app, { ...base, priority: 'urgent' })).id; // 30
    const routine = (await create<MedicationRequest>(app, { ...base, priority: 'routine' })).id; // 20
    const q = (v: string) => ids(app, `/MedicationRequest?status=draft&priority-order=${v}`);
    t.same(await q('50'), [stat]);
    t.same(await q('50.0'), [stat]);
    t.same(await q('49.6'), [], '49.6 means [49.55, 49.65)');
    t.same(await q('5e1'), [stat], 'one significant figure: [45, 55)');
    t.same(await q('ge30'), sorted([stat, urgent]));
    t.same(await q('gt30'), [stat]);
    t.same(await q('lt30'), [routine]);
    t.same(await q('le30'), sorted([urgent, routine]));
    t.same(await q('ne30'), sorted([stat, routine]));
    t.same(await q('ap28'), [urgent], 'within 10%');
    t.same(await q('sa20'), sorted([stat, urgent]));
    t.same(await q('eb30'), [routine]);
    t.same(await q('20,50'), sorted([stat, routine]));
    const bad = await search(app, '/MedicationRequest?priority-order=high', { prefer: 'handling=strict' });
    t.equal(bad.status, 400);
  });

  await t.test('quantities: value with system and code (unit conversion: test/fhir/search-quantity.test.ts)', async (t) => {
    const enc = (length: Encounter['length']) =>
      create<Encounter>(app, { resourceType: 'Encounter', status: 'planned', class: { code: 'AMB' }, length });
    const ucum = 'http://unitsofmeasure.org';
    const ninety = (await enc({ value: 90, unit: 'min', system: ucum, code: 'min' })).id;
    const two = (await enc({ value: 2, unit: 'h', system: ucum, code: 'h' })).id;
    const q = (v: string) => ids(app, `/Encounter?status=planned&length=${v}`);
    t.same(await q('90'), [ninety]);
    t.same(await q(`90|${ucum}|min`), [ninety]);
    t.same(await q(`90|${ucum}|h`), []);
    t.same(await q('gt60||min'), [ninety], 'code without system matches code or unit');
    t.same(await q('2||h'), [two]);
    t.same(await q('lt100'), sorted([ninety, two]));
    t.same(await q(`ge90|${ucum}|min`), sorted([ninety, two]), '2 h >= 90 min (UCUM conversion)');
    t.same(await ids(app, '/Encounter?status=planned&length:missing=false'), sorted([ninety, two]));
  });
});
