/**
 * Plain paths (`Patient.name.family`) are followed property by property instead of through the FHIRPath engine,
 * which is many times cheaper on every write and on every AuditEvent. This proves the shortcut changes nothing: on
 * every fixture resource of the stored types — the official examples, Synthea's patients, Bulk NDJSON, and
 * AuditEvents of every kind the server records — the index values are exactly those the engine gives.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import t from 'tap';
import { buildAuditEvent, type AccessRecord } from '../../../src/fhir/audit/audit-event.js';
import { extractIndex } from '../../../src/fhir/search/extract.js';
import { SearchRegistry, searchRegistry } from '../../../src/fhir/search/registry.js';
import { storedResourceTypes } from '../../../src/fhir/resource-types.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures', import.meta.url));
const BASE = 'http://127.0.0.1:8080';

function fixtureResources(): Resource[] {
  const out: Resource[] = [];
  const examples = join(FIXTURES, 'fhir-r4-examples');
  for (const type of readdirSync(examples, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const file of readdirSync(join(examples, type.name))) out.push(JSON.parse(readFileSync(join(examples, type.name, file), 'utf8')));
  }
  for (const file of readdirSync(join(FIXTURES, 'synthea')).filter((f) => f.endsWith('.json'))) {
    const bundle = JSON.parse(readFileSync(join(FIXTURES, 'synthea', file), 'utf8')) as Bundle;
    for (const entry of bundle.entry ?? []) if (entry.resource) out.push(entry.resource);
  }
  for (const file of readdirSync(join(FIXTURES, 'bulk-ndjson')).filter((f) => f.endsWith('.ndjson'))) {
    for (const line of readFileSync(join(FIXTURES, 'bulk-ndjson', file), 'utf8').split('\n')) if (line.trim()) out.push(JSON.parse(line));
  }
  return out.filter((r) => storedResourceTypes().includes(r.resourceType));
}

function auditEvents(): Resource[] {
  const principal = {
    clientId: 'c1',
    subject: 'u1',
    fhirUser: 'Practitioner/p9',
    patient: undefined,
    scopes: ['user/*.rs'],
    issuer: 'https://idp.example',
    tokenId: 'j',
    expiresAt: 0,
    ownIssuer: false,
  };
  const base: AccessRecord = {
    interaction: 'search-type',
    recorded: new Date('2026-03-04T05:06:07.089Z'),
    status: 200,
    principal,
    clientAddress: '10.1.2.3',
    requestId: 'req-7',
    request: 'GET /Encounter',
    query: { text: 'subject=Patient/p1&_count=5', types: ['Encounter'] },
    entities: [{ reference: 'Encounter/e1/_history/2' }, { reference: 'Patient/p1/_history/1', detail: 'entry 0: 200' }],
    patients: ['Patient/p1', 'Patient/p2'],
    server: { baseUrl: BASE, name: 'fhir-ledger-server', version: '0.1.0' },
  };
  return [
    buildAuditEvent(base, 'a1'),
    buildAuditEvent({ ...base, interaction: 'create', status: 201, query: undefined }, 'a2'),
    buildAuditEvent(
      {
        ...base,
        interaction: 'read',
        status: 403,
        failure: 'Insufficient scope',
        principal: { ...principal, fhirUser: `${BASE}/Practitioner/p9` },
      },
      'a3',
    ),
    buildAuditEvent({ ...base, interaction: 'delete', status: 401, principal: undefined, entities: [], patients: [] }, 'a4'),
    buildAuditEvent({ ...base, interaction: 'operation', operation: 'everything', authorizationOff: true, principal: undefined }, 'a5'),
  ] as Resource[];
}

t.test('plain paths give exactly the index values the FHIRPath engine gives', async (t) => {
  const fast = searchRegistry();
  // The same definitions with every shortcut removed: the engine evaluates everything.
  const engine = new SearchRegistry(storedResourceTypes());
  let shortcuts = 0;
  for (const type of storedResourceTypes()) {
    for (const def of engine.paramsOf(type))
      for (const binding of def.bindings.values()) for (const part of binding.parts) delete part.simple;
    for (const def of fast.paramsOf(type)) shortcuts += def.bindings.get(type)?.parts.filter((p) => p.simple).length ?? 0;
  }
  t.ok(shortcuts > 50, `${shortcuts} expression parts are followed as plain paths`);
  const resources = [...fixtureResources(), ...auditEvents()];
  t.ok(resources.length > 100, `${resources.length} resources compared`);
  let differences = 0;
  for (const resource of resources) {
    const a = extractIndex(fast, resource, BASE).idx;
    const b = extractIndex(engine, resource, BASE).idx;
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      differences++;
      t.same(a, b, `${resource.resourceType}/${resource.id}`);
    }
  }
  t.equal(differences, 0, 'no resource indexes differently');
  // The comparison can fail: a shortcut that followed the wrong property would be caught.
  const patient = resources.find((r) => r.resourceType === 'Patient')!;
  const broken = new SearchRegistry(storedResourceTypes());
  const family = broken.get('Patient', 'family')!.bindings.get('Patient')!.parts[0];
  t.ok(family.simple, 'Patient.name.family is a plain path');
  family.simple = { steps: ['name', 'given'], type: 'string' };
  t.not(JSON.stringify(extractIndex(broken, patient, BASE).idx), JSON.stringify(extractIndex(engine, patient, BASE).idx));
});
