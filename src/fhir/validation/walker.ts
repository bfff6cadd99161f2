/**
 * The checks @medplum/core 4.5.2's validateResource does not make, in one pass over the JSON, guided by the
 * same parsed schemas (base types, or a profile's snapshot):
 * - unknown elements, including keys medplum misses because they exist on Object.prototype
 *   ("__proto__", "constructor", "toString"...);
 * - more than one type of a choice element (medplum: only a warning);
 * - required and extensible terminology bindings (medplum checks none);
 * - invariants medplum does not evaluate: warning-severity ones, those declared on datatypes (cpt-2, per-1,
 *   ref-1, qty-3, tim-*, ...), those of contained resources, and natively ele-1, dom-3, txt-1, txt-2;
 * - R4 primitive rules medplum is lenient about (see primitives.ts);
 * - contained resources without a valid resourceType;
 * - everything a profile or an extension definition adds to the base definition: cardinality changes,
 *   fixed/pattern values, restricted choice types, slices (value/pattern discriminators) and their
 *   cardinality, closed slicing, bindings and invariants. Extensions whose url names an extension definition
 *   we hold (profiles/ and the R4 core extensions) are validated against it, sub-extension slices included.
 *   medplum's validateResource({ profile }) would do the structural part, but it re-parses the
 *   StructureDefinition on every call (4 ms for US Core Patient): too slow for every write. Here the
 *   parsed schema is built once; the base definition's structure stays with medplum.
 *
 * Recursion depth is bounded by the caller (checkDepth) before this runs.
 */
import type { InternalSchemaElement, InternalTypeSchema, SlicingRules, TypedValue } from '@medplum/core';
import { isResourceType, toTypedValue, tryGetDataType, tryGetProfile, validationRegexes } from '@medplum/core';
import type { Coding, Resource } from '@medplum/fhirtypes';
import type { CompiledConstraint, ConstraintLike, InvariantEngine } from './invariants.js';
import { NATIVE_CONSTRAINTS } from './invariants.js';
import type { IssueCode, KeyedIssue, Severity } from './issues.js';
import { choiceSegment, makeIssue, typeFromSuffix } from './issues.js';
import type { ValidationLogger } from './logging.js';
import { checkPrimitive, checkResourceId, truncate } from './primitives.js';
import type { ExpandedValueSet, Terminology } from './terminology.js';
import { checkCode, describeAllowed } from './terminology.js';
import { checkNarrativeDiv } from './xhtml.js';

const UCUM = 'http://unitsofmeasure.org';

const PRIMITIVES = new Set([
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
  'integer64',
  'markdown',
  'oid',
  'positiveInt',
  'string',
  'time',
  'unsignedInt',
  'uri',
  'url',
  'uuid',
  'xhtml',
  'http://hl7.org/fhirpath/System.String',
]);
const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Count', 'Distance', 'Duration', 'MoneyQuantity', 'SimpleQuantity']);

/** An extension definition we can validate extension instances against. */
/** Whether an issue is one of the JSON representation's own rules (checkJsonShape): medplum may choke on such input. */
export function isJsonShapeIssue(issue: KeyedIssue): boolean {
  return issue.key.startsWith('json|');
}

export interface ExtensionDefinition {
  readonly url: string;
  readonly schema: InternalTypeSchema;
  /** Where it may be used (StructureDefinition.context); empty: anywhere. */
  readonly contexts: ReadonlyArray<{ readonly type: string; readonly expression: string }>;
  /** appended to diagnostics, e.g. "extension http://...|5.0.1" */
  readonly label: string;
}

export interface WalkerServices {
  readonly engine: InvariantEngine;
  readonly terminology: Terminology;
  readonly logger: ValidationLogger;
  readonly extension: (url: string) => ExtensionDefinition | undefined;
}

/** Where element definitions are looked up: a set of schema elements, under a path prefix. */
interface Scope {
  readonly elements: Record<string, InternalSchemaElement>;
  readonly prefix: string;
  readonly innerTypes?: ReadonlyMap<string, InternalTypeSchema>;
  /** set for a profile's / extension definition's / slice's definitions: their structure is checked here */
  readonly label?: string;
}

interface Found {
  readonly element: InternalSchemaElement;
  /** for an element found in a profiled scope: the base definition's element (what medplum checks) */
  readonly base?: InternalSchemaElement;
  readonly elementKey: string;
  readonly type: string;
  readonly scope: Scope;
  /** true when the JSON key is a choice variant (valueQuantity for value[x]) */
  readonly choiceBase?: string;
}

/**
 * The element an extension sits on, as its definition's contexts name elements: by type (with the types it
 * specialises: HumanName is an Element, Patient a DomainResource and a Resource) and by definition path, both
 * type-rooted (HumanName.family) and resource-rooted (Patient.name.family); an extension inside an extension also
 * by that extension's url.
 */
interface ExtensionHost {
  readonly types: readonly string[];
  readonly paths: readonly string[];
  readonly extensionUrl?: string;
}

/** The host, computed only when an extension with a definition asks (most elements carry none). */
type HostOf = () => ExtensionHost;

interface ResourceFrame {
  readonly resource: TypedValue;
  readonly variables: Record<string, TypedValue>;
}

export interface WalkOptions {
  /** appended to diagnostics of issues found with a profile's definitions */
  readonly label?: string;
  /** true when walking with a profile's snapshot (then the base walk has already run) */
  readonly profile?: boolean;
}

// ---------------------------------------------------------------------------------------------
// schema indexes (built once per schema object, cached)

interface ElementIndex {
  /** JSON key (with prefix) -> element key and type (choice variants expanded) */
  readonly byJsonKey: Map<string, { elementKey: string; type?: string; choiceBase?: string }>;
  /** choice element base (with prefix, e.g. "value" or "extension.value") -> element key ("value[x]") */
  readonly choiceBases: Map<string, string>;
  /** every proper prefix "a." / "a.b." of an element key: tells whether an element has children here */
  readonly parents: Set<string>;
}

