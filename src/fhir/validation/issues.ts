/**
 * Issue construction and normalisation.
 *
 * Every issue has severity, code (IssueType), expression (one FHIRPath location in FHIR convention,
 * e.g. "Patient.name[0].given[1]", choice elements as "Patient.deceased.ofType(dateTime)") and
 * diagnostics a person can act on. Issues from @medplum/core are mapped onto the same conventions.
 */
import type { InternalSchemaElement, InternalTypeSchema } from '@medplum/core';
import { evalFhirPathTyped, toTypedValue, tryGetDataType, UCUM } from '@medplum/core';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';

export type Severity = 'error' | 'warning' | 'information';
export type IssueCode = OperationOutcomeIssue['code'];

/** Issue with an internal de-duplication key (removed before issues are returned). */
export interface KeyedIssue {
  issue: OperationOutcomeIssue;
  key: string;
}

export function makeIssue(severity: Severity, code: IssueCode, expression: string, diagnostics: string, dedupeKey?: string): KeyedIssue {
  return {
    issue: { severity, code, expression: [expression], diagnostics },
    key: dedupeKey ?? `${severity}|${code}|${expression}|${diagnostics}`,
  };
}

const PRIMITIVE_TYPE_NAMES = new Map<string, string>(
  [
    'base64Binary',
    'boolean',
    'canonical',
    'code',
    'date',
    'dateTime',
    'decimal',
    'id',
    'instant',
    'integer',
    'markdown',
    'oid',
    'positiveInt',
    'string',
    'time',
    'unsignedInt',
    'uri',
    'url',
    'uuid',
  ].map((t) => [t.charAt(0).toUpperCase() + t.slice(1), t]),
);

/** Type name as written after a choice element's base name (valueDateTime -> dateTime, valueQuantity -> Quantity). */
export function typeFromSuffix(suffix: string): string {
  return PRIMITIVE_TYPE_NAMES.get(suffix) ?? suffix;
}

/** FHIRPath for a choice element: deceased + dateTime -> deceased.ofType(dateTime). */
export function choiceSegment(base: string, type: string): string {
  return `${base}.ofType(${type})`;
}

/**
 * Rewrites "[x]" segments of a medplum path into FHIR convention using the instance to find which type
 * was used: "Patient.deceased[x]" -> "Patient.deceased.ofType(dateTime)".
 */
export function resolveChoicePath(path: string, resource: unknown): string {
  if (!path.includes('[x]')) {
    return path;
  }
  const segments = path.split('.');
  const out: string[] = [segments[0] as string];
  let current: unknown = resource;
  for (const segment of segments.slice(1)) {
    const m = /^([^[]+)((?:\[[^\]]*\])*)$/.exec(segment);
    if (!m) {
      out.push(segment);
      current = undefined;
      continue;
    }
    const name = m[1] as string;
    const brackets = m[2] ?? '';
    if (brackets.startsWith('[x]')) {
      const obj = current && typeof current === 'object' ? (current as Record<string, unknown>) : undefined;
      const key = obj
        ? Object.keys(obj).find((k) => k.length > name.length && k.startsWith(name) && /[A-Z]/.test(k.charAt(name.length)))
        : undefined;
      if (key) {
        out.push(choiceSegment(name, typeFromSuffix(key.slice(name.length))) + brackets.slice(3));
        current = index(obj?.[key], brackets.slice(3));
      } else {
        out.push(name + brackets.slice(3));
        current = undefined;
      }
      continue;
    }
    out.push(segment);
    const obj = current && typeof current === 'object' ? (current as Record<string, unknown>) : undefined;
    current = index(obj && Object.hasOwn(obj, name) ? obj[name] : undefined, brackets);
  }
  return out.join('.');
}

function index(value: unknown, brackets: string): unknown {
  let current = value;
  for (const m of brackets.matchAll(/\[(\d+)\]/g)) {
    current = Array.isArray(current) ? current[Number(m[1])] : undefined;
  }
  return current;
}

