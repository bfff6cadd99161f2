/**
 * Every official FHIR R4 example (hl7.fhir.r4.examples 4.0.1) of the three hosted types validates
 * without errors.
 *
 * Warnings are allowed and pinned here, because each is genuine:
 * - Patient-genetics-example1, Patient-mom: identifier.type uses v2-0203 "SS", which is not in the
 *   extensible identifier-type value set (R4 binds a short list) -> extensible binding warning.
 * - MedicationRequest-medrx0301: dispenseRequest.performer references a Practitioner where R4 allows only
 *   Organization -> medplum's reference-type warning (kept a warning, as medplum does: the reference
 *   target cannot be checked beyond its type name).
 * None of the examples fails an invariant; no example is skipped.
 */
import t from 'tap';
import { errors, loadExamples, makeValidator, summary, warnings } from './fixtures/support.js';

const EXPECTED_WARNINGS: Record<string, string[]> = {
  'Patient-genetics-example1.json': ['Patient.identifier[0].type'],
  'Patient-mom.json': ['Patient.identifier[0].type'],
  'MedicationRequest-medrx0301.json': ['MedicationRequest.dispenseRequest.performer'],
};

t.test('official R4 examples validate with no errors', async (t) => {
  const { validator, logs } = await makeValidator();
  let count = 0;
  for (const type of ['Patient', 'Encounter', 'MedicationRequest']) {
    const examples = loadExamples(type);
    t.ok(examples.length > 0, `${type} examples present`);
    for (const { file, resource } of examples) {
      count++;
      const issues = validator.validate(resource);
      t.same(errors(issues), [], `${file}: no errors\n${summary(issues)}`);
      t.same(
        warnings(issues).map((i) => i.expression?.[0]),
        EXPECTED_WARNINGS[file] ?? [],
        `${file}: expected warnings only\n${summary(issues)}`,
      );
    }
  }
  t.equal(count, 72, '22 Patient + 10 Encounter + 40 MedicationRequest examples');
  t.notOk(
    logs.some((l) => l.includes('could not be evaluated') || l.includes('not evaluated by @medplum/core')),
    `no invariant failed to evaluate on the examples\n${logs.join('\n')}`,
  );
});