const elementIndexes = new WeakMap<object, ElementIndex>();

function indexElements(elements: Record<string, InternalSchemaElement>): ElementIndex {
  let index = elementIndexes.get(elements);
  if (index) {
    return index;
  }
  const byJsonKey = new Map<string, { elementKey: string; type?: string; choiceBase?: string }>();
  const parents = new Set<string>();
  const choiceBases = new Map<string, string>();
  for (const key of Object.keys(elements)) {
    const element = elements[key] as InternalSchemaElement;
    const dot = key.lastIndexOf('.');
    for (let i = key.indexOf('.'); i >= 0 && i <= dot; i = key.indexOf('.', i + 1)) {
      parents.add(key.slice(0, i + 1));
    }
    if (key.endsWith('[x]')) {
      const base = key.slice(0, -3);
      const shortBase = base.slice(base.lastIndexOf('.') + 1);
      choiceBases.set(base, key);
      for (const t of element.type ?? []) {
        if (!t.code || t.code.includes('/')) {
          continue;
        }
        const suffix = t.code.charAt(0).toUpperCase() + t.code.slice(1);
        byJsonKey.set(base + suffix, { elementKey: key, type: t.code, choiceBase: shortBase });
      }
    } else {
      byJsonKey.set(key, { elementKey: key });
    }
  }
  index = { byJsonKey, parents, choiceBases };
  elementIndexes.set(elements, index);
  return index;
}

const childLists = new WeakMap<object, Map<string, string[]>>();

/** Element keys directly under a prefix ("" -> "name", "name." -> "name.family"). */
function childrenOf(elements: Record<string, InternalSchemaElement>, prefix: string): string[] {
  let byPrefix = childLists.get(elements);
  if (!byPrefix) {
    byPrefix = new Map();
    childLists.set(elements, byPrefix);
  }
  let list = byPrefix.get(prefix);
  if (!list) {
    list = Object.keys(elements).filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes('.'));
    byPrefix.set(prefix, list);
  }
  return list;
}

const innerTypeMaps = new WeakMap<InternalTypeSchema, Map<string, InternalTypeSchema>>();

export function innerTypesOf(schema: InternalTypeSchema): Map<string, InternalTypeSchema> {
  let map = innerTypeMaps.get(schema);
  if (!map) {
    map = new Map(schema.innerTypes.map((t) => [t.name, t]));
    innerTypeMaps.set(schema, map);
  }
  return map;
}

/** A choice variant the governing definition does not allow (valueString where value[x] is Address only). */
interface Disallowed {
  readonly disallowed: true;
  readonly elementKey: string;
  readonly allowed: string[];
}

