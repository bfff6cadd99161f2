/**
 * Decimals keep the digits they were written with. FHIR's decimal is a precision-carrying value: "2.00 mg" says
 * more than "2 mg", and XML carries the text. JSON.parse turns `2.00` into the number 2, so the text has to be
 * kept beside it:
 *
 * - In memory, a resource keeps its numbers as JavaScript numbers (validation, FHIRPath and search use them), and
 *   each object or array that holds a number written otherwise than its shortest form ("2.00", "1.0e3", "-0") holds
 *   that text under a non-enumerable symbol, by key (an array's by index). Nothing that enumerates, spreads,
 *   stringifies or stores the resource sees it.
 * - Parsing sets it: FHIR JSON (json-text.ts: when the text has such a number, a second, lossless parse by
 *   lossless-json finds where) and FHIR XML (the value attribute is the text).
 * - Writing reads it: JSON with the exact digits (stringifyFhirJson), XML with them in the value attribute. A text
 *   is used only while the number beside it still has the value it denotes, so a changed value is never written with
 *   stale digits.
 * - Storage keeps them beside the resource as a map of JSON pointers to texts (collectDecimalText / applyDecimalText),
 *   and copies made of a resource carry them (copyDecimalText after structuredClone; the patch engine's clone).
 *
 * The ledger's commitment is over RFC 8785 canonical JSON, whose numbers are the shortest form by definition: it
 * commits to a decimal's value, not to its trailing zeros (docs/trust-model.md).
 */
import { randomBytes } from 'node:crypto';

const DECIMAL_TEXT: unique symbol = Symbol('fhir.decimalText');
/** Set on a resource whose tree holds decimal text somewhere: lets a writer skip the search for it otherwise. */
const HOLDS_DECIMAL_TEXT: unique symbol = Symbol('fhir.holdsDecimalText');

interface Holder {
  [DECIMAL_TEXT]?: Map<string, string>;
  [HOLDS_DECIMAL_TEXT]?: true;
}

/** Whether a number written as `text` needs its text kept: its shortest form is written differently. */
export function needsDecimalText(text: string): boolean {
  return String(Number(text)) !== text;
}

function defineHidden(target: object, key: symbol, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: false, writable: true, configurable: true });
}

/** Records the text a number under `key` of `holder` was written with (when it differs from its shortest form). */
export function setDecimalText(holder: object, key: string, text: string): void {
  const target = holder as Holder;
  let texts = target[DECIMAL_TEXT];
  if (!texts) {
    texts = new Map();
    defineHidden(target, DECIMAL_TEXT, texts);
  }
  texts.set(key, text);
}

/** The text the number `value` under `key` of `holder` was written with, if it still has that value. */
export function decimalTextOf(holder: object, key: string, value: number): string | undefined {
  const text = (holder as Holder)[DECIMAL_TEXT]?.get(key);
  return text !== undefined && Number(text) === value ? text : undefined;
}

/** Marks a resource as holding decimal text somewhere in its tree. */
export function markDecimalText(resource: object): void {
  defineHidden(resource, HOLDS_DECIMAL_TEXT, true);
}

function isMarked(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as Holder)[HOLDS_DECIMAL_TEXT] === true;
}

/** Whether a payload (a resource, or a Bundle of them) holds decimal text anywhere. */
export function holdsDecimalText(payload: unknown): boolean {
  if (isMarked(payload)) return true;
  const entries = (payload as { entry?: unknown } | null)?.entry;
  if (!Array.isArray(entries)) return false;
  return entries.some((entry) => {
    const holder = entry as { resource?: unknown; response?: { outcome?: unknown } } | null;
    return holdsDecimalText(holder?.resource) || isMarked(holder?.response?.outcome);
  });
}

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function unescapePointer(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

/**
 * Every decimal text in a tree as RFC 6901 JSON pointers to texts (only those still matching their value), or
 * undefined when there is none: the form kept in storage.
 */
export function collectDecimalText(root: unknown): Record<string, string> | undefined {
  let found: Record<string, string> | undefined;
  const walk = (value: unknown, pointer: string): void => {
    if (typeof value !== 'object' || value === null) return;
    const texts = (value as Holder)[DECIMAL_TEXT];
    if (texts) {
      for (const [key, text] of texts) {
        const item = (value as Record<string, unknown>)[key];
        if (typeof item === 'number' && Number(text) === item) (found ??= {})[`${pointer}/${escapePointer(key)}`] = text;
      }
    }
    if (Array.isArray(value)) value.forEach((item, i) => walk(item, `${pointer}/${i}`));
    else for (const [key, item] of Object.entries(value)) walk(item, `${pointer}/${escapePointer(key)}`);
  };
  walk(root, '');
  return found;
}

/** Puts stored decimal texts back on a tree (where the pointer still reaches a number of that value). */
export function applyDecimalText(root: unknown, texts: Readonly<Record<string, string>> | undefined): void {
  if (!texts || typeof root !== 'object' || root === null) return;
  let applied = false;
  for (const [pointer, text] of Object.entries(texts)) {
    const tokens = pointer.split('/').slice(1).map(unescapePointer);
    const key = tokens.pop();
    if (key === undefined) continue;
    let holder: unknown = root;
    for (const token of tokens) {
      holder = typeof holder === 'object' && holder !== null ? (holder as Record<string, unknown>)[token] : undefined;
    }
    if (typeof holder !== 'object' || holder === null || !Object.hasOwn(holder, key)) continue;
    const value = (holder as Record<string, unknown>)[key];
    if (typeof value === 'number' && Number(text) === value) {
      setDecimalText(holder, key, text);
      applied = true;
    }
  }
  if (applied) markDecimalText(root);
}

/** Gives a copy of a tree (structuredClone, a rebuilt Bundle) the decimal texts of the original. */
export function copyDecimalText(from: unknown, to: unknown): void {
  applyDecimalText(to, collectDecimalText(from));
}

/** Copies the decimal texts held directly by one object or array onto its copy (a deep-copy routine's step). */
export function copyOwnDecimalText(from: object, to: object): void {
  const texts = (from as Holder)[DECIMAL_TEXT];
  if (texts) defineHidden(to, DECIMAL_TEXT, new Map(texts));
  if ((from as Holder)[HOLDS_DECIMAL_TEXT]) markDecimalText(to);
}

/**
 * FHIR JSON text of a payload, with every decimal in the digits it was written with. Without decimal text this is
 * JSON.stringify; with it, each such number is replaced by a placeholder no client string can equal (a random
 * nonce, and U+0000, which JSON escapes) and the placeholder's quoted form by the digits afterwards.
 */
export function stringifyFhirJson(payload: unknown, pretty = false): string {
  const indent = pretty ? 2 : undefined;
  if (!holdsDecimalText(payload)) return JSON.stringify(payload, null, indent);
  const nonce = randomBytes(8).toString('hex');
  const texts: string[] = [];
  const json = JSON.stringify(
    payload,
    function (this: unknown, key: string, value: unknown) {
      if (typeof value === 'number' && typeof this === 'object' && this !== null) {
        const text = decimalTextOf(this, key, value);
        if (text !== undefined) {
          texts.push(text);
          return `\u0000${nonce}:${texts.length - 1}`;
        }
      }
      return value;
    },
    indent,
  );
  return json.replace(new RegExp(`"\\\\u0000${nonce}:(\\d+)"`, 'g'), (_match, index: string) => texts[Number(index)] ?? '0');
}
