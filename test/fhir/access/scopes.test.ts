/**
 * SMART scope parsing: SMART 2 permissions (subsets of c r u d s in order), SMART 1 words, finer-grained search
 * parameters, the non-resource scopes, malformed resource scopes with their reasons, and hostile input that must
 * never throw. Examples marked "spec" are the ones on https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html.
 */
import t from 'tap';
import { MAX_SCOPE_LENGTH, parseScopes, type ParsedScopes, type ResourceScope } from '../../../src/fhir/access/scopes.js';

/** A resource scope in comparable form: permissions as a string in c r u d s order. */
function plain(scope: ResourceScope) {
  const permissions = ['c', 'r', 'u', 'd', 's'].filter((p) => scope.permissions.has(p as never)).join('');
  return { text: scope.text, context: scope.context, resourceType: scope.resourceType, permissions, query: scope.query };
}

function one(text: string) {
  const parsed = parseScopes(text);
  if (parsed.resources.length !== 1) throw new Error(`expected one resource scope from ${text}: ${JSON.stringify(parsed)}`);
  return plain(parsed.resources[0]!);
}

function reasonOf(text: string): string {
  const parsed = parseScopes(text);
  if (parsed.invalid.length !== 1 || parsed.resources.length !== 0 || parsed.other.length !== 0) {
    throw new Error(`expected ${text} to be invalid: ${JSON.stringify(parsed)}`);
  }
  return parsed.invalid[0]!.reason;
}

t.test('SMART 2 resource scopes from the spec', async (t) => {
  const cases: Array<[string, 'patient' | 'user' | 'system', string, string]> = [
    ['patient/*.rs', 'patient', '*', 'rs'],
    ['user/*.cruds', 'user', '*', 'cruds'],
    ['patient/Observation.rs', 'patient', 'Observation', 'rs'],
    ['patient/Patient.r', 'patient', 'Patient', 'r'],
    ['patient/Observation.c', 'patient', 'Observation', 'c'],
    ['patient/Observation.cu', 'patient', 'Observation', 'cu'],
    ['patient/*.cruds', 'patient', '*', 'cruds'],
    ['user/Observation.rs', 'user', 'Observation', 'rs'],
    ['user/Appointment.cruds', 'user', 'Appointment', 'cruds'],
    ['user/Patient.rs', 'user', 'Patient', 'rs'],
    ['system/Observation.rs', 'system', 'Observation', 'rs'],
    ['system/*.rs', 'system', '*', 'rs'],
    ['system/Encounter.cud', 'system', 'Encounter', 'cud'],
    ['patient/AllergyIntolerance.cruds', 'patient', 'AllergyIntolerance', 'cruds'],
    ['patient/AllergyIntolerance.cud', 'patient', 'AllergyIntolerance', 'cud'],
  ];
  for (const [text, context, resourceType, permissions] of cases) {
    t.same(one(text), { text, context, resourceType, permissions, query: [] }, text);
  }
});

t.test('every non-empty in-order subset of cruds is accepted', async (t) => {
  const letters = ['c', 'r', 'u', 'd', 's'];
  for (let mask = 1; mask < 32; mask++) {
    const permissions = letters.filter((_, i) => mask & (1 << i)).join('');
    t.equal(one(`user/Encounter.${permissions}`).permissions, permissions);
  }
});

t.test('permissions out of order, repeated or unknown are malformed', async (t) => {
  for (const bad of ['sr', 'rr', 'dus', 'rsc', 'x', 'R', 'RS', 'crudss', 'read,write', 'Read', 'reads', '**']) {
    const text = `patient/Observation.${bad}`;
    const parsed = parseScopes([text]);
    t.equal(parsed.resources.length, 0, `${text} grants nothing`);
    t.ok(parsed.invalid.length >= 1, `${text} is invalid`);
  }
  t.match(reasonOf('patient/Observation.sr'), /c r u d s in that order/);
  // a space separates scopes, even inside an array item: "r s" is the scope .r and the (other) scope "s"
  const split = parseScopes(['patient/Observation.r s']);
  t.same(split.resources.map(plain), [
    { text: 'patient/Observation.r', context: 'patient', resourceType: 'Observation', permissions: 'r', query: [] },
  ]);
  t.same(split.other, ['s']);
  t.match(reasonOf('patient/Observation.'), /no permissions/);
  t.match(reasonOf('patient/Observation'), /no permissions/);
});

