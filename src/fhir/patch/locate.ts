/**
 * Finding *where* in the JSON a FHIRPath expression points.
 *
 * @medplum/core's FHIRPath engine (4.5.2) answers "which values", as TypedValue {type, value}. A patch needs
 * "which member of which object", to replace or delete it — and a primitive value (a string, a boolean)
 * carries no reference to where it came from. So the expression's syntax tree (parseFhirPath: FhirPathAtom,
 * DotAtom, SymbolAtom, IndexerAtom, FunctionAtom…) is walked here with locations instead of bare values:
 * - `a.b` (DotAtom) and element names (SymbolAtom) — each child value is paired with its parent object, JSON
 *   key (with the choice-type suffix, e.g. deceasedBoolean) and array index; the *typed* value still comes
 *   from medplum (getTypedPropertyValue), so types such as PatientContact match what medplum's functions
 *   expect;
 * - a resource type name at the start (`Patient`), `$this`, `%resource` / `%rootResource` / `%context`;
 * - `[n]` (IndexerAtom);
 * - filters that keep a subset of their input: where(), ofType(), first(), last(), tail(), skip(), take(),
 *   single(), and extension(url). where()/ofType() are evaluated by medplum one item at a time;
 * - anything else is evaluated by medplum as a whole, and each object it returns is found by identity in
 *   the resource; a primitive produced that way cannot be located and is reported (422, not-supported).
 * `resolve()` is refused: a patch may not reach into other resources (fhirpatch.html).
 * As a safeguard the number of locations must equal the number of values medplum's own evaluation returns.
 */
import { DotAtom, FhirPathAtom, FunctionAtom, getTypedPropertyValue, IndexerAtom, SymbolAtom, toTypedValue } from '@medplum/core';
import type { Atom, AtomContext, TypedValue } from '@medplum/core';
import { isJsonObject, type JsonObject } from './problems.js';
import { jsonKeys, resolveElement } from './schema.js';

/** A place in the resource's JSON, together with the value found there. */
export interface Location {
  readonly tv: TypedValue;
  /** the object holding the value; null for the resource itself */
  readonly parent: JsonObject | null;
  /** JSON member name in `parent`, e.g. "birthDate", "deceasedBoolean" */
  readonly key: string;
  /** set when parent[key] is an array */
  readonly index?: number;
  /** the location of `parent` */
  readonly up?: Location;
}

/** The expression is valid FHIRPath but cannot be used as a patch path. */
export class PathNotSupportedError extends Error {
  constructor(
    message: string,
    /** true when the path itself is not allowed (400), false when we cannot map it (422) */
    readonly forbidden = false,
  ) {
    super(message);
    this.name = 'PathNotSupportedError';
  }
}

const ROOT_VARIABLES = new Set(['%resource', '%rootResource', '%context']);

export class Locator {
  private readonly rootLocation: Location;
  private readonly baseContext: AtomContext;
  private identityIndex?: Map<object, Location>;

  constructor(readonly resource: JsonObject) {
    const rootTv = toTypedValue(resource);
    this.rootLocation = { tv: rootTv, parent: null, key: '' };
    this.baseContext = { variables: { '%resource': rootTv, '%rootResource': rootTv, '%context': rootTv } };
  }

  get root(): Location {
    return this.rootLocation;
  }

  /** All locations `expression` selects in the resource. Throws PathNotSupportedError or evaluation errors. */
  locate(expression: FhirPathAtom | Atom): Location[] {
    const atom = expression instanceof FhirPathAtom ? expression.child : expression;
    const context: AtomContext = { parent: this.baseContext, variables: { $this: this.rootLocation.tv } };
    const locations = this.step(atom, [this.rootLocation], context);
    const values = atom.eval(context, [this.rootLocation.tv]);
    if (values.length !== locations.length) {
      throw new PathNotSupportedError(
        `the path selects ${values.length} value(s) but ${locations.length} could be located in the resource`,
      );
    }
    return locations;
  }

  /** Children of the object at `location` named `name` (an element name, choice base name or full JSON key). */
  children(location: Location, name: string): Location[] {
    const value: unknown = location.tv.value;
    if (!isJsonObject(value)) {
      return [];
    }
    if (typeof value['resourceType'] === 'string' && value['resourceType'] === name) {
      return [location]; // a type name used as a filter, as medplum's SymbolAtom does
    }
    const found = getTypedPropertyValue(location.tv, name);
    if (found === undefined) {
      return [];
    }
    const typed = Array.isArray(found) ? found : [found];
    if (typed.length === 0) {
      return [];
    }
    const key = this.jsonKeyOf(value, location.tv.type, name);
    if (key === undefined) {
      throw new PathNotSupportedError(`cannot tell which JSON member holds "${name}"`);
    }
    const raw = value[key];
    if (Array.isArray(raw)) {
      if (raw.length !== typed.length) {
        throw new PathNotSupportedError(`cannot pair the values of "${key}" with their array positions`);
      }
      return typed.map((tv, index) => ({ tv, parent: value, key, index, up: location }));
    }
    if (typed.length !== 1) {
      throw new PathNotSupportedError(`"${key}" holds one value but ${typed.length} were found`);
    }
    return [{ tv: typed[0]!, parent: value, key, up: location }];
  }

