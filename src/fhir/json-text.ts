/**
 * JSON text from a client, parsed the way every FHIR input must be: not nested absurdly deep, no keys that could
 * pollute prototypes, and only well-formed Unicode. A lone UTF-16 surrogate (`"\ud800"`) is valid JSON syntax but
 * not a Unicode string: RFC 8785 canonical JSON, which the ledger commitments are computed over, cannot represent
 * it, and MongoDB would store a replacement character instead. So it is refused here, before anything sees it.
 */
import { parse as parseLossless } from 'lossless-json';
import secureJson from 'secure-json-parse';
import { markDecimalText, needsDecimalText, setDecimalText } from './decimal-text.js';
import { errors } from './outcome.js';

/** Nesting deeper than this is refused before JSON.parse sees it: no FHIR resource comes close. */
export const MAX_JSON_DEPTH = 100;

/** Throws 400 when JSON text nests deeper than the limit, scanning once without recursion. */
export function checkJsonDepth(text: string, limit = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > limit) throw errors.badRequest(`JSON nests deeper than ${limit} levels`);
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** A surrogate escape in JSON text: without one, the parsed strings are as well formed as the text. */
const SURROGATE_ESCAPE = /\\u[dD][89abcdefABCDEF]/;

/** The first string (value or key) of a parsed JSON value that is not well-formed Unicode, with its path. */
function findLoneSurrogate(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return LONE_SURROGATE.test(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findLoneSurrogate(value[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (LONE_SURROGATE.test(key)) return `${path} (a key)`;
      const found = findLoneSurrogate(item, path === '' ? key : `${path}.${key}`);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * Whether JSON text holds a number (outside strings) written otherwise than its shortest form: `2.00`, `1e3`, `-0`,
 * more digits than a double keeps. One pass, no allocation for the common case of none.
 */
export function hasDecimalText(text: string): boolean {
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < text.length && /[0-9eE+.-]/.test(text[end]!)) end++;
      if (needsDecimalText(text.slice(i, end))) return true;
      i = end - 1;
    }
  }
  return false;
}

/** The marker a lossless parse leaves where a number was: its text. */
interface NumberText {
  readonly numberText: string;
}

function isNumberText(value: unknown): value is NumberText {
  return typeof value === 'object' && value !== null && typeof (value as NumberText).numberText === 'string';
}

/**
 * Walks the lossless parse beside the ordinary one (same text, same shape) and records, on the ordinary one's
 * objects and arrays, the text of every number not written in its shortest form (decimal-text.ts). Each resource
 * holding such a number is marked, so that one taken out of its Bundle is written with its digits too.
 */
function recordDecimalText(lossless: unknown, parsed: unknown): boolean {
  if (typeof lossless !== 'object' || lossless === null || typeof parsed !== 'object' || parsed === null) return false;
  let found = false;
  for (const [key, value] of Object.entries(lossless)) {
    const target = (parsed as Record<string, unknown>)[key];
    if (isNumberText(value)) {
      if (typeof target === 'number' && needsDecimalText(value.numberText)) {
        setDecimalText(parsed, key, value.numberText);
        found = true;
      }
    } else if (recordDecimalText(value, target)) {
      found = true;
    }
  }
  if (found && typeof (parsed as { resourceType?: unknown }).resourceType === 'string') markDecimalText(parsed);
  return found;
}

/**
 * Keeps the digits of decimals of JSON text already parsed by JSON.parse (the import tool reads files itself):
 * the same as parseJsonText does. A text lossless-json refuses (a duplicate key, which JSON.parse took the last
 * of) keeps its values only.
 */
export function keepDecimalText(text: string, parsed: unknown): void {
  if (!hasDecimalText(text)) return;
  try {
    const lossless = parseLossless(text, null, (numberText: string): NumberText => ({ numberText }));
    if (recordDecimalText(lossless, parsed) && typeof parsed === 'object' && parsed !== null) markDecimalText(parsed);
  } catch {
    // the values stand as parsed
  }
}

/** Parses client JSON text; throws a 400 FhirError saying what is wrong. */
export function parseJsonText(text: string): unknown {
  if (text.trim() === '') throw errors.badRequest('The request body is empty; a JSON document was expected');
  checkJsonDepth(text);
  let parsed: unknown;
  try {
    parsed = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/prototype|__proto__|constructor/i.test(message)) {
      throw errors.badRequest('The JSON body contains a forbidden key (__proto__ or constructor.prototype)');
    }
    throw errors.badRequest(`The body is not valid JSON: ${message}`);
  }
  // Decimals written with trailing zeros or an exponent keep their text.
  keepDecimalText(text, parsed);
  if (SURROGATE_ESCAPE.test(text)) {
    const at = findLoneSurrogate(parsed, '');
    if (at !== undefined) {
      throw errors.badRequest(
        `The JSON holds a string that is not well-formed Unicode (a lone UTF-16 surrogate escape such as \\ud800)${at ? ` at ${at}` : ''}`,
        at || undefined,
      );
    }
  }
  return parsed;
}
