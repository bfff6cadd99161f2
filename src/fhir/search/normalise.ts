/**
 * Normal forms shared by the index extractor (write time) and the search parser (query time), so that a value
 * and a query for it always meet in the same form.
 */

/** Strings for default and :contains matching: NFD, combining marks removed, lower case, whitespace collapsed. */
export function foldString(value: string): string {
  return value.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase().replace(/\s+/gu, ' ').trim();
}

const SOUNDEX_CODES: Record<string, string> = {
  b: '1',
  f: '1',
  p: '1',
  v: '1',
  c: '2',
  g: '2',
  j: '2',
  k: '2',
  q: '2',
  s: '2',
  x: '2',
  z: '2',
  d: '3',
  t: '3',
  l: '4',
  m: '5',
  n: '5',
  r: '6',
};

/**
 * American Soundex of one word (letters only, after folding): the first letter and three digits. The `phonetic`
 * parameter matches names that sound alike ("Smith", "Smyth", "Schmidt" -> S530); undefined for no letters.
 */
export function soundex(word: string): string | undefined {
  const letters = foldString(word).replace(/[^a-z]/g, '');
  if (letters.length === 0) return undefined;
  let code = letters[0].toUpperCase();
  let previous = SOUNDEX_CODES[letters[0]] ?? '';
  for (const letter of letters.slice(1)) {
    const digit = SOUNDEX_CODES[letter];
    if (digit) {
      if (digit !== previous) code += digit;
      if (code.length === 4) break;
      previous = digit;
    } else if (letter !== 'h' && letter !== 'w') {
      // Vowels separate equal codes; h and w do not.
      previous = '';
    }
  }
  return code.padEnd(4, '0');
}

/** Soundex codes of every word in a string. */
export function soundexWords(value: string): string[] {
  return value
    .split(/[\s\-']+/u)
    .map(soundex)
    .filter((c): c is string => c !== undefined);
}

/** Token variants stored for one coded value and matched by the four token query forms. */
export function tokenVariants(system: string | undefined, code: string): string[] {
  if (system) return [code, `${system}|${code}`, `${system}|`];
  return [code, `|${code}`];
}
