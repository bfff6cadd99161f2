/**
 * Base R4 rules: each category of problem gives the right issue code and FHIRPath expression.
 */
import t from 'tap';
import { TEXT, at, errors, makeValidator, raw, summary, warnings } from './fixtures/support.js';

const { validator } = await makeValidator();
const v = (r: unknown): ReturnType<typeof validator.validate> => validator.validate(raw(r));

const patient = (extra: Record<string, unknown>): Record<string, unknown> => ({ resourceType: 'Patient', text: TEXT, ...extra });
const encounter = (extra: Record<string, unknown>): Record<string, unknown> => ({
  resourceType: 'Encounter',
  text: TEXT,
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
  ...extra,
});
const medicationRequest = (extra: Record<string, unknown>): Record<string, unknown> => ({
  resourceType: 'MedicationRequest',
  text: TEXT,
  status: 'active',
  intent: 'order',
  medicationCodeableConcept: { text: 'aspirin' },
  subject: { reference: 'Patient/1' },
  ...extra,
});

t.test('a minimal valid resource of each type has no issues', async (t) => {
  t.same(v(patient({ name: [{ family: 'Chalmers', given: ['Peter', 'James'] }] })), []);
  t.same(v(encounter({})), []);
  t.same(v(medicationRequest({})), []);
});

t.test('cardinality', async (t) => {
  const missing = v({ resourceType: 'Encounter', text: TEXT });
  t.ok(at(missing, 'Encounter.status', 'required'), summary(missing));
  t.ok(at(missing, 'Encounter.class', 'required'), summary(missing));

  const mr = v({ resourceType: 'MedicationRequest', text: TEXT, status: 'active', intent: 'order', subject: { reference: 'Patient/1' } });
  t.ok(at(mr, 'MedicationRequest.medication', 'required'), summary(mr));

  const link = v(patient({ link: [{ type: 'seealso' }] }));
  t.match(at(link, 'Patient.link[0].other', 'required'), { severity: 'error', diagnostics: /Missing required element 'other'/ });

  const single = v(patient({ gender: ['male'] }));
  t.ok(at(single, 'Patient.gender', 'structure'), summary(single));
  const array = v(patient({ name: { family: 'x' } }));
  t.ok(at(array, 'Patient.name', 'structure'), summary(array));
});

t.test('types', async (t) => {
  const issues = v(patient({ active: 'yes', birthDate: 19990101, name: [{ given: ['a', 3] }] }));
  t.ok(at(issues, 'Patient.active', 'structure'), summary(issues));
  t.ok(at(issues, 'Patient.birthDate', 'structure'), summary(issues));
  t.ok(at(issues, 'Patient.name[0].given[1]', 'structure'), summary(issues));

  const decimal = v(encounter({ length: { value: '1.5', unit: 'h' } }));
  t.ok(at(decimal, 'Encounter.length.value', 'structure'), summary(decimal));

  const nul = v(patient({ gender: null }));
  t.ok(at(nul, 'Patient.gender', 'structure'), summary(nul));

  // A string, number or boolean where an object belongs (medplum says nothing; stored, `"meta": "x"` became
  // `{"0": "x", ...}` when the server stamped it: found by the XML fuzzing, whose writer refused that meta).
  const scalars = v(encounter({ meta: 'x', subject: 5, period: true, identifier: ['x'], contained: ['x'] }));
  for (const path of ['Encounter.meta', 'Encounter.subject', 'Encounter.period', 'Encounter.identifier[0]', 'Encounter.contained[0]']) {
    t.ok(at(scalars, path, 'structure'), `${path}: ${summary(scalars)}`);
  }
  t.match(summary(scalars), /Meta must be a JSON object, not a string/);
});

t.test('unknown elements are rejected', async (t) => {
  const issues = v(patient({ foo: 1, name: [{ family: 'x', nickname: 'y' }], contact: [{ name: { family: 'z' }, bogus: true }] }));
  t.match(at(issues, 'Patient.foo', 'structure'), { severity: 'error', diagnostics: /Unknown element 'foo'/ });
  t.ok(at(issues, 'Patient.name[0].nickname', 'structure'), summary(issues));
  t.ok(at(issues, 'Patient.contact[0].bogus', 'structure'), summary(issues));
  const primitiveExtension = v(patient({ gender: 'male', _gender: { foo: 1 } }));
  t.ok(at(primitiveExtension, 'Patient.gender.foo', 'structure'), summary(primitiveExtension));
  const wrongUnderscore = v(patient({ _name: [{ id: 'x' }] }));
  t.ok(at(wrongUnderscore, 'Patient._name', 'structure'), '_ prefix only exists for primitives');
});

