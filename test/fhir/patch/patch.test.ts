// Our own cases for applyPatch beyond the official ones: atomicity, prototype pollution, identity of the
// patched resource, the 400/422 rule, FHIRPath paths and value placement, and a 1,000-operation patch.
import t, { type Test } from 'tap';
import type { Parameters, ParametersParameter, Patient, Resource } from '@medplum/fhirtypes';
import { applyPatch } from '../../../src/fhir/patch/index.js';
import { FhirError } from '../../../src/fhir/outcome.js';

function patient(): Patient {
  return {
    resourceType: 'Patient',
    id: 'p1',
    meta: { versionId: '3' },
    identifier: [
      { system: 'http://example.org/mrn', value: 'A1' },
      { system: 'http://example.org/ssn', value: 'B2' },
    ],
    name: [{ family: 'Chalmers', given: ['Peter', 'James'], _given: [null, { id: 'g2' }] } as never],
    gender: 'male',
    birthDate: '1974-12-25',
    extension: [{ url: 'http://example.org/ext', valueString: 'x' }],
  };
}

function jsonPatch(resource: Resource, operations: unknown): Resource {
  return applyPatch(resource, { kind: 'json-patch', operations });
}

function op(type: string, path: string, more: Record<string, unknown> = {}): ParametersParameter {
  const part: ParametersParameter[] = [
    { name: 'type', valueCode: type },
    { name: 'path', valueString: path },
  ];
  for (const [name, value] of Object.entries(more)) {
    if (name === 'name') part.push({ name: 'name', valueString: value as string });
    else if (name === 'index' || name === 'source' || name === 'destination') part.push({ name, valueInteger: value as number });
    else part.push({ name: 'value', ...(value as object) } as ParametersParameter);
  }
  return { name: 'operation', part };
}

function fhirPatch(resource: Resource, ...parameter: ParametersParameter[]): Resource {
  return applyPatch(resource, { kind: 'fhirpath-patch', parameters: { resourceType: 'Parameters', parameter } });
}

/** Asserts that `run` throws a FhirError with `status` whose first issue's diagnostics match `pattern`. */
function fails(t: Test, run: () => unknown, status: number, pattern: RegExp): FhirError | undefined {
  try {
    run();
  } catch (err) {
    if (!(err instanceof FhirError)) {
      t.fail(`threw ${String(err)} instead of a FhirError`);
      return undefined;
    }
    t.equal(err.status, status, `status ${status}`);
    t.equal(err.outcome.resourceType, 'OperationOutcome');
    t.match(err.outcome.issue[0]?.diagnostics ?? '', pattern, `says ${pattern}`);
    return err;
  }
  t.fail('did not throw');
  return undefined;
}

