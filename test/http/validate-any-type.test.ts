/**
 * $validate accepts every R4 resource type, hosted or not: a Parameters, an Observation the server does not store.
 * Nothing else is answered for a type that is not hosted.
 */
import type { CapabilityStatement, OperationOutcome } from '@medplum/fhirtypes';
import t from 'tap';
import { FEATURED_ONLY, startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

const json = { 'content-type': 'application/fhir+json' };
const errorsOf = (outcome: OperationOutcome) => (outcome.issue ?? []).filter((i) => i.severity === 'error');

t.test('$validate on types not stored here (RESOURCE_TYPES restricted to the featured ones)', async (t) => {
  const { app } = await startTestApp(t, FEATURED_ONLY);
  const validate = async (type: string, body: object) => {
    const res = await app.inject({ method: 'POST', url: `/${type}/$validate`, headers: json, payload: body });
    t.equal(res.statusCode, 200, `POST /${type}/$validate answers 200`);
    return res.json() as OperationOutcome;
  };

  const parameters = { resourceType: 'Parameters', parameter: [{ name: 'greeting', valueString: 'hello' }] };
  t.same(errorsOf(await validate('Parameters', parameters)), [], 'a valid Parameters passes');
  const nameless = await validate('Parameters', { resourceType: 'Parameters', parameter: [{ valueString: 'hello' }] });
  t.ok(
    errorsOf(nameless).some((i) => i.expression?.some((e) => e.startsWith('Parameters.parameter'))),
    'a parameter without its name is an error at Parameters.parameter',
  );
  const wrapped = await validate('Parameters', {
    resourceType: 'Parameters',
    parameter: [{ name: 'resource', resource: { resourceType: 'Parameters', parameter: [{ valueString: 'x' }] } }],
  });
  t.ok(errorsOf(wrapped).length > 0, "the operation's own Parameters form validates the resource it carries");

  t.same(
    errorsOf(await validate('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'weight' } })),
    [],
    'a valid Observation passes',
  );
  const statusless = await validate('Observation', { resourceType: 'Observation', code: { text: 'weight' } });
  t.ok(
    errorsOf(statusless).some((i) => i.expression?.includes('Observation.status')),
    'a missing status is an error at Observation.status',
  );
  const shapeless = await validate('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'weight' }, category: [] });
  t.ok(
    errorsOf(shapeless).some((i) => i.expression?.includes('Observation.category')),
    'the JSON rules apply to every type',
  );

  t.equal(
    (
      await app.inject({
        method: 'POST',
        url: '/Observation',
        headers: json,
        payload: { resourceType: 'Observation', status: 'final', code: { text: 'x' } },
      })
    ).statusCode,
    404,
    'but nothing else: no create',
  );
  t.equal((await app.inject({ url: '/Observation/x' })).statusCode, 404, 'no read');

  const capabilities = (await app.inject({ url: '/metadata' })).json() as CapabilityStatement;
  const observation = capabilities.rest?.[0]?.resource?.find((r) => r.type === 'Observation');
  t.same(
    observation?.operation?.map((o) => o.name),
    ['validate'],
    'the CapabilityStatement lists Observation with $validate',
  );
  t.same(observation?.interaction ?? [], [], 'and no interaction');
});
