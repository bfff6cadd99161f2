/**
 * A patient/ token sees its own patient's compartment and nothing of another patient's, through every way the API
 * has to reach data: type and system search, totals, paging links (and another token's cursors), _include,
 * _revinclude (also *), _include:iterate, _has, chains, compartment search, history, batch and transaction Bundles,
 * $everything and Bulk export. Then scopes with search parameters, SMART 1 scopes and user/ scopes.
 *
 * The data is built so that confinement has something to hold back: P1's and P2's records refer to each other
 * (P1's MedicationRequest M1x names P2's Encounter, P2's M2x names P1's Encounter and P1 as requester, P1's Patient
 * links to P2), so an include, a chain or a _has that ignored the token's compartment would bring P2's data in.
 * "No P2 data" is checked on the entries (no resource of P2's compartment) and on the raw body without its links
 * (no id of P2's that P1's own records do not mention, no P2-only marker text): links echo the query as sent.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, BundleEntry, OperationOutcome } from '@medplum/fhirtypes';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Db } from 'mongodb';
import t, { type Test } from 'tap';
import { stopMongoAtEnd } from '../helpers/app.js';
import { startSecuredApp, type TestIssuer } from '../helpers/auth.js';
import { sampleEncounter, sampleMedicationRequest, samplePatient } from '../helpers/fhir-samples.js';

stopMongoAtEnd(t);

const FHIR_JSON = 'application/fhir+json';
const ADMIN_SCOPE = 'system/*.cruds system/AuditEvent.rs';
const ADMIN_CLIENT = 'confine-admin';
const P2_FAMILY = 'Betamann';
const P2_MARKER = 'secret-of-p2';

interface Fixture {
  app: FastifyInstance;
  flushAudit(): Promise<void>;
  db: Db;
  issuer: TestIssuer;
  admin: string;
  p1: string;
  p2: string;
  e1: string[];
  e2: string[];
  m1: string[];
  m2: string[];
  /** P1's MedicationRequest whose encounter is P2's e2[0]. */
  m1x: string;
  /** P2's MedicationRequest whose encounter is P1's e1[0] and whose requester is P1. */
  m2x: string;
  /** "Type/id" of everything in P1's compartment. */
  p1Refs: Set<string>;
  /** "Type/id" of everything in P2's compartment. */
  p2Refs: Set<string>;
  /** Ids of P2's that nothing of P1's mentions: none may appear anywhere in an answer to a P1 token. */
  p2Secret: string[];
}

/** A link's URL as app.inject takes it: the path and query (a link to the base itself is "[base]?..."). */
function pathOf(url: string): string {
  const path = url.replace(/^https?:\/\/[^/?]+/, '');
  return path.startsWith('/') ? path : `/${path}`;
}