t.test('JSON Patch', async (t) => {
  t.test('returns a new object and leaves the input alone', async (t) => {
    const input = patient();
    const before = structuredClone(input);
    const result = jsonPatch(input, [
      { op: 'replace', path: '/name/0/family', value: 'Chalmers1' },
      { op: 'add', path: '/name/0/given/-', value: 'Jim' },
      { op: 'copy', from: '/identifier/0', path: '/identifier/-' },
      { op: 'move', from: '/identifier/0', path: '/identifier/2' },
      { op: 'test', path: '/gender', value: 'male' },
      { op: 'remove', path: '/birthDate' },
    ]) as Patient;
    t.not(result, input);
    t.same(input, before, 'input unchanged');
    t.equal(result.name?.[0]?.family, 'Chalmers1');
    t.same(result.name?.[0]?.given, ['Peter', 'James', 'Jim']);
    t.same(
      result.identifier?.map((i) => i.value),
      ['B2', 'A1', 'A1'],
    );
    t.equal(result.birthDate, undefined);
  });

  t.test('is atomic: a failing operation leaves nothing applied and the input unchanged', async (t) => {
    const input = patient();
    const before = structuredClone(input);
    const failure = fails(
      t,
      () =>
        jsonPatch(input, [
          { op: 'replace', path: '/name/0/family', value: 'Changed' },
          { op: 'remove', path: '/identifier/0' },
          { op: 'add', path: '/name/0/given/0', value: 'First' },
          { op: 'test', path: '/gender', value: 'female' },
        ]),
      422,
      /JSON Patch operation 3 \(test \/gender\) failed: the value at \/gender is "male", expected "female"/,
    );
    t.equal(failure?.outcome.issue[0]?.code, 'processing');
    t.same(input, before, 'input unchanged after the failure');
  });

  t.test('refuses paths that reach __proto__, constructor or prototype (400) and pollutes nothing', async (t) => {
    const attempts: unknown[][] = [
      [{ op: 'add', path: '/__proto__/x', value: 'polluted' }],
      [{ op: 'add', path: '/constructor/prototype/x', value: 'polluted' }],
      [{ op: 'replace', path: '/constructor/prototype/x', value: 'polluted' }],
      [{ op: 'add', path: '/name/0/__proto__/x', value: 'polluted' }],
      [{ op: 'add', path: '/constructor/x', value: 'polluted' }],
      [{ op: 'copy', from: '/__proto__', path: '/x' }],
      [{ op: 'move', from: '/gender', path: '/__proto__/x' }],
      [{ op: 'add', path: '/x', value: JSON.parse('{"__proto__": {"x": "polluted"}}') }],
      [{ op: 'add', path: '/prototype', value: 'polluted' }],
    ];
    for (const operations of attempts) {
      const input = patient();
      fails(t, () => jsonPatch(input, operations), 400, /not allowed/);
      t.same(input, patient(), 'input unchanged');
    }
    t.equal(({} as Record<string, unknown>)['x'], undefined, '({}).x stays undefined');
    t.equal((Object as unknown as Record<string, unknown>)['x'], undefined, 'Object.x stays undefined');
    t.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'x'), false);
  });

  t.test('inherited members are not members: /toString does not exist', async (t) => {
    fails(t, () => jsonPatch(patient(), [{ op: 'remove', path: '/toString' }]), 422, /\/toString does not exist/);
    fails(t, () => jsonPatch(patient(), [{ op: 'replace', path: '/hasOwnProperty', value: 1 }]), 422, /does not exist/);
  });

  t.test('may not change resourceType or id (422)', async (t) => {
    const cases: [unknown[], RegExp][] = [
      [[{ op: 'replace', path: '/id', value: 'other' }], /may not change the resource's id/],
      [[{ op: 'remove', path: '/id' }], /may not change the resource's id/],
      [[{ op: 'replace', path: '/resourceType', value: 'Practitioner' }], /may not change the resource's resourceType/],
      [[{ op: 'move', from: '/id', path: '/meta/source' }], /id/],
      [[{ op: 'replace', path: '', value: { resourceType: 'Patient', id: 'p2' } }], /may not change the resource's id/],
      [[{ op: 'replace', path: '', value: 42 }], /must leave a resource/],
    ];
    for (const [operations, pattern] of cases) {
      const failure = fails(t, () => jsonPatch(patient(), operations), 422, pattern);
      t.equal(failure?.outcome.issue[0]?.code, 'business-rule');
    }
    // the same resourceType and id may be "replaced" by themselves
    const same = jsonPatch(patient(), [{ op: 'replace', path: '/id', value: 'p1' }]);
    t.equal(same.id, 'p1');
  });

  t.test('malformed documents are 400', async (t) => {
    const cases: [unknown, RegExp][] = [
      [{ op: 'add', path: '/x', value: 1 }, /must be a JSON array/],
      ['[]', /must be a JSON array/],
      [[42], /operation 0 is not a JSON object/],
      [[{ op: 'delete', path: '/gender' }], /"op" must be one of/],
      [[{ path: '/gender' }], /"op" must be one of/],
      [[{ op: 'remove' }], /"path" is required/],
      [[{ op: 'remove', path: 3 }], /"path" is required and must be a string/],
      [[{ op: 'remove', path: 'gender' }], /not a JSON Pointer: it must be empty or start with "\/"/],
      [[{ op: 'remove', path: '/a~2b' }], /"~" must be followed by 0 or 1/],
      [[{ op: 'add', path: '/gender' }], /"value" is required/],
      [[{ op: 'test', path: '/gender' }], /"value" is required/],
      [[{ op: 'move', path: '/gender' }], /"from" is required/],
      [[{ op: 'copy', path: '/x', from: 'gender' }], /"from" .* not a JSON Pointer/],
      [
        [
          { op: 'test', path: '/gender', value: 'male' },
          { op: 'bogus', path: '/x' },
        ],
        /JSON Patch operation 1/,
      ],
    ];
    for (const [operations, pattern] of cases) {
      const failure = fails(t, () => jsonPatch(patient(), operations), 400, pattern);
      t.equal(failure?.outcome.issue[0]?.code, 'invalid');
    }
  });

  t.test('patches that do not fit the resource are 422', async (t) => {
    const cases: [unknown[], RegExp][] = [
      [[{ op: 'remove', path: '/telecom' }], /operation 0 \(remove \/telecom\) cannot be applied: \/telecom does not exist/],
      [[{ op: 'replace', path: '/address/0/city', value: 'X' }], /\/address does not exist/],
      [[{ op: 'remove', path: '/identifier/2' }], /\/identifier\/2 does not exist/],
      [[{ op: 'remove', path: '/identifier/01' }], /\/identifier\/01 does not exist/],
      [[{ op: 'add', path: '/identifier/3', value: {} }], /"3" is not an index within the array \(length 2\)/],
      [[{ op: 'add', path: '/identifier/-/value', value: 'x' }], /\/identifier\/- does not exist/],
      [[{ op: 'add', path: '/gender/x', value: 'x' }], /\/gender is not an object or array/],
      [[{ op: 'move', from: '/name/0', path: '/name/0/given/0' }], /cannot be moved into one of its own children/],
      [[{ op: 'copy', from: '/nope', path: '/x' }], /\/nope does not exist/],
      [[{ op: 'remove', path: '' }], /the whole resource cannot be removed/],
      [[{ op: 'test', path: '/nope', value: 1 }], /\/nope does not exist/],
      [[{ op: 'test', path: '/identifier/0', value: { value: 'A1', system: 'http://example.org/mrn', id: 'x' } }], /failed/],
    ];
    for (const [operations, pattern] of cases) {
      fails(t, () => jsonPatch(patient(), operations), 422, pattern);
    }
  });

  t.test('move evaluates its target after removing the source (RFC 6902 §4.4)', async (t) => {
    const result = jsonPatch(patient(), [{ op: 'move', from: '/identifier/0', path: '/identifier/1' }]) as Patient;
    t.same(
      result.identifier?.map((i) => i.value),
      ['B2', 'A1'],
    );
    fails(t, () => jsonPatch(patient(), [{ op: 'move', from: '/identifier/0', path: '/identifier/2' }]), 422, /not an index/);
  });

  t.test('a 1,000-operation patch completes', async (t) => {
    const operations: unknown[] = [];
    for (let i = 0; i < 1000; i++) {
      operations.push(
        i % 2 === 0
          ? { op: 'add', path: '/identifier/-', value: { system: 'http://example.org/n', value: String(i) } }
          : { op: 'test', path: `/identifier/${2 + (i - 1) / 2}/value`, value: String(i - 1) },
      );
    }
    const started = Date.now();
    const result = jsonPatch(patient(), operations) as Patient;
    const elapsed = Date.now() - started;
    t.equal(result.identifier?.length, 2 + 500);
    t.equal(result.identifier?.[501]?.value, '998');
    t.ok(elapsed < 5000, `took ${elapsed} ms`);
  });
});

t.test('FHIRPath Patch', async (t) => {
  t.test('places primitives by their [x] type, including choice elements', async (t) => {
    const result = fhirPatch(
      patient(),
      op('add', 'Patient', { name: 'deceased', value: { valueBoolean: false } }),
      op('add', 'Patient', { name: 'multipleBirth', value: { valueInteger: 2 } }),
      op('add', 'Patient', { name: 'active', value: { valueBoolean: true } }),
      op('replace', 'Patient.birthDate', { value: { valueDate: '1974-12-26' } }),
      op('replace', 'Patient.gender', { value: { valueCode: 'female' } }),
    ) as Patient;
    t.equal(result.deceasedBoolean, false);
    t.equal(result.multipleBirthInteger, 2);
    t.equal(result.active, true);
    t.equal(result.birthDate, '1974-12-26');
    t.equal(result.gender, 'female');

    // replacing a choice element may change its type, and so its JSON name
    const changed = fhirPatch(result, op('replace', 'Patient.deceased', { value: { valueDateTime: '2020-01-01' } })) as Patient;
    t.equal(changed.deceasedDateTime, '2020-01-01');
    t.equal(changed.deceasedBoolean, undefined);
    // a name with its suffix fixes the type
    const fixed = fhirPatch(patient(), op('add', 'Patient', { name: 'deceasedDateTime', value: { valueDateTime: '2021' } })) as Patient;
    t.equal(fixed.deceasedDateTime, '2021');
    fails(
      t,
      () => fhirPatch(patient(), op('add', 'Patient', { name: 'deceasedBoolean', value: { valueDateTime: '2021' } })),
      422,
      /does not fit/,
    );
  });

  t.test("carries a primitive value's extensions (_value[x]) to the element's _name", async (t) => {
    const ext = { extension: [{ url: 'http://example.org/e', valueString: 'q' }] };
    const result = fhirPatch(
      patient(),
      op('replace', 'Patient.birthDate', { value: { valueDate: '1974-12-25', _valueDate: ext } }),
      op('add', 'Patient.name[0]', { name: 'given', value: { valueString: 'Jim', _valueString: ext } }),
    ) as Patient & Record<string, unknown>;
    t.same(result['_birthDate'], ext);
    t.same(result.name?.[0]?.given, ['Peter', 'James', 'Jim']);
    t.same((result.name?.[0] as Record<string, unknown>)['_given'], [null, { id: 'g2' }, ext]);
  });

  t.test('keeps a primitive array and its _name companion aligned', async (t) => {
    const deleted = fhirPatch(patient(), op('delete', 'Patient.name[0].given[0]')) as Patient;
    t.same(deleted.name?.[0]?.given, ['James']);
    t.same((deleted.name?.[0] as Record<string, unknown>)['_given'], [{ id: 'g2' }]);
    const moved = fhirPatch(patient(), op('move', 'Patient.name[0].given', { source: 1, destination: 0 })) as Patient;
    t.same(moved.name?.[0]?.given, ['James', 'Peter']);
    t.same((moved.name?.[0] as Record<string, unknown>)['_given'], [{ id: 'g2' }, null]);
    const inserted = fhirPatch(patient(), op('insert', 'Patient.name[0].given', { index: 0, value: { valueString: 'P' } })) as Patient;
    t.same((inserted.name?.[0] as Record<string, unknown>)['_given'], [null, null, { id: 'g2' }]);
    const gone = fhirPatch(patient(), op('delete', 'Patient.name[0].given[1]')) as Patient;
    t.equal((gone.name?.[0] as Record<string, unknown>)['_given'], undefined, 'a companion left with nothing is dropped');
  });

  t.test('paths with where(), extension(), first(), last() and %resource', async (t) => {
    const result = fhirPatch(
      patient(),
      op('replace', "Patient.identifier.where(system = 'http://example.org/ssn').value", { value: { valueString: 'B3' } }),
      op('replace', "Patient.extension('http://example.org/ext').value", { value: { valueString: 'y' } }),
      op('replace', 'Patient.name.first().given.last()', { value: { valueString: 'Jim' } }),
      op('delete', "%resource.identifier.where(value = 'A1')"),
    ) as Patient;
    t.same(result.identifier, [{ system: 'http://example.org/ssn', value: 'B3' }]);
    t.same(result.extension, [{ url: 'http://example.org/ext', valueString: 'y' }]);
    t.same(result.name?.[0]?.given, ['Peter', 'Jim']);
  });

  t.test('complex values from nested parts, including extensions and backbone elements', async (t) => {
    const result = fhirPatch(
      patient(),
      op('add', 'Patient', {
        name: 'extension',
        value: {
          part: [
            { name: 'url', valueUri: 'http://example.org/new' },
            { name: 'value', valueCode: 'abc' },
          ],
        },
      }),
      op('add', 'Patient', {
        name: 'contact',
        value: {
          part: [
            { name: 'name', valueHumanName: { family: 'Doe' } },
            { name: 'telecom', valueContactPoint: { system: 'phone', value: '1' } },
            { name: 'telecom', valueContactPoint: { system: 'email', value: 'a@b' } },
            { name: 'gender', valueCode: 'female' },
          ],
        },
      }),
      op('add', 'Patient', { name: 'contained', value: { resource: { resourceType: 'Organization', id: 'o1', name: 'Acme' } } }),
    ) as Patient;
    t.same(result.extension?.[1], { url: 'http://example.org/new', valueCode: 'abc' });
    t.same(result.contact, [
      {
        name: { family: 'Doe' },
        telecom: [
          { system: 'phone', value: '1' },
          { system: 'email', value: 'a@b' },
        ],
        gender: 'female',
      },
    ]);
    t.same(result.contained, [{ resourceType: 'Organization', id: 'o1', name: 'Acme' }]);
  });

  t.test('insert into an absent list, delete of nothing, empty elements pruned', async (t) => {
    const result = fhirPatch(
      patient(),
      op('insert', 'Patient.telecom', { index: 0, value: { valueContactPoint: { system: 'phone', value: '5' } } }),
      op('delete', 'Patient.address'),
      op('delete', "Patient.identifier.where(system = 'none')"),
      op('delete', 'Patient.meta.versionId'),
    ) as Patient;
    t.same(result.telecom, [{ system: 'phone', value: '5' }]);
    t.equal(result.meta, undefined, 'meta left empty is removed');
    t.equal(result.identifier?.length, 2);
  });

  t.test('is atomic: a failing operation leaves nothing applied and the input unchanged', async (t) => {
    const input = patient();
    const before = structuredClone(input);
    const failure = fails(
      t,
      () =>
        fhirPatch(
          input,
          op('replace', 'Patient.birthDate', { value: { valueDate: '2000-01-01' } }),
          op('delete', 'Patient.identifier[0]'),
          op('replace', 'Patient.address.city', { value: { valueString: 'X' } }),
        ),
      422,
      /FHIRPath Patch operation 2 \(replace Patient.address.city\): No content found at Patient.address.city when replacing/,
    );
    t.same(failure?.outcome.issue[0]?.expression, ['Parameters.parameter[2]']);
    t.same(input, before, 'input unchanged');
  });

  t.test('refuses paths and names that reach __proto__, constructor or prototype (400) and pollutes nothing', async (t) => {
    const attempts: [ParametersParameter, RegExp][] = [
      [op('add', 'Patient.__proto__', { name: 'x', value: { valueString: 'polluted' } }), /refers to "__proto__"/],
      [
        op('add', 'Patient.constructor.prototype', { name: 'x', value: { valueString: 'polluted' } }),
        /refers to "(constructor|prototype)"/,
      ],
      [op('replace', 'Patient.name[0].constructor', { value: { valueString: 'polluted' } }), /refers to "constructor"/],
      [op('add', 'Patient', { name: 'constructor', value: { valueString: 'polluted' } }), /element name/],
      [op('add', 'Patient', { name: 'contact', value: { part: [{ name: 'prototype', valueString: 'polluted' }] } }), /element name/],
      [
        op('add', 'Patient', { name: 'maritalStatus', value: { valueCodeableConcept: JSON.parse('{"__proto__": {"x": "polluted"}}') } }),
        /member named "__proto__"/,
      ],
    ];
    for (const [operation, pattern] of attempts) {
      const input = patient();
      fails(t, () => fhirPatch(input, operation), 400, pattern);
      t.same(input, patient(), 'input unchanged');
    }
    t.equal(({} as Record<string, unknown>)['x'], undefined, '({}).x stays undefined');
  });

  t.test('may not change resourceType or id, nor delete or replace the resource (422)', async (t) => {
    fails(
      t,
      () => fhirPatch(patient(), op('replace', 'Patient.id', { value: { valueId: 'p2' } })),
      422,
      /may not change the resource's id/,
    );
    fails(t, () => fhirPatch(patient(), op('delete', 'Patient.id')), 422, /may not change the resource's id/);
    fails(t, () => fhirPatch(patient(), op('delete', 'Patient')), 422, /the resource itself cannot be deleted/);
    fails(
      t,
      () => fhirPatch(patient(), op('replace', 'Patient', { value: { resource: { resourceType: 'Patient', id: 'p1' } } })),
      422,
      /the resource itself cannot be replaced/,
    );
  });

  t.test('malformed FHIRPath Patch documents are 400', async (t) => {
    const run = (parameters: unknown) => () => applyPatch(patient(), { kind: 'fhirpath-patch', parameters: parameters as Parameters });
    const wrap = (...parameter: unknown[]) => ({ resourceType: 'Parameters', parameter });
    const cases: [unknown, RegExp][] = [
      [{ resourceType: 'Patient' }, /must be a Parameters resource/],
      [[], /must be a Parameters resource/],
      [wrap({ name: 'op', part: [] }), /must be named "operation"/],
      [wrap({ name: 'operation' }), /has no parts/],
      [wrap({ name: 'operation', valueString: 'x', part: [] }), /not in value\[x\] or resource/],
      [wrap(op('remove', 'Patient.gender')), /"type" must have valueCode add, insert, delete, replace or move/],
      [wrap({ name: 'operation', part: [{ name: 'type', valueCode: 'delete' }] }), /the part "path" is required/],
      [wrap(op('delete', 'Patient.name[')), /not valid FHIRPath/],
      [wrap(op('add', 'Patient', { value: { valueCode: 'male' } })), /the part "name" is required/],
      [wrap(op('add', 'Patient', { name: 'gender' })), /the part "value" is required/],
      [wrap(op('delete', 'Patient.gender', { index: 0 })), /the part "index" is not used by delete/],
      [wrap(op('insert', 'Patient.identifier', { index: -1, value: { valueIdentifier: {} } })), /valueInteger ≥ 0/],
      [wrap(op('add', 'Patient', { name: 'a.b', value: { valueCode: 'male' } })), /element name/],
      [
        wrap({
          name: 'operation',
          part: [
            { name: 'type', valueCode: 'delete' },
            { name: 'path', valueString: 'Patient' },
            { name: 'path', valueString: 'Patient' },
          ],
        }),
        /more than once/,
      ],
      [wrap(op('replace', 'Patient.managingOrganization.resolve().name', { value: { valueString: 'x' } })), /resolve\(\) is not allowed/],
      [wrap(op('replace', 'Patient.active', { value: { valueBoolean: 'true' } })), /valueBoolean must be a JSON boolean/],
      [wrap(op('replace', 'Patient.multipleBirth', { value: { valueInteger: 1.5 } })), /valueInteger must be a JSON integer/],
      [wrap(op('replace', 'Patient.gender', { value: { valueNotAType: 'x' } })), /does not name a FHIR data type/],
      [wrap(op('replace', 'Patient.gender', { value: { valueCode: 'x', valueString: 'y' } })), /more than one value\[x\]/],
      [wrap(op('replace', 'Patient.gender', { value: {} })), /exactly one of value\[x\], part or resource/],
    ];
    for (const [parameters, pattern] of cases) {
      const failure = fails(t, run(parameters), 400, pattern);
      t.equal(failure?.outcome.issue[0]?.code, 'invalid');
    }
  });

  t.test('well-formed patches that do not fit the resource are 422', async (t) => {
    const cases: [ParametersParameter, RegExp][] = [
      [op('replace', 'Patient.address', { value: { valueAddress: { city: 'X' } } }), /No content found at Patient.address when replacing/],
      [op('replace', 'Patient.name.given', { value: { valueString: 'X' } }), /selects 2 elements; it must select exactly one/],
      [op('delete', 'Patient.identifier'), /selects 2 elements; only a single element can be deleted/],
      [op('add', 'Patient.address', { name: 'city', value: { valueString: 'X' } }), /No content found at Patient.address when adding/],
      [op('add', 'Patient', { name: 'gender', value: { valueCode: 'female' } }), /already has a value \(gender\); use replace/],
      [op('add', 'Patient', { name: 'nickname', value: { valueString: 'J' } }), /Patient has no element "nickname"/],
      [op('add', 'Patient.gender', { name: 'x', value: { valueString: 'J' } }), /is a primitive value/],
      [
        op('replace', 'Patient.birthDate', { value: { valueHumanName: { family: 'X' } } }),
        /a value of type HumanName does not fit Patient.birthDate \(date\)/,
      ],
      [op('replace', 'Patient.birthDate', { value: { valueBoolean: true } }), /a value of type boolean does not fit/],
      [
        op('insert', 'Patient.identifier', { index: 3, value: { valueIdentifier: { value: 'x' } } }),
        /index 3 is out of range: the list has 2 element\(s\), so the index must be 0..2/,
      ],
      [op('insert', 'Patient.gender', { index: 0, value: { valueCode: 'male' } }), /Patient.gender is not a list/],
      [op('move', 'Patient.identifier', { source: 2, destination: 0 }), /source index 2 is out of range/],
      [op('move', 'Patient.identifier', { source: 0, destination: 2 }), /destination index 2 is out of range/],
      [op('move', 'Patient.identifier.where(true)', { source: 0, destination: 1 }), /must name a list/],
      [
        op('add', 'Patient', { name: 'contact', value: { part: [{ name: 'nickname', valueString: 'x' }] } }),
        /PatientContact has no element "nickname"/,
      ],
      [op('add', 'Patient', { name: 'deceased', value: { part: [{ name: 'x', valueString: 'x' }] } }), /can take several types/],
      [op('replace', 'Patient.name.given.single()', { value: { valueString: 'X' } }), /could not be evaluated/],
      [op('replace', "Patient.name.given.select($this + 'x')", { value: { valueString: 'X' } }), /cannot be used for a patch/],
    ];
    for (const [operation, pattern] of cases) {
      const input = patient();
      fails(t, () => fhirPatch(input, operation), 422, pattern);
      t.same(input, patient(), 'input unchanged');
    }
  });

  t.test('a 1,000-operation patch completes', async (t) => {
    const operations: ParametersParameter[] = [];
    for (let i = 0; i < 1000; i++) {
      operations.push(
        i % 2 === 0
          ? op('add', 'Patient', { name: 'identifier', value: { valueIdentifier: { system: 'http://example.org/n', value: String(i) } } })
          : op('replace', `Patient.identifier[${2 + (i - 1) / 2}].value`, { value: { valueString: `v${i}` } }),
      );
    }
    const started = Date.now();
    const result = fhirPatch(patient(), ...operations) as Patient;
    const elapsed = Date.now() - started;
    t.equal(result.identifier?.length, 502);
    t.equal(result.identifier?.[501]?.value, 'v999');
    t.ok(elapsed < 20000, `took ${elapsed} ms`);
  });
});

t.test('an unknown patch kind is a 400', async (t) => {
  fails(t, () => applyPatch(patient(), { kind: 'xml-patch' } as never), 400, /Unknown patch kind/);
});
