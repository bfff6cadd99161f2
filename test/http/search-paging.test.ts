/**
 * Paging: 1,000 matches read page by page while other requests write, with no duplicates and no gaps (keyset
 * cursors); _sort on several keys; previous/first/last links; _count limits; _total modes; _summary and
 * _elements on entries.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { storeNextVersion } from '../../src/fhir/interactions/versions.js';
import { DEFAULT_SEARCH_SETTINGS } from '../../src/fhir/search/search.js';
import { startTestApp, stopMongoAtEnd, testContext } from '../helpers/app.js';
import { BASE, JSON_HEADERS, create, link, search } from '../fhir/search/helpers.js';

stopMongoAtEnd(t);

const MATCHES = 1000;

async function inParallel(count: number, workers: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

t.test('paging', async (t) => {
  const { app, store } = await startTestApp(t, { search: { ...DEFAULT_SEARCH_SETTINGS, defaultCount: 20, maxCount: 200 } });
  const birth = (i: number) => `19${String(50 + (i % 40)).padStart(2, '0')}-0${1 + (i % 9)}-1${i % 10}`;
  const original = new Map<string, Patient>();
  // The 1,000 matches are written through the same write path as the API (stamping, index extraction,
  // pending anchor), minus HTTP and validation, to keep the test fast; the writes made while paging go
  // through HTTP.
  const ctx = await testContext(store, BASE);
  await inParallel(MATCHES, 4, async (i) => {
    const id = randomUUID();
    const resource = { resourceType: 'Patient', id, name: [{ family: 'Pager', given: [`G${i % 37}`] }], birthDate: birth(i) } as Patient;
    const version = await storeNextVersion(ctx, { type: 'Patient', id, previous: null, resource, deleted: false, method: 'POST' });
    original.set(id, version.resource as Patient);
  });
  await inParallel(50, 4, (i) => create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Other', given: [`O${i}`] }] }));

  /** Follows `next` links from `url`, calling `between` after each page; returns the match ids in order. */
  async function pageThrough(
    url: string,
    between: (page: number) => Promise<void>,
  ): Promise<{ ids: string[]; bundles: Bundle[]; failures: number }> {
    const seen: string[] = [];
    const bundles: Bundle[] = [];
    let failures = 0;
    let next: string | undefined = url;
    for (let page = 0; next && page < 200; page++) {
      const result = await search(app, next);
      if (result.status !== 200) failures++;
      seen.push(...result.ids);
      bundles.push(result.bundle);
      await between(page);
      next = link(result.bundle, 'next');
    }
    return { ids: seen, bundles, failures };
  }

  await t.test('1,000 matches by key order while writes happen: each exactly once', async (t) => {
    const ids = [...original.keys()];
    const added: string[] = [];
    let writing = true;
    let writes = 0;
    // A writer running alongside the reader: updates matching patients (seen ones and ones ahead), adds
    // non-matching patients and new matching ones.
    const writer = (async () => {
      for (let k = 0; writing; k++) {
        const p = original.get(ids[(k * 331) % ids.length])!;
        const res = await app.inject({
          method: 'PUT',
          url: `/Patient/${p.id}`,
          headers: JSON_HEADERS,
          payload: { ...p, active: k % 2 === 0, meta: undefined },
        });
        if (res.statusCode !== 200) throw new Error(`update: ${res.statusCode}`);
        await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Elsewhere' }] });
        if (k % 3 === 0)
          added.push((await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Pager', given: ['New'] }] })).id);
        writes++;
      }
    })();
    const {
      ids: seen,
      bundles,
      failures,
    } = await pageThrough('/Patient?family=pager&_count=37', async (page) => {
      // Let the writer complete at least one round per page read, so that writes land between all pages.
      for (let waited = 0; writes <= page && waited < 2000; waited += 2) await new Promise((resolve) => setTimeout(resolve, 2));
    });
    writing = false;
    await writer;
    t.equal(failures, 0, 'every page answered 200');
    t.ok(writes >= bundles.length - 1, `${writes} rounds of writes happened while paging ${bundles.length} pages`);
    t.equal(new Set(seen).size, seen.length, 'no duplicates');
    const missing = ids.filter((id) => !seen.includes(id));
    t.same(missing, [], 'no gaps: every resource that matched throughout was seen');
    t.ok(
      seen.every((id) => original.has(id) || added.includes(id)),
      'nothing that does not match',
    );
    t.same(seen, [...seen].sort(), 'in key order');
    t.ok(bundles.length >= Math.ceil(MATCHES / 37), `${bundles.length} pages`);
    t.equal(bundles[0].total, undefined, 'the default policy (none) counts nothing for a first page with more after it');
    t.equal(
      bundles[bundles.length - 1].total,
      seen.length,
      'the page where the matches run out knows the total for free: the matches paged through',
    );
  });

  await t.test('_sort on two keys (-birthdate, given) with writes between pages', async (t) => {
    const {
      ids: seen,
      bundles,
      failures,
    } = await pageThrough('/Patient?family=pager&_sort=-birthdate,given&_count=100', async (page) => {
      // Writes that do not change the sort keys: a resource keeps its place in the order.
      const p = original.get([...original.keys()][page * 13])!;
      await app.inject({
        method: 'PUT',
        url: `/Patient/${p.id}`,
        headers: JSON_HEADERS,
        payload: { ...p, active: false, meta: undefined },
      });
      await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Pager', given: ['Later'] }], birthDate: '1970-01-01' });
    });
    t.equal(failures, 0);
    t.equal(new Set(seen).size, seen.length, 'no duplicates');
    t.same(
      [...original.keys()].filter((id) => !seen.includes(id)),
      [],
      'no gaps',
    );
    const entries = bundles
      .flatMap((b) => b.entry ?? [])
      .filter((e) => e.search?.mode === 'match')
      .map((e) => e.resource as Patient);
    let ordered = true;
    for (let i = 1; i < entries.length; i++) {
      const [a, b] = [entries[i - 1], entries[i]];
      if (a.birthDate! < b.birthDate!) ordered = false;
      if (a.birthDate === b.birthDate && (a.name?.[0].given?.[0] ?? '').toLowerCase() > (b.name?.[0].given?.[0] ?? '').toLowerCase())
        ordered = false;
    }
    t.ok(ordered, 'birthdate descending, then given ascending');
  });

  await t.test('previous, first and last links', async (t) => {
    const first = await search(app, '/Patient?family=pager&_count=50&_sort=birthdate');
    t.equal(link(first.bundle, 'previous'), undefined, 'no previous page before the first');
    const second = await search(app, link(first.bundle, 'next')!);
    const third = await search(app, link(second.bundle, 'next')!);
    const back = await search(app, link(third.bundle, 'previous')!);
    t.same(back.ids, second.ids, 'previous of the third page is the second');
    const backAgain = await search(app, link(back.bundle, 'previous')!);
    t.same(backAgain.ids, first.ids, 'and its previous the first');
    t.equal(link(backAgain.bundle, 'previous'), undefined, 'reached the start');
    t.same((await search(app, link(third.bundle, 'first')!)).ids, first.ids);
    const last = await search(app, link(first.bundle, 'last')!);
    t.ok(last.ids.length > 0 && last.ids.length <= 50);
    t.equal(link(last.bundle, 'next'), undefined, 'nothing after the last page');
    const beforeLast = await search(app, link(last.bundle, 'previous')!);
    t.equal(beforeLast.ids.length, 50);
    const afterBeforeLast = await search(app, link(beforeLast.bundle, 'next')!);
    t.same(afterBeforeLast.ids, last.ids, 'next of the page before the last is the last');
    t.match(link(first.bundle, 'self'), `${BASE}/Patient?family=pager&_count=50&_sort=birthdate`);
    const foreign = link(first.bundle, 'next')!.replace('family=pager', 'family=other');
    t.equal((await search(app, foreign)).status, 400, 'a cursor cannot be used with another search');
    const resized = await search(app, link(first.bundle, 'next')!.replace('_count=50', '_count=10'));
    t.same(resized.ids, second.ids.slice(0, 10), 'but the page size may change between pages');
    t.equal((await search(app, '/Patient?family=pager&_cursor=garbage')).status, 400);
  });

  await t.test('_count: default, maximum, zero', async (t) => {
    t.equal((await search(app, '/Patient?family=pager')).ids.length, 20, 'default 20 (SEARCH_DEFAULT_COUNT)');
    t.equal((await search(app, '/Patient?family=pager&_count=5000')).ids.length, 200, 'at most SEARCH_MAX_COUNT');
    const zero = await search(app, '/Patient?family=pager&_count=0');
    t.same(zero.ids, []);
    t.ok(zero.bundle.total !== undefined && zero.bundle.total >= MATCHES, '_count=0 still counts');
  });

  await t.test('_total and _summary=count', async (t) => {
    const none = await search(app, '/Patient?family=pager&_total=none');
    t.equal(none.bundle.total, undefined);
    const accurate = await search(app, '/Patient?family=other&_total=accurate&_count=10');
    t.equal(accurate.bundle.total, 50);
    const next = await search(app, link(accurate.bundle, 'next')!);
    t.equal(next.bundle.total, 50, 'on later pages too');
    // The estimate is counted once, for the first page, and carried by the paging links: a resource created
    // meanwhile shows in an accurate recount, not in the carried figure.
    const estimated = await search(app, '/Patient?family=other&_count=10&_total=estimate');
    t.equal(estimated.bundle.total, 50);
    const meanwhile = await create<Patient>(app, { resourceType: 'Patient', name: [{ family: 'Other', given: ['Meanwhile'] }] });
    const carried = await search(app, link(estimated.bundle, 'next')!);
    t.equal(carried.bundle.total, 50, 'later pages carry the first page total');
    t.equal(carried.bundle.entry?.length, 10);
    const recounted = await search(app, link(estimated.bundle, 'next')!.replace('_total=estimate', '_total=accurate'));
    t.equal(recounted.bundle.total, 51, '_total=accurate recounts on any page');
    t.equal((await app.inject({ method: 'DELETE', url: `/Patient/${meanwhile.id}` })).statusCode, 204);
    const small = await search(app, '/Patient?family=other&_count=100&_total=none');
    t.equal(small.bundle.total, 50, '_total=none: a free total is given all the same');
    const free = await search(app, '/Patient?family=other&_count=100');
    t.equal(free.bundle.total, 50, 'a first page holding every match gives the total for free');
    const count = await search(app, '/Patient?family=other&_summary=count');
    t.equal(count.bundle.total, 50);
    t.equal(count.bundle.entry, undefined, '_summary=count: no entries');
  });

  await t.test('_summary and _elements shape the entries', async (t) => {
    const summary = await search(app, '/Patient?family=other&_count=1&_summary=true');
    const resource = summary.bundle.entry![0].resource as Patient;
    t.ok(resource.meta?.tag?.some((tag) => tag.code === 'SUBSETTED'));
    const elements = await search(app, '/Patient?family=other&_count=1&_elements=birthDate');
    t.same(Object.keys(elements.bundle.entry![0].resource!).sort(), ['id', 'meta', 'resourceType']);
    t.equal((await search(app, '/Patient?_summary=sometimes', { prefer: 'handling=strict' })).status, 400);
  });
});
