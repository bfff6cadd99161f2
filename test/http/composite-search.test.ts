/**
 * Composite search parameters (search.html#composite) through the HTTP API: every component of one value must hold
 * for ONE element (the resource for code-value-quantity, one component for component-code-value-quantity, either
 * for combo-…), never the code of one element with the value of another. Covered: quantity, concept, date and string
 * values, a reference component (DocumentReference relationship), a component read through %resource
 * (MolecularSequence), comma alternatives, escapes, :missing, the 400s for a malformed value under strict handling,
 * the CapabilityStatement, and explain showing the wildcard index bounded by the code.
 */
import type { CapabilityStatement, DocumentReference, Group, MolecularSequence, Observation, OperationOutcome } from '@medplum/fhirtypes';
import type { Document } from 'mongodb';
import t from 'tap';
import { explainFhirSearch } from '../../src/fhir/search/search.js';
import { BASE, create, ids, search } from '../fhir/search/helpers.js';
import { startTestApp, stopMongoAtEnd, testContext } from '../helpers/app.js';
import { planStages } from '../helpers/explain.js';

stopMongoAtEnd(t);

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const SYSTOLIC = '8480-6';
const DIASTOLIC = '8462-4';
const BLOOD_PRESSURE = '85354-9';

function mmHg(value: number) {
  return { value, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' };
}

function bloodPressure(systolic: number, diastolic: number): Observation {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code: BLOOD_PRESSURE }] },
    component: [
      { code: { coding: [{ system: LOINC, code: SYSTOLIC }] }, valueQuantity: mmHg(systolic) },
      { code: { coding: [{ system: LOINC, code: DIASTOLIC }] }, valueQuantity: mmHg(diastolic) },
    ],
  };
}

