/// <reference lib="dom" />
/**
 * Bytes in the browser: what src/ledger does with Node's Buffer and node:crypto, done with Uint8Array and
 * WebCrypto (crypto.subtle) so that the verification page needs nothing from Node.
 */

const HEX = /^(?:[0-9a-f]{2})*$/;

/** Lowercase hex (the proof package's spelling) to bytes; throws on anything else. */
export function hexToBytes(hex: string): Uint8Array {
  if (!HEX.test(hex)) throw new TypeError('not lowercase hex');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

const BASE64_VALUES = new Map<string, number>();
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => BASE64_VALUES.set(c, i));
// Node's decoder reads the URL-safe alphabet too.
BASE64_VALUES.set('-', 62);
BASE64_VALUES.set('_', 63);

/**
 * Base64 to bytes, as leniently as Node's Buffer.from(text, 'base64') (which src/ledger uses on mirror answers):
 * characters outside the alphabet are skipped, decoding stops at the first '=', and leftover bits are dropped.
 * Being as lenient keeps the page's verdict on a malformed mirror answer the same as the CLI's.
 */
export function base64ToBytes(text: string): Uint8Array {
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const c of text) {
    if (c === '=') break;
    const value = BASE64_VALUES.get(c);
    if (value === undefined) continue;
    buffer = (buffer << 6) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((buffer >> bits) & 0xff);
    }
    buffer &= (1 << bits) - 1;
  }
  return Uint8Array.from(out);
}

export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Byte equality. Node's verifier compares with timingSafeEqual; here nothing secret is compared (everything on the
 * page is the user's own package and public ledger data), so a plain loop is enough.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function digest(algorithm: 'SHA-256' | 'SHA-384', parts: Uint8Array[]): Promise<Uint8Array> {
  // One fresh ArrayBuffer-backed copy: WebCrypto hashes one BufferSource, which a view over a SharedArrayBuffer is not.
  return new Uint8Array(await crypto.subtle.digest(algorithm, concat(...parts)));
}

export const sha256 = (...parts: Uint8Array[]): Promise<Uint8Array> => digest('SHA-256', parts);
export const sha384 = (...parts: Uint8Array[]): Promise<Uint8Array> => digest('SHA-384', parts);
