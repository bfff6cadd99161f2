/**
 * Narrative checks txt-1 and txt-2 (Narrative.div), done natively: their FHIRPath is `htmlChecks()`,
 * which @medplum/core 4.5.2 implements as "always true".
 *
 * This is a conservative scanner, not an XHTML parser: it enforces what matters for safety and what the
 * spec states plainly —
 * - the root is a <div> in the XHTML namespace;
 * - only the basic formatting elements R4 allows (no script, style, iframe, object, form, input, ...);
 * - no event-handler attributes (on*) and no javascript:/vbscript:/data:text/html URLs;
 * - some non-whitespace content (text or an image)  [txt-2].
 */

const ALLOWED_ELEMENTS = new Set([
  'a',
  'abbr',
  'acronym',
  'address',
  'area',
  'b',
  'bdo',
  'big',
  'blockquote',
  'br',
  'caption',
  'cite',
  'code',
  'col',
  'colgroup',
  'dd',
  'del',
  'dfn',
  'div',
  'dl',
  'dt',
  'em',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'hr',
  'i',
  'img',
  'ins',
  'kbd',
  'li',
  'map',
  'ol',
  'p',
  'pre',
  'q',
  'samp',
  'small',
  'span',
  'strong',
  'sub',
  'sup',
  'table',
  'tbody',
  'td',
  'tfoot',
  'th',
  'thead',
  'tr',
  'tt',
  'ul',
  'var',
]);

const TAG = /<\s*(\/?)\s*([A-Za-z][A-Za-z0-9:_-]*)([^>]*)>/g;
const ATTR = /([A-Za-z_:][A-Za-z0-9_:.-]*)\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+)/g;
const DANGEROUS_URL = /^\s*(javascript|vbscript|data\s*:\s*text\/html)/i;

export interface NarrativeProblem {
  key: 'txt-1' | 'txt-2';
  message: string;
}

export function checkNarrativeDiv(div: string): NarrativeProblem[] {
  const problems: NarrativeProblem[] = [];
  const trimmed = div.trim();
  const root = /^<div(\s[^>]*)?>/i.exec(trimmed);
  if (!root) {
    problems.push({ key: 'txt-1', message: 'Narrative div must start with a <div> element' });
  } else if (!/\bxmlns\s*=\s*["']http:\/\/www\.w3\.org\/1999\/xhtml["']/.test(root[1] ?? '')) {
    problems.push({ key: 'txt-1', message: 'Narrative <div> must declare xmlns="http://www.w3.org/1999/xhtml"' });
  }

  let hasImage = false;
  TAG.lastIndex = 0;
  for (let m = TAG.exec(div); m; m = TAG.exec(div)) {
    const name = (m[2] as string).toLowerCase();
    if (!ALLOWED_ELEMENTS.has(name)) {
      problems.push({ key: 'txt-1', message: `Narrative contains the element <${name}>, which is not allowed in FHIR narrative` });
      continue;
    }
    if (name === 'img') {
      hasImage = true;
    }
    const attrs = m[3] ?? '';
    ATTR.lastIndex = 0;
    for (let a = ATTR.exec(attrs); a; a = ATTR.exec(attrs)) {
      const attr = (a[1] as string).toLowerCase();
      const raw = (a[2] as string).replace(/^["']|["']$/g, '');
      if (attr.startsWith('on')) {
        problems.push({ key: 'txt-1', message: `Narrative contains the event-handler attribute ${attr} on <${name}>` });
      } else if ((attr === 'href' || attr === 'src') && DANGEROUS_URL.test(decodeEntities(raw))) {
        problems.push({ key: 'txt-1', message: `Narrative contains a script URL in ${attr} on <${name}>` });
      }
    }
    if (problems.length >= 5) {
      break;
    }
  }

  const text = decodeEntities(div.replace(/<[^>]*>/g, ''));
  if (!hasImage && text.trim() === '') {
    problems.push({ key: 'txt-2', message: 'The narrative SHALL have some non-whitespace content' });
  }
  return problems;
}

function decodeEntities(s: string): string {
  return s
    .replace(/&#x([0-9a-f]{1,8});?/gi, (_, h: string) => codePoint(Number.parseInt(h, 16)))
    .replace(/&#([0-9]{1,10});?/g, (_, d: string) => codePoint(Number.parseInt(d, 10)))
    .replace(/&nbsp;/g, ' ')
    .replace(/&(amp|lt|gt|quot|apos);/g, 'x');
}

function codePoint(cp: number): string {
  return Number.isInteger(cp) && cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : ' ';
}
