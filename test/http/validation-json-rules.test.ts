/**
 * The rules of FHIR's JSON representation (R4 json.html) that the HL7 validator enforces: what a server must refuse
 * however the rest of the resource looks. Each case is sent to $validate (the issue and where it points) and as a
 * create (400, nothing written); each refused case has an accepted neighbour, so a rule that refuses too much fails too.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

const json = { 'content-type': 'application/fhir+json' };
const OWN_PREFIX = 'http://hl7.org/fhir/StructureDefinition/humanname-own-prefix';

const REFUSED: Array<{ name: string; body: object; at: string; says: RegExp }> = [
  { name: 'an empty array', body: { resourceType: 'Patient', name: [] }, at: 'Patient.name', says: /Arrays must not be empty/ },
  {
    name: 'an empty object',
    body: { resourceType: 'Patient', maritalStatus: {} },
    at: 'Patient.maritalStatus',
    says: /Objects must not be empty/,
  },
  {
    name: 'an empty _x object',
    body: { resourceType: 'Patient', gender: 'male', _gender: {} },
    at: 'Patient.gender',
    says: /Objects must not be empty/,
  },
  { name: 'null as a value', body: { resourceType: 'Patient', gender: null }, at: 'Patient.gender', says: /null/i },
  {
    name: 'an _x array beside a single value',
    body: { resourceType: 'Patient', gender: 'male', _gender: [{ id: 'a' }] },
    at: 'Patient.gender',
    says: /at most one value/,
  },
  {
    name: 'a list given as a single value',
    body: { resourceType: 'Patient', name: [{ given: 'Ann' }] },
    at: 'Patient.name[0].given',
    says: /must be a JSON array/,
  },
  {
    name: '_x not aligned with its list',
    body: { resourceType: 'Patient', name: [{ given: ['Ann', 'Bo'], _given: [{ id: 'g' }] }] },
    at: 'Patient.name[0].given',
    says: /same number of entries/,
  },
  {
    name: 'a null placeholder without the other half',
    body: { resourceType: 'Patient', name: [{ given: ['Ann', null] }] },
    at: 'Patient.name[0].given[1]',
    says: /null is only allowed/,
  },
  {
    name: 'a primitive with neither a value nor an extension',
    body: { resourceType: 'Patient', _gender: { id: 'g' } },
    at: 'Patient.gender',
    says: /needs a value or an extension/,
  },
  {
    name: 'extensions on Resource.id',
    body: { resourceType: 'Patient', id: 'p1', _id: { extension: [{ url: 'http://example.org/x', valueString: 'y' }] } },
    at: 'Patient.id',
    says: /cannot have extensions/,
  },
];

const ACCEPTED: Array<{ name: string; body: object }> = [
  {
    name: 'a list with its aligned _x and null placeholders',
    body: {
      resourceType: 'Patient',
      name: [{ given: ['Ann', null], _given: [null, { extension: [{ url: 'http://example.org/x', valueString: 'y' }] }] }],
    },
  },
  {
    name: 'a primitive with an extension and no value',
    body: { resourceType: 'Patient', _gender: { extension: [{ url: 'http://example.org/x', valueString: 'y' }] } },
  },
  {
    name: 'an extension where its definition allows it',
    body: { resourceType: 'Patient', name: [{ family: 'Berg', _family: { extension: [{ url: OWN_PREFIX, valueString: 'van' }] } }] },
  },
  { name: 'a single value with its _x object', body: { resourceType: 'Patient', gender: 'male', _gender: { id: 'g1' } } },
];

t.test('JSON representation rules: refused with the issue at the element, nothing written', async (t) => {
  const { app } = await startTestApp(t);
  for (const c of REFUSED) {
    const validated = await app.inject({ method: 'POST', url: '/Patient/$validate', headers: json, payload: c.body });
    t.equal(validated.statusCode, 200, `${c.name}: $validate answers`);
    const errors = ((validated.json() as OperationOutcome).issue ?? []).filter((i) => i.severity === 'error');
    t.ok(
      errors.some((i) => i.expression?.includes(c.at) && c.says.test(i.diagnostics ?? '')),
      `${c.name}: an error at ${c.at} (got ${JSON.stringify(errors.map((i) => [i.expression, i.diagnostics]))})`,
    );
    t.notOk(
      errors.some((i) => i.code === 'exception'),
      `${c.name}: no validator failure`,
    );
    const created = await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: c.body });
    t.equal(created.statusCode, 400, `${c.name}: a create is refused`);
  }
  const search = await app.inject({ url: '/Patient?_summary=count' });
  t.equal((search.json() as { total: number }).total, 0, 'nothing was written');
});

t.test('their valid neighbours are accepted', async (t) => {
  const { app } = await startTestApp(t);
  for (const c of ACCEPTED) {
    const validated = await app.inject({ method: 'POST', url: '/Patient/$validate', headers: json, payload: c.body });
    const errors = ((validated.json() as OperationOutcome).issue ?? []).filter((i) => i.severity === 'error');
    t.same(errors, [], `${c.name}: no error`);
    const created = await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: c.body });
    t.equal(created.statusCode, 201, `${c.name}: created`);
  }
});

t.test('an invariant that evaluates to nothing is no violation (ras-2 on a prediction without a probability)', async (t) => {
  const { app } = await startTestApp(t);
  const validate = async (prediction: object) =>
    (
      (
        await app.inject({
          method: 'POST',
          url: '/RiskAssessment/$validate',
          headers: json,
          payload: { resourceType: 'RiskAssessment', status: 'final', subject: { reference: 'Patient/p' }, prediction: [prediction] },
        })
      ).json() as OperationOutcome
    ).issue?.filter((i) => i.severity === 'error') ?? [];
  t.same(await validate({ outcome: { text: 'stroke' } }), [], 'no probability: ras-2 is empty, not false');
  t.same(await validate({ outcome: { text: 'stroke' }, probabilityDecimal: 42 }), [], 'a probability within bounds');
  const over = await validate({ outcome: { text: 'stroke' }, probabilityDecimal: 142 });
  t.match(over.map((i) => i.diagnostics).join(' '), /ras-2/, 'above 100: still refused');
  t.same(over[0]?.expression, ['RiskAssessment.prediction[0]']);
});