async function send(
  app: FastifyInstance,
  authorization: string | undefined,
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<LightMyRequestResponse> {
  const all: Record<string, string> = { accept: FHIR_JSON, ...headers };
  if (authorization) all.authorization = authorization;
  if (body !== undefined) all['content-type'] ??= FHIR_JSON;
  return app.inject({
    method: method as 'GET',
    url: pathOf(url),
    headers: all,
    ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
}

async function create(app: FastifyInstance, admin: string, type: string, resource: object): Promise<string> {
  const res = await send(app, admin, 'POST', `/${type}`, resource);
  if (res.statusCode !== 201) throw new Error(`seeding ${type}: ${res.statusCode} ${res.body}`);
  return (res.json() as { id: string }).id;
}

/** The app (with Bulk export) and the data; the directory and database are removed with the test. */
async function fixture(t: Test): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'confinement-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const secured = await startSecuredApp(t, {}, { bulkExport: { dir, tuning: { pollIntervalMs: 50 } } });
  const { app } = secured;
  const admin = `Bearer ${await secured.issuer.token({ scope: ADMIN_SCOPE, client_id: ADMIN_CLIENT })}`;

  const p2 = await create(app, admin, 'Patient', samplePatient(P2_FAMILY, 'p2', { name: [{ family: P2_FAMILY, given: [P2_MARKER] }] }));
  // P1 links to P2: that puts P1 in P2's compartment (R4 Patient.link), never P2 in P1's.
  const p1 = await create(
    app,
    admin,
    'Patient',
    samplePatient('Alphaberg', 'p1', { link: [{ other: { reference: `Patient/${p2}` }, type: 'seealso' }] }),
  );
  const e1: string[] = [];
  for (const [i, status] of (['finished', 'finished', 'in-progress', 'finished'] as const).entries()) {
    e1.push(await create(app, admin, 'Encounter', sampleEncounter(p1, `e1-${i}`, { status })));
  }
  const e2: string[] = [];
  for (const [i, status] of (['cancelled', 'finished', 'finished', 'in-progress', 'finished'] as const).entries()) {
    e2.push(await create(app, admin, 'Encounter', sampleEncounter(p2, `e2-${i}`, { status })));
  }
  const m1: string[] = [];
  for (let i = 0; i < e1.length; i++) m1.push(await create(app, admin, 'MedicationRequest', sampleMedicationRequest(p1, e1[i], `m1-${i}`)));
  const m2: string[] = [];
  for (let i = 0; i < e2.length; i++) {
    m2.push(
      await create(
        app,
        admin,
        'MedicationRequest',
        sampleMedicationRequest(p2, e2[i], `m2-${i}`, { medicationCodeableConcept: { text: P2_MARKER } }),
      ),
    );
  }
  const m1x = await create(app, admin, 'MedicationRequest', sampleMedicationRequest(p1, e2[0], 'm1-x'));
  const m2x = await create(
    app,
    admin,
    'MedicationRequest',
    sampleMedicationRequest(p2, e1[0], 'm2-x', {
      requester: { reference: `Patient/${p1}` },
      medicationCodeableConcept: { text: P2_MARKER },
    }),
  );
  const p1Refs = new Set([
    `Patient/${p1}`,
    ...e1.map((id) => `Encounter/${id}`),
    ...m1.map((id) => `MedicationRequest/${id}`),
    `MedicationRequest/${m1x}`,
  ]);
  const p2Refs = new Set([
    `Patient/${p2}`,
    ...e2.map((id) => `Encounter/${id}`),
    ...m2.map((id) => `MedicationRequest/${id}`),
    `MedicationRequest/${m2x}`,
  ]);
  // P1's Patient names P2, and m1x names e2[0]: those two ids may appear inside P1's own records.
  const p2Secret = [...e2.slice(1), ...m2, m2x];
  return {
    app,
    flushAudit: secured.flushAudit,
    db: secured.connection.db,
    issuer: secured.issuer,
    admin,
    p1,
    p2,
    e1,
    e2,
    m1,
    m2,
    m1x,
    m2x,
    p1Refs,
    p2Refs,
    p2Secret,
  };
}

function bearer(f: Fixture, scope: string, claims: Record<string, string> = {}): Promise<string> {
  return f.issuer.token({ scope, client_id: 'confine-app', ...claims }).then((token) => `Bearer ${token}`);
}

/** "Type/id" of a Bundle's entries (all of them, or those with this search mode). */
function refsOf(bundle: Bundle, mode?: 'match' | 'include'): string[] {
  return (bundle.entry ?? [])
    .filter((e) => mode === undefined || e.search?.mode === mode)
    .filter((e) => e.resource)
    .map((e) => `${e.resource!.resourceType}/${e.resource!.id}`);
}

/**
 * Nothing of P2's in an answer: no entry of P2's compartment, no P2-only id or text outside the links. `echoed`: ids
 * the request itself named, which a refusal may repeat.
 */
function assertNoP2(t: Test, f: Fixture, res: LightMyRequestResponse, label: string, echoed: string[] = []): void {
  let text = res.body;
  try {
    const body = res.json() as Bundle;
    if (body.resourceType === 'Bundle') {
      const leaked = refsOf(body).filter((ref) => f.p2Refs.has(ref));
      t.same(leaked, [], `${label}: no entry of P2's compartment`);
      text = JSON.stringify({ ...body, link: undefined });
    }
  } catch {
    // NDJSON and other non-JSON bodies are checked as text.
  }
  const found = [...f.p2Secret.filter((id) => !echoed.includes(id)), P2_MARKER, P2_FAMILY].filter((needle) => text.includes(needle));
  t.same(found, [], `${label}: no P2 id or text in the body`);
}

function diagnostics(res: LightMyRequestResponse): string {
  try {
    return ((res.json() as OperationOutcome).issue ?? []).map((i) => i.diagnostics ?? '').join(' | ');
  } catch {
    return '';
  }
}

interface Crawl {
  /** Every answer, in the order fetched. */
  pages: Array<{ url: string; res: LightMyRequestResponse }>;
  /** The matches over all pages ("Type/id"). */
  matches: Set<string>;
}

/**
 * Fetches `url` and every page its links lead to (next, previous, last, first, self), each once, at most
 * `maxRequests` requests: the paging links of a confined search must stay confined in every direction.
 */
async function crawl(f: Fixture, token: string, url: string, maxRequests = 40): Promise<Crawl> {
  const seen = new Set<string>();
  const queue = [url];
  const crawl: Crawl = { pages: [], matches: new Set() };
  while (queue.length > 0 && crawl.pages.length < maxRequests) {
    const next = queue.shift()!;
    const key = pathOf(next);
    if (seen.has(key)) continue;
    seen.add(key);
    const res = await send(f.app, token, 'GET', key);
    crawl.pages.push({ url: key, res });
    if (res.statusCode !== 200) continue;
    const bundle = res.json() as Bundle;
    for (const ref of refsOf(bundle, bundle.type === 'searchset' ? 'match' : undefined)) crawl.matches.add(ref);
    for (const link of bundle.link ?? []) if (['next', 'previous', 'last', 'first', 'self'].includes(link.relation)) queue.push(link.url);
  }
  return crawl;
}

type Counts = { versions: number; heads: number };

async function clinicalCounts(db: Db): Promise<Counts> {
  const clinical = { type: { $ne: 'AuditEvent' } };
  return {
    versions: await db.collection('resource_versions').countDocuments(clinical),
    heads: await db.collection('resources').countDocuments(clinical),
  };
}

t.test('a patient/ token sees its patient and nothing of another patient', async (t) => {
  const f = await fixture(t);
  const { app } = f;
  const p1 = await bearer(f, 'patient/*.rs', { patient: f.p1 });
  const p1Write = await bearer(f, 'patient/*.cruds', { patient: f.p1 });
  const p2 = await bearer(f, 'patient/*.rs', { patient: f.p2 });
  const p1Encounters = new Set(f.e1.map((id) => `Encounter/${id}`));
  const p1Medications = new Set([...f.m1, f.m1x].map((id) => `MedicationRequest/${id}`));

  await t.test('type search: only P1 compartment, in the entries, the totals and every paging link', async (t) => {
    for (const total of ['', '&_total=estimate', '&_total=accurate']) {
      const walked = await crawl(f, p1, `/Encounter?_count=2${total}`);
      t.ok(walked.pages.length >= 3, `several pages were followed (${walked.pages.length})`);
      t.same([...walked.matches].sort(), [...p1Encounters].sort(), `every P1 Encounter, and no other, over all pages${total}`);
      for (const { url, res } of walked.pages) {
        t.equal(res.statusCode, 200, url);
        assertNoP2(t, f, res, url);
        const bundle = res.json() as Bundle;
        if (bundle.total !== undefined) t.equal(bundle.total, f.e1.length, `${url}: total counts P1's only`);
      }
      // The default policy (none) counts nothing; the page where forward paging runs out knows the total for free.
      t.equal(
        (walked.pages[0].res.json() as Bundle).total,
        total ? f.e1.length : undefined,
        `the first page: counted only when asked${total}`,
      );
      t.ok(
        walked.pages.some(({ res }) => (res.json() as Bundle).total === f.e1.length),
        `a page knows the total${total}`,
      );
      const relations = new Set(walked.pages.flatMap(({ res }) => ((res.json() as Bundle).link ?? []).map((l) => l.relation)));
      t.ok(relations.has('next') && relations.has('previous') && relations.has('last'), 'next, previous and last links were all followed');
    }
    const count = await send(app, p1, 'GET', '/Encounter?_summary=count');
    t.equal((count.json() as Bundle).total, f.e1.length, '_summary=count counts P1 only');
    const medications = await crawl(f, p1, '/MedicationRequest?_count=2&_total=accurate&_sort=-_lastUpdated');
    t.same([...medications.matches].sort(), [...p1Medications].sort(), 'MedicationRequests: P1 only, over all pages');
    for (const { url, res } of medications.pages) assertNoP2(t, f, res, url);
    // The admin sees both patients: the search itself is not what hides P2.
    const all = await send(app, f.admin, 'GET', '/Encounter?_total=accurate');
    t.equal((all.json() as Bundle).total, f.e1.length + f.e2.length, 'the admin counts both patients');
  });

  await t.test("another patient's paging cursor yields neither that patient's data nor its total", async (t) => {
    for (const base of [
      '/Encounter?_count=2',
      '/Encounter?_count=2&_total=accurate',
      '/Encounter/_history?_count=2',
      '/Patient/$everything?_count=2',
    ]) {
      const first = await send(app, p2, 'GET', base);
      t.equal(first.statusCode, 200, `P2's ${base}`);
      const links = ((first.json() as Bundle).link ?? []).filter((l) => ['next', 'last'].includes(l.relation));
      t.ok(links.length > 0, `P2's ${base} has paging links`);
      for (const link of links) {
        const replayed = await send(app, p1, 'GET', link.url);
        t.ok([200, 400].includes(replayed.statusCode), `P1 replaying P2's ${link.relation} link of ${base}: refused or confined`, {
          status: replayed.statusCode,
        });
        assertNoP2(t, f, replayed, `replayed ${link.relation} of ${base}`);
        if (replayed.statusCode === 200) {
          const total = (replayed.json() as Bundle).total;
          t.not(total, f.e2.length, 'no P2 total carried over');
        } else {
          t.match(diagnostics(replayed), /cursor/, 'the cursor is refused as belonging to another search');
        }
      }
    }
  });

  await t.test('_include, _revinclude (also *) and _include:iterate bring in nothing of P2', async (t) => {
    const cases: Array<{ url: string; admin: string }> = [
      // The admin's answers show what each include would bring in unconfined.
      { url: '/Encounter?_include=Encounter:subject', admin: `Patient/${f.p2}` },
      { url: '/Patient?_include=Patient:link', admin: `Patient/${f.p2}` },
      { url: `/MedicationRequest?_id=${f.m1x}&_include=MedicationRequest:encounter`, admin: `Encounter/${f.e2[0]}` },
      {
        url: `/MedicationRequest?_id=${f.m1x}&_include=MedicationRequest:encounter&_include:iterate=Encounter:subject`,
        admin: `Patient/${f.p2}`,
      },
      { url: `/MedicationRequest?_id=${f.m1x}&_include=*&_include:iterate=*`, admin: `Patient/${f.p2}` },
      { url: '/Patient?_revinclude=Encounter:subject', admin: `Encounter/${f.e2[1]}` },
      { url: '/Patient?_revinclude=MedicationRequest:requester', admin: `MedicationRequest/${f.m2x}` },
      { url: '/Patient?_revinclude=*', admin: `MedicationRequest/${f.m2x}` },
      { url: `/Encounter?_id=${f.e1[0]}&_revinclude=MedicationRequest:encounter`, admin: `MedicationRequest/${f.m2x}` },
      { url: `/Encounter?_id=${f.e1[0]}&_revinclude=*&_revinclude:iterate=MedicationRequest:subject`, admin: `MedicationRequest/${f.m2x}` },
    ];
    for (const { url, admin } of cases) {
      const res = await send(app, p1, 'GET', url);
      t.equal(res.statusCode, 200, url);
      assertNoP2(t, f, res, url);
      const refs = refsOf(res.json() as Bundle);
      t.ok(
        refs.every((ref) => f.p1Refs.has(ref)),
        `${url}: every entry is P1's`,
        { refs },
      );
      const control = await send(app, f.admin, 'GET', url);
      t.ok(refsOf(control.json() as Bundle).includes(admin), `${url}: unconfined it brings in ${admin}`);
    }
  });

  await t.test('_has and chains find nothing through P2 data', async (t) => {
    const cases: Array<{ url: string; mine: string[]; admin: string }> = [
      // P1's own finished Encounters make P1 match; P2's would make P2 match (admin).
      { url: '/Patient?_has:Encounter:subject:status=finished', mine: [`Patient/${f.p1}`], admin: `Patient/${f.p2}` },
      // Only P2's m2x names P1 as requester: through P2's data P1 would match.
      { url: '/Patient?_has:MedicationRequest:requester:status=active', mine: [], admin: `Patient/${f.p1}` },
      // Only P2's m2x refers to e1[0] from P2's compartment.
      { url: `/Encounter?_has:MedicationRequest:encounter:subject=Patient/${f.p2}`, mine: [], admin: `Encounter/${f.e1[0]}` },
      { url: `/Encounter?subject.name=${P2_FAMILY}`, mine: [], admin: `Encounter/${f.e2[1]}` },
      { url: `/Encounter?subject:Patient.family=${P2_FAMILY}`, mine: [], admin: `Encounter/${f.e2[1]}` },
      // m1x is P1's, but its encounter (e2[0], cancelled) is P2's: the chain may not look into it.
      { url: '/MedicationRequest?encounter.status=cancelled', mine: [], admin: `MedicationRequest/${f.m1x}` },
      { url: `/MedicationRequest?encounter.subject:Patient.family=${P2_FAMILY}`, mine: [], admin: `MedicationRequest/${f.m1x}` },
      { url: `/MedicationRequest?encounter:Encounter.subject=Patient/${f.p2}`, mine: [], admin: `MedicationRequest/${f.m1x}` },
      { url: `/Encounter?_id=${f.e2[1]},${f.e1[1]}`, mine: [`Encounter/${f.e1[1]}`], admin: `Encounter/${f.e2[1]}` },
      { url: `/MedicationRequest?subject=Patient/${f.p2}`, mine: [], admin: `MedicationRequest/${f.m2[0]}` },
    ];
    for (const { url, mine, admin } of cases) {
      const res = await send(app, p1, 'GET', `${url}&_total=accurate`);
      t.equal(res.statusCode, 200, url);
      assertNoP2(t, f, res, url);
      const bundle = res.json() as Bundle;
      t.same(refsOf(bundle, 'match').sort(), mine.sort(), `${url}: only what P1's own data matches`);
      t.equal(bundle.total, mine.length, `${url}: total`);
      const control = await send(app, f.admin, 'GET', url);
      t.ok(refsOf(control.json() as Bundle, 'match').includes(admin), `${url}: unconfined it finds ${admin}`);
    }
  });

  await t.test('compartment search: P2 refused, P1 only P1', async (t) => {
    for (const url of [`/Patient/${f.p2}/Encounter`, `/Patient/${f.p2}/*`, `/Patient/${f.p2}/MedicationRequest?_total=accurate`]) {
      const res = await send(app, p1, 'GET', url);
      t.equal(res.statusCode, 403, url);
      t.match(diagnostics(res), new RegExp(`compartment of Patient/${f.p1}`), `${url}: says the token is confined to P1`);
    }
    const mine = await crawl(f, p1, `/Patient/${f.p1}/*?_count=3`);
    t.same([...mine.matches].sort(), [...f.p1Refs].sort(), 'Patient/P1/* pages through exactly P1 compartment');
    for (const { url, res } of mine.pages) assertNoP2(t, f, res, url);
    const encounters = await send(app, p1, 'GET', `/Patient/${f.p1}/Encounter?_total=accurate`);
    t.same(refsOf(encounters.json() as Bundle, 'match').sort(), [...p1Encounters].sort(), 'Patient/P1/Encounter');
  });

  await t.test('system search and history: no P2 data; P2 instance history refused', async (t) => {
    for (const url of ['/?_type=Patient,Encounter&_total=accurate', '/?_total=accurate', '/?_type=MedicationRequest&_count=2']) {
      const walked = await crawl(f, p1, url);
      for (const { url: page, res } of walked.pages) {
        t.equal(res.statusCode, 200, page);
        assertNoP2(t, f, res, page);
      }
      t.ok(
        [...walked.matches].every((ref) => f.p1Refs.has(ref)),
        `${url}: P1's only`,
      );
    }
    const everything = await send(app, p1, 'GET', '/?_total=accurate');
    t.equal((everything.json() as Bundle).total, f.p1Refs.size, 'without _type: every P1 resource and no other, counted');
    const at = new Date(Date.now() + 1000).toISOString();
    for (const url of [
      '/_history?_count=3',
      '/Encounter/_history?_count=2',
      '/MedicationRequest/_history',
      '/Patient/_history',
      '/_history?_since=2000-01-01T00:00:00Z&_count=4',
      `/Encounter/_history?_at=${at}&_count=2`,
    ]) {
      const walked = await crawl(f, p1, url);
      t.ok(walked.matches.size > 0, `${url}: P1's history is there`);
      for (const { url: page, res } of walked.pages) {
        t.equal(res.statusCode, 200, page);
        assertNoP2(t, f, res, page);
      }
    }
    for (const [url, named] of [
      [`/Patient/${f.p2}/_history`, f.p2],
      [`/Encounter/${f.e2[1]}/_history`, f.e2[1]],
      [`/MedicationRequest/${f.m2x}/_history/1`, f.m2x],
    ]) {
      const res = await send(app, p1, 'GET', url);
      t.equal(res.statusCode, 403, url);
      assertNoP2(t, f, res, url, [named]);
    }
  });

  await t.test('Bundles: batch entries of P2 refused one by one; a transaction touching P2 fails whole', async (t) => {
    const batch = await send(app, p1Write, 'POST', '/', {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: `Patient/${f.p2}` } },
        { request: { method: 'GET', url: `Encounter/${f.e2[1]}` } },
        { request: { method: 'GET', url: `MedicationRequest?subject=Patient/${f.p2}` } },
        { request: { method: 'GET', url: `Patient/${f.p2}/_history` } },
        { request: { method: 'GET', url: `Encounter/${f.e1[0]}` } },
      ],
    });
    t.equal(batch.statusCode, 200);
    const entries = (batch.json() as Bundle).entry ?? [];
    const statuses = entries.map((e) => e.response?.status?.split(' ')[0]);
    t.same(statuses.slice(0, 2), ['403', '403'], "reads of P2's resources: 403 each");
    t.ok(statuses[2] === '403' || statuses[2] === '200', 'a search naming P2: refused or confined');
    t.equal(statuses[3], '403', "P2's history: 403");
    t.equal(statuses[4], '200', "P1's own Encounter in the same batch: 200");
    assertNoP2(t, f, batch, 'batch', [f.e2[1]]);

    const before = await clinicalCounts(f.db);
    const mixed = await send(app, p1Write, 'POST', '/', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:7f0c4a52-8a5e-4f5e-9e63-1d5a1b2c3d01',
          resource: sampleEncounter(f.p1, 'tx-ok'),
          request: { method: 'POST', url: 'Encounter' },
        },
        {
          fullUrl: 'urn:uuid:7f0c4a52-8a5e-4f5e-9e63-1d5a1b2c3d02',
          resource: sampleMedicationRequest(f.p2, undefined, 'tx-p2'),
          request: { method: 'POST', url: 'MedicationRequest' },
        },
      ],
    });
    t.equal(mixed.statusCode, 403, 'a transaction with one entry writing into P2 compartment: 403');
    t.match(diagnostics(mixed), /Bundle\.entry\[1\]/, 'the 403 names the entry');
    t.same(await clinicalCounts(f.db), before, 'nothing of the transaction was written');

    const moved = await send(app, p1Write, 'POST', '/', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: `${'http://127.0.0.1:8080'}/Encounter/${f.e1[3]}`,
          resource: { ...sampleEncounter(f.p2, 'e1-3'), id: f.e1[3] },
          request: { method: 'PUT', url: `Encounter/${f.e1[3]}` },
        },
      ],
    });
    t.equal(moved.statusCode, 403, "moving P1's Encounter into P2's compartment: 403");
    t.same(await clinicalCounts(f.db), before, 'nothing written');

    const own = await send(app, p1Write, 'POST', '/', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:7f0c4a52-8a5e-4f5e-9e63-1d5a1b2c3d03',
          resource: sampleEncounter(f.p1, 'tx-own-e'),
          request: { method: 'POST', url: 'Encounter' },
        },
        {
          fullUrl: 'urn:uuid:7f0c4a52-8a5e-4f5e-9e63-1d5a1b2c3d04',
          resource: {
            ...sampleMedicationRequest(f.p1, undefined, 'tx-own-m'),
            encounter: { reference: 'urn:uuid:7f0c4a52-8a5e-4f5e-9e63-1d5a1b2c3d03' },
          },
          request: { method: 'POST', url: 'MedicationRequest' },
        },
      ],
    });
    t.equal(own.statusCode, 200, "a transaction writing only into P1's compartment succeeds (patient/*.cruds)", {
      body: own.body.slice(0, 400),
    });
    t.same(
      ((own.json() as Bundle).entry ?? []).map((e: BundleEntry) => e.response?.status?.split(' ')[0]),
      ['201', '201'],
      'both entries created',
    );
    const after = await clinicalCounts(f.db);
    t.same(after, { versions: before.versions + 2, heads: before.heads + 2 }, 'exactly those two written');
    // Clean up, so the later checks still count P1's compartment as seeded.
    for (const entry of (own.json() as Bundle).entry ?? []) {
      const location = entry.response?.location?.split('/_history')[0];
      if (location) t.equal((await send(app, f.admin, 'DELETE', `/${location}`)).statusCode, 204, `cleanup ${location}`);
    }
  });

  await t.test("conditional writes: criteria matching P2's data neither return, change nor delete it", async (t) => {
    const before = await clinicalCounts(f.db);
    const criteria = `identifier=urn:test|e2-1`;
    // If-None-Exist matching P2's Encounter: unconfined, the answer would be 200 with P2's Encounter in it.
    const conditional = await send(app, p1Write, 'POST', '/Encounter', sampleEncounter(f.p1, 'cond-create'), { 'if-none-exist': criteria });
    t.equal(conditional.statusCode, 201, "If-None-Exist does not see P2's match: a new Encounter for P1 is created");
    assertNoP2(t, f, conditional, 'conditional create');
    // PUT ?criteria matching P2's Encounter: unconfined, P2's Encounter would be overwritten (moved to P1).
    const update = await send(app, p1Write, 'PUT', `/Encounter?${criteria}&status=finished`, sampleEncounter(f.p1, 'cond-update'));
    t.equal(update.statusCode, 201, "conditional update does not match P2's Encounter: creates one for P1 instead");
    assertNoP2(t, f, update, 'conditional update');
    const deleted = await send(app, p1Write, 'DELETE', `/Encounter?identifier=urn:test|e2-2`);
    t.equal(deleted.statusCode, 204, 'conditional delete matching only P2 data: nothing to delete');
    for (const id of [f.e2[1], f.e2[2]]) {
      const still = await send(app, f.admin, 'GET', `/Encounter/${id}`);
      t.equal(still.statusCode, 200, `P2's Encounter/${id} is unchanged`);
      t.equal((still.json() as { meta: { versionId: string } }).meta.versionId, '1', 'still version 1');
    }
    t.same(
      await clinicalCounts(f.db),
      { versions: before.versions + 2, heads: before.heads + 2 },
      "only P1's two new Encounters were written",
    );
    for (const res of [conditional, update]) {
      t.equal((await send(app, f.admin, 'DELETE', `/Encounter/${(res.json() as { id: string }).id}`)).statusCode, 204, 'cleanup');
    }
  });

  await t.test('$everything: P1 only; P2 refused; all patients means P1', async (t) => {
    const mine = await crawl(f, p1, `/Patient/${f.p1}/$everything?_count=3`);
    t.same([...mine.matches].sort(), [...f.p1Refs].sort(), 'Patient/P1/$everything: exactly P1 compartment over all pages');
    for (const { url, res } of mine.pages) assertNoP2(t, f, res, url);
    for (const method of ['GET', 'POST']) {
      const res = await send(
        app,
        p1,
        method,
        `/Patient/${f.p2}/$everything`,
        method === 'POST' ? { resourceType: 'Parameters', parameter: [] } : undefined,
      );
      t.equal(res.statusCode, 403, `${method} Patient/P2/$everything`);
    }
    const all = await crawl(f, p1, '/Patient/$everything?_count=4');
    t.same([...all.matches].sort(), [...f.p1Refs].sort(), "Patient/$everything (all patients): only P1's");
    for (const { url, res } of all.pages) assertNoP2(t, f, res, url);
    const control = await crawl(f, f.admin, '/Patient/$everything?_count=50');
    t.ok(
      [...f.p2Refs].every((ref) => control.matches.has(ref)),
      'the admin gets P2 compartment too',
    );
  });

  await t.test('Bulk export: patient/ tokens refused; files for the system client that asked only', async (t) => {
    const kickoff = { prefer: 'respond-async', accept: FHIR_JSON };
    for (const url of ['/$export', '/Patient/$export', '/$export?_type=Encounter']) {
      const res = await send(app, p1, 'GET', url, undefined, kickoff);
      t.equal(res.statusCode, 403, `${url} with a patient/ token`);
      t.match(diagnostics(res), /system\/|user\//, `${url}: says which scopes an export needs`);
    }
    const jobsBefore = await f.db.collection('bulk_export_jobs').countDocuments();
    t.equal(jobsBefore, 0, 'no job was created');

    const res = await send(app, f.admin, 'GET', '/$export', undefined, kickoff);
    t.equal(res.statusCode, 202, 'the system client kicks off');
    const statusUrl = pathOf(String(res.headers['content-location']));
    let manifest: { output: Array<{ type: string; url: string }> } | undefined;
    for (let i = 0; i < 200 && !manifest; i++) {
      const status = await send(app, f.admin, 'GET', statusUrl);
      if (status.statusCode === 200) manifest = status.json();
      else await new Promise((r) => setTimeout(r, 50));
    }
    if (!manifest) return t.fail('the export did not complete within 10 s');
    let files = '';
    for (const file of manifest.output)
      files += (await send(app, f.admin, 'GET', file.url, undefined, { accept: 'application/fhir+ndjson' })).body;
    t.ok(
      [...f.p1Refs, ...f.p2Refs].every((ref) => files.includes(`"id":"${ref.split('/')[1]}"`)),
      "the system client's files hold both patients' data",
    );

    const other = await bearer(f, 'system/*.rs', { client_id: 'confine-other-system' });
    t.equal((await send(app, other, 'GET', statusUrl)).statusCode, 404, "another system client: the job's status is not found");
    for (const file of manifest.output) {
      const res = await send(app, other, 'GET', file.url, undefined, { accept: 'application/fhir+ndjson' });
      t.equal(res.statusCode, 404, `another system client: ${file.type} file not found`);
      assertNoP2(t, f, res, 'other client file');
    }
    t.equal((await send(app, other, 'DELETE', statusUrl)).statusCode, 404, 'another system client cannot cancel it');

    // The same client with a token that could not have kicked the export off (a patient/ token of the same app, a
    // narrower system/ token): the job is theirs, but its manifest and files need what the kick-off needed.
    for (const [name, token] of [
      ['same client, patient/ token for P1', await bearer(f, 'patient/*.rs', { client_id: ADMIN_CLIENT, patient: f.p1 })],
      ['same client, system/Encounter.rs only', await bearer(f, 'system/Encounter.rs', { client_id: ADMIN_CLIENT })],
    ]) {
      const status = await send(app, token, 'GET', statusUrl);
      t.equal(status.statusCode, 403, `${name}: no manifest`);
      t.match(diagnostics(status), /system\/Patient\.r/, `${name}: names the scope an export of Patient needs`);
      for (const file of manifest.output) {
        const res = await send(app, token, 'GET', file.url, undefined, { accept: 'application/fhir+ndjson' });
        t.equal(res.statusCode, 403, `${name}: ${file.type} file refused`);
        assertNoP2(t, f, res, `${name}: ${file.type} file`);
      }
      t.equal((await send(app, token, 'DELETE', statusUrl)).statusCode, 403, `${name}: cannot cancel`);
    }
    t.equal((await send(app, f.admin, 'GET', statusUrl)).statusCode, 200, 'the job is still there for its client');
  });

  await t.test('the audit trail: patient/ scopes grant none of it (an AuditEvent can name several patients)', async (t) => {
    // The admin's searches above returned both patients' data: their AuditEvents name P1 and P2 together.
    await f.flushAudit();
    const both = await send(app, f.admin, 'GET', `/AuditEvent?patient=Patient/${f.p1}&_count=200`);
    const mixed = ((both.json() as Bundle).entry ?? []).filter((e) => JSON.stringify(e.resource).includes(`Patient/${f.p2}`));
    t.ok(mixed.length > 0, "AuditEvents in P1's compartment that also name P2 exist");
    const auditToken = await bearer(f, 'patient/Patient.rs patient/AuditEvent.rs', { patient: f.p1 });
    // (AuditEvents are never _revincluded: the include parameters reach the clinical types only.)
    for (const url of [
      '/AuditEvent',
      `/AuditEvent?patient=Patient/${f.p1}`,
      `/AuditEvent/${mixed[0]?.resource?.id}`,
      '/AuditEvent/_history',
      `/AuditEvent/${mixed[0]?.resource?.id}/_history/1`,
    ]) {
      const res = await send(app, auditToken, 'GET', url);
      t.equal(res.statusCode, 403, `${url} with patient/AuditEvent.rs: 403`);
      t.match(diagnostics(res), /cannot be confined/, `${url}: says why`);
      assertNoP2(t, f, res, url);
    }
  });

  await t.test('scopes with search parameters narrow reads and grant no writes', async (t) => {
    const finished = await bearer(f, 'system/Encounter.rs?status=finished');
    const walked = await crawl(f, finished, '/Encounter?_count=3&_total=accurate');
    const all = [...f.e1, ...f.e2];
    const statuses = new Map<string, string>();
    for (const id of all) statuses.set(id, ((await send(app, f.admin, 'GET', `/Encounter/${id}`)).json() as { status: string }).status);
    const expected = all.filter((id) => statuses.get(id) === 'finished').map((id) => `Encounter/${id}`);
    t.same([...walked.matches].sort(), expected.sort(), 'search: finished Encounters only (both patients: not confined to one)');
    t.equal((walked.pages[0].res.json() as Bundle).total, expected.length, 'total: finished only');
    const unfinished = all.find((id) => statuses.get(id) === 'in-progress')!;
    const read = await send(app, finished, 'GET', `/Encounter/${unfinished}`);
    t.equal(read.statusCode, 403, 'read of an in-progress Encounter: 403');
    t.match(diagnostics(read), /search parameters/, 'says the scope restricts by search parameters');
    const ok = await send(app, finished, 'GET', `/Encounter/${expected[0].split('/')[1]}`);
    t.equal(ok.statusCode, 200, 'read of a finished one: 200');

    const before = await clinicalCounts(f.db);
    const writer = await bearer(f, 'system/Encounter.cruds?status=finished');
    const write = await send(app, writer, 'POST', '/Encounter', sampleEncounter(f.p1, 'narrow-write'));
    t.equal(write.statusCode, 403, 'a write under a scope with search parameters: 403');
    t.match(diagnostics(write), /reads and searches only/, 'says such scopes grant reads only');
    const update = await send(app, writer, 'PUT', `/Encounter/${expected[0].split('/')[1]}`, {
      ...sampleEncounter(f.p1, 'x'),
      id: expected[0].split('/')[1],
    });
    t.equal(update.statusCode, 403, 'an update too');
    t.same(await clinicalCounts(f.db), before, 'nothing written');
  });

  await t.test('SMART 1 patient/*.read behaves like patient/*.rs; user/ scopes are not confined', async (t) => {
    const v1 = await bearer(f, 'patient/*.read', { patient: f.p1 });
    const walked = await crawl(f, v1, '/Encounter?_count=2&_total=accurate');
    t.same([...walked.matches].sort(), [...p1Encounters].sort(), 'patient/*.read: P1 Encounters only');
    for (const { url, res } of walked.pages) assertNoP2(t, f, res, url);
    t.equal((await send(app, v1, 'GET', `/Encounter/${f.e2[1]}`)).statusCode, 403, "patient/*.read: P2's Encounter refused");
    t.equal((await send(app, v1, 'GET', `/Encounter/${f.e1[1]}`)).statusCode, 200, "patient/*.read: P1's Encounter read");
    const v1Write = await send(app, v1, 'POST', '/Encounter', sampleEncounter(f.p1, 'v1-write'));
    t.equal(v1Write.statusCode, 403, 'patient/*.read grants no write');

    const user = await bearer(f, 'user/Patient.rs', { fhirUser: 'Practitioner/abc' });
    const patients = await send(app, user, 'GET', '/Patient?_total=accurate');
    t.same(
      refsOf(patients.json() as Bundle, 'match').sort(),
      [`Patient/${f.p1}`, `Patient/${f.p2}`].sort(),
      'user/Patient.rs: every patient',
    );
    t.equal((await send(app, user, 'GET', `/Patient/${f.p2}`)).statusCode, 200, 'user/Patient.rs reads P2');
    t.equal((await send(app, user, 'GET', `/Encounter/${f.e2[1]}`)).statusCode, 403, 'but no Encounter without a scope for it');
  });
});
