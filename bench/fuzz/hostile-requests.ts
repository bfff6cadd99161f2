/**
 * A seeded generator of hostile HTTP requests against the FHIR API: malformed and mutated JSON and XML (DTDs,
 * entities, namespaces, order, forms), wrong content
 * types, deep nesting, prototype keys, MongoDB operators in bodies and query strings, invalid ids and
 * references, unknown and malformed search parameters, modifiers and prefixes, hostile _sort/_count/_total/_elements/
 * _include, empty lists, search values over the limits, huge and odd Unicode, tampered methods and headers,
 * Bundles of all of these. The same seed gives the same requests, so a failure can be replayed.
 *
 * Used by the fuzz test (test/http/fuzz.test.ts: a few thousand requests, in CI) and by the longer run
 * (`npm run bench:fuzz`, not in CI).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { searchRegistry } from '../../src/fhir/search/registry.js';
import { resourceToXml } from '../../src/fhir/xml/json-to-xml.js';
import { PROJECT_ROOT } from '../../src/software.js';
import { mulberry32 } from '../population.js';

export interface HostileRequest {
  method: string;
  /** Path and query, already encoded as they go on the wire. */
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** What kind of hostility, for the report. */
  kind: string;
}

/** The featured types, and some of the other hosted ones (the same code serves all of them). */
const TYPES = ['Patient', 'Encounter', 'MedicationRequest', 'Observation', 'Condition', 'Practitioner', 'Provenance', 'Binary'];
const OTHER_TYPES = [
  'AuditEvent',
  'Parameters',
  'patient',
  'Bundle',
  'OperationOutcome',
  'Binary',
  '__proto__',
  'constructor',
  'toString',
  '',
];
const PROTO = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf'];
const OPERATORS = ['$ne', '$gt', '$regex', '$where', '$expr', '$function', '$in', '$exists', '$or', '$text', '$elemMatch'];
const MODIFIERS = [
  'exact',
  'contains',
  'missing',
  'not',
  'text',
  'above',
  'below',
  'in',
  'not-in',
  'of-type',
  'identifier',
  'Patient',
  'iterate',
  'x',
  '',
];
const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap', 'zz', 'EQ', ''];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND', 'FOO', 'get'];
const CONTENT_TYPES = [
  'application/fhir+json',
  'application/json',
  'application/json-patch+json',
  'application/fhir+json; charset=utf-16',
  'application/fhir+xml',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=utf-8; fhirVersion=3.0',
  '*/*',
  ';;;',
  '',
];
const ACCEPTS = [
  'application/fhir+json',
  '*/*',
  'application/fhir+xml',
  'application/xml;q=0.9, application/fhir+json;q=0.1',
  'text/xml',
  'application/fhir+xml; fhirVersion=3.0',
  'text/html',
  'application/json;q=0',
  'application/fhir+json;fhirVersion=4.0',
  '__proto__',
  ',,,',
  'a/b;q=x',
  '',
];

/** Odd strings: Unicode of every kind, separators, escapes, encodings, injection attempts. */
const ODD_VALUES = [
  '',
  ' ',
  'a',
  'Smith',
  'ŽÃ©√',
  '😀',
  '\u202egnp.exe',
  '\u0000',
  '\u0001\u001f',
  '\uFEFF',
  'a\u0301',
  '\uFFFF',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '%',
  '%00',
  '%ZZ',
  '%ED%A0%80',
  '%C0%AE',
  '\\',
  '\\,',
  ',',
  ',,',
  '|',
  '||',
  'http://x|',
  '$',
  '.*',
  '(a+)+$',
  '[',
  "'; DROP TABLE patients; --",
  '{"$gt":""}',
  '../../etc/passwd',
  '9999-99-99',
  '2026-13-45T25:61:61Z',
  '-0',
  '1e309',
  'NaN',
  'Infinity',
  '0x10',
  '12345678901234567890123456789',
  'Patient/',
  'Patient/../Encounter/1',
  'urn:uuid:',
  'null',
  'true',
];

