// The Bundle narrowing of the import CLI: entries of unhosted types dropped and counted, and references of the
// kept entries to them rewritten so the transaction still holds together.
import type { Bundle, Encounter, MedicationRequest, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { entryType, filterBundle } from '../../../src/cli/import/bundle-filter.js';

const HOSTED = new Set(['Patient', 'Encounter', 'MedicationRequest']);

function transaction(): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:org-1',
        resource: { resourceType: 'Organization', id: 'org-1', name: 'Hospital' },
        request: { method: 'POST', url: 'Organization' },
      },
      {
        fullUrl: 'urn:uuid:p-1',
        resource: { resourceType: 'Patient', id: 'p-1', managingOrganization: { reference: 'urn:uuid:org-1', display: 'Hospital' } },
        request: { method: 'PUT', url: 'Patient?identifier=http://x|1' },
      },
      {
        fullUrl: 'urn:uuid:no-id',
        resource: { resourceType: 'Practitioner', name: [{ family: 'Who' }] },
        request: { method: 'POST', url: 'Practitioner' },
      },
      {
        fullUrl: 'urn:uuid:e-1',
        resource: {
          resourceType: 'Encounter',
          id: 'e-1',
          status: 'finished',
          class: { code: 'AMB' },
          subject: { reference: 'urn:uuid:p-1' },
          participant: [
            { individual: { reference: 'urn:uuid:no-id', display: 'Dr Who' } },
            { individual: { reference: 'Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999', display: 'Dr NPI' } },
            { individual: { reference: 'Practitioner?name=Smith' } },
          ],
          serviceProvider: { reference: 'Organization?identifier=https://github.com/synthetichealth/synthea|abc' },
          partOf: { reference: 'Encounter?identifier=http://x|2' },
        },
        request: { method: 'POST', url: 'Encounter' },
      },
      {
        fullUrl: 'urn:uuid:obs-1',
        resource: {
          resourceType: 'Observation',
          id: 'obs-1',
          status: 'final',
          code: { text: 'x' },
          encounter: { reference: 'urn:uuid:e-1' },
        },
        request: { method: 'POST', url: 'Observation' },
      },
      {
        fullUrl: 'urn:uuid:mr-1',
        resource: {
          resourceType: 'MedicationRequest',
          id: 'mr-1',
          status: 'active',
          intent: 'order',
          subject: { reference: 'urn:uuid:p-1' },
          encounter: { reference: 'urn:uuid:e-1' },
          reasonReference: [{ reference: 'urn:uuid:obs-1' }],
          medicationCodeableConcept: { text: 'x' },
        },
        request: { method: 'POST', url: 'MedicationRequest' },
      },
      { request: { method: 'DELETE', url: 'Observation/old' } },
      { request: { method: 'DELETE', url: 'Patient/old' } },
    ],
  };
}

t.test('unhosted entries are dropped and counted; hosted entries keep request and order', async (t) => {
  const source = transaction();
  const before = JSON.stringify(source);
  const { bundle, originalIndex, dropped } = filterBundle(source, HOSTED);
  t.equal(JSON.stringify(source), before, 'the input Bundle is not modified');
  t.same(originalIndex, [1, 3, 5, 7]);
  t.same([...dropped.entries()].sort(), [
    ['Observation', 2],
    ['Organization', 1],
    ['Practitioner', 1],
  ]);
  t.same(
    bundle.entry!.map((e) => [entryType(e), e.request]),
    [
      ['Patient', { method: 'PUT', url: 'Patient?identifier=http://x|1' }],
      ['Encounter', { method: 'POST', url: 'Encounter' }],
      ['MedicationRequest', { method: 'POST', url: 'MedicationRequest' }],
      ['Patient', { method: 'DELETE', url: 'Patient/old' }],
    ],
  );
  t.equal(bundle.type, 'transaction');
});

t.test('references to dropped entries and conditional references to unhosted types are rewritten', async (t) => {
  const { bundle, rewrites } = filterBundle(transaction(), HOSTED);
  const [patient, encounter, request] = bundle.entry!.map((e) => e.resource) as [Patient, Encounter, MedicationRequest];
  t.same(patient.managingOrganization, { reference: 'Organization/org-1', display: 'Hospital' }, 'dropped entry with id -> Type/id');
  t.same(encounter.subject, { reference: 'urn:uuid:p-1' }, 'references to kept entries stay for the server to resolve');
  t.same(encounter.participant![0].individual, { type: 'Practitioner', display: 'Dr Who' }, 'dropped entry without id -> type + display');
  t.same(
    encounter.participant![1].individual,
    { type: 'Practitioner', identifier: { system: 'http://hl7.org/fhir/sid/us-npi', value: '999' }, display: 'Dr NPI' },
    'conditional reference to an unhosted type -> logical reference by identifier',
  );
  t.same(encounter.participant![2].individual, { type: 'Practitioner' }, 'conditional reference without identifier -> type only');
  t.same(encounter.serviceProvider, {
    type: 'Organization',
    identifier: { system: 'https://github.com/synthetichealth/synthea', value: 'abc' },
  });
  t.same(encounter.partOf, { reference: 'Encounter?identifier=http://x|2' }, 'conditional references to hosted types stay');
  t.same(request.reasonReference, [{ reference: 'Observation/obs-1' }]);
  t.same(request.encounter, { reference: 'urn:uuid:e-1' });
  t.same(rewrites, { logical: 2, typeOnly: 2, conditional: 2 });
});

t.test('a Bundle with nothing hosted keeps no entries', async (t) => {
  const { bundle, dropped } = filterBundle(
    {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [{ resource: { resourceType: 'Observation', status: 'final', code: {} }, request: { method: 'POST', url: 'Observation' } }],
    },
    HOSTED,
  );
  t.equal(bundle.entry, undefined);
  t.same([...dropped.entries()], [['Observation', 1]]);
});
