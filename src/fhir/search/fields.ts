/**
 * Where each parameter's index values live in a head document. Keys are the parameter codes, so idx stays
 * compact and readable (`idx.birthdate`, `idx.identifier`); derived values sit beside them under a suffix:
 *
 * | key             | holds                                                                              |
 * |-----------------|------------------------------------------------------------------------------------|
 * | `code`          | the normalised values (folded strings, token variants, "Type/id", {lo, hi}, ...)   |
 * |                 | composite: tuples {componentCode: value, ...}, the components' normal forms         |
 * | `code:x`        | string: the values as written, for :exact                                          |
 * | `code:t`        | token: folded display texts (CodeableConcept.text, Coding.display, ...), for :text |
 * | `code:o`        | token on Identifier: "typeSystem|typeCode|value", for :of-type                     |
 * | `code:i`        | reference: identifier tokens of the references, for :identifier                    |
 * | `code:a`/`:d`   | array-valued parameters: the least / greatest value, the scalar keys _sort uses     |
 *
 * A single-valued parameter (at most one value by the StructureDefinitions) is stored as a scalar; others as
 * arrays. _id and _lastUpdated are not copied: they are the head's own `id` and `lastUpdated`.
 */
export const SUFFIX = {
  exact: ':x',
  text: ':t',
  ofType: ':o',
  identifier: ':i',
  asc: ':a',
  desc: ':d',
} as const;

export type Suffix = (typeof SUFFIX)[keyof typeof SUFFIX];

/** Key inside idx. */
export function idxKey(code: string, suffix: Suffix | '' = ''): string {
  return `${code}${suffix}`;
}

/** Dotted path of a head document field. */
export function idxPath(code: string, suffix: Suffix | '' = ''): string {
  return `idx.${idxKey(code, suffix)}`;
}

/** Open ends of a Period: the earliest and latest instants a JavaScript Date (and BSON) can hold. */
export const MIN_DATE = new Date(-8_640_000_000_000_000);
export const MAX_DATE = new Date(8_640_000_000_000_000);