t.test('primitive formats (R4 regexes and ranges)', async (t) => {
  const cases: [Record<string, unknown>, string][] = [
    [patient({ birthDate: '2020-13-01' }), 'Patient.birthDate'],
    [patient({ birthDate: '2021-02-30' }), 'Patient.birthDate'],
    [patient({ birthDate: '' }), 'Patient.birthDate'],
    [patient({ deceasedDateTime: '2020-01-01T10:00:00' }), 'Patient.deceased.ofType(dateTime)'],
    [patient({ deceasedDateTime: '2020-01-01T10' }), 'Patient.deceased.ofType(dateTime)'],
    [patient({ meta: { lastUpdated: '2020-01-01' } }), 'Patient.meta.lastUpdated'],
    [patient({ id: 'a_b' }), 'Patient.id'],
    [patient({ id: 'x'.repeat(65) }), 'Patient.id'],
    [patient({ implicitRules: 'http://a b' }), 'Patient.implicitRules'],
    [patient({ gender: 'male ' }), 'Patient.gender'],
    [patient({ multipleBirthInteger: 3000000000 }), 'Patient.multipleBirth.ofType(integer)'],
    [patient({ multipleBirthInteger: 1.5 }), 'Patient.multipleBirth.ofType(integer)'],
    [patient({ telecom: [{ system: 'phone', value: '1', rank: 0 }] }), 'Patient.telecom[0].rank'],
    [patient({ photo: [{ contentType: 'image/png', data: 'not base64!' }] }), 'Patient.photo[0].data'],
    [medicationRequest({ dispenseRequest: { numberOfRepeatsAllowed: -1 } }), 'MedicationRequest.dispenseRequest.numberOfRepeatsAllowed'],
  ];
  for (const [resource, expression] of cases) {
    const issues = v(resource);
    t.ok(at(issues, expression, 'value'), `${expression} -> value\n${summary(issues)}`);
  }
  const message = v(patient({ deceasedDateTime: '2020-01-01T10:00:00' }));
  t.match(at(message, 'Patient.deceased.ofType(dateTime)')?.diagnostics, /time zone/);
  t.same(errors(v(patient({ deceasedDateTime: '2020-01-01T10:00:00+01:00', birthDate: '2020-02-29' }))), []);
});

t.test('choice types [x]', async (t) => {
  const two = v(patient({ deceasedBoolean: true, deceasedDateTime: '2020' }));
  t.match(at(two, 'Patient.deceased', 'structure'), { severity: 'error', diagnostics: /Only one type/ });
  const wrongType = v(patient({ deceasedString: 'yes' }));
  t.ok(at(wrongType, 'Patient.deceasedString', 'structure'), summary(wrongType));
  t.same(v(patient({ deceasedBoolean: false, multipleBirthInteger: 2 })), []);
});

t.test('extensions', async (t) => {
  const noUrl = v(patient({ extension: [{ valueString: 'a' }] }));
  t.ok(at(noUrl, 'Patient.extension[0].url', 'required'), summary(noUrl));
  const both = v(patient({ extension: [{ url: 'http://example.org/x', valueString: 'a', extension: [{ url: 'y', valueString: 'b' }] }] }));
  t.match(at(both, 'Patient.extension[0]', 'invariant'), { diagnostics: /ext-1/ });
  t.same(v(patient({ extension: [{ url: 'http://example.org/unknown', valueString: 'unknown extensions are allowed' }] })), []);

  // A core R4 extension is validated against its definition (patient-birthPlace is an Address).
  const birthPlace = v(
    patient({ extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueString: 'Paris' }] }),
  );
  t.match(at(birthPlace, 'Patient.extension[0].valueString', 'structure'), { diagnostics: /not allowed for value\[x\].*Address/ });
  t.same(
    v(patient({ extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { city: 'Paris' } }] })),
    [],
  );

  // extensions on primitives
  t.same(
    v(
      patient({
        birthDate: '1970-01-01',
        _birthDate: {
          extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1970-01-01T08:00:00Z' }],
        },
      }),
    ),
    [],
  );
  const emptyElement = v(patient({ _gender: {} }));
  t.match(at(emptyElement, 'Patient.gender', 'structure'), { diagnostics: /must not be empty/ });
});

