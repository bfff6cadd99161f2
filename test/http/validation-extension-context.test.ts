/**
 * An extension only where its definition's context allows it (StructureDefinition.context), as the HL7 validator
 * checks: an extension defined for HumanName.family is refused on HumanName, one defined for Patient on
 * Patient.name; element contexts match by type (and the types it specialises) and by definition path, type-rooted
 * or resource-rooted, backbone elements included. Each refused case has an accepted neighbour.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

const json = { 'content-type': 'application/fhir+json' };
const SD = 'http://hl7.org/fhir/StructureDefinition';
const ownPrefix = { url: `${SD}/humanname-own-prefix`, valueString: 'van' };
const birthPlace = { url: `${SD}/patient-birthPlace`, valueAddress: { city: 'Leiden' } };
const nameUse = { url: `${SD}/iso21090-EN-use`, valueCode: 'I' };
const absent = { url: `${SD}/data-absent-reason`, valueCode: 'unknown' };
const bodyPosition = { url: `${SD}/observation-bodyPosition`, valueCodeableConcept: { text: 'sitting' } };

const ACCEPTED: Array<{ name: string; body: object }> = [
  {
    name: 'HumanName.family: on the family name',
    body: { resourceType: 'Patient', name: [{ family: 'Berg', _family: { extension: [ownPrefix] } }] },
  },
  { name: 'Patient: on the patient', body: { resourceType: 'Patient', extension: [birthPlace] } },
  { name: 'HumanName: on a name', body: { resourceType: 'Patient', name: [{ family: 'Berg', extension: [nameUse] }] } },
  { name: 'Element: anywhere (a primitive)', body: { resourceType: 'Patient', _birthDate: { extension: [absent] } } },
  { name: 'Element: anywhere (a datatype)', body: { resourceType: 'Patient', name: [{ family: 'Berg', extension: [absent] }] } },
  {
    name: 'Specimen.collection: on a backbone element by its path',
    body: { resourceType: 'Specimen', collection: { extension: [bodyPosition], collectedDateTime: '2024-01-01' } },
  },
  {
    name: 'Observation: on the observation',
    body: { resourceType: 'Observation', status: 'final', code: { text: 'bp' }, extension: [bodyPosition] },
  },
  {
    name: 'an extension this server has no definition of: not checked',
    body: { resourceType: 'Patient', extension: [{ url: 'http://example.org/x', valueString: 'y' }] },
  },
];

const REFUSED: Array<{ name: string; body: object; at: string; says: RegExp }> = [
  {
    name: 'HumanName.family on HumanName',
    body: { resourceType: 'Patient', name: [{ family: 'Berg', extension: [ownPrefix] }] },
    at: 'Patient.name[0].extension[0]',
    says: /humanname-own-prefix is not allowed on Patient\.name \(HumanName\): its definition allows it on HumanName\.family/,
  },
  {
    name: 'Patient on Patient.name',
    body: { resourceType: 'Patient', name: [{ family: 'Berg', extension: [birthPlace] }] },
    at: 'Patient.name[0].extension[0]',
    says: /patient-birthPlace is not allowed on Patient\.name \(HumanName\): its definition allows it on Patient$/,
  },
  {
    name: 'Patient on an Observation',
    body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, extension: [birthPlace] },
    at: 'Observation.extension[0]',
    says: /patient-birthPlace is not allowed on Observation \(Observation\)/,
  },
  {
    name: 'HumanName on a primitive of HumanName',
    body: { resourceType: 'Patient', name: [{ family: 'Berg', _family: { extension: [nameUse] } }] },
    at: 'Patient.name[0].family.extension[0]',
    says: /iso21090-EN-use is not allowed on HumanName\.family \/ Patient\.name\.family \(string\)/,
  },
  {
    name: 'Specimen.collection on another backbone element',
    body: { resourceType: 'Specimen', processing: [{ description: 'spun', extension: [bodyPosition] }] },
    at: 'Specimen.processing[0].extension[0]',
    says: /observation-bodyPosition is not allowed on Specimen\.processing \(BackboneElement\)/,
  },
];

t.test('extension contexts', async (t) => {
  const { app } = await startTestApp(t);
  const validate = async (body: object) =>
    (
      await app.inject({
        method: 'POST',
        url: `/${(body as { resourceType: string }).resourceType}/$validate`,
        headers: json,
        payload: body,
      })
    ).json() as OperationOutcome;
  for (const c of ACCEPTED) {
    const errors = (await validate(c.body)).issue?.filter((i) => i.severity === 'error') ?? [];
    t.same(errors, [], `accepted: ${c.name}`);
  }
  for (const c of REFUSED) {
    const errors = (await validate(c.body)).issue?.filter((i) => i.severity === 'error') ?? [];
    const match = errors.find((i) => c.says.test(i.diagnostics ?? ''));
    t.ok(match, `refused: ${c.name}`, { errors });
    t.same(match?.expression, [c.at], `${c.name}: at the extension`);
    const created = await app.inject({
      method: 'POST',
      url: `/${(c.body as { resourceType: string }).resourceType}`,
      headers: json,
      payload: c.body,
    });
    t.equal(created.statusCode, 400, `${c.name}: a create is refused`);
  }
});
