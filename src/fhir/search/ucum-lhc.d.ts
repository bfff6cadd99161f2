/**
 * The part of @lhncbc/ucum-lhc (which ships no type declarations) that quantity search uses.
 */
declare module '@lhncbc/ucum-lhc' {
  export interface BaseUnitsResult {
    status: 'succeeded' | 'invalid' | 'failed' | 'error';
    msg: string[];
    /** The value expressed in UCUM base units (for special units such as Cel, after their non-ratio conversion). */
    magnitude?: number;
    /** Base unit -> exponent: {g: 1, m: -3} for mg/dL. */
    unitToExp?: Record<string, number>;
    /** A special unit (Cel, [degF], [pH], ...): converted by a function rather than a factor. */
    fromUnitIsSpecial?: boolean;
  }

  export interface UcumLhcUtils {
    convertToBaseUnits(fromUnit: string, fromVal: number): BaseUnitsResult;
  }

  const ucum: {
    UcumLhcUtils: { getInstance(): UcumLhcUtils };
  };
  export default ucum;
}