t.test('contained resources', async (t) => {
  t.same(
    v(patient({ contained: [{ resourceType: 'Organization', id: 'org', name: 'Acme' }], managingOrganization: { reference: '#org' } })),
    [],
  );
  const unreferenced = v(patient({ contained: [{ resourceType: 'Organization', id: 'org', name: 'Acme' }] }));
  t.match(at(unreferenced, 'Patient.contained[0]', 'invariant'), { severity: 'error', diagnostics: /dom-3/ });
  const noType = v(patient({ contained: [{ id: 'p' }], link: [{ type: 'seealso', other: { reference: '#p' } }] }));
  t.ok(at(noType, 'Patient.contained[0]', 'structure'), summary(noType));
  const versioned = v(
    patient({
      contained: [{ resourceType: 'Organization', id: 'org', name: 'Acme', meta: { versionId: '1' } }],
      managingOrganization: { reference: '#org' },
    }),
  );
  t.match(at(versioned, 'Patient', 'invariant'), { diagnostics: /dom-4/ });
  const nested = v(
    patient({
      contained: [
        { resourceType: 'Organization', id: 'org', name: 'Acme', contained: [{ resourceType: 'Organization', id: 'o2', name: 'B' }] },
      ],
      managingOrganization: { reference: '#org' },
    }),
  );
  t.match(at(nested, 'Patient', 'invariant'), { diagnostics: /dom-2/ });
  // The contained resource's own rules apply: bindings, datatype invariants, unknown elements.
  const inner = v(
    patient({
      contained: [{ resourceType: 'Patient', id: 'p', gender: 'mail', telecom: [{ value: '1' }], foo: 1 }],
      link: [{ type: 'seealso', other: { reference: '#p' } }],
    }),
  );
  t.ok(at(inner, 'Patient.contained[0].gender', 'code-invalid'), summary(inner));
  t.match(at(inner, 'Patient.contained[0].telecom[0]', 'invariant'), { diagnostics: /cpt-2/ });
  t.ok(at(inner, 'Patient.contained[0].foo', 'structure'), summary(inner));
  const localRef = v(patient({ managingOrganization: { reference: '#missing' } }));
  t.match(at(localRef, 'Patient.managingOrganization', 'invariant'), { diagnostics: /ref-1/ });
});

t.test('invariants of resources and nested datatypes', async (t) => {
  const pat1 = v(patient({ contact: [{ gender: 'male' }] }));
  t.match(at(pat1, 'Patient.contact[0]', 'invariant'), {
    severity: 'error',
    diagnostics: /pat-1 not met: SHALL at least contain a contact's details or a reference to an organization/,
  });
  const cpt2 = v(patient({ telecom: [{ system: 'phone', value: '1' }, { value: '2' }] }));
  t.match(at(cpt2, 'Patient.telecom[1]', 'invariant'), { diagnostics: /cpt-2/ });
  t.notOk(at(cpt2, 'Patient.telecom[0]'), 'the valid telecom is not flagged');
  const per1 = v(encounter({ period: { start: '2020-02-01', end: '2020-01-01' } }));
  t.match(at(per1, 'Encounter.period', 'invariant'), { diagnostics: /per-1/ });
  const qty3 = v(medicationRequest({ dispenseRequest: { quantity: { value: 1, code: 'mg' } } }));
  t.match(at(qty3, 'MedicationRequest.dispenseRequest.quantity', 'invariant'), { diagnostics: /qty-3/ });
  const tim = v(medicationRequest({ dosageInstruction: [{ timing: { repeat: { duration: 3 } } }] }));
  t.match(at(tim, 'MedicationRequest.dosageInstruction[0].timing.repeat', 'invariant'), { diagnostics: /tim-1/ });
  const sqty = v(medicationRequest({ dosageInstruction: [{ doseAndRate: [{ doseQuantity: { value: 1, comparator: '<' } }] }] }));
  t.match(at(sqty, 'MedicationRequest.dosageInstruction[0].doseAndRate[0].dose.ofType(Quantity)', 'invariant'), { diagnostics: /sqty-1/ });
  const ele1 = v(patient({ name: [{ id: 'only-an-id' }] }));
  t.match(at(ele1, 'Patient.name[0]', 'invariant'), { diagnostics: /ele-1/ });
  const empty = v(patient({ name: [{}] }));
  t.ok(errors(empty).length > 0, 'an empty object is an error');

  const noText = v({ resourceType: 'Patient' });
  t.match(at(noText, 'Patient', 'invariant'), { severity: 'warning', diagnostics: /dom-6/ });
  t.same(errors(noText), [], 'dom-6 is a warning only');
});

t.test('narrative (txt-1, txt-2, checked natively)', async (t) => {
  const script = v({
    resourceType: 'Patient',
    text: {
      status: 'generated',
      div: '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script><p onclick="x()">hi</p><a href="javascript:x()">x</a></div>',
    },
  });
  const txt1 = errors(script).filter((i) => i.expression?.[0] === 'Patient.text.div' && /txt-1/.test(i.diagnostics ?? ''));
  t.equal(txt1.length, 3, summary(script));
  const blank = v({
    resourceType: 'Patient',
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"> <p> </p></div>' },
  });
  t.match(at(blank, 'Patient.text.div', 'invariant'), { diagnostics: /txt-2/ });
  const noNamespace = v({ resourceType: 'Patient', text: { status: 'generated', div: '<div>x</div>' } });
  t.match(at(noNamespace, 'Patient.text.div', 'invariant'), { diagnostics: /xmlns/ });
  const status = v({ resourceType: 'Patient', text: { status: 'made-up', div: TEXT.div } });
  t.ok(at(status, 'Patient.text.status', 'code-invalid'), summary(status));
});

