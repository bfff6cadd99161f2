/**
 * Small valid resources of the hosted clinical types, for tests that need data in a patient's compartment
 * (authorization, confinement). Each builder takes what links the resource to its patient, plus an identifier so a
 * test can find or conditionally write it without naming its id.
 */
import type { Encounter, MedicationRequest, Observation, Patient } from '@medplum/fhirtypes';

/** The system of the identifiers these builders give (urn:test|<value>). */
export const SAMPLE_IDENTIFIER_SYSTEM = 'urn:test';

export function samplePatient(family: string, identifier: string, extra: Partial<Patient> = {}): Patient {
  return {
    resourceType: 'Patient',
    identifier: [{ system: SAMPLE_IDENTIFIER_SYSTEM, value: identifier }],
    name: [{ family, given: ['Sample'] }],
    gender: 'female',
    birthDate: '1980-01-02',
    ...extra,
  };
}

export function sampleEncounter(patientId: string, identifier: string, extra: Partial<Encounter> = {}): Encounter {
  return {
    resourceType: 'Encounter',
    identifier: [{ system: SAMPLE_IDENTIFIER_SYSTEM, value: identifier }],
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: `Patient/${patientId}` },
    period: { start: '2024-03-01T10:00:00Z', end: '2024-03-01T11:00:00Z' },
    ...extra,
  };
}

export function sampleMedicationRequest(
  patientId: string,
  encounterId: string | undefined,
  identifier: string,
  extra: Partial<MedicationRequest> = {},
): MedicationRequest {
  return {
    resourceType: 'MedicationRequest',
    identifier: [{ system: SAMPLE_IDENTIFIER_SYSTEM, value: identifier }],
    status: 'active',
    intent: 'order',
    medicationCodeableConcept: { text: `medication ${identifier}` },
    subject: { reference: `Patient/${patientId}` },
    ...(encounterId ? { encounter: { reference: `Encounter/${encounterId}` } } : {}),
    ...extra,
  };
}

/** An Observation (a type not featured here, in the Patient compartment through subject). */
export function sampleObservation(patientId: string, identifier: string, extra: Partial<Observation> = {}): Observation {
  return {
    resourceType: 'Observation',
    identifier: [{ system: SAMPLE_IDENTIFIER_SYSTEM, value: identifier }],
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: '2024-03-01T10:30:00Z',
    valueQuantity: { value: 72.5, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
    ...extra,
  };
}
