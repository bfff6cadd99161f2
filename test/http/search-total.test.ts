/**
 * Bundle.total by policy (SEARCH_DEFAULT_TOTAL) and by `_total`, through the HTTP API, on three apps over one
 * database: the default policy (none), estimate and accurate. Whatever the policy, a free total is given and exact
 * (a first page that holds every match, the page where next links run out); `estimate` counts at most
 * ESTIMATE_COUNT_LIMIT matches and gives no total beyond; `accurate` counts; `_summary=count` and `_count=0` count
 * exactly. Next links come from the page read (one entry more than shown), never from a total.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Encounter, OperationOutcome, Patient } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { storeNextVersion } from '../../src/fhir/interactions/versions.js';
import type { TotalMode } from '../../src/fhir/search/parse.js';
import { DEFAULT_SEARCH_SETTINGS, ESTIMATE_COUNT_LIMIT } from '../../src/fhir/search/search.js';
import { TEST_CONFIG, startTestApp, stopMongoAtEnd, testContext, testValidator } from '../helpers/app.js';
import { BASE, JSON_HEADERS, link, search, type SearchResult } from '../fhir/search/helpers.js';

stopMongoAtEnd(t);

/** One more than `estimate` counts: its total must be left out. */
const MANY = ESTIMATE_COUNT_LIMIT + 1;
/** More than a default page, fewer than the estimate bound. */
const SOME = 45;
const FEW = 5;
const ENCOUNTERS = 25;