t.test('SMART 1 permission words', async (t) => {
  t.same(one('patient/*.read'), { text: 'patient/*.read', context: 'patient', resourceType: '*', permissions: 'rs', query: [] });
  t.equal(one('user/Appointment.write').permissions, 'cud');
  t.equal(one('user/*.*').permissions, 'cruds');
  t.equal(one('system/Patient.*').permissions, 'cruds');
  t.equal(one('patient/Observation.read').resourceType, 'Observation');
  t.match(reasonOf('patient/Observation.read?category=laboratory'), /only allowed with SMART 2/);
  t.match(reasonOf('user/*.*?a=b'), /only allowed with SMART 2/);
});

t.test('finer-grained scopes: search parameters decoded into pairs', async (t) => {
  // spec
  const lab = 'patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory';
  t.same(one(lab), {
    text: lab,
    context: 'patient',
    resourceType: 'Observation',
    permissions: 'rs',
    query: [['category', 'http://terminology.hl7.org/CodeSystem/observation-category|laboratory']],
  });
  // spec (experimental features): a modifier, a chain
  t.same(one('patient/Observation.rs?code:in=http://valueset.example.org/ValueSet/diabetes-codes').query, [
    ['code:in', 'http://valueset.example.org/ValueSet/diabetes-codes'],
  ]);
  t.same(one('user/Observation.rs?patient.birthdate=1990').query, [['patient.birthdate', '1990']]);
  // several parameters, percent-encoding and + as a space
  t.same(one('user/Observation.rs?category=laboratory&status=final%2Camended&code=a+b%7Cc').query, [
    ['category', 'laboratory'],
    ['status', 'final,amended'],
    ['code', 'a b|c'],
  ]);
  t.same(
    one('patient/Condition.rs?category=http%3A%2F%2Fhl7.org%2Ffhir%2Fus%2Fcore%2FCodeSystem%2Fcondition-category%7Chealth-concern').query,
    [['category', 'http://hl7.org/fhir/us/core/CodeSystem/condition-category|health-concern']],
  );
  // a repeated parameter stays two pairs, in order
  t.same(one('user/Observation.rs?code=1&code=2').query, [
    ['code', '1'],
    ['code', '2'],
  ]);
  // a wildcard type with a query is still a SMART 2 scope
  t.same(one('user/*.rs?_security=R').query, [['_security', 'R']]);
  // without a query the list is empty
  t.same(one('user/Observation.rs').query, []);
});

t.test('malformed search parameters', async (t) => {
  t.match(reasonOf('patient/Observation.rs?'), /empty search parameters/);
  t.match(reasonOf('patient/Observation.rs?=laboratory'), /no name/);
  t.match(reasonOf('patient/Observation.rs?category=laboratory&=x'), /no name/);
  t.match(reasonOf('patient/Observation.rs?category=laboratory&'), /no name/);
  t.match(reasonOf('patient/Observation.rs?a=1&&b=2'), /no name/);
  t.match(reasonOf('patient/Observation.rs?category'), /no value/);
  t.match(reasonOf('patient/Observation.rs?category='), /no value/);
  t.match(reasonOf('patient/Observation.rs?category=%E0%A4%A'), /percent-encoding/);
  t.match(reasonOf('patient/Observation.rs?category=%zz'), /percent-encoding/);
  t.match(reasonOf('patient/Observation.rs?category=a%00b'), /control characters/);
});

t.test('resource type names', async (t) => {
  t.equal(one('patient/MedicationRequest.rs').resourceType, 'MedicationRequest');
  for (const bad of ['observation', 'Observation1', 'Obs-ervation', 'O', `A${'b'.repeat(64)}`, 'Observation_x', 'Ä', '**']) {
    t.match(reasonOf(`patient/${bad}.rs`), /not a FHIR type name/, bad);
  }
  t.match(reasonOf('patient/.rs'), /no resource type/);
  t.equal(one(`patient/A${'b'.repeat(63)}.rs`).resourceType.length, 64);
});

t.test('non-resource scopes go to other', async (t) => {
  const scopes = [
    'openid',
    'fhirUser',
    'profile',
    'launch',
    'launch/patient',
    'launch/encounter',
    'launch/diagnosticreport',
    'offline_access',
    'online_access',
    'email',
    'api://foo/.default',
    'https://graph.microsoft.com/User.Read',
    'Patient/Observation.rs',
    'patient.Immunization.read',
    'patients/Observation.rs',
  ];
  const parsed = parseScopes(scopes.join(' '));
  t.same(parsed.other, scopes);
  t.same(parsed.resources, []);
  t.same(parsed.invalid, []);
});

