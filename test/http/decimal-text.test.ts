/**
 * Decimals keep the digits they were written with (src/fhir/decimal-text.ts), whichever format wrote them and
 * whichever reads them: "135.00" written in JSON is 135.00 in JSON and value="135.00" in XML, through read, vread,
 * search, history, a FHIRPath Patch of another element and a transaction (a Bulk Data export: bulk-export.test.ts); and the ledger commits
 * to the resource, not its encoding: a version written in XML has one commitment, which $verify recomputes from the
 * stored version and the JSON read gives again.
 */
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { canonicalJson } from '../../src/ledger/canonical-json.js';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { param, params, startLedgerApp, startTestNetwork, waitAnchored } from '../ledger/helpers/ledger-app.js';

stopMongoAtEnd(t);

const XML = 'application/fhir+xml';
const JSON_TYPE = 'application/fhir+json';

/** An Observation in JSON text with decimals whose digits JSON.parse would lose. */
const observationJson = `{"resourceType":"Observation","status":"final",
  "code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},
  "valueQuantity":{"value":135.00,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},
  "referenceRange":[{"low":{"value":70.0,"unit":"mg/dL"},"high":{"value":1.10e2,"unit":"mg/dL"}}],
  "component":[{"code":{"text":"ratio"},"valueQuantity":{"value":0.50}},{"code":{"text":"plain"},"valueQuantity":{"value":7}}]}`;

const observationXml = `<Observation xmlns="http://hl7.org/fhir">
  <status value="final"/>
  <code><coding><system value="http://loinc.org"/><code value="2339-0"/></coding></code>
  <valueQuantity><value value="0.050"/><unit value="g"/></valueQuantity>
</Observation>`;

