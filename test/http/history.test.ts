/** history at instance, type and system level: Bundle shape, _count paging, _since, _at, deleted versions. */
import type { Bundle, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

const json = { 'content-type': 'application/fhir+json' };

t.test('instance history lists every version newest first, deletions included', async (t) => {
  const { app } = await startTestApp(t);
  const created = (
    await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: { resourceType: 'Patient', gender: 'male' } })
  ).json() as Patient;
  const id = created.id!;
  await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, gender: 'female' } });
  await app.inject({ method: 'DELETE', url: `/Patient/${id}` });

  const res = await app.inject({ url: `/Patient/${id}/_history` });
  t.equal(res.statusCode, 200);
  const bundle = res.json() as Bundle<Patient>;
  t.equal(bundle.resourceType, 'Bundle');
  t.equal(bundle.type, 'history');
  t.equal(bundle.entry?.length, 3);
  const [deletion, update, creation] = bundle.entry!;
  t.same(deletion.request, { method: 'DELETE', url: `Patient/${id}` });
  t.equal(deletion.resource, undefined, 'a deletion has no resource');
  t.equal(deletion.response?.etag, 'W/"3"');
  t.same(update.request, { method: 'PUT', url: `Patient/${id}` });
  t.equal(update.resource?.gender, 'female');
  t.equal(update.response?.status, '200');
  t.same(creation.request, { method: 'POST', url: 'Patient' });
  t.equal(creation.response?.status, '201');
  t.equal(creation.resource?.gender, 'male');
  t.equal(creation.fullUrl, `http://127.0.0.1:8080/Patient/${id}`);
  t.ok(creation.response?.lastModified);
  t.equal(bundle.link?.find((l) => l.relation === 'self')?.url, `http://127.0.0.1:8080/Patient/${id}/_history`);

  t.equal((await app.inject({ url: '/Patient/unknown/_history' })).statusCode, 404);
});

t.test('type and system history, paged by _count with no duplicates or gaps while writes happen', async (t) => {
  const { app } = await startTestApp(t);
  for (let i = 0; i < 23; i++) {
    await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: { resourceType: 'Patient', name: [{ family: `P${i}` }] } });
  }
  await app.inject({
    method: 'POST',
    url: '/Encounter',
    headers: json,
    payload: { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' } },
  });

  const seen: string[] = [];
  let url: string | undefined = '/Patient/_history?_count=5';
  let pages = 0;
  while (url && pages < 20) {
    const bundle = (await app.inject({ url })).json() as Bundle<Patient>;
    for (const entry of bundle.entry ?? []) seen.push(entry.resource!.id!);
    pages++;
    // A write between pages lands before the first page and must not disturb the ones ahead.
    await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: { resourceType: 'Patient' } });
    const next = bundle.link?.find((l) => l.relation === 'next')?.url;
    url = next?.replace('http://127.0.0.1:8080', '');
  }
  t.equal(pages, 5, '23 versions in pages of 5');
  t.equal(seen.length, 23);
  t.equal(new Set(seen).size, 23, 'no duplicates');

  const system = (await app.inject({ url: '/_history?_count=100' })).json() as Bundle;
  t.equal(system.entry?.length, 23 + 1 + 5, 'system history spans types');
  t.ok(system.entry?.some((e) => e.resource?.resourceType === 'Encounter'));

  t.equal((await app.inject({ url: '/Patient/_history?_count=-1' })).statusCode, 400);
  t.equal((await app.inject({ url: '/Patient/_history?_cursor=garbage' })).statusCode, 400);
});

