/**
 * Search through the HTTP API: string, token and uri parameters with their modifiers, _id, OR (comma) and AND
 * (repeated parameters), :missing, and the handling of unknown or malformed parameters.
 */
import type { CapabilityStatement, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { searchRegistry } from '../../src/fhir/search/registry.js';
import { create, ids, search, sorted } from '../fhir/search/helpers.js';

stopMongoAtEnd(t);

const MRN = 'urn:oid:1.2.36.146.595.217.0.1';
const V2 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

t.test('string, token and uri search', async (t) => {
  const { app } = await startTestApp(t);
  const peter = await create<Patient>(app, {
    resourceType: 'Patient',
    identifier: [{ system: MRN, value: '12345', type: { coding: [{ system: V2, code: 'MR' }], text: 'Medical record' } }],
    name: [{ family: 'Chalmers', given: ['Peter', 'James'] }],
    gender: 'male',
    active: true,
    telecom: [{ system: 'email', value: 'peter@example.org' }],
    address: [{ city: 'PleasantVille', postalCode: '3999' }],
    meta: { tag: [{ system: 'http://example.org/tags', code: 'vip' }], profile: ['http://example.org/fhir/StructureDefinition/a/b'] },
  });
  const adele = await create<Patient>(app, {
    resourceType: 'Patient',
    identifier: [{ value: 'X-1' }, { system: 'urn:other', value: '12345' }],
    name: [{ family: 'Ådèle-Müller', given: ['Zoë'] }],
    gender: 'female',
    active: false,
    address: [{ city: 'Zürich' }],
  });
  const bare = await create<Patient>(app, { resourceType: 'Patient', name: [{ text: 'Nameless' }] });
  const all = sorted([peter.id, adele.id, bare.id]);

  await t.test('string: starts-with on folded values, :exact, :contains, :missing', async (t) => {
    t.same(await ids(app, '/Patient?family=chal'), [peter.id], 'prefix, case-insensitive');
    t.same(await ids(app, '/Patient?family=CHALMERS'), [peter.id]);
    t.same(await ids(app, '/Patient?family=halmers'), [], 'not a prefix');
    t.same(await ids(app, '/Patient?family=adele'), [adele.id], 'accents folded in the value');
    t.same(await ids(app, '/Patient?family=%C3%85D%C3%88LE'), [adele.id], 'and in the query (ÅDÈLE)');
    t.same(await ids(app, '/Patient?given=zoe'), [adele.id]);
    t.same(await ids(app, '/Patient?name=james'), [peter.id], 'name matches given names too');
    t.same(await ids(app, '/Patient?name=nameless'), [bare.id], 'and HumanName.text');
    t.same(await ids(app, '/Patient?family:exact=Chalmers'), [peter.id]);
    t.same(await ids(app, '/Patient?family:exact=chalmers'), [], ':exact is case-sensitive');
    t.same(await ids(app, '/Patient?family:exact=%C3%85d%C3%A8le-M%C3%BCller'), [adele.id], ':exact keeps accents');
    t.same(await ids(app, '/Patient?family:exact=Adele-Muller'), [], 'and so needs them');
    t.same(await ids(app, '/Patient?family:contains=mull'), [adele.id], ':contains anywhere');
    t.same(await ids(app, '/Patient?family:contains=LMER'), [peter.id]);
    t.same(await ids(app, '/Patient?family:contains=a.c'), [], ':contains is literal, not a pattern');
    t.same(await ids(app, '/Patient?family:missing=true'), [bare.id]);
    t.same(await ids(app, '/Patient?family:missing=false'), sorted([peter.id, adele.id]));
    t.same(await ids(app, '/Patient?address-city=pleasant'), [peter.id]);
    t.same(await ids(app, '/Patient?address=3999'), [peter.id], 'address matches any part');
    t.same(await ids(app, '/Patient?phonetic=chalmars'), [peter.id], 'phonetic: sounds like');
  });

  await t.test('token: code, system|code, |code, system|, :not, :text, :of-type, :missing', async (t) => {
    t.same(await ids(app, '/Patient?identifier=12345'), sorted([peter.id, adele.id]), 'code alone: any system');
    t.same(await ids(app, `/Patient?identifier=${MRN}|12345`), [peter.id], 'system|code');
    t.same(await ids(app, '/Patient?identifier=urn:other|12345'), [adele.id]);
    t.same(await ids(app, '/Patient?identifier=|X-1'), [adele.id], '|code: no system');
    t.same(await ids(app, '/Patient?identifier=|12345'), [], 'a code that has a system does not match |code');
    t.same(await ids(app, `/Patient?identifier=${MRN}|`), [peter.id], 'system|: any code of the system');
    t.same(await ids(app, `/Patient?identifier:of-type=${V2}|MR|12345`), [peter.id]);
    t.same(await ids(app, `/Patient?identifier:of-type=${V2}|MR|X-1`), []);
    t.same(await ids(app, '/Patient?identifier:text=medical'), [peter.id], ':text on Identifier.type.text');
    t.same(await ids(app, '/Patient?gender=male'), [peter.id]);
    t.same(await ids(app, '/Patient?gender=http://hl7.org/fhir/administrative-gender|female'), [adele.id], 'implicit system of a code');
    t.same(await ids(app, '/Patient?gender:not=male'), sorted([adele.id, bare.id]), ':not includes resources without a value');
    t.same(await ids(app, '/Patient?gender:not=male,female'), [bare.id], ':not with a list: none of them');
    t.same(await ids(app, '/Patient?gender:missing=true'), [bare.id]);
    t.same(await ids(app, '/Patient?active=true'), [peter.id], 'boolean');
    t.same(await ids(app, '/Patient?active=false'), [adele.id]);
    t.same(await ids(app, '/Patient?email=peter@example.org'), [peter.id], 'ContactPoint value');
    t.same(await ids(app, '/Patient?_tag=http://example.org/tags|vip'), [peter.id]);
    t.same(await ids(app, '/Patient?_tag:not=vip'), sorted([adele.id, bare.id]));
    t.same(await ids(app, `/Patient?_id=${peter.id}`), [peter.id]);
    t.same(await ids(app, `/Patient?_id=${peter.id},${bare.id}`), sorted([peter.id, bare.id]));
    t.same(await ids(app, `/Patient?_id:not=${peter.id}`), sorted([adele.id, bare.id]));
    t.same(await ids(app, '/Patient?identifier=a\\,b'), [], 'an escaped comma is part of the value');
  });

  await t.test('uri: exact, :below, :above', async (t) => {
    t.same(await ids(app, '/Patient?_profile=http://example.org/fhir/StructureDefinition/a/b'), [peter.id]);
    t.same(await ids(app, '/Patient?_profile=http://example.org/fhir/StructureDefinition/a'), []);
    t.same(await ids(app, '/Patient?_profile:below=http://example.org/fhir/StructureDefinition'), [peter.id]);
    t.same(await ids(app, '/Patient?_profile:above=http://example.org/fhir/StructureDefinition/a/b/c'), [peter.id]);
    t.same(await ids(app, '/Patient?_profile:missing=true'), sorted([adele.id, bare.id]));
  });

  await t.test('comma is OR, repetition is AND', async (t) => {
    t.same(await ids(app, '/Patient?family=chal,adele'), sorted([peter.id, adele.id]));
    t.same(await ids(app, '/Patient?identifier=12345&gender=female'), [adele.id]);
    t.same(await ids(app, '/Patient?given=peter&given=james'), [peter.id], 'both given names');
    t.same(await ids(app, '/Patient?given=peter&given=zoe'), [], 'no patient has both');
    t.same(await ids(app, '/Patient'), all, 'no criteria: every patient');
  });

  await t.test('unknown and malformed parameters: ignored and reported, or 400 under handling=strict', async (t) => {
    const lenient = await search(app, '/Patient?family=chal&shoe-size=42&birthdate=not-a-date');
    t.equal(lenient.status, 200);
    t.same(lenient.ids, [peter.id], 'the search ran without the bad parameters');
    t.equal(lenient.bundle.link?.[0].url, 'http://127.0.0.1:8080/Patient?family=chal', 'and the self link leaves them out');
    t.equal(lenient.warnings.length, 2, 'an outcome entry reports each');
    t.match(lenient.warnings.join('\n'), /shoe-size/);
    t.match(lenient.warnings.join('\n'), /not-a-date/);
    const strict = await app.inject({ url: '/Patient?family=chal&shoe-size=42', headers: { prefer: 'handling=strict' } });
    t.equal(strict.statusCode, 400);
    t.match(strict.json().issue[0].diagnostics, /shoe-size/);
    t.equal(
      (await app.inject({ url: '/Patient?family:sounds=x', headers: { prefer: 'handling=strict' } })).statusCode,
      400,
      'unknown modifier',
    );
    t.equal(
      (await app.inject({ url: '/Patient?gender:in=http://x', headers: { prefer: 'handling=strict' } })).statusCode,
      400,
      ':in needs terminology',
    );
    t.equal((await app.inject({ url: '/Patient?family:missing=perhaps', headers: { prefer: 'handling=strict' } })).statusCode, 400);
    t.equal((await app.inject({ url: '/Patient?_count=-1', headers: { prefer: 'handling=strict' } })).statusCode, 400);
    t.equal(
      (await app.inject({ url: '/Patient?_text=x', headers: { prefer: 'handling=strict' } })).statusCode,
      400,
      'unsupported standard parameter',
    );
    t.equal((await app.inject({ url: '/Patient?family=', headers: { prefer: 'handling=strict' } })).statusCode, 400, 'empty value');
    t.equal(
      (await app.inject({ url: '/Patient?family=%20%CC%81', headers: { prefer: 'handling=strict' } })).statusCode,
      400,
      'a value that folds to nothing',
    );
  });

  await t.test('the CapabilityStatement lists every parameter with its type and documentation', async (t) => {
    const statement = (await app.inject({ url: '/metadata' })).json() as CapabilityStatement;
    const resources = statement.rest![0].resource!;
    for (const type of ['Patient', 'Encounter', 'MedicationRequest']) {
      const entry = resources.find((r) => r.type === type)!;
      const names = (entry.searchParam ?? []).map((p) => p.name);
      t.same(
        names,
        searchRegistry()
          .paramsOf(type)
          .map((d) => d.code),
        `${type}: the registry's parameters`,
      );
      t.ok(entry.interaction?.some((i) => i.code === 'search-type'));
    }
    const patient = resources.find((r) => r.type === 'Patient')!;
    const birthdate = patient.searchParam!.find((p) => p.name === 'birthdate')!;
    t.equal(birthdate.type, 'date');
    t.equal(birthdate.definition, 'http://hl7.org/fhir/SearchParameter/individual-birthdate');
    t.match(birthdate.documentation, /birth/i);
    t.ok(patient.searchRevInclude?.includes('Encounter:patient'));
    t.ok(patient.searchInclude?.includes('Patient:general-practitioner'));
    t.ok(statement.rest![0].interaction?.some((i) => i.code === 'search-system'));
  });

  await t.test('deleted resources are not found; updated ones are found by their new values', async (t) => {
    await app.inject({ method: 'DELETE', url: `/Patient/${bare.id}` });
    t.same(await ids(app, '/Patient?name=nameless'), []);
    t.same(await ids(app, '/Patient?family:missing=true'), []);
    await app.inject({
      method: 'PUT',
      url: `/Patient/${adele.id}`,
      headers: { 'content-type': 'application/fhir+json' },
      payload: { ...adele, name: [{ family: 'Berg' }] },
    });
    t.same(await ids(app, '/Patient?family=adele'), [], 'old values gone');
    t.same(await ids(app, '/Patient?family=berg'), [adele.id]);
  });
});