t.test('a whole token scope string: order kept, duplicates and empty items dropped', async (t) => {
  const parsed: ParsedScopes = parseScopes('  launch/patient openid fhirUser patient/*.rs  patient/Observation.cu patient/*.rs user/x.rs ');
  t.same(parsed.other, ['launch/patient', 'openid', 'fhirUser']);
  t.same(
    parsed.resources.map((r) => r.text),
    ['patient/*.rs', 'patient/Observation.cu'],
  );
  t.same(
    parsed.invalid.map((i) => i.text),
    ['user/x.rs'],
  );
  t.same(parseScopes(''), { resources: [], other: [], invalid: [] });
  t.same(parseScopes('   '), { resources: [], other: [], invalid: [] });
  t.same(parseScopes([]), { resources: [], other: [], invalid: [] });
});

t.test('arrays (an scp claim): each item, split on spaces, empty items ignored', async (t) => {
  const parsed = parseScopes(['patient/Patient.r', '', 'openid', 'user/*.cruds system/*.rs', '  ']);
  t.same(
    parsed.resources.map((r) => r.text),
    ['patient/Patient.r', 'user/*.cruds', 'system/*.rs'],
  );
  t.same(parsed.other, ['openid']);
  t.same(parsed.invalid, []);
});

t.test('hostile input never throws', async (t) => {
  const weird: unknown[] = [
    42,
    true,
    { scope: 'patient/*.rs' },
    Object.create(null),
    ['patient/*.rs', 7, null, undefined, { a: 1 }, ['user/*.rs'], 10n],
    null,
    undefined,
    'patient/*.rs\u0000',
    'user/Observation.rs\tuser/Patient.rs',
    'patient/Obs\u0085ervation.rs',
    'email\u0007',
    `patient/Observation.rs?code=${'x'.repeat(MAX_SCOPE_LENGTH)}`,
    'x'.repeat(100_000),
    'patient/',
    'patient//.rs',
    'user/*',
    '?',
    '.',
    '/',
    'patient/*.rs?%',
    'patient/constructor.rs',
    'patient/Observation.constructor',
    'patient/Observation.__proto__',
    'patient/Observation.rs?__proto__=x',
  ];
  for (const input of weird) {
    const parsed = parseScopes(input as string);
    t.type(parsed, 'object');
  }
  t.same(parseScopes(42 as unknown as string).invalid, [{ text: '42', reason: 'not a string' }]);
  t.same(parseScopes({ a: 1 } as unknown as string).invalid, [{ text: '[object]', reason: 'not a string' }]);
  const mixed = parseScopes(['patient/*.rs', 7, null, { a: 1 }, ['user/*.rs']]);
  t.same(
    mixed.resources.map((r) => r.text),
    ['patient/*.rs'],
  );
  t.same(mixed.invalid, [
    { text: '7', reason: 'not a string' },
    { text: '[object]', reason: 'not a string' },
    { text: '[array]', reason: 'not a string' },
  ]);
  t.same(parseScopes(null), { resources: [], other: [], invalid: [] });
  t.same(parseScopes(undefined), { resources: [], other: [], invalid: [] });
});

t.test('control characters and over-long scopes are invalid', async (t) => {
  t.match(reasonOf('patient/*.rs\u0000'), /control characters/);
  t.match(reasonOf('patient/Obs\u0085ervation.rs'), /control characters/);
  // a tab is not a separator: the whole item is refused rather than read as two scopes
  t.match(reasonOf('user/Observation.rs\tuser/Patient.rs'), /control characters/);
  t.match(reasonOf('email\u0007'), /control characters/);

  const atLimit = `patient/Observation.rs?code=${'x'.repeat(MAX_SCOPE_LENGTH - 'patient/Observation.rs?code='.length)}`;
  t.equal(atLimit.length, MAX_SCOPE_LENGTH);
  t.equal(one(atLimit).query[0]![1].length, MAX_SCOPE_LENGTH - 'patient/Observation.rs?code='.length);
  const tooLong = `${atLimit}x`;
  const parsed = parseScopes(tooLong);
  t.equal(parsed.invalid.length, 1);
  t.match(parsed.invalid[0]!.reason, /longer than 1024/);
  t.ok(parsed.invalid[0]!.text.length < 100, 'the echoed text is cut short');
  t.equal(parseScopes('x'.repeat(100_000)).invalid.length, 1);
});

t.test('prototype-ish names are only names', async (t) => {
  t.match(reasonOf('patient/Observation.constructor'), /permissions must be/);
  t.match(reasonOf('patient/Observation.__proto__'), /permissions must be/);
  t.match(reasonOf('patient/constructor.rs'), /not a FHIR type name/);
  t.same(one('patient/Observation.rs?__proto__=x').query, [['__proto__', 'x']]);
});

t.test('the permission set is a Set of letters', async (t) => {
  const [scope] = parseScopes('user/Observation.read').resources;
  t.ok(scope!.permissions.has('r'));
  t.ok(scope!.permissions.has('s'));
  t.notOk(scope!.permissions.has('c'));
  t.equal(scope!.permissions.size, 2);
});