  private jsonKeyOf(object: JsonObject, typeName: string, name: string): string | undefined {
    if (Object.hasOwn(object, name)) {
      return name;
    }
    const element = resolveElement(typeName, name);
    if (element?.info.isChoice) {
      return jsonKeys(element.info).find((k) => Object.hasOwn(object, k));
    }
    return undefined;
  }

  private step(atom: Atom, input: Location[], context: AtomContext): Location[] {
    if (atom instanceof FhirPathAtom) {
      return this.step(atom.child, input, context);
    }
    if (atom instanceof DotAtom) {
      return this.step(atom.right, this.step(atom.left, input, context), context);
    }
    if (atom instanceof SymbolAtom) {
      return this.symbol(atom, input, context);
    }
    if (atom instanceof IndexerAtom) {
      const index = atom.expr.eval(
        context,
        input.map((l) => l.tv),
      );
      if (index.length !== 1) {
        return [];
      }
      const n: unknown = index[0]!.value;
      if (typeof n !== 'number' || !Number.isInteger(n)) {
        throw new Error(`the indexer [${atom.expr.toString()}] does not give an integer`);
      }
      const list = this.step(atom.left, input, context);
      return n >= 0 && n < list.length ? [list[n]!] : [];
    }
    if (atom instanceof FunctionAtom) {
      return this.func(atom, input, context);
    }
    return this.byIdentity(atom, input, context);
  }

  private symbol(atom: SymbolAtom, input: Location[], context: AtomContext): Location[] {
    const name = atom.name;
    if (name === '$this') {
      return input;
    }
    if (name.startsWith('%') || name.startsWith('$')) {
      if (ROOT_VARIABLES.has(name)) {
        return [this.rootLocation];
      }
      // $index, $total and other variables are values, not places in the resource
      return this.byIdentity(atom, input, context);
    }
    return input.flatMap((location) => this.children(location, name));
  }

  private func(atom: FunctionAtom, input: Location[], context: AtomContext): Location[] {
    const argument = (i: number): unknown => {
      const arg = atom.args[i];
      if (!arg) throw new Error(`${atom.name}() needs an argument`);
      const values = arg.eval(
        context,
        input.map((l) => l.tv),
      );
      return values[0]?.value;
    };
    const count = (i: number): number => {
      const n = argument(i);
      if (typeof n !== 'number' || !Number.isInteger(n)) throw new Error(`${atom.name}() needs an integer argument`);
      return Math.max(0, n);
    };
    switch (atom.name) {
      case 'resolve':
        throw new PathNotSupportedError(
          'resolve() is not allowed in a patch path: a patch may only change the resource it is applied to',
          true,
        );
      case 'where':
      case 'ofType':
        return input.filter((location) => atom.eval(context, [location.tv]).length > 0);
      case 'first':
        return input.slice(0, 1);
      case 'last':
        return input.slice(-1);
      case 'tail':
        return input.slice(1);
      case 'skip':
        return input.slice(count(0));
      case 'take':
        return input.slice(0, count(0));
      case 'single':
        if (input.length > 1) throw new Error(`single() was given ${input.length} items`);
        return input;
      case 'extension': {
        const url = argument(0);
        return input
          .flatMap((location) => this.children(location, 'extension'))
          .filter((location) => isJsonObject(location.tv.value) && location.tv.value['url'] === url);
      }
      default:
        return this.byIdentity(atom, input, context);
    }
  }

  /** Evaluates `atom` with medplum and finds each resulting object in the resource by identity. */
  private byIdentity(atom: Atom, input: Location[], context: AtomContext): Location[] {
    this.refuseResolve(atom);
    const values = atom.eval(
      context,
      input.map((l) => l.tv),
    );
    return values.map((tv) => {
      const value: unknown = tv.value;
      const location = isJsonObject(value) ? this.index().get(value) : undefined;
      if (!location) {
        throw new PathNotSupportedError(
          `"${atom.toString()}" gives ${isJsonObject(value) ? 'an object' : 'a primitive value'} that cannot be located in the resource; ` +
            'write the path with element names, [index], where(), ofType(), extension(), first(), last(), tail(), skip(), take() or single()',
        );
      }
      return { ...location, tv };
    });
  }

  private refuseResolve(atom: Atom): void {
    if (/\bresolve\s*\(/.test(atom.toString())) {
      throw new PathNotSupportedError(
        'resolve() is not allowed in a patch path: a patch may only change the resource it is applied to',
        true,
      );
    }
  }

  /** Every object in the resource, with its location (built once per Locator, on demand). */
  private index(): Map<object, Location> {
    if (!this.identityIndex) {
      const index = new Map<object, Location>();
      const visit = (location: Location, depth: number): void => {
        const value: unknown = location.tv.value;
        if (!isJsonObject(value) || depth > 100) return;
        index.set(value, location);
        for (const key of Object.keys(value)) {
          if (key.startsWith('_') || key === 'resourceType') continue;
          const name = resolveElement(location.tv.type, key)?.info.name ?? key;
          let kids: Location[];
          try {
            kids = this.children(location, name);
          } catch {
            continue;
          }
          for (const kid of kids) {
            if (kid !== location) visit(kid, depth + 1);
          }
        }
      };
      visit(this.rootLocation, 0);
      this.identityIndex = index;
    }
    return this.identityIndex;
  }
}