/**
 * Maps an issue produced by @medplum/core's validator onto our conventions. Returns undefined for issues
 * we drop because the walker reports them more precisely (unknown elements, conflicting choice types) or
 * because they only say medplum could not evaluate an invariant (logged instead).
 */
/**
 * R4's base64Binary (datatypes.html#base64Binary: groups of four base64 characters, whitespace between them),
 * tested without the regex's nested quantifiers (which backtrack badly on long whitespace): whitespace removed,
 * what is left must be base64 characters in groups of four. Whitespace inside a group passes here too.
 */
function isR4Base64(value: string): boolean {
  const compact = value.replace(/\s+/g, '');
  return compact.length > 0 && compact.length % 4 === 0 && /^[0-9a-zA-Z+/]*={0,2}$/.test(compact);
}

/**
 * Whether `fhirpath`, evaluated as @medplum/core's validator evaluates it (on the element at `rawPath`, typed by
 * the schema), yields an empty collection. False whenever the element or its type cannot be resolved: the issue
 * then stands.
 */
function evaluatesToNothing(fhirpath: string, rawPath: string, resource: unknown): boolean {
  const value = lookupValue(rawPath, resource);
  const type = typeAtPath(rawPath, resource);
  if (value === undefined || type === undefined) return false;
  const root = toTypedValue(resource);
  try {
    const result = evalFhirPathTyped(fhirpath, [{ type, value }], {
      '%context': { type, value },
      '%resource': root,
      '%rootResource': root,
      '%ucum': toTypedValue(UCUM),
    });
    return result.length === 0;
  } catch {
    return false;
  }
}

/** The FHIR type of the element at a medplum issue path (Type.a[0].b), from the schemas; undefined when unknown. */
function typeAtPath(rawPath: string, resource: unknown): string | undefined {
  const segments = rawPath.split('.');
  let type: string | undefined = segments[0];
  let walked = segments[0];
  for (const segment of segments.slice(1)) {
    const name = segment.replace(/\[\d+\]$/, '');
    walked += `.${segment}`;
    const schema: InternalTypeSchema | undefined = type ? tryGetDataType(type) : undefined;
    if (!schema) return undefined;
    const element: InternalSchemaElement | undefined = schema.elements[name];
    let code: string | undefined = element?.type?.[0]?.code;
    if (!element) {
      const choice = Object.keys(schema.elements).find((k) => k.endsWith('[x]') && name.startsWith(k.slice(0, -3)));
      if (!choice) return undefined;
      const suffix = name.slice(choice.length - 3);
      code = schema.elements[choice].type.find((t) => t.code.toLowerCase() === suffix.toLowerCase())?.code;
    } else if (element.type.length !== 1) {
      return undefined;
    }
    if (code === 'Resource') {
      const inner = lookupValue(walked, resource) as { resourceType?: unknown } | undefined;
      code = typeof inner?.resourceType === 'string' ? inner.resourceType : undefined;
    }
    type = code;
  }
  return type;
}

