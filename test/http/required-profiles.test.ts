/** REQUIRED_PROFILES: configuration can force a profile on every resource of a type. */
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createResourceValidator } from '../../src/fhir/validation/index.js';
import { connectMongo } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { TEST_CONFIG } from '../helpers/app.js';
import { stopTestMongo, testMongo, uniqueDbName } from '../helpers/mongo.js';

t.teardown(stopTestMongo);

t.test('a Patient that does not meet the required US Core profile is refused', async (t) => {
  const US_CORE_PATIENT = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient';
  const config = loadConfig({ REQUIRED_PROFILES: `Patient=${US_CORE_PATIENT}` });
  t.same(config.requiredProfiles, { Patient: [US_CORE_PATIENT] });

  const validator = await createResourceValidator({
    profilesDir: fileURLToPath(new URL('../../profiles', import.meta.url)),
    requiredProfiles: config.requiredProfiles,
    log: () => {},
  });
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, uniqueDbName());
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const app = await buildApp(TEST_CONFIG, { store, validator, logger: false });
  t.teardown(async () => {
    await app.close();
    await connection.db.dropDatabase();
    await connection.close();
  });
  const json = { 'content-type': 'application/fhir+json' };

  let res = await app.inject({ method: 'POST', url: '/Patient', headers: json, payload: { resourceType: 'Patient', gender: 'female' } });
  t.equal(res.statusCode, 400, 'no identifier and no name: not US Core');
  t.match(JSON.stringify(res.json()), /us-core-patient/);

  res = await app.inject({
    method: 'POST',
    url: '/Patient',
    headers: json,
    payload: {
      resourceType: 'Patient',
      identifier: [{ system: 'http://hospital.example.org/mrn', value: '12345' }],
      name: [{ family: 'Shaw', given: ['Amy'] }],
      gender: 'female',
    },
  });
  t.equal(res.statusCode, 201, res.body);

  res = await app.inject({
    method: 'POST',
    url: '/Encounter',
    headers: json,
    payload: { resourceType: 'Encounter', status: 'planned', class: { code: 'AMB' } },
  });
  t.equal(res.statusCode, 201, 'other types are not constrained');

  t.throws(() => loadConfig({ REQUIRED_PROFILES: 'Patient' }), /REQUIRED_PROFILES="Patient" is invalid/);
});