t.test('_since and _at', async (t) => {
  const { app, store } = await startTestApp(t);
  const created = (
    await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: { resourceType: 'Patient', gender: 'male' } })
  ).json() as Patient;
  const id = created.id!;
  await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, gender: 'female' } });
  await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, gender: 'other' } });
  // Spread the versions over three days so the periods are unambiguous.
  const days = ['2020-01-01T10:00:00.000Z', '2020-01-02T10:00:00.000Z', '2020-01-03T10:00:00.000Z'];
  for (let v = 1; v <= 3; v++) {
    await store.versions.updateOne({ _id: `Patient/${id}/${v}` }, { $set: { lastUpdated: new Date(days[v - 1]) } });
  }
  const versionsOf = async (query: string): Promise<string[]> =>
    (((await app.inject({ url: `/Patient/${id}/_history?${query}` })).json() as Bundle).entry ?? []).map((e) => e.response!.etag!);

  t.same(await versionsOf('_since=2020-01-02T00:00:00Z'), ['W/"3"', 'W/"2"']);
  t.same(await versionsOf('_since=2020-01-04'), []);
  t.same(await versionsOf('_at=2020-01-02'), ['W/"2"', 'W/"1"'], 'version 1 was current at the start of that day');
  t.same(await versionsOf('_at=2020-01-02T12:00:00Z'), ['W/"2"'], 'only version 2 was current at noon');
  t.same(await versionsOf('_at=2020'), ['W/"3"', 'W/"2"', 'W/"1"']);
  t.same(await versionsOf('_at=2019'), []);
  t.equal((await app.inject({ url: `/Patient/${id}/_history?_since=yesterday` })).statusCode, 400);
});

t.test('previous links walk back over the same pages, with and without _at', async (t) => {
  const { app, store } = await startTestApp(t);
  const created = (
    await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: { resourceType: 'Patient', gender: 'male' } })
  ).json() as Patient;
  const id = created.id!;
  for (let v = 2; v <= 7; v++) {
    await app.inject({ method: 'PUT', url: `/Patient/${id}`, headers: json, payload: { ...created, birthDate: `200${v}-01-01` } });
  }
  type Page = { versions: string[]; next?: string; previous?: string };
  const page = async (url: string): Promise<Page> => {
    const bundle = (await app.inject({ url: url.replace('http://127.0.0.1:8080', '') })).json() as Bundle;
    return {
      versions: (bundle.entry ?? []).map((e) => e.response!.etag!.replace(/\D/g, '')),
      next: bundle.link?.find((l) => l.relation === 'next')?.url,
      previous: bundle.link?.find((l) => l.relation === 'previous')?.url,
    };
  };

  const first = await page(`/Patient/${id}/_history?_count=3`);
  t.same(first.versions, ['7', '6', '5']);
  t.equal(first.previous, undefined, 'the first page has no previous page');
  const second = await page(first.next!);
  t.same(second.versions, ['4', '3', '2']);
  const third = await page(second.next!);
  t.same(third.versions, ['1']);
  t.equal(third.next, undefined);
  const backToSecond = await page(third.previous!);
  t.same(backToSecond.versions, ['4', '3', '2'], 'previous of the last page is the second');
  t.ok(backToSecond.next && backToSecond.previous, 'a middle page reached backwards links both ways');
  const backToFirst = await page(backToSecond.previous!);
  t.same(backToFirst.versions, ['7', '6', '5']);
  t.equal(backToFirst.previous, undefined, 'walking back ends at the newest version');
  t.same((await page(backToFirst.next!)).versions, ['4', '3', '2'], 'and next from there goes forward again');

  // With _at, the list ends with the version current at the period's start (made before it).
  const days = ['2020-01-01', '2020-01-02', '2020-01-03', '2020-01-04', '2020-01-05', '2020-01-06', '2020-01-07'];
  for (let v = 1; v <= 7; v++) {
    await store.versions.updateOne({ _id: `Patient/${id}/${v}` }, { $set: { lastUpdated: new Date(`${days[v - 1]}T10:00:00Z`) } });
  }
  const atFirst = await page(`/Patient/${id}/_history?_count=1&_at=2020-01-04`);
  t.same(atFirst.versions, ['4'], 'made during the day');
  const atSecond = await page(atFirst.next!);
  t.same(atSecond.versions, ['3'], 'current when the day began');
  t.equal(atSecond.next, undefined);
  const atBack = await page(atSecond.previous!);
  t.same(atBack.versions, ['4'], 'previous crosses back from the versions current at the start to those made in the period');
  t.equal(atBack.previous, undefined);
});