export function normalizeMedplumIssue(
  issue: OperationOutcomeIssue,
  resource: unknown,
  onEvaluationFailure: (fhirpath: string, message: string) => void,
): KeyedIssue | undefined {
  const text = issue.details?.text ?? issue.diagnostics ?? '';
  const rawPath = issue.expression?.[0] ?? (resource as { resourceType?: string })?.resourceType ?? '';
  const expression = resolveChoicePath(rawPath, resource);
  const severity = (issue.severity === 'fatal' ? 'error' : issue.severity) as Severity;

  if (text.startsWith('Invalid additional property') || text.startsWith('Conflicting choice of type properties')) {
    return undefined;
  }
  // medplum takes the resource type of a reference from the text before the first '/': for urn:uuid:,
  // urn:oid: and absolute URLs that yields nonsense ("got urn:uuid:..."); only Type/id references are
  // checked against the allowed target types.
  const ref = /^Invalid reference: got "([^"]*)"/.exec(text);
  if (ref && (ref[1] as string).includes(':')) {
    return undefined;
  }
  if (issue.code === 'processing' && text.startsWith('Error evaluating invariant expression')) {
    onEvaluationFailure(parseFhirpath(issue.diagnostics), text);
    return undefined;
  }
  if (issue.code === 'invariant') {
    const fhirpath = parseFhirpath(issue.diagnostics);
    // @medplum/core counts an invariant that evaluates to nothing as broken; FHIR does not (ras-2's
    // `probability is decimal implies …` on a prediction without a probability is no violation).
    if (fhirpath && evaluatesToNothing(fhirpath, rawPath, resource)) return undefined;
    const key = /^Constraint (\S+) not met/.exec(text)?.[1] ?? '';
    const diagnostics = fhirpath ? `${text} (FHIRPath: ${fhirpath})` : text;
    return makeIssue(severity, 'invariant', expression, diagnostics, `invariant|${key}|${expression}`);
  }
  if (text === 'Missing required property') {
    const element = expression.slice(expression.lastIndexOf('.') + 1);
    return makeIssue(
      severity,
      'required',
      expression,
      `Missing required element '${element}' (minimum cardinality 1)`,
      `required|${expression}`,
    );
  }
  const card = /^Invalid number of values: expected (\d+)\.\.(\S+), but found (\d+)/.exec(text);
  if (card) {
    const found = Number(card[3]);
    const min = Number(card[1]);
    const code: IssueCode = found < min ? 'required' : 'structure';
    return makeIssue(
      severity,
      code,
      expression,
      `${expression} has ${found} value(s); allowed ${card[1]}..${card[2]}`,
      `card|${expression}|${card[1]}..${card[2]}`,
    );
  }
  const format = /^Invalid (\S+) format$/.exec(text);
  if (format) {
    const value = lookupValue(rawPath, resource);
    // R4's base64Binary allows whitespace between the groups of four (line-wrapped content, as in the official
    // examples of Binary, Media and DiagnosticReport); @medplum/core's pattern does not.
    if (format[1] === 'base64Binary' && typeof value === 'string' && isR4Base64(value)) return undefined;
    const shown = typeof value === 'string' ? ` '${value.length > 80 ? `${value.slice(0, 80)}…` : value}'` : '';
    return makeIssue(severity, 'value', expression, `Invalid ${format[1]}${shown} at ${expression}`, `value|${expression}`);
  }
  if (
    text.startsWith('Expected number') ||
    text === 'Invalid numeric value' ||
    text.startsWith('String must contain') ||
    text.startsWith('String cannot be larger')
  ) {
    return makeIssue(severity, 'value', expression, `${text} at ${expression}`, `value|${expression}`);
  }
  if (text === 'Value did not match expected pattern') {
    return makeIssue(
      severity,
      'value',
      expression,
      `${expression} does not match the fixed/pattern value required by the profile`,
      `pattern|${expression}`,
    );
  }
  return makeIssue(severity, issue.code, expression, `${text} at ${expression}`);
}

function parseFhirpath(diagnostics: string | undefined): string {
  if (!diagnostics) {
    return '';
  }
  try {
    const parsed = JSON.parse(diagnostics) as { fhirpath?: string };
    return parsed.fhirpath ?? '';
  } catch {
    return '';
  }
}

/** Looks up the instance value at a simple medplum path (Patient.name[0].given[1]); best effort. */
export function lookupValue(path: string, resource: unknown): unknown {
  const segments = path.split('.').slice(1);
  let current: unknown = resource;
  for (const segment of segments) {
    const m = /^([^[]+)((?:\[[^\]]*\])*)$/.exec(segment);
    if (!m || !current || typeof current !== 'object') {
      return undefined;
    }
    let name = m[1] as string;
    let brackets = m[2] ?? '';
    const obj = current as Record<string, unknown>;
    if (brackets.startsWith('[x]')) {
      const base = name;
      name = Object.keys(obj).find((k) => k.startsWith(base) && /[A-Z]/.test(k.charAt(base.length))) ?? base;
      brackets = brackets.slice(3);
    }
    current = index(Object.hasOwn(obj, name) ? obj[name] : undefined, brackets);
  }
  return current;
}