async function inParallel(count: number, workers: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/** Follows next links from `url` to the end; every page answered 200. */
async function walk(app: FastifyInstance, url: string, maxPages = 100): Promise<SearchResult[]> {
  const pages: SearchResult[] = [];
  for (let next: string | undefined = url; next && pages.length < maxPages; next = link(pages[pages.length - 1].bundle, 'next')) {
    const page = await search(app, next);
    if (page.status !== 200) throw new Error(`${next}: ${page.status} ${JSON.stringify(page.bundle)}`);
    pages.push(page);
  }
  return pages;
}

t.test('Bundle.total by policy and by _total', async (t) => {
  const { app: none, store } = await startTestApp(t);
  const withDefault = async (defaultTotal: TotalMode): Promise<FastifyInstance> => {
    const app = await buildApp(
      { ...TEST_CONFIG, search: { ...DEFAULT_SEARCH_SETTINGS, defaultTotal } },
      { store, validator: await testValidator(), logger: false },
    );
    t.teardown(() => app.close());
    return app;
  };
  const estimate = await withDefault('estimate');
  const accurate = await withDefault('accurate');

  // The matches go through the write path (stamping, index values, pending anchor) without HTTP, to keep it fast.
  const ctx = await testContext(store, BASE);
  const write = async (type: 'Patient' | 'Encounter', resource: Patient | Encounter): Promise<string> => {
    const id = randomUUID();
    await storeNextVersion(ctx, { type, id, previous: null, resource: { ...resource, id }, deleted: false, method: 'POST' });
    return id;
  };
  const families: Array<[string, number]> = [
    ['Many', MANY],
    ['Some', SOME],
    ['Few', FEW],
  ];
  for (const [family, count] of families) {
    await inParallel(count, 4, (i) => write('Patient', { resourceType: 'Patient', name: [{ family, given: [`G${i}`] }] }));
  }
  const owner = await write('Patient', { resourceType: 'Patient', name: [{ family: 'Owner' }] });
  await inParallel(ENCOUNTERS, 4, () =>
    write('Encounter', {
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: `Patient/${owner}` },
    }),
  );

  await t.test('the default policy is none: no count, but a free total is given, and exact', async (t) => {
    t.equal(DEFAULT_SEARCH_SETTINGS.defaultTotal, 'none');
    const few = await search(none, '/Patient?family=few');
    t.equal(few.bundle.total, FEW, 'the first page holds every match: the total is free');
    t.equal(link(few.bundle, 'next'), undefined, 'and there is no next page');
    const exactlyFull = await search(none, `/Patient?family=few&_count=${FEW}`);
    t.equal(exactlyFull.ids.length, FEW);
    t.equal(exactlyFull.bundle.total, FEW, 'a page exactly as large as the matches: free as well (one more was asked for, none came)');
    t.equal(link(exactlyFull.bundle, 'next'), undefined, 'no next link to an empty page');
    t.equal(link(exactlyFull.bundle, 'last'), undefined);

    const pages = await walk(none, '/Patient?family=some&_count=20');
    t.same(
      pages.map((p) => p.ids.length),
      [20, 20, 5],
    );
    t.same(
      pages.map((p) => p.bundle.total),
      [undefined, undefined, SOME],
      'no total until the page where the matches run out, which knows it',
    );
    t.same(
      pages.map((p) => link(p.bundle, 'next') !== undefined),
      [true, true, false],
      'a next link exactly when there is a next page',
    );
    t.same(
      pages.map((p) => link(p.bundle, 'last') !== undefined),
      [true, true, false],
      'a last link while there is more (read backwards: no total needed)',
    );
    t.equal(new Set(pages.flatMap((p) => p.ids)).size, SOME, 'every match once');

    const many = await walk(none, '/Patient?family=many&_count=200');
    t.same(
      many.map((p) => p.bundle.total),
      [undefined, undefined, undefined, undefined, undefined, MANY],
      `the last of ${many.length} pages knows all ${MANY}`,
    );
    t.same(
      many.map((p) => p.ids.length),
      [200, 200, 200, 200, 200, 1],
    );
  });

  await t.test('previous links keep the offsets: back and forth still ends with the exact total', async (t) => {
    const [first, second, third] = await walk(none, '/Patient?family=some&_count=20');
    const back = await search(none, link(third.bundle, 'previous')!);
    t.same(back.ids, second.ids, 'previous of the third page is the second');
    t.equal(back.bundle.total, undefined);
    const again = await search(none, link(back.bundle, 'next')!);
    t.same(again.ids, third.ids);
    t.equal(again.bundle.total, SOME, 'and its next the third again, with its total');
    const start = await search(none, link(back.bundle, 'previous')!);
    t.same(start.ids, first.ids, 'back at the start');
    t.equal(link(start.bundle, 'previous'), undefined);
    const onward = await walk(none, link(start.bundle, 'next')!);
    t.equal(onward[onward.length - 1].bundle.total, SOME, 'paging on from a page reached backwards still knows the total at the end');
    // The last page reached by the last link (read backwards from the end) has no known offset: no total for free.
    const last = await search(none, link(first.bundle, 'last')!);
    t.same(last.ids, [...second.ids, ...third.ids].slice(-20), 'the last link: the last 20 matches');
    t.equal(last.bundle.total, undefined, 'a jump to the last page cannot know how many came before');
    t.equal(link(last.bundle, 'next'), undefined);
  });

  await t.test("a cursor's carried counts that are not counts are left out, not trusted", async (t) => {
    const [, second] = await walk(none, '/Patient?family=some&_count=20');
    const next = link(second.bundle, 'next')!;
    const cursor = new URL(next).searchParams.get('_cursor')!;
    const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
    t.equal(decoded.o, 40, 'the next link of the second page says 40 matches came before');
    for (const bad of [-1, 1.5, 1e300, '40', null, { __proto__: 1 }]) {
      const tampered = Buffer.from(JSON.stringify({ ...decoded, o: bad, t: bad })).toString('base64url');
      const page = await search(none, next.replace(cursor, tampered));
      t.equal(page.status, 200, `o=${JSON.stringify(bad)}`);
      t.equal(page.ids.length, 5);
      t.equal(page.bundle.total, undefined, 'no offset, so no free total');
    }
  });

  await t.test('_total overrides the default policy, in every app', async (t) => {
    const cases: Array<[FastifyInstance, string, string, number | undefined]> = [
      [none, 'none', '/Patient?family=some&_total=estimate', SOME],
      [none, 'none', '/Patient?family=many&_total=estimate', undefined],
      [none, 'none', '/Patient?family=many&_total=accurate', MANY],
      [none, 'none', '/Patient?family=some&_total=none', undefined],
      [estimate, 'estimate', '/Patient?family=some', SOME],
      [estimate, 'estimate', '/Patient?family=many', undefined],
      [estimate, 'estimate', '/Patient?family=some&_total=none', undefined],
      [estimate, 'estimate', '/Patient?family=many&_total=accurate', MANY],
      [accurate, 'accurate', '/Patient?family=many', MANY],
      [accurate, 'accurate', '/Patient?family=some', SOME],
      [accurate, 'accurate', '/Patient?family=some&_total=none', undefined],
      [accurate, 'accurate', '/Patient?family=many&_total=estimate', undefined],
    ];
    for (const [app, policy, url, expected] of cases) {
      const result = await search(app, url);
      t.equal(result.status, 200, `${policy}: ${url}`);
      t.equal(result.bundle.total, expected, `default ${policy}: ${url} -> ${expected ?? 'no total'}`);
      t.equal(result.ids.length, 20, 'a full page either way');
      t.ok(link(result.bundle, 'next'), 'with a next link, total or not');
    }
    t.equal((await search(accurate, '/Patient?family=few&_total=none')).bundle.total, FEW, '_total=none still gives a free total');
  });

  await t.test('estimate: exact below the bound, carried to later pages, never a guess above it', async (t) => {
    const some = await walk(estimate, '/Patient?family=some&_count=20');
    t.same(
      some.map((p) => p.bundle.total),
      [SOME, SOME, SOME],
      'counted for the first page, carried by the links',
    );
    const many = await walk(estimate, '/Patient?family=many&_count=200');
    t.same(
      many.map((p) => p.bundle.total),
      [undefined, undefined, undefined, undefined, undefined, MANY],
      'above the bound only the free total of the last page',
    );
    const accurateWalk = await walk(accurate, '/Patient?family=many&_count=500');
    t.same(
      accurateWalk.map((p) => p.bundle.total),
      [MANY, MANY, MANY],
      'accurate: every page counted',
    );
  });

  await t.test('_summary=count and _count=0 always count exactly', async (t) => {
    for (const app of [none, estimate, accurate]) {
      for (const url of [
        '/Patient?family=many&_summary=count',
        '/Patient?family=many&_count=0',
        '/Patient?family=many&_summary=count&_total=none',
        '/Patient?family=many&_count=0&_total=estimate',
      ]) {
        const result = await search(app, url);
        t.equal(result.bundle.total, MANY, url);
        t.equal(result.bundle.entry, undefined, `${url}: no entries`);
        t.same(
          result.bundle.link?.map((l) => l.relation),
          ['self'],
          `${url}: no paging links`,
        );
      }
    }
  });

  await t.test('a bad _total: ignored with a warning, or 400 under handling=strict', async (t) => {
    const lenient = await search(accurate, '/Patient?family=some&_total=maybe');
    t.equal(lenient.status, 200);
    t.match(lenient.warnings.join(' '), /_total/, 'the outcome entry names it');
    t.equal(lenient.bundle.total, SOME, 'and the default policy applies');
    t.notOk(link(lenient.bundle, 'self')?.includes('_total'), 'left out of the self link');
    for (const bad of ['maybe', 'ACCURATE', '', 'none,accurate']) {
      const res = await none.inject({
        url: `/Patient?family=some&_total=${encodeURIComponent(bad)}`,
        headers: { prefer: 'handling=strict' },
      });
      t.equal(res.statusCode, 400, `_total=${bad}`);
      const outcome = res.json() as OperationOutcome;
      t.equal(outcome.resourceType, 'OperationOutcome');
      t.match(outcome.issue?.[0]?.diagnostics, /_total/);
    }
  });

  await t.test('compartment search follows the policy', async (t) => {
    const url = `/Patient/${owner}/Encounter`;
    const pages = await walk(none, url);
    t.same(
      pages.map((p) => p.bundle.total),
      [undefined, ENCOUNTERS],
      'none: the last page knows it',
    );
    t.equal((await search(none, `${url}?_total=accurate`)).bundle.total, ENCOUNTERS);
    t.equal((await search(estimate, url)).bundle.total, ENCOUNTERS);
    t.equal((await search(none, `${url}?_summary=count`)).bundle.total, ENCOUNTERS);
  });

  await t.test('search entries of a batch follow the policy', async (t) => {
    const entry = (url: string): BundleEntry => ({ request: { method: 'GET', url } });
    const body: Bundle = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        entry('Patient?family=some'),
        entry('Patient?family=some&_total=accurate'),
        entry('Patient?family=few'),
        entry('Patient?family=many&_summary=count'),
      ],
    };
    const totals = async (app: FastifyInstance): Promise<Array<number | undefined>> => {
      const res = await app.inject({ method: 'POST', url: '/', headers: JSON_HEADERS, payload: body });
      t.equal(res.statusCode, 200);
      return ((res.json() as Bundle).entry ?? []).map((e) => (e.resource as Bundle | undefined)?.total);
    };
    t.same(await totals(none), [undefined, SOME, FEW, MANY], 'none');
    t.same(await totals(estimate), [SOME, SOME, FEW, MANY], 'estimate');
  });
});
