/**
 * UCUM unit conversion for quantity search (FHIR R4 search.html#quantity: a server may compare quantities in
 * canonical units).
 *
 * A quantity whose system is http://unitsofmeasure.org and whose code is a UCUM unit that converts by a factor
 * is stored with its value in UCUM base units (`cv`) and the dimension of those units (`cc`, e.g. "s", "g",
 * "m3", "g.m-3"); a search value in a UCUM unit is converted the same way, so 90 min and 1.5 h compare equal.
 *
 * Conversion is @lhncbc/ucum-lhc's (the US National Library of Medicine's UCUM implementation, maintained and
 * released regularly): it carries the full UCUM table and works offline, so every UCUM unit converts, not just
 * a list we would keep by hand. UCUM defines the calendar units as Julian: `a` = 365.25 d and `mo` = a/12 = 30.4375 d
 * (`a_g`/`mo_g` are the Gregorian ones, `wk` = 7 d).
 *
 * Not converted (they fall back to an exact system|code match): special units converted by a function rather
 * than a factor (Cel, [degF], [pH], ...: a precision range or an "approximately" margin does not carry over
 * through them), arbitrary units ([IU], [arb'U]: not comparable even with themselves across substances), and
 * anything that is not valid UCUM.
 */
import ucum from '@lhncbc/ucum-lhc';

export const UCUM_SYSTEM = 'http://unitsofmeasure.org';

/** How one UCUM unit converts to base units: value * factor, in the dimension `unit`. */
export interface CanonicalUnit {
  factor: number;
  /** The base units with their exponents, sorted ("g.m-3"); "1" for dimensionless units (%, 10*3, ...). */
  unit: string;
}

/** Unit codes come from queries too: the cache is bounded so that odd strings cannot grow it without end. */
const MAX_CACHED_UNITS = 10_000;
const MAX_UNIT_LENGTH = 100;
const cache = new Map<string, CanonicalUnit | null>();

let utils: ReturnType<typeof ucum.UcumLhcUtils.getInstance> | undefined;

function lookUp(code: string): CanonicalUnit | null {
  // The library logs to the console for an empty expression; such codes are never UCUM units anyway.
  if (code.trim() === '' || code.length > MAX_UNIT_LENGTH) return null;
  utils ??= ucum.UcumLhcUtils.getInstance();
  let result;
  try {
    result = utils.convertToBaseUnits(code, 1);
  } catch {
    return null;
  }
  if (result.status !== 'succeeded' || result.fromUnitIsSpecial || typeof result.magnitude !== 'number') return null;
  if (!Number.isFinite(result.magnitude) || result.magnitude <= 0) return null;
  const dimensions = Object.entries(result.unitToExp ?? {})
    .filter(([, exponent]) => exponent !== 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([base, exponent]) => (exponent === 1 ? base : `${base}${exponent}`));
  return { factor: result.magnitude, unit: dimensions.length > 0 ? dimensions.join('.') : '1' };
}

/** The conversion of a UCUM unit code to base units, or undefined when it does not convert by a factor. */
export function canonicalUnit(code: string): CanonicalUnit | undefined {
  let entry = cache.get(code);
  if (entry === undefined) {
    entry = lookUp(code);
    if (cache.size >= MAX_CACHED_UNITS) cache.clear();
    cache.set(code, entry);
  }
  return entry ?? undefined;
}

/**
 * A value in base units. Rounded to 12 significant digits so that the same amount written in different units
 * compares equal (5 ug and 0.005 mg are 5e-6 g, not 4.999999999999999e-6 g); clinical quantities never
 * carry that many digits.
 */
export function toCanonical(value: number, unit: CanonicalUnit): number {
  return Number((value * unit.factor).toPrecision(12));
}