function isComposite(type: string, code: string): boolean {
  try {
    return searchRegistry().get(type, code)?.type === 'composite';
  } catch {
    return false;
  }
}

function registryParams(type: string): string[] {
  try {
    return searchRegistry()
      .paramsOf(type)
      .map((def) => def.code);
  } catch {
    return [];
  }
}

/**
 * A few real R4 examples to mutate: official HL7 examples, of the featured types from test/fixtures/fhir-r4-examples
 * (see its README.md), of the others from the hl7.fhir.r4.examples package (a dev dependency).
 */
function loadExamples(): unknown[] {
  const root = fileURLToPath(new URL('test/fixtures/fhir-r4-examples/', PROJECT_ROOT));
  const r4Examples = dirname(createRequire(import.meta.url).resolve('hl7.fhir.r4.examples/package.json'));
  const examples: unknown[] = [];
  for (const type of TYPES) {
    const featured = existsSync(`${root}${type}`);
    const dir = featured ? `${root}${type}` : r4Examples;
    for (const file of readdirSync(dir)
      .filter((f) => f.endsWith('.json') && (featured || f.startsWith(`${type}-`)))
      .sort()
      .slice(0, 6)) {
      examples.push(JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')));
    }
  }
  return examples;
}

export class HostileRequests {
  private readonly random: () => number;
  private readonly examples = loadExamples();
  private readonly params = new Map(TYPES.map((type) => [type, registryParams(type)]));

  constructor(
    seed: number,
    /** Ids that exist, so that some requests reach real resources. */
    private readonly knownIds: Array<{ type: string; id: string }>,
  ) {
    this.random = mulberry32(seed);
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  private int(max: number): number {
    return Math.floor(this.random() * max);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  private text(max: number): string {
    const alphabet = 'abcxyzABC0129 -_.,:;|$%&=?#/\\"\'{}[]()<>*+~!@^`\t\u00e9\u00df\u4e2d\u0000\u202e';
    return Array.from({ length: this.int(max) }, () => this.pick(alphabet.split(''))).join('');
  }

  private oddValue(): string {
    if (this.chance(0.05)) return 'x'.repeat(this.pick([300, 5000, 70_000]));
    if (this.chance(0.3)) return this.text(20);
    return this.pick(ODD_VALUES);
  }

  /** Encodes a query component, or leaves it raw (so that malformed encodings reach the server too). */
  private encode(value: string): string {
    // Raw: only what cannot go on the wire at all (outside printable ASCII) and the separators are encoded.
    if (this.chance(0.15)) return value.replace(/[^\x21-\x7e]|[#&]/gu, (c) => encodeURIComponent(c));
    return encodeURIComponent(value);
  }

  private type(): string {
    return this.chance(0.9) ? this.pick(TYPES) : this.pick(OTHER_TYPES);
  }

  private id(): string {
    if (this.chance(0.5) && this.knownIds.length > 0) return this.pick(this.knownIds).id;
    return this.pick([
      'x',
      'a'.repeat(64),
      'a'.repeat(65),
      'a'.repeat(300),
      '..',
      '.',
      '%2F',
      '%2e%2e',
      'ID_with_underscore',
      '-',
      '0',
      '$everything',
      '_history',
      '_search',
      ...PROTO,
    ]);
  }

  private searchValue(paramType: string | undefined): string {
    const values: string[] = [];
    const n = this.chance(0.05) ? this.pick([150, 250, 2000]) : 1 + this.int(3);
    for (let i = 0; i < n; i++) {
      const value = this.chance(0.5) ? this.oddValue() : `v${i}`;
      const prefix =
        paramType === 'date' || paramType === 'number' || paramType === 'quantity' || this.chance(0.1) ? this.pick(PREFIXES) : '';
      const system = paramType === 'token' && this.chance(0.3) ? `${this.pick(['http://x', '', '|', 'urn:oid:1.2'])}|` : '';
      values.push(`${prefix}${system}${value}`);
    }
    return values.join(',');
  }

  private searchParam(type: string): [string, string] {
    const params = this.params.get(type) ?? [];
    const roll = this.random();
    if (roll < 0.45 && params.length > 0) {
      const code = this.pick(params);
      const modifier = this.chance(0.3) ? `:${this.pick(MODIFIERS)}` : '';
      if (isComposite(type, code) && this.chance(0.7)) {
        // A composite's value: components separated by $, too few, too many, empty or escaped.
        const parts = Array.from({ length: this.int(5) }, () => this.searchValue(this.pick(['token', 'quantity', 'date', 'string'])));
        return [`${code}${modifier}`, parts.join(this.pick(['$', '$', '\\$', '$$']))];
      }
      return [`${code}${modifier}`, this.searchValue(undefined)];
    }
    if (roll < 0.55) return [`${this.pick(params.length ? params : ['name'])}[${this.pick(OPERATORS)}]`, this.oddValue()];
    if (roll < 0.6) return [this.pick(PROTO), this.oddValue()];
    if (roll < 0.7) {
      const chain = Array.from(
        { length: 1 + this.int(6) },
        () =>
          `${this.pick(['subject', 'patient', 'link', 'encounter', 'part-of', 'general-practitioner', 'x'])}${this.chance(0.4) ? `:${this.pick(TYPES)}` : ''}`,
      ).join('.');
      return [`${chain}.${this.pick(['name', 'status', '_id', 'birthdate', ''])}`, this.oddValue()];
    }
    if (roll < 0.75) {
      const has = Array.from(
        { length: 1 + this.int(6) },
        () => `_has:${this.type()}:${this.pick(['subject', 'patient', 'part-of', 'encounter', 'x'])}`,
      ).join(':');
      return [`${has}:${this.pick(['status', 'name', '_id', ''])}`, this.oddValue()];
    }
    const control: Array<() => [string, string]> = [
      () => ['_sort', this.pick(['', ',', '-', '--name', 'name,-birthdate', '_lastUpdated', '-_id', 'x', ...PROTO, 'name'.repeat(100)])],
      () => ['_count', this.pick(['0', '-1', '1', '20', '10000', '1e10', '99999999999999999999', 'abc', '', '1.5', ' 5'])],
      () => ['_elements', this.pick(['', ',', 'name', 'name,birthDate', 'id', 'meta', '*', ...PROTO, this.text(40)])],
      () => ['_summary', this.pick(['true', 'false', 'count', 'text', 'data', 'x', '', ...PROTO])],
      () => ['_total', this.pick(['none', 'estimate', 'accurate', 'ACCURATE', 'estimate,accurate', ' none', 'x', '', ...PROTO])],
      () => [
        this.pick(['_include', '_revinclude', '_include:iterate', '_revinclude:iterate']),
        `${this.type()}:${this.pick(['subject', 'patient', 'encounter', '*', 'x', '', ...PROTO])}${this.chance(0.3) ? `:${this.type()}` : ''}`,
      ],
      () => ['_id', this.searchValue('token')],
      () => ['_lastUpdated', this.searchValue('date')],
      () => ['_type', this.pick(['', ',', '%2C', 'Patient,', ',Patient', 'Patient,Encounter', 'AuditEvent,Patient', ...PROTO])],
      () => ['_format', this.pick(['json', 'xml', 'ttl', 'application/fhir+json', 'html', '', ...PROTO])],
      () => ['_pretty', this.pick(['true', 'false', 'x', ''])],
      () => [
        '_cursor',
        this.pick([
          '',
          'x',
          Buffer.from('{"v":1}').toString('base64url'),
          Buffer.from('{"__proto__":{"x":1}}').toString('base64url'),
          Buffer.from('{"q":"x","d":"n","v":[],"t":-1,"o":1e300}').toString('base64url'),
          Buffer.from('{"q":"x","d":"l","t":"9","o":{"__proto__":1}}').toString('base64url'),
          this.text(200),
        ]),
      ],
      () => ['_since', this.searchValue('date')],
      () => [
        this.pick(['_contained', '_list', '_filter', '_query', '_text', '_content', '_has', '_has:', '_security', '_tag', '_profile']),
        this.oddValue(),
      ],
    ];
    return this.pick(control)();
  }

  private query(type: string): string {
    const n = this.chance(0.03) ? this.pick([55, 200]) : this.int(5);
    const parts: string[] = [];
    for (let i = 0; i < n; i++) {
      const [name, value] = this.searchParam(type);
      parts.push(`${this.chance(0.9) ? this.encode(name) : name}=${this.encode(value)}`);
    }
    if (this.chance(0.05)) parts.push(this.pick(['&', '=', '==', 'a', '&&', '=x', '%', '%%']));
    return parts.join('&');
  }

  /** A JSON value built to be hostile: operators, prototype keys, wrong types, deep nesting, huge strings. */
  private hostileJson(depth = 0): unknown {
    const roll = this.random();
    if (depth > 4 || roll < 0.3) return this.pick<unknown>([null, true, 0, -1, 1e308, 1.5, '', this.oddValue(), [], {}]);
    if (roll < 0.45) return { [this.pick(OPERATORS)]: this.pick<unknown>(['', 1, null, {}, 'function(){return true}']) };
    if (roll < 0.7) return Array.from({ length: this.int(4) }, () => this.hostileJson(depth + 1));
    const object: Record<string, unknown> = {};
    for (let i = 0; i < this.int(4); i++)
      object[this.chance(0.2) ? this.pick([...OPERATORS, 'resourceType', 'id', 'meta', 'extension']) : this.text(8)] = this.hostileJson(
        depth + 1,
      );
    return object;
  }

  /** A real example, mutated: elements removed, replaced by hostile values, ids and references bent. */
  private mutatedResource(type?: string): Record<string, unknown> {
    const candidates = type ? this.examples.filter((e) => (e as { resourceType: string }).resourceType === type) : this.examples;
    const resource = structuredClone(this.pick(candidates.length ? candidates : this.examples)) as Record<string, unknown>;
    const mutations = this.int(4);
    for (let i = 0; i < mutations; i++) {
      const keys = Object.keys(resource);
      const key = this.pick(keys);
      switch (this.int(7)) {
        case 0:
          delete resource[key];
          break;
        case 1:
          // Now and then a shape the JSON representation forbids: empty, null, or the wrong side of _x.
          resource[key] = this.chance(0.3) ? this.pick<unknown>([[], {}, null, [null], [{}]]) : this.hostileJson();
          if (this.chance(0.2)) resource[`_${key}`] = this.pick<unknown>([[{ id: 'x' }], { id: 'x' }, {}, [null], []]);
          break;
        case 2:
          resource[
            this.pick([...PROTO.filter((p) => p !== '__proto__' && p !== 'constructor'), 'unknownElement', '_birthDate', 'resourceType'])
          ] = this.hostileJson();
          break;
        case 3:
          resource.subject = {
            reference: this.pick([
              'Patient/does-not-exist',
              'Patient/',
              '#x',
              'urn:uuid:x',
              'http://other/Patient/1',
              'Observation/1',
              '',
              this.oddValue(),
            ]),
          };
          break;
        case 4:
          resource.id = this.id();
          break;
        case 5:
          resource.name = [{ family: this.oddValue(), given: [this.oddValue()] }];
          break;
        default:
          resource.meta = this.pick<unknown>([
            { versionId: 'x' },
            { profile: ['http://x'] },
            { lastUpdated: '2026-99' },
            'x',
            null,
            { security: [{ code: this.oddValue() }] },
          ]);
      }
    }
    return resource;
  }

  private jsonBody(type?: string): string {
    const roll = this.random();
    if (roll < 0.45) return JSON.stringify(this.mutatedResource(type));
    if (roll < 0.55) return JSON.stringify(this.hostileJson());
    if (roll < 0.6) return `${'['.repeat(this.pick([50, 101, 5000]))}${']'.repeat(this.pick([0, 50, 101]))}`;
    if (roll < 0.65) return `{"resourceType":"${type ?? 'Patient'}","__proto__":{"admin":true}}`;
    if (roll < 0.7) return `{"resourceType":"${type ?? 'Patient'}","constructor":{"prototype":{"x":1}}}`;
    if (roll < 0.75)
      return `{"resourceType":"${type ?? 'Patient'}","name":[{"family":"${this.pick(['\\ud800', '\\udc00x', 'a\\ud83d', '\\u0000', '\\uffff', '\\ud83d\\ude00'])}"}]}`;
    if (roll < 0.8)
      return this.pick(['', ' ', 'null', '{', '{"a":', '[]', '"x"', '1', '{"resourceType":1}', '\uFEFF{}', '{}garbage', '{"a":1,"a":2}']);
    if (roll < 0.85)
      return JSON.stringify({
        resourceType: type ?? 'Patient',
        text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${this.oddValue()}<script>x</script></div>` },
      });
    if (roll < 0.9)
      return JSON.stringify({ resourceType: type ?? 'Patient', name: [{ family: 'x'.repeat(this.pick([100_000, 1_100_000])) }] });
    return this.text(200);
  }

  /**
   * A body in FHIR XML: a mutated resource written as XML (when the converter can write it), the same with its text
   * damaged, or hostile XML: DTDs and entities (XXE, billion laughs), wrong namespaces, deep nesting, elements out
   * of order or unknown, text where none belongs, bad value forms, other encodings, processing instructions.
   */
  private xmlBody(type?: string): string {
    const resourceType = type ?? 'Patient';
    const ns = 'xmlns="http://hl7.org/fhir"';
    const roll = this.random();
    if (roll < 0.45) {
      let xml: string;
      try {
        xml = resourceToXml(this.mutatedResource(type) as Record<string, unknown>);
      } catch {
        xml = `<${resourceType} ${ns}><id value="${this.int(100)}"/></${resourceType}>`;
      }
      if (this.chance(0.3)) {
        // Damage the text: cut it, swap a tag, drop a quote.
        const at = this.int(xml.length);
        xml = this.pick([xml.slice(0, at), `${xml.slice(0, at)}<x>${xml.slice(at)}`, xml.replace('"', ''), xml.replace('/>', '>')]);
      }
      return xml;
    }
    return this.pick([
      `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><${resourceType} ${ns}><id value="&x;"/></${resourceType}>`,
      `<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><${resourceType} ${ns}><id value="&c;"/></${resourceType}>`,
      `<!DOCTYPE r SYSTEM "http://127.0.0.1:1/x.dtd"><${resourceType} ${ns}/>`,
      `<${resourceType} ${ns}><id value="&undeclared;"/></${resourceType}>`,
      `<${resourceType}/>`,
      `<${resourceType} xmlns="http://hl7.org/fhir/other"/>`,
      `<f:${resourceType} xmlns:f="http://hl7.org/fhir"><f:id value="1"/></f:${resourceType}>`,
      `<${resourceType} ${ns}>${'<extension url="u">'.repeat(this.pick([50, 151, 3000]))}`,
      `<${resourceType} ${ns}><meta/><id value="1"/></${resourceType}>`,
      `<${resourceType} ${ns}><nonsense value="1"/></${resourceType}>`,
      `<${resourceType} ${ns}>text<id value="1"/></${resourceType}>`,
      `<${resourceType} ${ns}><id value="${this.oddValue().replace(/[<&"]/g, '')}"/></${resourceType}>`,
      `<${resourceType} ${ns}><id value="1" value="2"/></${resourceType}>`,
      `<${resourceType} ${ns}><id/></${resourceType}>`,
      `<${resourceType} ${ns}><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><script>x</script></div></text></${resourceType}>`,
      `<?xml version="1.0" encoding="UTF-16"?><${resourceType} ${ns}/>`,
      `<?xml-stylesheet href="x.xsl"?><${resourceType} ${ns}/>`,
      `<${resourceType} ${ns}><![CDATA[x]]></${resourceType}>`,
      `<Bundle ${ns}><type value="transaction"/><entry><resource><${resourceType}/><${resourceType}/></resource></entry></Bundle>`,
      `<Parameters ${ns}><parameter><name value="operation"/><part><name value="type"/><valueCode value="delete"/></part><part><name value="path"/><valueString value="${this.pick(['Patient.name', 'x(', '%resource'])}"/></part></parameter></Parameters>`,
      `\uFEFF<${resourceType} ${ns}/>`,
      '<a><b></a></b>',
      '<',
      '',
      this.text(200),
      `<${resourceType} ${ns} ${'a'.repeat(100)}="${'x'.repeat(this.pick([10, 100_000]))}"/>`,
    ]);
  }

  /** A resource body in JSON, or (a quarter of the time) in XML, with its content type. */
  private resourceBody(type?: string): { body: string; contentType: string } {
    if (this.chance(0.25))
      return { body: this.xmlBody(type), contentType: this.pick(['application/fhir+xml', 'application/xml', 'text/xml']) };
    return { body: this.jsonBody(type), contentType: 'application/fhir+json' };
  }

  private patchBody(): { body: string; contentType: string } {
    if (this.chance(0.6)) {
      const operations = Array.from({ length: 1 + this.int(3) }, () => ({
        op: this.pick(['add', 'remove', 'replace', 'move', 'copy', 'test', 'x', '']),
        path: this.pick([
          '/name/0/family',
          '/id',
          '/resourceType',
          '/meta/versionId',
          '/name/-',
          '/__proto__/x',
          '/constructor/prototype',
          '',
          '/',
          '/a/b/c',
          '~1',
          '/name/99',
        ]),
        ...(this.chance(0.7) ? { value: this.hostileJson() } : {}),
        ...(this.chance(0.2) ? { from: this.pick(['/name', '/id', '', '/__proto__']) } : {}),
      }));
      return { body: JSON.stringify(this.chance(0.9) ? operations : operations[0]), contentType: 'application/json-patch+json' };
    }
    const parameters = {
      resourceType: 'Parameters',
      parameter: Array.from({ length: 1 + this.int(2) }, () => ({
        name: this.pick(['operation', 'x']),
        part: [
          { name: 'type', valueCode: this.pick(['add', 'insert', 'delete', 'replace', 'move', 'x']) },
          {
            name: 'path',
            valueString: this.pick([
              'Patient',
              'Patient.name',
              'Patient.name[0].family',
              'Patient.name.where(',
              'Patient.id',
              '%resource',
              'x()',
            ]),
          },
          { name: 'name', valueString: this.pick(['family', 'given', 'id', '__proto__']) },
          { name: 'value', valueString: this.oddValue() },
        ],
      })),
    };
    if (this.chance(0.3)) return { body: resourceToXml(parameters), contentType: 'application/fhir+xml' };
    return { body: JSON.stringify(parameters), contentType: 'application/fhir+json' };
  }

  private bundleBody(): string {
    const entries = Array.from({ length: this.chance(0.05) ? this.pick([101, 300]) : this.int(6) }, () => {
      const type = this.type();
      const method = this.pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'x', '', ...PROTO]);
      const url = this.pick([
        `${type}`,
        `${type}/${this.id()}`,
        `${type}?${this.query(type)}`,
        `${type}/${this.id()}/_history`,
        `${type}/${this.id()}/_history/x`,
        `${type}/$validate`,
        'metadata',
        '',
        'http://other/Patient/1',
        `Patient/${this.id()}/$everything`,
      ]);
      const entry: Record<string, unknown> = { request: { method, url } };
      if (this.chance(0.5)) entry.resource = this.chance(0.8) ? this.mutatedResource() : this.hostileJson();
      if (this.chance(0.3))
        entry.fullUrl = this.pick(['urn:uuid:1', 'urn:uuid:1', `urn:uuid:${this.int(5)}`, 'x', '', 'http://x/Patient/1']);
      if (this.chance(0.1)) (entry.request as Record<string, unknown>).ifNoneExist = this.query(type);
      if (this.chance(0.1)) (entry.request as Record<string, unknown>).ifMatch = this.pick(['W/"1"', 'x', '"99"']);
      return this.chance(0.05) ? this.hostileJson() : entry;
    });
    return JSON.stringify({
      resourceType: 'Bundle',
      type: this.pick(['batch', 'transaction', 'transaction', 'batch', 'searchset', 'x', '']),
      entry: entries,
    });
  }

  private headers(contentType?: string): Record<string, string> {
    const headers: Record<string, string> = {};
    if (contentType !== undefined) headers['content-type'] = this.chance(0.85) ? contentType : this.pick(CONTENT_TYPES);
    if (this.chance(0.2)) headers.accept = this.pick(ACCEPTS);
    if (this.chance(0.1))
      headers.prefer = this.pick([
        'handling=strict',
        'handling=lenient',
        'return=minimal',
        'return=OperationOutcome',
        'respond-async',
        'x=y',
        '',
        'handling=__proto__',
      ]);
    if (this.chance(0.05)) headers['if-match'] = this.pick(['W/"1"', '"1"', 'x', '*', '', 'W/"99999999999999999999"']);
    if (this.chance(0.05)) headers['if-none-match'] = this.pick(['W/"1"', '*', 'x']);
    if (this.chance(0.05)) headers['if-modified-since'] = this.pick(['Sat, 01 Jan 2000 00:00:00 GMT', 'x', '']);
    if (this.chance(0.05)) headers['if-none-exist'] = this.query('Patient');
    if (this.chance(0.03)) headers['x-http-method-override'] = this.pick(METHODS);
    if (this.chance(0.03)) headers['x-request-id'] = this.pick(['ok-id', '../x', 'x'.repeat(500), '']);
    if (this.chance(0.03)) headers['x-forwarded-for'] = this.pick(['1.2.3.4', 'garbage', '::1, 10.0.0.1']);
    // Header values travel as Latin-1 without control characters: anything else cannot be sent at all.
    for (const [name, value] of Object.entries(headers)) headers[name] = value.replace(/[^\x20-\x7e]/gu, (c) => encodeURIComponent(c));
    return headers;
  }

  next(): HostileRequest {
    const type = this.type();
    const roll = this.random();
    if (roll < 0.35) {
      return { kind: 'search', method: 'GET', path: `/${this.chance(0.1) ? '' : type}?${this.query(type)}`, headers: this.headers() };
    }
    if (roll < 0.4) {
      const body = this.query(type);
      return {
        kind: 'search-post',
        method: 'POST',
        path: `/${this.chance(0.2) ? '' : `${type}/`}_search`,
        headers: this.headers('application/x-www-form-urlencoded'),
        body,
      };
    }
    if (roll < 0.5 && type === 'Binary' && this.chance(0.5)) {
      // A Binary's raw content: bytes in a media type of their own, with or without a security context.
      const headers = this.headers(
        this.pick(['image/png', 'text/html', 'application/pdf', 'application/octet-stream', 'text/plain; charset=x', 'a/b; c']),
      );
      if (this.chance(0.3)) headers['x-security-context'] = this.pick(['Patient/1', '', 'x'.repeat(300), '#x', 'Patient/../x']);
      const bytes = Buffer.from(Array.from({ length: this.pick([0, 1, 100, 5000]) }, () => this.int(256)));
      return {
        kind: 'create',
        method: this.pick(['POST', 'PUT']),
        path: this.chance(0.5) ? '/Binary' : `/Binary/${this.id()}`,
        headers,
        body: bytes,
      };
    }
    if (roll < 0.5) {
      const { body, contentType } = this.resourceBody(TYPES.includes(type) ? type : undefined);
      return { kind: 'create', method: 'POST', path: `/${type}`, headers: this.headers(contentType), body };
    }
    if (roll < 0.58) {
      const id = this.id();
      const { body, contentType } = this.resourceBody(type);
      return {
        kind: 'update',
        method: 'PUT',
        path: `/${type}/${id}${this.chance(0.1) ? `?${this.query(type)}` : ''}`,
        headers: this.headers(contentType),
        body,
      };
    }
    if (roll < 0.64) {
      const patch = this.patchBody();
      return { kind: 'patch', method: 'PATCH', path: `/${type}/${this.id()}`, headers: this.headers(patch.contentType), body: patch.body };
    }
    if (roll < 0.72) {
      if (this.chance(0.2)) {
        // The same Bundle in XML, when the converter can write it.
        try {
          const xml = resourceToXml(JSON.parse(this.bundleBody()) as Record<string, unknown>);
          return { kind: 'bundle', method: 'POST', path: '/', headers: this.headers('application/fhir+xml'), body: xml };
        } catch {
          return { kind: 'bundle', method: 'POST', path: '/', headers: this.headers('application/fhir+xml'), body: this.xmlBody('Bundle') };
        }
      }
      return { kind: 'bundle', method: 'POST', path: '/', headers: this.headers('application/fhir+json'), body: this.bundleBody() };
    }
    if (roll < 0.8) {
      const path = this.pick([
        `/${type}/${this.id()}`,
        `/${type}/${this.id()}/_history`,
        `/${type}/${this.id()}/_history/${this.pick(['1', '0', '-1', 'x', '99999999999999999999'])}`,
        `/${type}/_history?${this.query(type)}`,
        `/_history?${this.pick(['_since=x', '_count=-1', '_at=2026', '_cursor=x', ''])}`,
        `/Patient/${this.id()}/$everything?${this.pick(['_since=x', '_type=,', '_type=Observation', '_count=0', '_count=x', 'start=2020', ''])}`,
        `/Patient/${this.id()}/${this.pick([...TYPES, '*', 'Observation', ...PROTO])}?${this.query(type)}`,
        `/${type}/${this.id()}/$verify`,
        `/${type}/${this.id()}/_history/1/$proof`,
        `/${type}/${this.id()}/$provenance`,
        `/${type}/${this.id()}/_history/${this.pick(['1', '0', 'x'])}/$provenance`,
        `/$export?${this.pick(['_type=,', '_type=Patient', '_since=x', '_outputFormat=x', '_typeFilter=x', ''])}`,
        `/$ledger-audit?${this.pick(['from=x', 'from=0', 'from=1&to=1001', 'to=1&from=2', 'from=99999999999999999', 'from=1&to=1', ''])}`,
        `/verify${this.pick(['', '?x=1', '/', '/..'])}`,
        '/metadata',
        `/metadata?mode=${this.pick(['full', 'normative', 'terminology', 'x', ...PROTO])}`,
        '/.well-known/smart-configuration',
        `/${this.pick(['', '..', '%2e%2e', '//', 'Patient//x', 'Patient/x/y/z/w', '$x', '_x'])}`,
      ]);
      return { kind: 'read', method: this.chance(0.85) ? 'GET' : this.pick(METHODS), path, headers: this.headers() };
    }
    if (roll < 0.85) {
      const { body, contentType } = this.resourceBody(type);
      return {
        kind: 'validate',
        method: 'POST',
        path: `/${type}/$validate${this.chance(0.2) ? `?mode=${this.pick(['create', 'update', 'delete', 'x'])}` : ''}`,
        headers: this.headers(contentType),
        body,
      };
    }
    if (roll < 0.9) {
      const path = `/${type}${this.chance(0.5) ? `/${this.id()}` : `?${this.query(type)}`}`;
      // Clients send their Content-Type on every request, body or not.
      return { kind: 'delete', method: 'DELETE', path, headers: this.headers(this.chance(0.5) ? 'application/fhir+json' : undefined) };
    }
    // Method and header tampering on random routes, bodies where none belongs.
    const method = this.pick(METHODS);
    return {
      kind: 'tamper',
      method,
      path: this.pick([`/${type}`, `/${type}/${this.id()}`, '/', '/metadata', '/_search', `/${type}/_search`, '/healthz']),
      headers: this.headers(this.pick(CONTENT_TYPES)),
      ...(method !== 'GET' && method !== 'HEAD' && this.chance(0.7) ? { body: this.jsonBody() } : {}),
    };
  }
}
