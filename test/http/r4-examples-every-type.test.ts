/**
 * The official R4 examples (npm hl7.fhir.r4.examples 4.0.1, CC0) of every storable type, each PUT under its own id:
 * either stored and read back equal apart from meta.versionId/lastUpdated, or refused with the OperationOutcome
 * listed below, each checked by hand (README, "Official examples"). The specification's own conformance resources
 * (SearchParameter, ValueSet, CodeSystem, StructureDefinition…: 4,500 of them) are sampled, 12 per type; every
 * other example is loaded.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import t from 'tap';
import { storedResourceTypes } from '../../src/fhir/resource-types.js';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);
// About 900 writes through validation, indexing and the store.
t.setTimeout(600_000);

const PACKAGE = dirname(createRequire(import.meta.url).resolve('hl7.fhir.r4.examples/package.json'));
const CONFORMANCE = new Set([
  'SearchParameter',
  'ValueSet',
  'CodeSystem',
  'StructureDefinition',
  'ConceptMap',
  'OperationDefinition',
  'CapabilityStatement',
  'CompartmentDefinition',
  'ImplementationGuide',
  'NamingSystem',
  'StructureMap',
  'TerminologyCapabilities',
  'MessageDefinition',
  'GraphDefinition',
]);
const SAMPLE_PER_CONFORMANCE_TYPE = 12;

/** The examples refused, and why (each checked: see README, "Official examples"). */
const REFUSED: Record<string, { status: number; why: RegExp }> = {
  // The audit trail is recorded by the server; clients never write it.
  ...Object.fromEntries(
    ['', '-disclosure', '-error', '-login', '-logout', '-media', '-pixQuery', '-rest', '-search'].map((s) => [
      `AuditEvent-example${s}.json`,
      { status: 405, why: /AuditEvent is recorded by the server/ },
    ]),
  ),
  // A narrative <div> with nothing but whitespace: txt-2, which the HL7 validator reports too.
  'ActivityDefinition-blood-tubes-supply.json': { status: 400, why: /txt-2/ },
  'ActivityDefinition-heart-valve-replacement.json': { status: 400, why: /txt-2/ },
  'EventDefinition-example.json': { status: 400, why: /txt-2/ },
  'Questionnaire-zika-virus-exposure-assessment.json': { status: 400, why: /txt-2/ },
  // Items without their required linkId.
  'Questionnaire-qs1.json': { status: 400, why: /linkId/ },
  // The same fullUrl twice (bdl-7).
  'Bundle-dataelements.json': { status: 400, why: /bdl-7/ },
  // A code with a trailing no-break space (codes may not end in whitespace).
  'Bundle-v2-valuesets.json': { status: 400, why: /Invalid code/ },
  // The specification's own ImplementationGuide, without the name and status every ImplementationGuide requires.
  'ImplementationGuide-fhir.json': { status: 400, why: /ImplementationGuide\.name.*ImplementationGuide\.status/ },
  'ig-r4.json': { status: 400, why: /ImplementationGuide\.name.*ImplementationGuide\.status/ },
  // 20 MB, over the body limit.
  'Bundle-resources.json': { status: 413, why: /larger than the limit/ },
  // The complex extension's required 'text' part is missing (a slice with min 1).
  'Observation-example-genetics-brcapat.json': { status: 400, why: /slice 'text'/ },
  // WRONG refusals, from @medplum/core's validator: ras-2 (`probability is decimal implies …`) evaluates to empty
  // for a prediction without a probability, which is no violation; its validator counts it as one.
  'RiskAssessment-breastcancer-risk.json': { status: 400, why: /ras-2/ },
  'RiskAssessment-prognosis.json': { status: 400, why: /ras-2/ },
};

function withoutServerMeta(resource: Resource): Resource {
  const copy = structuredClone(resource);
  if (copy.meta) {
    delete copy.meta.versionId;
    delete copy.meta.lastUpdated;
    if (Object.keys(copy.meta).length === 0) delete copy.meta;
  }
  return copy;
}

t.test('the official R4 examples of every storable type: stored and read back equal, or refused as listed', async (t) => {
  const { app } = await startTestApp(t, {
    bodyLimit: 16 * 1024 * 1024,
    bundle: { maxEntries: 10_000, maxSearches: 100, bodyLimit: 16 * 1024 * 1024 },
  });
  const stored = storedResourceTypes();
  const sampled = new Map<string, number>();
  const covered = new Set<string>();
  const unexpected: string[] = [];
  let storedCount = 0;
  for (const file of readdirSync(PACKAGE).sort()) {
    if (!file.endsWith('.json') || file === 'package.json' || file.startsWith('.')) continue;
    const resource = JSON.parse(readFileSync(join(PACKAGE, file), 'utf8')) as Resource;
    const type = resource.resourceType;
    if (!stored.includes(type)) continue;
    if (CONFORMANCE.has(type)) {
      const seen = sampled.get(type) ?? 0;
      if (seen >= SAMPLE_PER_CONFORMANCE_TYPE) continue;
      sampled.set(type, seen + 1);
    }
    covered.add(type);
    const res = await app.inject({
      method: 'PUT',
      url: `/${type}/${resource.id}`,
      headers: { 'content-type': 'application/fhir+json' },
      payload: JSON.stringify(resource),
    });
    const refusal = REFUSED[file];
    if (refusal) {
      const text = (res.json() as OperationOutcome).issue
        ?.map((i) => `${i.diagnostics ?? ''} ${i.expression?.join(',') ?? ''}`)
        .join(' | ');
      if (res.statusCode !== refusal.status || !refusal.why.test(text ?? '')) unexpected.push(`${file}: ${res.statusCode} ${text}`);
      continue;
    }
    if (res.statusCode !== 201) {
      unexpected.push(`${file}: ${res.statusCode} ${res.body.slice(0, 400)}`);
      continue;
    }
    // The server sets meta.versionId and meta.lastUpdated (an example's own lastUpdated is replaced).
    const read = await app.inject({ url: `/${type}/${resource.id}` });
    const expected = withoutServerMeta(resource);
    if (read.statusCode !== 200 || JSON.stringify(withoutServerMeta(read.json() as Resource)) !== JSON.stringify(expected)) {
      // Key order may differ; compare structurally before calling it a difference.
      const same = read.statusCode === 200 && t.same(withoutServerMeta(read.json() as Resource), expected, `${file} read back equal`);
      if (!same) unexpected.push(`${file}: read back ${read.statusCode}, not equal`);
      continue;
    }
    storedCount++;
  }
  t.same(unexpected, [], 'every example stored and read back equal, or refused as listed');
  const withExamples = stored.filter((type) => covered.has(type));
  t.ok(withExamples.length >= 135, `examples of ${withExamples.length} of the ${stored.length} storable types`);
  t.ok(storedCount >= 760, `${storedCount} stored and read back equal`);
});