t.test('composite search parameters', async (t) => {
  const { app, store } = await startTestApp(t);
  const high = await create(app, bloodPressure(150, 95));
  const normal = await create(app, bloodPressure(118, 76));
  // A high diastolic with a normal systolic: a search pairing the systolic code with a value above 90 must not
  // find it through the diastolic component's value.
  const mixed = await create(app, bloodPressure(120, 100));
  const weight = await create<Observation>(app, {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '29463-7' }], text: 'Body weight' },
    valueQuantity: { value: 72.5, unit: 'kg', system: UCUM, code: 'kg' },
  });
  const smoker = await create<Observation>(app, {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '72166-2' }] },
    valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '449868002' }], text: 'Smokes tobacco daily' },
    // A component with a quantity, to show that combo- reads components as well as the resource.
    component: [{ code: { coding: [{ system: LOINC, code: '63640-7' }] }, valueQuantity: { value: 20, unit: 'pack-years' } }],
  });
  const onset = await create<Observation>(app, {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '11368-8' }] },
    valueDateTime: '2019-05-04',
  });
  const note = await create<Observation>(app, {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: LOINC, code: '8691-8' }] },
    valueString: 'Travelled to Lagos|Accra',
  });

  await t.test('quantities: the code and the value of one element', async (t) => {
    t.same(await ids(app, `/Observation?component-code-value-quantity=${LOINC}|${SYSTOLIC}$gt140`), [high.id]);
    t.same(await ids(app, `/Observation?component-code-value-quantity=${SYSTOLIC}$gt90`), [high.id, mixed.id, normal.id].sort());
    t.same(
      await ids(app, `/Observation?component-code-value-quantity=${LOINC}|${DIASTOLIC}$ge90`),
      [high.id, mixed.id].sort(),
      'either diastolic at 90 or more',
    );
    t.same(
      await ids(app, `/Observation?component-code-value-quantity=${LOINC}|${SYSTOLIC}$gt125`),
      [high.id],
      'not the mixed one: its 100 is diastolic',
    );
    t.same(await ids(app, `/Observation?component-code-value-quantity=${LOINC}|${SYSTOLIC}$150|${UCUM}|mm[Hg]`), [high.id], 'with a unit');
    t.same(await ids(app, `/Observation?component-code-value-quantity=${LOINC}|${SYSTOLIC}$150|${UCUM}|kg`), [], 'another unit');
    t.same(
      await ids(app, `/Observation?component-code-value-quantity=${LOINC}|${SYSTOLIC}$gt140,${LOINC}|${DIASTOLIC}$ge100`),
      [high.id, mixed.id].sort(),
      'comma alternatives are ORed, each a whole tuple',
    );
    t.same(
      await ids(
        app,
        `/Observation?component-code-value-quantity=${LOINC}|${SYSTOLIC}$gt110&component-code-value-quantity=${LOINC}|${DIASTOLIC}$lt80`,
      ),
      [normal.id],
      'repeated parameters are ANDed: a systolic above 110 and a diastolic below 80',
    );
    t.same(await ids(app, `/Observation?code-value-quantity=${LOINC}|29463-7$gt70`), [weight.id], "the resource's own code and value");
    t.same(await ids(app, `/Observation?code-value-quantity=${LOINC}|29463-7$lt70`), []);
    t.same(await ids(app, `/Observation?code-value-quantity=${LOINC}|${SYSTOLIC}$150`), [], "a component's value is not the resource's");
    t.same(await ids(app, `/Observation?combo-code-value-quantity=${LOINC}|${SYSTOLIC}$150`), [high.id], 'combo: the components too');
    t.same(await ids(app, `/Observation?combo-code-value-quantity=${LOINC}|29463-7$72.5`), [weight.id], 'combo: the resource too');
    t.same(
      await ids(app, `/Observation?combo-code-value-quantity=${LOINC}|63640-7$20`),
      [smoker.id],
      'a component of a concept-valued Observation',
    );
    t.same(
      await ids(app, `/Observation?combo-code-value-quantity=${LOINC}|72166-2$20`),
      [],
      'the code of one element, the value of another',
    );
  });

  await t.test('concepts, dates and strings', async (t) => {
    t.same(await ids(app, `/Observation?code-value-concept=${LOINC}|72166-2$http://snomed.info/sct|449868002`), [smoker.id]);
    t.same(await ids(app, `/Observation?code-value-concept=72166-2$449868002`), [smoker.id], 'codes without systems');
    t.same(await ids(app, `/Observation?code-value-concept=72166-2$http://snomed.info/sct|8517006`), [], 'another value');
    t.same(await ids(app, `/Observation?code-value-date=${LOINC}|11368-8$2019-05`), [onset.id]);
    t.same(await ids(app, `/Observation?code-value-date=${LOINC}|11368-8$ge2020`), []);
    t.same(await ids(app, `/Observation?code-value-date=${LOINC}|11368-8$lt2020`), [onset.id]);
    t.same(await ids(app, `/Observation?code-value-string=8691-8$travelled`), [note.id], 'string components match by prefix, folded');
    t.same(
      await ids(app, `/Observation?code-value-string=8691-8$${encodeURIComponent('travelled to lagos\\|accra')}`),
      [note.id],
      'an escaped | in a component',
    );
    t.same(await ids(app, `/Observation?code-value-string=8691-8$lagos`), []);
    t.same(await ids(app, `/Observation?code-value-string=29463-7$travelled`), [], 'the right value, another code');
    // Medplum's FHIRPath as() lets every value through; the index keeps only values of the named type.
    t.same(
      await ids(app, `/Observation?code-value-concept=8691-8$${encodeURIComponent('Travelled to Lagos|Accra')}`),
      [],
      'a string is not a concept',
    );
  });

  await t.test(':missing, and the components of other types', async (t) => {
    const missing = await ids(app, '/Observation?code-value-quantity:missing=true');
    t.ok(missing.includes(smoker.id) && missing.includes(high.id), 'Observations without a value quantity of their own');
    t.notOk(missing.includes(weight.id));
    t.same(await ids(app, '/Observation?code-value-quantity:missing=false'), [weight.id]);

    const target = await create<DocumentReference>(app, {
      resourceType: 'DocumentReference',
      status: 'current',
      content: [{ attachment: { contentType: 'text/plain', data: 'aGVsbG8=' } }],
    });
    const replacing = await create<DocumentReference>(app, {
      resourceType: 'DocumentReference',
      status: 'current',
      relatesTo: [{ code: 'replaces', target: { reference: `DocumentReference/${target.id}` } }],
      content: [{ attachment: { contentType: 'text/plain', data: 'aGVsbG8gYWdhaW4=' } }],
    });
    t.same(
      await ids(app, `/DocumentReference?relationship=replaces$DocumentReference/${target.id}`),
      [replacing.id],
      'a reference component',
    );
    t.same(await ids(app, `/DocumentReference?relationship=appends$DocumentReference/${target.id}`), []);

    const cohort = await create<Group>(app, {
      resourceType: 'Group',
      type: 'person',
      actual: false,
      characteristic: [
        {
          code: { coding: [{ system: 'http://snomed.info/sct', code: '77176002', display: 'Smoker' }] },
          valueBoolean: true,
          exclude: false,
        },
        {
          code: { coding: [{ system: LOINC, code: '21612-7', display: 'Age' }] },
          valueCodeableConcept: { coding: [{ system: 'urn:example:age-band', code: 'adult' }] },
          exclude: false,
        },
      ],
    });
    t.same(await ids(app, '/Group?characteristic-value=77176002$true'), [cohort.id], 'a boolean value');
    t.same(await ids(app, `/Group?characteristic-value=${LOINC}|21612-7$urn:example:age-band|adult`), [cohort.id], 'a concept value');
    t.same(await ids(app, `/Group?characteristic-value=${LOINC}|21612-7$true`), [], 'the value of another characteristic');
    t.same(await ids(app, '/Group?characteristic-value=77176002$adult'), [], 'the value of another characteristic');

    const sequence = await create<MolecularSequence>(app, {
      resourceType: 'MolecularSequence',
      coordinateSystem: 0,
      referenceSeq: {
        genomeBuild: 'GRCh38',
        chromosome: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/chromosome-human', code: '1' }] },
        windowStart: 100,
        windowEnd: 200,
      },
      variant: [{ start: 120, end: 121 }],
    });
    t.same(
      await ids(app, '/MolecularSequence?chromosome-variant-coordinate=1$ge110$le130'),
      [sequence.id],
      "a component read through %resource (the sequence's chromosome) with the variant's own start and end",
    );
    t.same(await ids(app, '/MolecularSequence?chromosome-variant-coordinate=2$ge110$le130'), [], 'another chromosome');
    t.same(await ids(app, '/MolecularSequence?chromosome-variant-coordinate=1$ge125$le130'), [], 'the variant starts before');
    t.same(await ids(app, '/MolecularSequence?chromosome-window-coordinate=1$100$200'), [sequence.id]);
  });

  await t.test('malformed values: 400 under strict handling, ignored and reported otherwise', async (t) => {
    const strict = { prefer: 'handling=strict' };
    const cases: Array<[string, RegExp]> = [
      [
        `component-code-value-quantity=${LOINC}|${SYSTOLIC}`,
        /must give 2 values separated by \$ \(component-code\$component-value-quantity\)/,
      ],
      [`component-code-value-quantity=${SYSTOLIC}$gt90$1`, /must give 2 values/],
      [`component-code-value-quantity=${SYSTOLIC}$`, /component component-value-quantity: .*empty value/],
      [`component-code-value-quantity=${SYSTOLIC}$high`, /component component-value-quantity: .*"high" is not a number/],
      [`code-value-date=11368-8$yesterday`, /component value-date: .*not a FHIR date/],
      [`component-code-value-quantity:exact=${SYSTOLIC}$90`, /modifier :exact is not supported on composite parameter/],
      ['_sort=code-value-quantity', /composite parameter/],
    ];
    for (const [query, message] of cases) {
      const refused = await search(app, `/Observation?${query}`, strict);
      t.equal(refused.status, 400, query);
      t.match((refused.bundle as unknown as OperationOutcome).issue?.[0]?.diagnostics, message, query);
      const lenient = await search(app, `/Observation?${query}`);
      t.equal(lenient.status, 200, `${query} (lenient)`);
      t.match(lenient.warnings.join('\n'), message, `${query}: reported as ignored`);
    }
  });

  await t.test('the CapabilityStatement lists them, and explain shows the index bounded by the code', async (t) => {
    const metadata = (await app.inject({ url: '/metadata' })).json() as CapabilityStatement;
    const observation = metadata.rest?.[0]?.resource?.find((r) => r.type === 'Observation');
    const composite = observation?.searchParam?.find((p) => p.name === 'component-code-value-quantity');
    t.equal(composite?.type, 'composite');
    t.equal(composite?.definition, 'http://hl7.org/fhir/SearchParameter/Observation-component-code-value-quantity');

    const ctx = await testContext(store, BASE);
    const query = `component-code-value-quantity=${LOINC}|${SYSTOLIC}$gt140`;
    const explain = await explainFhirSearch(ctx, { types: ['Observation'], path: 'Observation' }, [
      ...new URLSearchParams(query).entries(),
    ]);
    const plan = planStages(explain.queryPlanner.winningPlan as Document);
    const scan = plan.find((s) => s.stage === 'IXSCAN');
    t.equal(scan?.indexName, 'search_other_types', 'the index over every type');
    t.match(JSON.stringify(scan?.indexBounds), `${LOINC}|${SYSTOLIC}`, 'bounded by the code');
    t.notOk(plan.some((s) => s.stage === 'COLLSCAN'));
  });
});