t.test('required bindings', async (t) => {
  const gender = v(patient({ gender: 'mail' }));
  t.same(at(gender, 'Patient.gender'), {
    severity: 'error',
    code: 'code-invalid',
    expression: ['Patient.gender'],
    diagnostics:
      "Value 'mail' is not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1 (allowed: male, female, other, unknown)",
  });
  const cases: [Record<string, unknown>, string][] = [
    [encounter({ status: 'done' }), 'Encounter.status'],
    [encounter({ statusHistory: [{ status: 'x', period: { start: '2020' } }] }), 'Encounter.statusHistory[0].status'],
    [encounter({ location: [{ location: { reference: 'Location/1' }, status: 'gone' }] }), 'Encounter.location[0].status'],
    [medicationRequest({ status: 'running' }), 'MedicationRequest.status'],
    [medicationRequest({ intent: 'wish' }), 'MedicationRequest.intent'],
    [medicationRequest({ priority: 'now' }), 'MedicationRequest.priority'],
    [patient({ identifier: [{ use: 'main', value: '1' }] }), 'Patient.identifier[0].use'],
    [patient({ name: [{ use: 'nick', family: 'x' }] }), 'Patient.name[0].use'],
    [patient({ telecom: [{ system: 'pigeon', value: '1' }] }), 'Patient.telecom[0].system'],
    [patient({ telecom: [{ system: 'phone', use: 'office', value: '1' }] }), 'Patient.telecom[0].use'],
    [patient({ address: [{ use: 'holiday', city: 'x' }] }), 'Patient.address[0].use'],
    [patient({ address: [{ type: 'boat', city: 'x' }] }), 'Patient.address[0].type'],
    [patient({ link: [{ type: 'same', other: { reference: 'Patient/2' } }] }), 'Patient.link[0].type'],
    [patient({ contact: [{ gender: 'f', name: { family: 'x' } }] }), 'Patient.contact[0].gender'],
    [
      medicationRequest({ dosageInstruction: [{ timing: { repeat: { period: 1, periodUnit: 'fortnight' } } }] }),
      'MedicationRequest.dosageInstruction[0].timing.repeat.periodUnit',
    ],
    [
      medicationRequest({ dispenseRequest: { quantity: { value: 1, comparator: 'about' } } }),
      'MedicationRequest.dispenseRequest.quantity.comparator',
    ],
  ];
  for (const [resource, expression] of cases) {
    const issues = v(resource);
    t.match(at(issues, expression, 'code-invalid'), { severity: 'error' }, `${expression}\n${summary(issues)}`);
  }
  const valid = v(
    patient({
      gender: 'female',
      identifier: [{ use: 'official', value: '1' }],
      name: [{ use: 'maiden', family: 'x' }],
      telecom: [{ system: 'email', use: 'work', value: 'a@b.c' }],
      address: [{ use: 'home', type: 'both', city: 'x' }],
    }),
  );
  t.same(valid, []);
});

t.test('extensible bindings give warnings', async (t) => {
  const cls = v(encounter({ class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'XYZ' } }));
  t.match(at(cls, 'Encounter.class', 'code-invalid'), {
    severity: 'warning',
    diagnostics: /extensible value set http:\/\/terminology.hl7.org\/ValueSet\/v3-ActEncounterCode/,
  });
  t.same(errors(cls), []);
  // v3-ActEncounterCode is expanded from an is-a filter on v3-ActCode; the abstract root is excluded.
  t.same(v(encounter({ class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER' } })), []);
  t.ok(
    at(
      v(encounter({ class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: '_ActEncounterCode' } })),
      'Encounter.class',
    ),
  );
  const marital = v(patient({ maritalStatus: { coding: [{ system: 'http://example.org/local', code: 'x' }] } }));
  t.equal(warnings(marital).length, 1, summary(marital));
  t.same(v(patient({ maritalStatus: { text: 'text only is fine for extensible' } })), []);
});

t.test('reference targets', async (t) => {
  t.same(
    v(encounter({ subject: { reference: 'urn:uuid:8ad64ecf-c817-3753-bee7-006a8e662e06' } })),
    [],
    'urn:uuid references (transactions) are not typed',
  );
  t.same(v(encounter({ subject: { reference: 'https://other.example/fhir/Patient/1' } })), [], 'absolute references are not typed');
  const wrong = v(encounter({ subject: { reference: 'Practitioner/1' } }));
  t.match(at(wrong, 'Encounter.subject', 'structure'), { severity: 'warning', diagnostics: /Invalid reference: got "Practitioner"/ });
  t.same(errors(wrong), [], 'a wrong target type is a warning (as in @medplum/core)');
});
