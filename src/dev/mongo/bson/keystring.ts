/**
 * Order-preserving string encoding of BSON values ("key strings").
 *
 * encodeValue(a) < encodeValue(b) (plain JS string comparison) exactly when
 * mongod's BSON comparison says a < b, and the encodings are equal exactly
 * when mongod considers the values equal (1, 1.0 and Long(1) encode alike).
 * That one property lets indexes be sorted string structures, lets `_id`
 * lookups be Map lookups and gives sort/equality a single source of truth.
 *
 * Every encoding is prefix-free (no encoding is a proper prefix of another),
 * so compound keys are plain concatenations and a descending field is the
 * character-wise complement of its ascending encoding.
 *
 * Characters are UTF-16 code units used as 16-bit digits.
 */
import type { Document } from 'bson';
import { Rank, binaryBytes, dbRefAsDocument, isDbRef, numericParts, rankOf, timestampParts } from './values.js';
import type { ObjectId, Timestamp } from 'bson';

const END = '\u0000';
const STRING_TERMINATOR = '\u0000\u0001';
const ESCAPED_NUL = '\u0000\uffff';

const f64 = new Float64Array(1);
const u16 = new Uint16Array(f64.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** 4 characters whose string order equals the numeric order of doubles. */
function encodeDouble(n: number): string {
  if (Number.isNaN(n)) return '\u0000\u0000\u0000\u0000';
  f64[0] = n === 0 ? 0 : n;
  // Big-endian 16-bit digits of the IEEE bits.
  let d0: number, d1: number, d2: number, d3: number;
  if (littleEndian) {
    d0 = u16[3]!;
    d1 = u16[2]!;
    d2 = u16[1]!;
    d3 = u16[0]!;
  } else {
    d0 = u16[0]!;
    d1 = u16[1]!;
    d2 = u16[2]!;
    d3 = u16[3]!;
  }
  if (d0 & 0x8000) {
    // Negative: complement everything so larger magnitudes sort first.
    d0 = ~d0 & 0xffff;
    d1 = ~d1 & 0xffff;
    d2 = ~d2 & 0xffff;
    d3 = ~d3 & 0xffff;
  } else {
    d0 |= 0x8000;
  }
  return String.fromCharCode(d0, d1, d2, d3);
}

function encodeUint32(n: number): string {
  return String.fromCharCode((n >>> 16) & 0xffff, n & 0xffff);
}

function escapeString(s: string): string {
  return (s.includes('\u0000') ? s.replaceAll('\u0000', ESCAPED_NUL) : s) + STRING_TERMINATOR;
}

function encodeNumber(v: unknown): string {
  const { approx, remainder } = numericParts(v);
  // The remainder is the exact distance of a 64-bit integer from its double
  // rounding; it orders values that round to the same double.
  return encodeDouble(approx) + String.fromCharCode(0x8000 + remainder);
}

function encodeBody(v: unknown, rank: Rank): string {
  switch (rank) {
    case Rank.MinKey:
    case Rank.Null:
    case Rank.Undefined:
    case Rank.MaxKey:
      return '';
    case Rank.Number:
      return encodeNumber(v);
    case Rank.String:
      return escapeString(typeof v === 'string' ? v : String((v as { value: string }).value));
    case Rank.Object:
      return encodeObjectBody(isDbRef(v) ? dbRefAsDocument(v as object) : (v as Document));
    case Rank.Array: {
      let out = '';
      for (const el of v as unknown[]) out += encodeValue(el);
      return out + END;
    }
    case Rank.BinData: {
      const { subType, bytes } = binaryBytes(v);
      // mongod orders BinData by length, then subtype, then bytes.
      let out = encodeUint32(bytes.length) + String.fromCharCode(subType);
      for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]!);
      return out;
    }
    case Rank.ObjectId: {
      const hex = (v as ObjectId).toHexString();
      let out = '';
      for (let i = 0; i < 24; i += 4) out += String.fromCharCode(parseInt(hex.slice(i, i + 4), 16));
      return out;
    }
    case Rank.Bool:
      return v ? '\u0001' : '\u0000';
    case Rank.Date:
      return encodeDouble((v as Date).getTime());
    case Rank.Timestamp: {
      const { t, i } = timestampParts(v as Timestamp);
      return encodeUint32(t) + encodeUint32(i);
    }
    case Rank.Regex: {
      if (v instanceof RegExp) return escapeString(v.source) + escapeString(v.flags);
      const re = v as { pattern: string; options: string };
      return escapeString(re.pattern) + escapeString(re.options);
    }
    case Rank.Code:
    case Rank.CodeWithScope: {
      const code = v as { code: unknown; scope?: Document | null };
      const text = typeof code.code === 'string' ? code.code : String(code.code);
      return escapeString(text) + (code.scope ? encodeObjectBody(code.scope) : '');
    }
    case Rank.DBPointer: {
      const ptr = v as { namespace: string; oid: ObjectId };
      return escapeString(ptr.namespace) + encodeBody(ptr.oid, Rank.ObjectId);
    }
  }
}