function lookup(scopes: readonly Scope[], name: string): Found | Disallowed | undefined {
  for (const scope of scopes) {
    const index = indexElements(scope.elements);
    const hit = index.byJsonKey.get(scope.prefix + name);
    if (hit) {
      const element = scope.elements[hit.elementKey] as InternalSchemaElement;
      const type = hit.type ?? element.type?.[0]?.code ?? 'Element';
      return { element, elementKey: hit.elementKey, type, scope, choiceBase: hit.choiceBase };
    }
    // The first scope that defines the choice element decides which of its types are allowed: a profile
    // or extension definition restricting value[x] must not be bypassed through the base definition.
    if (index.choiceBases.size > 0) {
      for (const [base, elementKey] of index.choiceBases) {
        const full = scope.prefix + name;
        if (full.length > base.length && full.startsWith(base) && /[A-Z]/.test(full.charAt(base.length))) {
          const element = scope.elements[elementKey] as InternalSchemaElement;
          return { disallowed: true, elementKey, allowed: (element.type ?? []).map((t) => t.code) };
        }
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------

export class Walker {
  private readonly issues: KeyedIssue[] = [];
  private readonly services: WalkerServices;
  private readonly options: WalkOptions;
  private readonly root: Resource;
  private readonly rootTyped: TypedValue;
  private baseRootConstraints: ReadonlySet<string> = new Set();

  constructor(root: Resource, services: WalkerServices, options: WalkOptions = {}) {
    this.root = root;
    this.rootTyped = { type: root.resourceType, value: root };
    this.services = services;
    this.options = options;
  }

  /** Walks the root resource with the given schema (base type, or a profile's). */
  run(schema: InternalTypeSchema, base: InternalTypeSchema | undefined): KeyedIssue[] {
    const path = this.root.resourceType;
    const profiled = !!base && base !== schema;
    this.baseRootConstraints = new Set((base?.constraints ?? []).map((c) => c.key));
    const scopes: Scope[] = [
      {
        elements: schema.elements,
        prefix: '',
        innerTypes: innerTypesOf(schema),
        label: profiled ? (this.options.label ?? 'profile') : undefined,
      },
    ];
    if (profiled && base) {
      scopes.push({ elements: base.elements, prefix: '' });
    }
    this.walkResource(this.root as unknown as Record<string, unknown>, schema, scopes, path, false, profiled);
    return this.issues;
  }

  private add(severity: Severity, code: IssueCode, expression: string, message: string, key?: string, label?: string): void {
    const l = label ?? this.options.label;
    this.issues.push(makeIssue(severity, code, expression, l ? `${message} [${l}]` : message, key));
  }

  private walkResource(
    resource: Record<string, unknown>,
    schema: InternalTypeSchema,
    scopes: readonly Scope[],
    path: string,
    contained: boolean,
    profiled = false,
  ): void {
    const typed: TypedValue = { type: resource.resourceType as string, value: resource };
    const frame: ResourceFrame = {
      resource: typed,
      variables: { '%resource': typed, '%rootResource': this.rootTyped, '%ucum': toTypedValue(UCUM) },
    };

    const idProblem = checkResourceId(resource.id);
    if (idProblem) {
      this.add('error', 'value', `${path}.id`, idProblem, `value|${path}.id`);
    }

    // Resource-level invariants: medplum evaluates the root's error-severity ones; warnings are ours. For
    // contained resources medplum evaluates none; dom-* are written from the container's point of view
    // (and dom-6 "should have narrative" does not apply: contained resources have no narrative).
    // A profile's root invariants (us-core-6...) are all ours: medplum only runs the base definition.
    for (const c of schema.constraints ?? []) {
      if (NATIVE_CONSTRAINTS.has(c.key)) {
        continue;
      }
      if (contained ? c.key.startsWith('dom-') : c.severity === 'error' && !profiled) {
        continue;
      }
      if (profiled && c.severity === 'error' && this.baseRootConstraints.has(c.key)) {
        continue; // also in the base definition: medplum evaluated it
      }
      this.checkConstraint(c, typed, path, frame);
    }
    if (!contained) {
      this.checkContainedReferenced(resource, path);
    }
    const resourceType = resource.resourceType as string;
    const ancestors = NOT_DOMAIN_RESOURCES.has(resourceType) ? ['Resource'] : ['DomainResource', 'Resource'];
    this.walkObject(resource, scopes, path, frame, true, () => ({ types: [resourceType, ...ancestors], paths: [resourceType] }));
  }

  /** dom-3 (native: its FHIRPath needs descendants()). */
  private checkContainedReferenced(resource: Record<string, unknown>, path: string): void {
    const contained = resource.contained;
    if (!Array.isArray(contained) || contained.length === 0) {
      return;
    }
    const refs = new Set<string>();
    collectLocalReferences(resource, refs, 0);
    if (refs.has('#')) {
      return; // the contained resources refer to the container: all are reachable
    }
    contained.forEach((c, i) => {
      if (!c || typeof c !== 'object') {
        return;
      }
      const id = (c as { id?: unknown }).id;
      if (typeof id !== 'string' || !refs.has(`#${id}`)) {
        this.add(
          'error',
          'invariant',
          `${path}.contained[${i}]`,
          `Constraint dom-3 not met: If the resource is contained in another resource, it SHALL be referred to from elsewhere in the resource or SHALL refer to the containing resource (contained ${typeof id === 'string' ? `'#${id}'` : 'resource without id'} is not referenced)`,
          `invariant|dom-3|${path}.contained[${i}]`,
        );
      }
    });
  }

  private walkObject(
    obj: Record<string, unknown>,
    scopes: readonly Scope[],
    path: string,
    frame: ResourceFrame,
    isResource: boolean,
    host: HostOf,
  ): void {
    for (const scope of scopes) {
      if (scope.label) {
        this.checkProfiledChildren(obj, scope, scopes, path);
      }
    }
    let choices: Map<string, string> | undefined;
    for (const key of Object.keys(obj)) {
      if (isResource && key === 'resourceType') {
        continue;
      }
      const isPrimitiveExtension = key.startsWith('_');
      const name = isPrimitiveExtension ? key.slice(1) : key;
      let found = lookup(scopes, name);
      if (found && 'disallowed' in found) {
        const base = found.elementKey.slice(found.elementKey.lastIndexOf('.') + 1);
        this.add(
          'error',
          'structure',
          `${path}.${key}`,
          `Type '${typeFromSuffix(name.slice(base.length - 3))}' is not allowed for ${base} at ${path} (allowed: ${found.allowed.join(', ')})`,
          `choice-type|${path}.${key}`,
        );
        continue;
      }
      if (!found || (isPrimitiveExtension && !PRIMITIVES.has(found.type))) {
        this.add('error', 'structure', `${path}.${key}`, `Unknown element '${truncate(key, 64)}' at ${path}`, `unknown|${path}.${key}`);
        continue;
      }
      if (found.choiceBase) {
        choices ??= new Map();
        const previous = choices.get(found.elementKey);
        if (previous && previous !== name) {
          this.add(
            'error',
            'structure',
            `${path}.${found.choiceBase}`,
            `Only one type may be used for the choice element ${found.choiceBase}[x] at ${path}, found '${previous}' and '${name}'`,
            `choice|${path}.${found.elementKey}`,
          );
        }
        choices.set(found.elementKey, name);
      }
      if (found.scope.label) {
        const baseFound = lookup(
          scopes.filter((sc) => !sc.label),
          name,
        );
        found = { ...found, base: baseFound && !('disallowed' in baseFound) ? baseFound.element : undefined };
      }
      const segment = found.choiceBase ? choiceSegment(found.choiceBase, typeFromSuffix(found.type)) : name;
      const value = obj[key];
      if (!this.checkJsonShape(obj, key, name, found, `${path}.${segment}`, isPrimitiveExtension)) continue;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          this.walkValue(value[i], found, `${path}.${segment}[${i}]`, frame, isPrimitiveExtension, host);
        }
      } else {
        this.walkValue(value, found, `${path}.${segment}`, frame, isPrimitiveExtension, host);
      }
    }
  }

  /**
   * The JSON representation's own rules (R4 json.html), which the HL7 validator enforces and medplum does not:
   * no empty arrays; a list as an array and a single value as no array, for `x` and for its `_x` alike; `_x` beside a
   * list of the same length (null marks an entry without the other half); null nowhere else; no `_x` where the
   * element is a FHIRPath System type (Resource.id, Element.id, Extension.url: they cannot carry extensions); and a
   * primitive element needs a value or an extension. Issues are reported at the element (`Patient.gender`, never
   * `Patient._gender`). False when the value must not be walked further.
   */
  private checkJsonShape(
    obj: Record<string, unknown>,
    key: string,
    name: string,
    found: Found,
    elementPath: string,
    isPrimitiveExtension: boolean,
  ): boolean {
    const value = obj[key];
    const list = found.element.isArray === true || found.element.max > 1;
    // Resource.id, Element.id and Extension.url are FHIRPath System types in R4 (medplum's schemas say "string").
    if (isPrimitiveExtension && (name === 'id' || found.element.path === 'Extension.url')) {
      this.add(
        'error',
        'structure',
        elementPath,
        `${elementPath} cannot have extensions or an id (no '${key}' is allowed)`,
        `json|no-ext|${elementPath}`,
      );
      return false;
    }
    if (Array.isArray(value)) {
      if (value.length === 0) {
        this.add(
          'error',
          'structure',
          elementPath,
          `Arrays must not be empty in FHIR JSON ('${key}': [])`,
          `json|empty-array|${elementPath}`,
        );
        return false;
      }
      if (!list) {
        this.add(
          'error',
          'structure',
          elementPath,
          `${elementPath} has at most one value: it must not be a JSON array ('${key}')`,
          `json|not-list|${elementPath}`,
        );
        return false;
      }
      const other = obj[isPrimitiveExtension ? name : `_${name}`];
      if (Array.isArray(other) && other.length !== value.length) {
        this.add(
          'error',
          'structure',
          elementPath,
          `'${name}' and '_${name}' must have the same number of entries (${isPrimitiveExtension ? other.length : value.length} and ${isPrimitiveExtension ? value.length : other.length})`,
          `json|aligned|${elementPath}`,
        );
        return false;
      }
      if (isPrimitiveExtension || PRIMITIVES.has(found.type)) {
        value.forEach((item, i) => {
          // null only holds a place: the entry's other half (value or extension) must be there. (medplum reports
          // nulls elsewhere: in lists of complex values and as single values.)
          if (item === null && (!Array.isArray(other) || other[i] === null || other[i] === undefined)) {
            this.add(
              'error',
              'structure',
              `${elementPath}[${i}]`,
              `null is only allowed in '${name}' or '_${name}' where the other one has that entry`,
              `json|null|${elementPath}[${i}]`,
            );
          }
        });
      }
      return true;
    }
    if (list && value !== null && (isPrimitiveExtension || PRIMITIVES.has(found.type) || typeof value === 'object')) {
      this.add('error', 'structure', elementPath, `${elementPath} is a list: '${key}' must be a JSON array`, `json|list|${elementPath}`);
      return false;
    }
    if (value === null) return false; // medplum reports it
    if (isPrimitiveExtension && typeof value === 'object' && Object.keys(value as object).length > 0) {
      const extension = (value as Record<string, unknown>).extension;
      const hasExtension = Array.isArray(extension) && extension.length > 0;
      if (!hasExtension && (obj[name] === undefined || obj[name] === null)) {
        this.add(
          'error',
          'invariant',
          elementPath,
          'Constraint ele-1 not met: a primitive element needs a value or an extension',
          `invariant|ele-1|${elementPath}`,
        );
      }
    }
    return true;
  }

  /** `parent`: the host of the object holding this value (what an extension found here sits on). */
  private walkValue(value: unknown, found: Found, path: string, frame: ResourceFrame, isPrimitiveExtension: boolean, parent: HostOf): void {
    if (value === null || value === undefined) {
      return; // medplum reports misplaced nulls
    }
    const type = found.type;
    if (isPrimitiveExtension) {
      if (typeof value !== 'object' || Array.isArray(value)) {
        this.add('error', 'structure', path, `The '_' element of a primitive must be an object with id and/or extension`);
        return;
      }
      const element = value as Record<string, unknown>;
      if (Object.keys(element).length === 0) {
        this.add('error', 'structure', path, 'Objects must not be empty in FHIR JSON ({})', `json|empty-object|${path}`);
        return;
      }
      const elementSchema = tryGetDataType('Element');
      if (elementSchema) {
        // The extensions of a primitive sit on the primitive element itself (HumanName.family).
        const host = (): ExtensionHost => elementHost(type, found.element.path, path);
        this.walkObject(element, [{ elements: elementSchema.elements, prefix: '' }], path, frame, false, host);
      }
      return;
    }

    if (PRIMITIVES.has(type)) {
      if (typeof value === 'object') {
        // medplum reports arrays, but takes an object for a primitive's extension part and says nothing
        // (e.g. { "$ne": "x" } where a code belongs).
        if (!Array.isArray(value)) {
          this.add(
            'error',
            'structure',
            path,
            `Invalid JSON type: ${displayPrimitive(type)} must be a JSON ${jsonTypeOf(type)}, not an object`,
            `jsontype|${path}`,
          );
        }
        return;
      }
      this.checkPrimitiveValue(type, value, path);
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        this.checkPrimitiveBinding(found.element, type, String(value), path);
        this.checkElementConstraints(found, { type, value }, path, frame, undefined);
      }
      if (type === 'xhtml' && typeof value === 'string') {
        for (const p of checkNarrativeDiv(value)) {
          this.add('error', 'invariant', path, `Constraint ${p.key} not met: ${p.message}`, `invariant|${p.key}|${path}|${p.message}`);
        }
      }
      return;
    }

    if (typeof value !== 'object') {
      // medplum says nothing of a string, number or boolean where an object belongs (`"meta": "x"`, `"class": 5`):
      // stored, `{...meta}` would spread a string into `{"0": "x"}`.
      this.add('error', 'structure', path, `Invalid JSON type: ${type} must be a JSON object, not a ${typeof value}`, `jsontype|${path}`);
      return;
    }
    if (Array.isArray(value)) {
      return; // an array where one value belongs: medplum reports it
    }
    const obj = value as Record<string, unknown>;

    if (type === 'Resource' || isResourceType(type)) {
      const resourceType = obj.resourceType;
      if (typeof resourceType !== 'string' || !isResourceType(resourceType)) {
        this.add(
          'error',
          'structure',
          path,
          typeof resourceType === 'string'
            ? `Unknown resource type '${truncate(resourceType, 64)}' in ${path}`
            : `Resource at ${path} has no resourceType`,
          `rt|${path}`,
        );
        return;
      }
      const schema = tryGetDataType(resourceType);
      if (schema) {
        this.walkResource(obj, schema, [{ elements: schema.elements, prefix: '' }], path, true);
      }
      return;
    }

    const keys = Object.keys(obj);
    if (keys.length === 0) {
      this.add('error', 'structure', path, 'Objects must not be empty in FHIR JSON ({})', `json|empty-object|${path}`);
      return;
    }
    if (keys.every((k) => k === 'id')) {
      this.add(
        'error',
        'invariant',
        path,
        'Constraint ele-1 not met: All FHIR elements must have a @value or children',
        `invariant|ele-1|${path}`,
      );
    }

    const typed: TypedValue = { type, value: obj };
    const typeSchema = tryGetDataType(type);
    this.checkComplexBinding(found.element, type, obj, path);
    this.checkElementConstraints(found, typed, path, frame, typeSchema);

    // Scopes for the children: a matching slice or extension definition first, then the profile's own
    // definitions of this element's children (dotted keys or a backbone type), then the base type.
    const scopes: Scope[] = [];
    const extensionUrl = type === 'Extension' && typeof obj.url === 'string' ? obj.url : undefined;
    const extension = extensionUrl ? this.services.extension(extensionUrl) : undefined;
    if (extension) this.checkExtensionContext(extension, parent(), path);
    if (extension) {
      scopes.push({ elements: extension.schema.elements, prefix: '', innerTypes: innerTypesOf(extension.schema), label: extension.label });
      this.checkExtensionRootConstraints(extension, typed, path, frame);
    } else if (found.element.slicing) {
      const slice = matchSlice(found.element.slicing, obj);
      if (slice) {
        scopes.push({ elements: slice.elements, prefix: '', label: found.scope.label ?? this.options.label ?? 'profile' });
        this.checkSliceBinding(slice, type, obj, path);
      }
    }
    const inner = found.scope.innerTypes?.get(type);
    if (inner) {
      scopes.push({ elements: inner.elements, prefix: '', innerTypes: found.scope.innerTypes, label: found.scope.label });
    } else {
      const childPrefix = `${found.elementKey}.`;
      if (indexElements(found.scope.elements).parents.has(childPrefix)) {
        scopes.push({ elements: found.scope.elements, prefix: childPrefix, innerTypes: found.scope.innerTypes, label: found.scope.label });
      }
    }
    if (typeSchema) {
      scopes.push({ elements: typeSchema.elements, prefix: '' });
    }
    if (scopes.length === 0) {
      return;
    }
    const host = (): ExtensionHost => {
      if (extensionUrl) return { types: ['Extension', 'Element'], paths: ['Extension'], extensionUrl };
      const innerType = found.scope.innerTypes?.get(type);
      const backbone = innerType !== undefined || (!typeSchema && type !== 'Element');
      // A backbone type's own definition path: OperationDefinition.parameter.part is an OperationDefinition.parameter
      // (a contentReference), and its inner type says so through its elements' paths.
      const ownPath = innerType?.elements.id?.path?.replace(/\.id$/, '');
      return elementHost(backbone ? 'BackboneElement' : type, found.element.path, path, ownPath);
    };
    this.walkObject(obj, scopes, path, frame, false, host);
  }

  /**
   * An extension used where its definition allows (StructureDefinition.context): an element context names a type
   * (or one it specialises) or a definition path, an extension context the url of the extension it may sit in.
   * FHIRPath contexts are not evaluated (they pass). The HL7 validator refuses the same misplacements.
   */
  private checkExtensionContext(extension: ExtensionDefinition, host: ExtensionHost, path: string): void {
    if (extension.contexts.length === 0) return;
    const allowed = extension.contexts.some((context) => {
      if (context.type === 'fhirpath') return true;
      if (context.type === 'extension') return host.extensionUrl === context.expression;
      // "Element" (and "Base") mean anywhere, resource roots included, as the HL7 validator reads them (R4's own
      // conformance resources carry structuredefinition-wg, whose context is Element, on their roots).
      if (context.expression === 'Element' || context.expression === 'Base') return true;
      return host.types.includes(context.expression) || host.paths.includes(context.expression);
    });
    if (allowed) return;
    const where = extension.contexts.map((c) => (c.type === 'element' ? c.expression : `${c.type} ${c.expression}`)).join(', ');
    const here = host.extensionUrl ? `the extension ${host.extensionUrl}` : `${host.paths.join(' / ')} (${host.types[0]})`;
    this.add(
      'error',
      'structure',
      path,
      `The extension ${extension.url} is not allowed on ${here}: its definition allows it on ${where}`,
      `ext-context|${path}`,
    );
  }

  private checkPrimitiveValue(type: string, value: unknown, path: string): void {
    const problem = checkPrimitive(type, value);
    if (!problem) {
      return;
    }
    // Report only what medplum lets through: where its own regex already fails, it reports the value.
    const medplumRegex = validationRegexes[type];
    if (typeof value === 'string' && value !== '' && medplumRegex && !medplumRegex.test(value)) {
      return;
    }
    this.add('error', 'value', path, problem, `value|${path}`);
  }

  // -------------------------------------------------------------------------------------------
  // invariants

  /**
   * Element-level invariants medplum does not evaluate — warning severity, and, for elements defined by a
   * profile/extension/slice, the error ones the base element does not carry — plus the invariants declared
   * on the value's datatype (or a type profile such as SimpleQuantity) that the element does not repeat
   * (cpt-2, per-1, ref-1, qty-3, sqty-1...).
   */
  private checkElementConstraints(
    found: Found,
    typed: TypedValue,
    path: string,
    frame: ResourceFrame,
    typeSchema: InternalTypeSchema | undefined,
  ): void {
    const onElement = found.element.constraints ?? [];
    const medplumChecked = new Set(
      (found.scope.label ? (found.base?.constraints ?? []) : onElement).filter((c) => c.severity === 'error').map((c) => c.key),
    );
    for (const c of onElement) {
      if (!NATIVE_CONSTRAINTS.has(c.key) && !medplumChecked.has(c.key)) {
        this.checkConstraint(c, typed, path, frame, found.scope.label);
      }
    }
    const typeConstraints: ConstraintLike[] = [...(typeSchema?.constraints ?? [])];
    for (const t of found.element.type ?? []) {
      if (t.code !== typed.type) {
        continue;
      }
      for (const profileUrl of t.profile ?? []) {
        const profile = tryGetProfile(profileUrl);
        if (profile?.constraints) {
          typeConstraints.push(...profile.constraints);
        }
      }
    }
    if (typeConstraints.length === 0) {
      return;
    }
    const declared = new Set(onElement.map((c) => c.key));
    for (const c of typeConstraints) {
      if (!declared.has(c.key) && !NATIVE_CONSTRAINTS.has(c.key)) {
        declared.add(c.key);
        this.checkConstraint(c, typed, path, frame);
      }
    }
  }

  /** An extension definition's own root invariants (ext-1 is already checked on the element). */
  private checkExtensionRootConstraints(extension: ExtensionDefinition, typed: TypedValue, path: string, frame: ResourceFrame): void {
    for (const c of extension.schema.constraints ?? []) {
      if (!NATIVE_CONSTRAINTS.has(c.key) && c.key !== 'ext-1') {
        this.checkConstraint(c, typed, path, frame, extension.label);
      }
    }
  }

  private checkConstraint(c: ConstraintLike, typed: TypedValue, path: string, frame: ResourceFrame, label?: string): void {
    const compiled: CompiledConstraint = this.services.engine.compile(c);
    const ok = this.services.engine.evaluate(compiled, typed, frame.variables);
    if (ok === false) {
      this.add(
        c.severity === 'warning' ? 'warning' : 'error',
        'invariant',
        path,
        `Constraint ${c.key} not met: ${c.description} (FHIRPath: ${c.expression})`,
        `invariant|${c.key}|${path}`,
        label,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // structure added by profiles, extension definitions and slices

  /**
   * Cardinality, fixed/pattern values and slicing of the elements a profiled scope defines at this level.
   * Cardinalities equal to the base element's are skipped: medplum reports those from the base definition.
   */
  private checkProfiledChildren(obj: Record<string, unknown>, scope: Scope, scopes: readonly Scope[], path: string): void {
    const baseScopes = scopes.filter((sc) => !sc.label);
    for (const key of childrenOf(scope.elements, scope.prefix)) {
      const element = scope.elements[key] as InternalSchemaElement;
      const name = key.slice(scope.prefix.length);
      const isChoice = name.endsWith('[x]');
      const shortName = isChoice ? name.slice(0, -3) : name;
      const values = valuesOf(obj, shortName, isChoice);
      const count = values.count;
      const base = baseScopes.length ? lookup(baseScopes, isChoice ? (firstChoiceKey(obj, shortName) ?? name) : name) : undefined;
      const baseElement = base && !('disallowed' in base) ? base.element : undefined;
      const sameAsBase = baseElement && baseElement.min === element.min && baseElement.max === element.max;
      const where = `${path}.${shortName}`;
      if (!sameAsBase) {
        if (count < element.min) {
          this.add(
            'error',
            'required',
            where,
            count === 0
              ? `Missing required element '${shortName}' (minimum cardinality ${element.min})`
              : `${where} has ${count} value(s); at least ${element.min} required`,
            count === 0 ? `required|${where}` : `card|${where}`,
            scope.label,
          );
        } else if (count > element.max) {
          this.add(
            'error',
            'structure',
            where,
            element.max === 0
              ? `Element '${shortName}' is not allowed here (maximum cardinality 0)`
              : `${where} has ${count} value(s); at most ${element.max} allowed`,
            `card|${where}`,
            scope.label,
          );
        }
      }
      const expected = element.fixed ?? element.pattern;
      if (expected && count > 0) {
        const fixed = !!element.fixed;
        values.items.forEach((v, i) => {
          if (v === null || v === undefined) {
            return;
          }
          if (!(fixed ? deepEqual(v, expected.value) : deepContains(v, expected.value))) {
            const at = values.array ? `${where}[${i}]` : where;
            this.add(
              'error',
              'value',
              at,
              `${at} must ${fixed ? 'be exactly' : 'match the pattern'} ${truncate(JSON.stringify(expected.value), 200)}`,
              `pattern|${at}`,
              scope.label,
            );
          }
        });
      }
      if (element.slicing) {
        this.checkSlices(element.slicing, values.items, where, scope.label);
      }
    }
  }

  private checkSlices(slicing: SlicingRules, items: unknown[], where: string, label: string | undefined): void {
    const counts = new Map<string, number>();
    items.forEach((item, i) => {
      const slice = item && typeof item === 'object' ? matchSlice(slicing, item as Record<string, unknown>) : undefined;
      if (slice) {
        counts.set(slice.name, (counts.get(slice.name) ?? 0) + 1);
      } else if (slicing.rule === 'closed') {
        this.add(
          'error',
          'structure',
          `${where}[${i}]`,
          `${where}[${i}] matches none of the slices of a closed slicing`,
          `slice-closed|${where}[${i}]`,
          label,
        );
      }
    });
    for (const slice of slicing.slices) {
      const n = counts.get(slice.name) ?? 0;
      if (n < slice.min || n > slice.max) {
        this.add(
          'error',
          n < slice.min ? 'required' : 'structure',
          where,
          `${where} has ${n} value(s) for the slice '${slice.name}'; allowed ${slice.min}..${Number.isFinite(slice.max) ? slice.max : '*'}`,
          `slice|${where}|${slice.name}`,
          label,
        );
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // bindings

  private bindingOf(element: {
    binding?: InternalSchemaElement['binding'];
  }): { strength: 'required' | 'extensible'; canonical: string; vs: ExpandedValueSet } | undefined {
    const binding = element.binding;
    if (!binding?.valueSet || (binding.strength !== 'required' && binding.strength !== 'extensible')) {
      return undefined;
    }
    const vs = this.services.terminology.expand(binding.valueSet);
    if (!vs) {
      this.services.logger.once(
        `vs-missing:${binding.valueSet}`,
        `value set ${binding.valueSet} is not available: ${binding.strength} bindings to it are not checked`,
      );
      return undefined;
    }
    if (vs.incomplete) {
      this.services.logger.once(
        `vs-incomplete:${binding.valueSet}`,
        `value set ${binding.valueSet} cannot be fully expanded offline (${vs.notes.join('; ')}): codes outside what we can enumerate are accepted`,
      );
    }
    return { strength: binding.strength, canonical: binding.valueSet, vs };
  }

  private checkPrimitiveBinding(element: InternalSchemaElement, type: string, code: string, path: string): void {
    if ((type !== 'code' && type !== 'string' && type !== 'uri') || code === '') {
      return; // an empty string is reported as an invalid value already
    }
    const b = this.bindingOf(element);
    if (!b) {
      return;
    }
    if (checkCode(b.vs, undefined, code).inValueSet === false) {
      this.reportBinding(b, path, `Value '${truncate(code)}' is not`, `binding|${path}|${stripVersion(b.canonical)}|${code}`);
    }
  }

  private checkComplexBinding(element: InternalSchemaElement, type: string, obj: Record<string, unknown>, path: string): void {
    const b = this.bindingOf(element);
    if (b) {
      this.checkCodedValue(b, type, obj, path);
    }
  }

  private checkSliceBinding(
    slice: { binding?: InternalSchemaElement['binding'] },
    type: string,
    obj: Record<string, unknown>,
    path: string,
  ): void {
    const b = this.bindingOf(slice);
    if (b) {
      this.checkCodedValue(b, type, obj, path);
    }
  }

  private checkCodedValue(
    b: { strength: 'required' | 'extensible'; canonical: string; vs: ExpandedValueSet },
    type: string,
    obj: Record<string, unknown>,
    path: string,
  ): void {
    const key = `binding|${path}|${stripVersion(b.canonical)}`;
    if (type === 'Coding') {
      const coding = obj as Coding;
      if (typeof coding.code !== 'string') {
        return;
      }
      if (checkCode(b.vs, str(coding.system), coding.code).inValueSet === false) {
        this.reportBinding(b, path, `Coding ${describeCoding(coding)} is not`, key);
      }
    } else if (type === 'CodeableConcept') {
      const codings = Array.isArray(obj.coding) ? (obj.coding as Coding[]).filter((c) => c && typeof c === 'object') : [];
      const coded = codings.filter((c) => typeof c.code === 'string');
      if (coded.length === 0) {
        if (b.strength === 'required') {
          this.add(
            'error',
            'code-invalid',
            path,
            `No coding provided: a code from the required value set ${b.canonical} is needed (allowed: ${describeAllowed(b.vs)})`,
            key,
          );
        }
        return;
      }
      const results = coded.map((c) => checkCode(b.vs, str(c.system), c.code as string).inValueSet);
      if (results.every((r) => r === false)) {
        this.reportBinding(b, path, `None of the codings (${coded.map(describeCoding).join(', ')}) is`, key);
      }
    } else if (QUANTITY_TYPES.has(type)) {
      if (typeof obj.code !== 'string') {
        return;
      }
      if (checkCode(b.vs, str(obj.system), obj.code).inValueSet === false) {
        this.reportBinding(b, path, `Unit ${str(obj.system) ?? '(no system)'}|${obj.code} is not`, key);
      }
    }
  }

  /** `what` completes "... in the <strength> value set": e.g. "Value 'x' is not" / "None of the codings (...) is". */
  private reportBinding(
    b: { strength: 'required' | 'extensible'; canonical: string; vs: ExpandedValueSet },
    path: string,
    what: string,
    key: string,
  ): void {
    const allowed = describeAllowed(b.vs);
    if (b.strength === 'required') {
      this.add('error', 'code-invalid', path, `${what} in the required value set ${b.canonical} (allowed: ${allowed})`, key);
    } else {
      this.add(
        'warning',
        'code-invalid',
        path,
        `${what} in the extensible value set ${b.canonical} (use one of: ${allowed}; another code is allowed only when none of these fits)`,
        key,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** Finds the slice an item belongs to, for value/pattern discriminators (the common case). */
function matchSlice(slicing: SlicingRules, item: Record<string, unknown>): SlicingRules['slices'][number] | undefined {
  if (!slicing.discriminator.length) {
    return undefined;
  }
  for (const slice of slicing.slices) {
    let all = true;
    for (const d of slicing.discriminator) {
      if (d.type !== 'value' && d.type !== 'pattern') {
        all = false;
        break;
      }
      const def = d.path === '$this' ? slice : slice.elements[d.path];
      let expected = def?.fixed ?? def?.pattern;
      let fixed = !!def?.fixed;
      if (!expected && d.path === 'url' && slice.type?.[0]?.profile?.[0]) {
        // Extension slices discriminated by url: the value is the extension definition's canonical.
        expected = { type: 'uri', value: (slice.type[0].profile[0] as string).split('|')[0] };
        fixed = true;
      }
      if (!expected) {
        all = false;
        break;
      }
      const actual = valuesAt(item, d.path);
      if (!actual.some((a) => (fixed ? deepEqual(a, expected.value) : deepContains(a, expected.value)))) {
        all = false;
        break;
      }
    }
    if (all) {
      return slice;
    }
  }
  return undefined;
}

function valuesAt(item: unknown, path: string): unknown[] {
  if (path === '$this') {
    return [item];
  }
  let current: unknown[] = [item];
  for (const part of path.split('.')) {
    const next: unknown[] = [];
    for (const c of current) {
      if (c && typeof c === 'object' && !Array.isArray(c) && Object.hasOwn(c, part)) {
        const v = (c as Record<string, unknown>)[part];
        if (Array.isArray(v)) {
          next.push(...v);
        } else if (v !== undefined) {
          next.push(v);
        }
      }
    }
    current = next;
  }
  return current;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || !a || !b) {
    return false;
  }
  if (Array.isArray(a) !== Array.isArray(b)) {
    return false;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** pattern semantics: every property of the pattern is present (recursively) in the value */
function deepContains(value: unknown, pattern: unknown): boolean {
  if (pattern === null || typeof pattern !== 'object') {
    return value === pattern;
  }
  if (Array.isArray(pattern)) {
    return Array.isArray(value) && pattern.every((p) => value.some((v) => deepContains(v, p)));
  }
  if (!value || typeof value !== 'object') {
    return false;
  }
  return Object.entries(pattern).every(([k, p]) => deepContains((value as Record<string, unknown>)[k], p));
}

/** Collects '#...' local references (Reference.reference and canonical/uri values) anywhere in the resource. */
function collectLocalReferences(value: unknown, out: Set<string>, depth: number): void {
  if (depth > 200) {
    return;
  }
  if (typeof value === 'string') {
    if (value.startsWith('#')) {
      out.add(value);
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) {
      collectLocalReferences(v, out, depth + 1);
    }
  } else if (value && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      if (key === 'div') {
        continue; // narrative anchors are not references
      }
      collectLocalReferences((value as Record<string, unknown>)[key], out, depth + 1);
    }
  }
}

/** The values of one element in an object: `name` (and `_name`), or every `nameXxx` variant of a choice. */
function valuesOf(obj: Record<string, unknown>, name: string, isChoice: boolean): { count: number; items: unknown[]; array: boolean } {
  if (isChoice) {
    const items: unknown[] = [];
    const seen = new Set<string>();
    for (const k of Object.keys(obj)) {
      const bare = k.startsWith('_') ? k.slice(1) : k;
      if (bare.length > name.length && bare.startsWith(name) && /[A-Z]/.test(bare.charAt(name.length)) && !seen.has(bare)) {
        seen.add(bare);
        items.push(Object.hasOwn(obj, bare) ? obj[bare] : undefined);
      }
    }
    return { count: items.length, items, array: false };
  }
  const v = Object.hasOwn(obj, name) ? obj[name] : undefined;
  const ext = Object.hasOwn(obj, `_${name}`) ? obj[`_${name}`] : undefined;
  if (Array.isArray(v)) {
    return { count: v.length, items: v, array: true };
  }
  if (v !== undefined && v !== null) {
    return { count: 1, items: [v], array: false };
  }
  if (Array.isArray(ext)) {
    return { count: ext.length, items: [], array: true };
  }
  return ext !== undefined && ext !== null ? { count: 1, items: [], array: false } : { count: 0, items: [], array: false };
}

function jsonTypeOf(type: string): string {
  if (type === 'boolean') {
    return 'boolean';
  }
  return type === 'decimal' || type === 'integer' || type === 'positiveInt' || type === 'unsignedInt' ? 'number' : 'string';
}

function displayPrimitive(type: string): string {
  return type.startsWith('http://hl7.org/fhirpath/System.') ? 'string' : type;
}

function firstChoiceKey(obj: Record<string, unknown>, base: string): string | undefined {
  return Object.keys(obj).find((k) => k.length > base.length && k.startsWith(base) && /[A-Z]/.test(k.charAt(base.length)));
}

function describeCoding(c: Coding): string {
  return `${c.system ?? '(no system)'}|${c.code ?? ''}`;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function stripVersion(canonical: string): string {
  const bar = canonical.indexOf('|');
  return bar >= 0 ? canonical.slice(0, bar) : canonical;
}

/** Resources that are not DomainResources (no text, contained, extensions of their own). */
const NOT_DOMAIN_RESOURCES: ReadonlySet<string> = new Set(['Bundle', 'Binary', 'Parameters']);

/** The host of an extension on an element of `type` defined at `definitionPath`, at instance path `path`. */
function elementHost(type: string, definitionPath: string, path: string, ownPath?: string): ExtensionHost {
  const types = [type];
  if (QUANTITY_TYPES.has(type) && type !== 'Quantity') types.push('Quantity');
  if (type !== 'Element') types.push('Element');
  // Resource-rooted: the instance path without positions (Patient.name[0].family -> Patient.name.family). A
  // recursive element (PlanDefinition.action.action, Questionnaire.item.item: a contentReference to the outer one)
  // is also its outer element.
  const rooted = path.replace(/\[\d+\]/g, '');
  const paths = new Set([definitionPath, rooted, collapseRepeats(definitionPath), collapseRepeats(rooted)]);
  if (ownPath) paths.add(ownPath);
  return { types, paths: [...paths] };
}

/** A path with runs of the same segment made one (PlanDefinition.action.action.action -> PlanDefinition.action). */
function collapseRepeats(path: string): string {
  return path
    .split('.')
    .filter((segment, i, all) => i === 0 || segment !== all[i - 1])
    .join('.');
}
