/**
 * The JSON ⇄ XML converter over every official R4 JSON example (5,306, hl7.fhir.r4.examples 4.0.1): JSON → XML →
 * JSON is identical, and where a file writes decimals in digits their shortest form would lose ("1.50", "1.0e3"),
 * the JSON text written back is the file's own, number for number. (The XML examples: round-trip.test.ts.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parse as losslessParse, stringify as losslessStringify } from 'lossless-json';
import t from 'tap';
import { stringifyFhirJson } from '../../../src/fhir/decimal-text.js';
import { hasDecimalText, parseJsonText } from '../../../src/fhir/json-text.js';
import { resourceToXml } from '../../../src/fhir/xml/json-to-xml.js';
import { resourceFromXmlText } from '../../../src/fhir/xml/xml-to-json.js';

// Converting 5,306 resources (1,400 of them large StructureDefinitions and ValueSets) on a shared 2-core machine.
t.setTimeout(600_000);

type Json = Record<string, unknown>;
const jsonDir = dirname(createRequire(import.meta.url).resolve('hl7.fhir.r4.examples/package.json'));

t.test('every official R4 JSON example: JSON → XML → JSON is identical', async (t) => {
  let count = 0;
  let withDigits = 0;
  for (const file of readdirSync(jsonDir)) {
    if (!file.endsWith('.json') || file === 'package.json' || file.startsWith('.')) continue;
    const text = readFileSync(join(jsonDir, file), 'utf8');
    const json = parseJsonText(text) as Json;
    if (typeof json.resourceType !== 'string') continue;
    const back = resourceFromXmlText(resourceToXml(json));
    t.same(back, json, file);
    if (hasDecimalText(text)) {
      // The file writes a decimal with trailing zeros or an exponent: its digits survive JSON → XML → JSON.
      t.equal(stringifyFhirJson(back), stringifyFhirJson(json), `${file}: the digits of its decimals`);
      // And the JSON text is the file's own, minified (lossless-json, independently, keeps each number's text).
      t.equal(stringifyFhirJson(back), losslessStringify(losslessParse(text)), `${file}: the file's JSON, number for number`);
      withDigits++;
    }
    count++;
  }
  t.ok(count > 5000, `${count} JSON examples`);
  t.ok(withDigits > 10, `${withDigits} of them write decimals in digits their shortest form would lose`);
});
