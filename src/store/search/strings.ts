/** String helpers for query compilation (kept in the store so it depends on nothing above it). */

/**
 * The smallest string greater than every string that starts with `prefix`: its last code point plus one.
 * [prefix, successor) is exactly the strings starting with `prefix`, in MongoDB's binary (UTF-8) order as well
 * as in code point order, which `prefix + '\uffff'` is not (supplementary characters sort above U+FFFF in UTF-8).
 */
export function successorOf(prefix: string): string {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      let next = last + 1;
      if (next >= 0xd800 && next <= 0xdfff) next = 0xe000;
      return points.join('') + String.fromCodePoint(next);
    }
  }
  return '\u{10ffff}';
}

/**
 * A literal string as regular expression source. NUL is written as the escape \x00: a BSON regular expression
 * is a C string, which cannot hold the character itself.
 */
export function escapeRegexSource(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&').replace(/\0/g, '\\x00');
}