function encodeObjectBody(doc: Document): string {
  let out = '';
  for (const key of Object.keys(doc)) {
    const value = doc[key];
    const rank = rankOf(value);
    // mongod compares element by element: canonical type, then field name, then value.
    out += String.fromCharCode(rank) + escapeString(key) + encodeBody(value, rank);
  }
  return out + END;
}

/** Encoding of one BSON value, type bracket first. */
export function encodeValue(v: unknown): string {
  const rank = rankOf(v);
  return String.fromCharCode(rank) + encodeBody(v, rank);
}

/**
 * The string a key string of ONE string value encodes, or undefined when it encodes anything else. (A BSON symbol
 * has the string's key: it comes back as a string.)
 */
export function decodeStringKey(key: string): string | undefined {
  if (key.charCodeAt(0) !== Rank.String || !key.endsWith(STRING_TERMINATOR)) return undefined;
  const body = key.slice(1, -STRING_TERMINATOR.length);
  if (!body.includes(END)) return body;
  // Inside the body a NUL only ever appears escaped; anything else is not one string's encoding.
  const unescaped = body.replaceAll(ESCAPED_NUL, '\u0001');
  if (unescaped.includes(END)) return undefined;
  return body.replaceAll(ESCAPED_NUL, END);
}

/** Complement used for descending index fields. */
export function invert(key: string): string {
  let out = '';
  for (let i = 0; i < key.length; i++) out += String.fromCharCode(0xffff - key.charCodeAt(i));
  return out;
}

export function compareValues(a: unknown, b: unknown): number {
  const ka = encodeValue(a);
  const kb = encodeValue(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * Length of the escaped string (terminator included) starting at `at`, or -1
 * past the end. `code` reads a character, complemented for descending keys.
 */
function stringLength(code: (i: number) => number, length: number, at: number): number {
  for (let i = at; i + 1 < length; i++) {
    if (code(i) !== 0) continue;
    const next = code(i + 1);
    if (next === 1) return i + 2 - at;
    i++; // an escaped NUL (\u0000\uffff): skip its second character
  }
  return -1;
}

function bodyLength(code: (i: number) => number, length: number, rank: number, at: number): number {
  switch (rank) {
    case Rank.MinKey:
    case Rank.Null:
    case Rank.Undefined:
    case Rank.MaxKey:
      return 0;
    case Rank.Number:
      return 5;
    case Rank.Date:
    case Rank.Timestamp:
      return 4;
    case Rank.ObjectId:
      return 6;
    case Rank.Bool:
      return 1;
    case Rank.String:
    case Rank.Code:
      return stringLength(code, length, at);
    case Rank.Regex:
    case Rank.CodeWithScope:
    case Rank.DBPointer: {
      const first = stringLength(code, length, at);
      if (first < 0) return -1;
      const rest =
        rank === Rank.Regex
          ? stringLength(code, length, at + first)
          : rank === Rank.DBPointer
            ? 6
            : bodyLength(code, length, Rank.Object, at + first);
      return rest < 0 ? -1 : first + rest;
    }
    case Rank.BinData: {
      if (at + 3 > length) return -1;
      return 3 + ((code(at) << 16) | code(at + 1));
    }
    case Rank.Object: {
      // Elements (type bracket, escaped name, body) up to END.
      let i = at;
      while (i < length && code(i) !== 0) {
        const elementRank = code(i);
        const name = stringLength(code, length, i + 1);
        if (name < 0) return -1;
        const body = bodyLength(code, length, elementRank, i + 1 + name);
        if (body < 0) return -1;
        i += 1 + name + body;
      }
      return i < length ? i + 1 - at : -1;
    }
    case Rank.Array: {
      let i = at;
      while (i < length && code(i) !== 0) {
        const element = 1 + bodyLength(code, length, code(i), i + 1);
        if (element < 1) return -1;
        i += element;
      }
      return i < length ? i + 1 - at : -1;
    }
    default:
      return -1;
  }
}

/**
 * Length of the encoded value starting at `at` in a key (compound keys are
 * concatenations of such encodings; `descending` for a complemented field),
 * or -1 when the key does not hold a whole value there. Lets an index scan
 * look at one field of a compound key without decoding it.
 */
export function encodedLength(key: string, at: number, descending: boolean): number {
  if (at >= key.length) return -1;
  const code = descending ? (i: number): number => 0xffff - key.charCodeAt(i) : (i: number): number => key.charCodeAt(i);
  const body = bodyLength(code, key.length, code(at), at + 1);
  if (body < 0 || at + 1 + body > key.length) return -1;
  return 1 + body;
}