t.test('digits survive every path, in both formats', async (t) => {
  const { app } = await startTestApp(t);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const get = async (path: string, accept = JSON_TYPE): Promise<string> => {
    const res = await fetch(`${base}${path}`, { headers: { accept } });
    t.equal(res.status, 200, path);
    return res.text();
  };

  const created = await fetch(`${base}/Observation`, { method: 'POST', headers: { 'content-type': JSON_TYPE }, body: observationJson });
  t.equal(created.status, 201);
  const createdText = await created.text();
  t.match(createdText, /"valueQuantity":\{"value":135\.00,/, 'the create answers 135.00');
  const id = (JSON.parse(createdText) as { id: string }).id;

  const read = await get(`/Observation/${id}`);
  for (const digits of ['"value":135.00', '"value":70.0', '"value":1.10e2', '"value":0.50', '"value":7}']) {
    t.ok(read.includes(digits), `read JSON keeps ${digits}`);
  }
  t.same(JSON.parse(read).valueQuantity.value, 135, 'and the value is the number');
  const xml = await get(`/Observation/${id}`, XML);
  for (const digits of [
    '<value value="135.00"/>',
    '<value value="70.0"/>',
    '<value value="1.10e2"/>',
    '<value value="0.50"/>',
    '<value value="7"/>',
  ]) {
    t.ok(xml.includes(digits), `read XML keeps ${digits}`);
  }
  t.match(await get(`/Observation/${id}/_history/1`), /"value":135\.00,/, 'vread');
  t.match(await get(`/Observation?code=http://loinc.org|2339-0`), /"value":135\.00,/, 'search');
  t.match(await get(`/Observation?value-quantity=135`), /"value":135\.00,/, 'a search by the value finds it, digits kept');
  t.match(await get(`/Observation/${id}/_history`), /"value":135\.00,/, 'history');
  t.match(await get(`/Observation?code=2339-0`, XML), /<value value="135.00"\/>/, 'search in XML');

  const patch = await fetch(`${base}/Observation/${id}`, {
    method: 'PATCH',
    headers: { 'content-type': JSON_TYPE },
    body: JSON.stringify({
      resourceType: 'Parameters',
      parameter: [
        {
          name: 'operation',
          part: [
            { name: 'type', valueCode: 'replace' },
            { name: 'path', valueString: 'Observation.status' },
            { name: 'value', valueCode: 'amended' },
          ],
        },
      ],
    }),
  });
  t.equal(patch.status, 200);
  const patched = await patch.text();
  t.match(patched, /"status":"amended"/);
  t.match(patched, /"valueQuantity":\{"value":135\.00,/, 'a patch of another element keeps the digits');
  t.match(await get(`/Observation/${id}`), /"value":1\.10e2,/, 'and the stored version has them');

  const changed = await fetch(`${base}/Observation/${id}`, {
    method: 'PUT',
    headers: { 'content-type': JSON_TYPE },
    body: observationJson.replace('"resourceType":"Observation",', `"resourceType":"Observation","id":"${id}",`).replace('135.00', '136'),
  });
  t.equal(changed.status, 200);
  const updated = await get(`/Observation/${id}`);
  t.match(updated, /"valueQuantity":\{"value":136,/, 'a new value is written as given');
  t.match(updated, /"value":0\.50/, 'the rest as given');

  // XML in, JSON out.
  const fromXml = await fetch(`${base}/Observation`, {
    method: 'POST',
    headers: { 'content-type': XML, accept: JSON_TYPE },
    body: observationXml,
  });
  t.equal(fromXml.status, 201);
  t.match(await fromXml.text(), /"valueQuantity":\{"value":0\.050,"unit":"g"\}/, 'value="0.050" is 0.050 in JSON');

  // A transaction.
  const bundle = `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":${observationJson},"request":{"method":"POST","url":"Observation"}}]}`;
  const tx = await fetch(`${base}/`, {
    method: 'POST',
    headers: { 'content-type': JSON_TYPE, prefer: 'return=representation' },
    body: bundle,
  });
  t.equal(tx.status, 200);
  const txText = await tx.text();
  const location = (JSON.parse(txText) as { entry: { response: { location: string } }[] }).entry[0]!.response.location.split(
    '/_history',
  )[0];
  t.match(await get(`/${location}`), /"value":135\.00,/, 'a transaction entry keeps its digits');
});

t.test('the ledger commits to the resource, not its encoding', async (t) => {
  const net = await startTestNetwork(t);
  const { app, runtime, connection } = await startLedgerApp(t, net);
  const created = await app.inject({
    method: 'POST',
    url: '/Observation',
    headers: { 'content-type': XML, accept: XML },
    payload: observationXml,
  });
  t.equal(created.statusCode, 201, created.body);
  const id = /<id value="([^"]+)"\/>/.exec(created.body)?.[1];
  runtime.start();
  await waitAnchored(connection, 10_000);

  for (const accept of [JSON_TYPE, XML]) {
    const verify = await app.inject({ url: `/Observation/${id}/_history/1/$verify`, headers: { accept } });
    t.equal(verify.statusCode, 200, verify.body);
    if (accept === XML) {
      t.match(verify.body, /<name value="status"\/><valueCode value="anchored"\/>/, '$verify in XML says anchored');
      continue;
    }
    const body = verify.json();
    t.equal(param(body, 'status')?.valueCode, 'anchored');
    t.ok(
      params(body, 'check').every((c) => c.part?.find((p) => p.name === 'ok')?.valueBoolean === true),
      'every check passed for the version written in XML',
    );
  }

  // The commitment recomputed from the JSON read equals the one recorded: one commitment, whichever encoding.
  const proof = await app.inject({ url: `/Observation/${id}/_history/1/$proof` });
  t.equal(proof.statusCode, 200, proof.body);
  const pkg = proof.json() as { versions?: { salt?: string; commitment?: string }[]; salt?: string; commitment?: string };
  const entry = pkg.versions?.[0] ?? pkg;
  const asJson = JSON.parse((await app.inject({ url: `/Observation/${id}/_history/1`, headers: { accept: JSON_TYPE } })).body) as object;
  const recomputed = createHash('sha256').update(Buffer.from(entry.salt!, 'hex')).update(canonicalJson(asJson), 'utf8').digest('hex');
  t.equal(recomputed, entry.commitment, 'SHA-256(salt || JCS(the JSON read)) is the recorded commitment');
});
