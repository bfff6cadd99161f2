// The official patch test cases (FHIR/fhir-test-cases r4/patch, copied into test/fixtures/patch-tests with
// their source and licence in its README), run through applyPatch:
// - json-patch-tests.json: RFC 6902 cases — each runs with its expected document or expected error;
// - fhir-patch-tests.xml: FHIRPath Patch cases in FHIR XML, read into FHIR JSON by the server's own XML reader
//   (src/fhir/xml) — each runs with its expected resource or expected error
//   (the "mode" attribute is about generating diffs, which we do not do; every case is applied forwards);
// - xml-patch-tests.xml: XML Patch (RFC 5261) cases, not run: this server has no XML Patch (see below).
// Every case runs; a case we decided not to support would be listed in NOT_SUPPORTED with its reason, and
// is then asserted to fail, so the list cannot go stale. It is empty: every JSON Patch and FHIRPath Patch
// case passes.
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { applyPatch } from '../../../src/fhir/patch/index.js';
import { FhirError } from '../../../src/fhir/outcome.js';
import { resourceFromXml } from '../../../src/fhir/xml/xml-to-json.js';
import { attributeValue, parseXmlText, type XmlElement, type XmlNode } from '../../../src/fhir/xml/xml-tree.js';

const fixtures = new URL('../../fixtures/patch-tests/', import.meta.url);
const read = (name: string): string => readFileSync(new URL(name, fixtures), 'utf8');

/** case name → why it is not supported (none at present). */
const NOT_SUPPORTED: Record<string, string> = {};

interface JsonPatchCase {
  comment: string;
  doc: unknown;
  patch: unknown;
  expected?: unknown;
  error?: string;
  disabled?: boolean;
}

function failureOf(run: () => unknown): FhirError | undefined {
  try {
    run();
    return undefined;
  } catch (err) {
    if (err instanceof FhirError) return err;
    throw err;
  }
}

/** The element children of a test file's element (the file's own structure: tests, case, input, diff, output). */
function childElements(element: XmlElement, local?: string): XmlElement[] {
  return element.children.filter((c): c is XmlElement => c.kind === 'element' && (local === undefined || c.local === local));
}

/** A narrative as a tree without the whitespace of the file's indentation, which is not part of its content. */
function xhtmlContent(node: XmlNode): unknown {
  if (node.kind === 'text') return node.text.replace(/\s+/g, ' ').trim();
  if (node.kind === 'comment') return '';
  return [node.local, node.attributes.map((a) => `${a.local}=${a.value}`).sort(), node.children.map(xhtmlContent).filter((c) => c !== '')];
}

/**
 * The resources of both sides are read by the server's own XML reader (src/fhir/xml), as a client's would be; the
 * narrative is compared as XHTML content.
 */
function comparable(resource: unknown): unknown {
  const copy = structuredClone(resource) as { text?: { div?: unknown } };
  if (typeof copy.text?.div === 'string') copy.text.div = xhtmlContent(parseXmlText(copy.text.div));
  return copy;
}

const passed: string[] = [];

t.test('JSON Patch (RFC 6902) official cases', async (t) => {
  const cases = JSON.parse(read('json-patch-tests.json')) as JsonPatchCase[];
  t.equal(cases.length, 16, 'all 16 cases of the file are read');
  for (const c of cases) {
    const name = `JSON Patch: ${c.comment}`;
    t.test(name, async (t) => {
      const before = structuredClone(c.doc);
      const run = (): Resource => applyPatch(c.doc as Resource, { kind: 'json-patch', operations: structuredClone(c.patch) });
      const reason = NOT_SUPPORTED[name];
      if (reason !== undefined) {
        t.comment(`not supported: ${reason}`);
        t.not(failureOf(run), undefined, 'still fails as listed');
        return;
      }
      if (c.error !== undefined) {
        const failure = failureOf(run);
        t.ok(failure, `fails (${c.error})`);
        t.equal(failure?.status, 422, 'a well-formed patch that cannot be applied is a 422');
        t.match(failure?.outcome.issue[0]?.diagnostics, /JSON Patch operation 0/, 'the issue names the operation');
      } else {
        t.same(run(), c.expected, 'gives the expected document');
      }
      t.same(c.doc, before, 'the input is not changed');
      if (t.passing()) passed.push(name);
    });
  }
});

t.test('FHIRPath Patch official cases', async (t) => {
  const root = parseXmlText(read('fhir-patch-tests.xml'));
  const cases = childElements(root, 'case');
  t.equal(cases.length, 33, 'all 33 cases of the file are read');
  for (const c of cases) {
    const name = `FHIRPath Patch: ${attributeValue(c, 'name')}`;
    t.test(name, async (t) => {
      const only = (parent: string): ReturnType<typeof resourceFromXml> => {
        const holder = childElements(c, parent)[0];
        const element = holder ? childElements(holder)[0] : undefined;
        if (!element) throw new Error(`${name}: no <${parent}> resource`);
        return resourceFromXml(element);
      };
      const input = only('input') as unknown as Resource;
      const parameters = only('diff') as unknown as Parameters;
      const before = structuredClone(input);
      const run = (): Resource => applyPatch(input, { kind: 'fhirpath-patch', parameters });
      const reason = NOT_SUPPORTED[name];
      if (reason !== undefined) {
        t.comment(`not supported: ${reason}`);
        t.not(failureOf(run), undefined, 'still fails as listed');
        return;
      }
      const error = childElements(c, 'error')[0];
      if (error) {
        const failure = failureOf(run);
        t.ok(failure, 'fails');
        t.equal(failure?.status, 422, 'a well-formed patch that cannot be applied is a 422');
        t.match(failure?.outcome.issue[0]?.diagnostics, attributeValue(error, 'msg') ?? '', 'with the expected message');
        t.same(failure?.outcome.issue[0]?.expression, ['Parameters.parameter[0]'], 'pointing at the operation');
      } else {
        t.same(comparable(run()), comparable(only('output')), 'gives the expected resource');
      }
      t.same(input, before, 'the input is not changed');
      if (t.passing()) passed.push(name);
    });
  }
});

t.test('XML Patch official cases are not run: XML Patch is not supported', async (t) => {
  // XML Patch (RFC 5261, application/xml-patch+xml) patches the XML text of a resource; this server patches the
  // resource (JSON Patch, FHIRPath Patch in JSON or XML), so it does not offer it.
  const cases = childElements(parseXmlText(read('xml-patch-tests.xml')), 'case');
  t.equal(cases.length, 29, 'the file has 29 active XML Patch cases (4 more are commented out in it)');
  for (const c of cases) {
    t.comment(`not supported (XML Patch): ${attributeValue(c, 'name')}`);
  }
});

t.test('summary', async (t) => {
  t.comment(`${passed.length} official JSON Patch / FHIRPath Patch cases passed:\n${passed.join('\n')}`);
  t.equal(passed.length, 16 + 33 - Object.keys(NOT_SUPPORTED).length, 'every supported case passed');
});
