/**
 * The official FHIR R4 examples of the three types (hl7.fhir.r4.examples 4.0.1) go in through the API and come
 * back unchanged apart from meta.versionId and meta.lastUpdated, through create (POST) and update-as-create (PUT).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Resource } from '@medplum/fhirtypes';
import t from 'tap';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { withoutServerMeta } from '../helpers/resources.js';

stopMongoAtEnd(t);

const FIXTURES = fileURLToPath(new URL('../fixtures/fhir-r4-examples/', import.meta.url));
const json = { 'content-type': 'application/fhir+json' };

function examples(type: string): Resource[] {
  return readdirSync(join(FIXTURES, type))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(FIXTURES, type, f), 'utf8')) as Resource);
}

for (const type of ['Patient', 'Encounter', 'MedicationRequest']) {
  t.test(`${type}: every official example round-trips`, async (t) => {
    const { app } = await startTestApp(t);
    const all = examples(type);
    t.ok(all.length >= 10, `${all.length} examples`);
    for (const example of all) {
      const put = await app.inject({ method: 'PUT', url: `/${type}/${example.id}`, headers: json, payload: example });
      t.equal(put.statusCode, 201, `${type}/${example.id}: ${put.statusCode === 201 ? 'created' : put.body}`);
      const read = await app.inject({ url: `/${type}/${example.id}` });
      t.same(withoutServerMeta(read.json()), withoutServerMeta(example), `${type}/${example.id} unchanged by PUT`);

      const { id: _id, ...withoutId } = example;
      const post = await app.inject({ method: 'POST', url: `/${type}`, headers: json, payload: withoutId });
      t.equal(post.statusCode, 201, `POST ${type} (${example.id})`);
      const created = post.json() as Resource;
      t.same(
        withoutServerMeta({ ...created, id: example.id } as Resource),
        withoutServerMeta(example),
        `${type}/${example.id} unchanged by POST`,
      );
    }
  });
}
