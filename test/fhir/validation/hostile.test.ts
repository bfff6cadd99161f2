/**
 * Hostile input: prototype keys, MongoDB operators, deep nesting, huge arrays, non-resources. The validator
 * must answer with issues, never throw, never recurse unboundedly, never touch Object.prototype.
 */
import t from 'tap';
import { TEXT, at, errors, makeValidator, raw, summary } from './fixtures/support.js';
import { exceedsDepth } from '../../../src/fhir/validation/index.js';

const { validator } = await makeValidator();
const v = (r: unknown): ReturnType<typeof validator.validate> => validator.validate(raw(r));

function nestedExtensions(levels: number): Record<string, unknown> {
  const root: Record<string, unknown> = { resourceType: 'Patient', text: TEXT };
  let current = root;
  for (let i = 0; i < levels; i++) {
    const next: Record<string, unknown> = { url: `http://example.org/e${i}` };
    current.extension = [next];
    current = next;
  }
  current.valueString = 'leaf';
  return root;
}

t.test('prototype-named keys and MongoDB operators are unknown elements', async (t) => {
  const parsed = JSON.parse(
    '{"resourceType":"Patient","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"toString":"x","hasOwnProperty":1,"$where":"sleep(1000)","name":[{"family":"x","__proto__":{"a":1},"$gt":""}],"text":{"status":"generated","div":"<div xmlns=\\"http://www.w3.org/1999/xhtml\\">x</div>"}}',
  );
  const issues = v(parsed);
  for (const expression of [
    'Patient.__proto__',
    'Patient.constructor',
    'Patient.toString',
    'Patient.hasOwnProperty',
    'Patient.$where',
    'Patient.name[0].__proto__',
    'Patient.name[0].$gt',
  ]) {
    t.match(
      at(issues, expression, 'structure'),
      { severity: 'error', diagnostics: /Unknown element/ },
      `${expression}\n${summary(issues)}`,
    );
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  const operatorValue = v({ resourceType: 'Patient', text: TEXT, gender: { $ne: 'x' } });
  t.ok(errors(operatorValue).length > 0, 'an operator object where a code belongs is rejected');
  const protoType = v({ resourceType: '__proto__' });
  t.match(protoType, [{ severity: 'error', code: 'not-supported' }]);
});

t.test('nesting is limited to 64 levels, iteratively', async (t) => {
  t.same(errors(v(nestedExtensions(30))), [], '30 nested extensions (61 levels) are fine');
  const deep = v(nestedExtensions(40));
  t.equal(deep.length, 1);
  t.match(deep[0], { severity: 'error', code: 'too-costly', diagnostics: /more than 64 levels/ });
  const veryDeep = v(nestedExtensions(100_000));
  t.match(veryDeep, [{ severity: 'error', code: 'too-costly' }], 'no stack overflow on 100,000 levels');
  let arrays: unknown = 'x';
  for (let i = 0; i < 10_000; i++) {
    arrays = [arrays];
  }
  t.match(v({ resourceType: 'Patient', name: [{ given: arrays }] }), [{ code: 'too-costly' }]);
  t.equal(exceedsDepth({ a: { b: { c: 1 } } }, 2), undefined);
  t.equal(exceedsDepth({ resourceType: 'X', a: { b: { c: {} } } }, 2), 'X.a.b.c');
});

t.test('huge arrays are fine', async (t) => {
  const names = Array.from({ length: 20_000 }, (_, i) => ({ family: `F${i}`, given: ['A'] }));
  const issues = v({ resourceType: 'Patient', text: TEXT, name: names });
  t.same(issues, []);
  const withOneBad = v({ resourceType: 'Patient', text: TEXT, name: [...names.slice(0, 9_999), { family: 'x', use: 'bad' }] });
  t.ok(at(withOneBad, 'Patient.name[9999].use', 'code-invalid'), summary(withOneBad));
});

t.test('non-resources are answered with issues, not exceptions', async (t) => {
  for (const input of [null, undefined, 42, 'Patient', [], [{ resourceType: 'Patient' }], {}, { resourceType: 42 }, { resourceType: '' }]) {
    const issues = validator.validate(input as never);
    t.equal(issues.length, 1, JSON.stringify(input));
    t.equal(issues[0]?.severity, 'error');
  }
  t.match(v({ resourceType: 'Foo' }), [{ code: 'not-supported', diagnostics: "Unknown resource type 'Foo'" }]);
  const long = v({ resourceType: 'Patient', text: TEXT, name: [{ family: 'x'.repeat(2 * 1024 * 1024) }] });
  t.ok(errors(long).length > 0, 'strings over 1 MB are rejected');
});
