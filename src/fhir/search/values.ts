/**
 * Parsing search parameter values (FHIR R4 search.html): comma lists with `\` escapes, prefixes, token forms,
 * number precision, quantities.
 */
import type { Comparator } from '../../store/search/query.js';

export class ParamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParamError';
  }
}

/**
 * A parameter the server understands but cannot evaluate as asked (a value set it cannot expand, a code
 * system without the hierarchy :below needs, a composite parameter). Unlike a ParamError it is never ignored
 * under lenient handling: dropping the parameter would silently widen the result to resources outside the set
 * the client asked for, so the search is refused with a 400 whatever Prefer says.
 */
export class RejectedParamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RejectedParamError';
  }
}

/** Splits on a separator not escaped with a backslash; keeps escapes for a later unescape. */
export function splitUnescaped(value: string, separator: string, limit = Infinity): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) {
      current += c + value[i + 1];
      i++;
    } else if (c === separator && parts.length < limit - 1) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

/** Removes the escapes of `\,`, `\|`, `\$` and `\\`. */
export function unescapeValue(value: string): string {
  return value.replace(/\\([,|$\\])/g, '$1');
}

/** The comma-separated alternatives of a value (OR), escapes kept. */
export function alternatives(value: string): string[] {
  return splitUnescaped(value, ',');
}

const PREFIXES = new Set<Comparator>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

/** A leading prefix (eq, ge, ...) of a date, number or quantity value. */
export function splitPrefix(value: string): { cmp: Comparator; rest: string } {
  const head = value.slice(0, 2) as Comparator;
  if (PREFIXES.has(head) && /^[0-9+\-.]/.test(value.slice(2))) return { cmp: head, rest: value.slice(2) };
  return { cmp: 'eq', rest: value };
}

/** A token query value: code, system|code, |code or system|. */
export interface TokenQuery {
  system?: string;
  code?: string;
  /** True when a `|` was given (so "|code" means "no system" and "code" means "any system"). */
  hasBar: boolean;
}

export function parseToken(value: string): TokenQuery {
  const parts = splitUnescaped(value, '|', 2);
  if (parts.length === 1) return { code: unescapeValue(parts[0]), hasBar: false };
  const system = unescapeValue(parts[0]);
  const code = unescapeValue(parts[1]);
  const token: TokenQuery = { hasBar: true };
  if (system) token.system = system;
  if (code) token.code = code;
  return token;
}

/** The stored token variant a query token matches (see normalise.ts tokenVariants). */
export function tokenVariantOf(token: TokenQuery): string {
  if (!token.hasBar) return token.code ?? '';
  if (token.system && token.code) return `${token.system}|${token.code}`;
  if (token.system) return `${token.system}|`;
  return `|${token.code ?? ''}`;
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

export interface NumberQuery {
  value: number;
  /** The range the value denotes at its precision: [lo, hi). */
  lo: number;
  hi: number;
}

/**
 * A number with the implicit range of its precision (search.html#number): "100" is [99.5, 100.5), "100.00"
 * [99.995, 100.005), "1e2" (one significant figure) [50, 150).
 */
export function parseNumber(text: string): NumberQuery {
  const match = NUMBER.exec(text);
  if (!match) throw new ParamError(`"${text}" is not a number`);
  const value = Number(text);
  const decimals = match[2] ? match[2].length - 1 : 0;
  const exponent = match[3] ? Number(match[3].slice(1)) : 0;
  let unitExponent = exponent - decimals;
  if (match[3]) {
    // Exponential form: the precision is that of the mantissa's last significant figure.
    const mantissa = match[1].replace('.', '').replace(/^0+/, '');
    const integerDigits = match[1].split('.')[0].replace(/^0+/, '').length;
    unitExponent = exponent + integerDigits - Math.max(1, mantissa.length);
  }
  const half = 10 ** unitExponent / 2;
  return { value, lo: value - half, hi: value + half };
}

export interface QuantityQuery extends NumberQuery {
  system?: string;
  code?: string;
}

/** number|system|code, number||code or number (search.html#quantity). */
export function parseQuantity(text: string): QuantityQuery {
  const parts = splitUnescaped(text, '|');
  if (parts.length !== 1 && parts.length !== 3) throw new ParamError(`"${text}" is not a quantity (number|system|code)`);
  const quantity: QuantityQuery = parseNumber(parts[0]);
  if (parts.length === 3) {
    const system = unescapeValue(parts[1]);
    const code = unescapeValue(parts[2]);
    if (system) quantity.system = system;
    if (code) quantity.code = code;
  }
  return quantity;
}
