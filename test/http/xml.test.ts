/**
 * FHIR XML over a real socket: create, read, vread, update, search, history, a transaction Bundle, FHIRPath Patch,
 * $validate and delete done entirely in application/fhir+xml; the XML a write sent read back as JSON equals the JSON
 * written the same way; errors as XML OperationOutcomes naming the element by its FHIRPath; hostile XML (XXE,
 * entity expansion, depth) refused quickly without reading the file named.
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, OperationOutcome, Patient } from '@medplum/fhirtypes';
import t from 'tap';
import { resourceToXml } from '../../src/fhir/xml/json-to-xml.js';
import { resourceFromXmlText } from '../../src/fhir/xml/xml-to-json.js';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';
import { startSecuredApp } from '../helpers/auth.js';

stopMongoAtEnd(t);

const XML = 'application/fhir+xml';
type Json = Record<string, unknown>;

const patientXml = `<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>Anna <b>Berg</b> &amp; family</p></div>
  </text>
  <identifier>
    <system value="urn:oid:2.16.840.1.113883.2.4.6.3"/>
    <value value="738472983"/>
  </identifier>
  <active value="true"/>
  <name>
    <use value="official"/>
    <family value="Berg"/>
    <given value="Anna"/>
    <given>
      <extension url="http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier">
        <valueCode value="CL"/>
      </extension>
    </given>
    <given value="Maria"/>
  </name>
  <gender value="female"/>
  <birthDate value="1980-04-02">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1980-04-02T08:15:00+01:00"/>
    </extension>
  </birthDate>
  <multipleBirthInteger value="2"/>
</Patient>`;

/** The same patient as FHIR JSON, written by hand from the specification's JSON rules. */
const patientJson: Json = {
  resourceType: 'Patient',
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><p>Anna <b>Berg</b> &amp; family</p></div>' },
  identifier: [{ system: 'urn:oid:2.16.840.1.113883.2.4.6.3', value: '738472983' }],
  active: true,
  name: [
    {
      use: 'official',
      family: 'Berg',
      given: ['Anna', null, 'Maria'],
      _given: [null, { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier', valueCode: 'CL' }] }, null],
    },
  ],
  gender: 'female',
  birthDate: '1980-04-02',
  _birthDate: {
    extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1980-04-02T08:15:00+01:00' }],
  },
  multipleBirthInteger: 2,
};

/** The content of a resource without what the server assigns. */
function content(resource: Json): Json {
  const { id: _id, meta: _meta, ...rest } = resource;
  return rest;
}

t.test('FHIR XML end to end over a socket', async (t) => {
  const { app } = await startTestApp(t);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const xmlRequest = (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method,
      headers: { accept: XML, ...(body !== undefined ? { 'content-type': XML } : {}), ...headers },
      ...(body !== undefined ? { body } : {}),
    });
  const readXml = async (res: Response): Promise<Json> => {
    const text = await res.text();
    t.match(res.headers.get('content-type'), /^application\/fhir\+xml; charset=utf-8/, 'answered in FHIR XML');
    t.match(text, /^<\?xml version="1.0" encoding="UTF-8"\?><[A-Za-z]+ xmlns="http:\/\/hl7.org\/fhir"/);
    return resourceFromXmlText(text);
  };

  let id = '';
  await t.test('create: an XML body, an XML answer', async (t) => {
    const res = await xmlRequest('POST', '/Patient', patientXml);
    t.equal(res.status, 201);
    const created = await readXml(res);
    id = String(created.id);
    t.match(res.headers.get('location'), new RegExp(`/Patient/${id}/_history/1$`));
    t.same(content(created), patientJson, 'the XML read as the JSON the specification gives for it');
  });

  await t.test('an XML write read back as JSON equals the JSON written the same way', async (t) => {
    const fromJson = await fetch(`${base}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' },
      body: JSON.stringify(patientJson),
    });
    t.equal(fromJson.status, 201);
    const jsonWritten = (await fromJson.json()) as Json;
    const xmlWrittenAsJson = (await (
      await fetch(`${base}/Patient/${id}`, { headers: { accept: 'application/fhir+json' } })
    ).json()) as Json;
    t.same(content(xmlWrittenAsJson), content(jsonWritten));
    t.same(content(xmlWrittenAsJson), patientJson);
  });

  await t.test('read and vread in XML, with _format and with Accept', async (t) => {
    const read = await readXml(await xmlRequest('GET', `/Patient/${id}`));
    t.equal(read.id, id);
    const viaFormat = await fetch(`${base}/Patient/${id}?_format=xml`);
    t.same(await readXml(viaFormat), read, '_format=xml');
    const vread = await readXml(await xmlRequest('GET', `/Patient/${id}/_history/1`));
    t.same(vread, read);
    const pretty = await (await fetch(`${base}/Patient/${id}?_format=xml&_pretty=true`)).text();
    t.match(pretty, /\n {2}<meta>\n {4}<versionId value="1"\/>/, '_pretty indents');
    t.same(resourceFromXmlText(pretty), read, 'and reads the same');
  });

  await t.test('update: an XML body; a no-op update creates no version', async (t) => {
    const changed = patientXml
      .replace('<gender value="female"/>', '<gender value="other"/>')
      .replace('<Patient xmlns="http://hl7.org/fhir">', `<Patient xmlns="http://hl7.org/fhir"><id value="${id}"/>`);
    const res = await xmlRequest('PUT', `/Patient/${id}`, changed, { 'if-match': 'W/"1"' });
    t.equal(res.status, 200);
    const updated = await readXml(res);
    t.equal(updated.gender, 'other');
    t.equal((updated.meta as Json).versionId, '2');
  });

  await t.test('FHIRPath Patch as a Parameters resource in XML', async (t) => {
    const patch = `<Parameters xmlns="http://hl7.org/fhir">
      <parameter>
        <name value="operation"/>
        <part><name value="type"/><valueCode value="replace"/></part>
        <part><name value="path"/><valueString value="Patient.birthDate"/></part>
        <part><name value="value"/><valueDate value="1981-05-03"/></part>
      </parameter>
    </Parameters>`;
    const res = await xmlRequest('PATCH', `/Patient/${id}`, patch);
    t.equal(res.status, 200);
    const patched = await readXml(res);
    t.equal(patched.birthDate, '1981-05-03');
    t.same(patched.name, patientJson.name, 'the rest unchanged');
  });

  await t.test('search and history answer Bundles in XML', async (t) => {
    const search = (await readXml(await xmlRequest('GET', '/Patient?family=Berg&_sort=_id'))) as unknown as Bundle;
    t.equal(search.resourceType, 'Bundle');
    t.equal(search.type, 'searchset');
    t.equal(search.total, 2);
    t.ok(search.entry?.every((entry) => entry.resource?.resourceType === 'Patient' && entry.search?.mode === 'match'));
    const posted = await fetch(`${base}/Patient/_search`, {
      method: 'POST',
      headers: { accept: XML, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'gender=other',
    });
    const postedBundle = (await readXml(posted)) as unknown as Bundle;
    t.equal(postedBundle.total, 1, 'POST _search');
    const history = (await readXml(await xmlRequest('GET', `/Patient/${id}/_history`))) as unknown as Bundle;
    t.equal(history.type, 'history');
    t.same(
      history.entry?.map((entry) => entry.resource?.meta?.versionId),
      ['3', '2', '1'],
    );
  });

  await t.test('a transaction Bundle in XML', async (t) => {
    const bundle = `<Bundle xmlns="http://hl7.org/fhir">
      <type value="transaction"/>
      <entry>
        <fullUrl value="urn:uuid:9a7b6c1e-0f3d-4c2b-8a51-0d0c3b2a1f00"/>
        <resource>
          <Patient><name><family value="Lind"/></name></Patient>
        </resource>
        <request><method value="POST"/><url value="Patient"/></request>
      </entry>
      <entry>
        <resource>
          <Encounter>
            <status value="finished"/>
            <class><system value="http://terminology.hl7.org/CodeSystem/v3-ActCode"/><code value="AMB"/></class>
            <subject><reference value="urn:uuid:9a7b6c1e-0f3d-4c2b-8a51-0d0c3b2a1f00"/></subject>
          </Encounter>
        </resource>
        <request><method value="POST"/><url value="Encounter"/></request>
      </entry>
    </Bundle>`;
    const res = await xmlRequest('POST', '/', bundle);
    t.equal(res.status, 200);
    const response = (await readXml(res)) as unknown as Bundle;
    t.equal(response.type, 'transaction-response');
    t.same(
      response.entry?.map((entry) => entry.response?.status.slice(0, 3)),
      ['201', '201'],
    );
    const encounterUrl = response.entry?.[1]?.response?.location?.split('/_history')[0] ?? '';
    const encounter = await readXml(await xmlRequest('GET', `/${encounterUrl}`));
    const patientId = response.entry?.[0]?.response?.location?.split('/')[1];
    t.same(encounter.subject, { reference: `Patient/${patientId}` }, 'the urn:uuid reference resolved');
  });

  await t.test('a batch Bundle and $everything in XML', async (t) => {
    const batch = `<Bundle xmlns="http://hl7.org/fhir"><type value="batch"/>
      <entry><request><method value="GET"/><url value="Patient/${id}"/></request></entry>
      <entry><request><method value="GET"/><url value="Patient/no-such-id"/></request></entry>
    </Bundle>`;
    const res = await xmlRequest('POST', '/', batch);
    t.equal(res.status, 200);
    const response = (await readXml(res)) as unknown as Bundle;
    t.equal(response.type, 'batch-response');
    t.same(
      response.entry?.map((entry) => entry.response?.status.slice(0, 3)),
      ['200', '404'],
    );
    t.equal(response.entry?.[0]?.resource?.id, id);
    t.equal(response.entry?.[1]?.response?.outcome?.resourceType, 'OperationOutcome', 'an entry outcome, inside the XML Bundle');
    const everything = (await readXml(await xmlRequest('GET', `/Patient/${id}/$everything`))) as unknown as Bundle;
    t.equal(everything.type, 'searchset');
    t.ok(
      everything.entry?.some((entry) => entry.resource?.id === id),
      '$everything',
    );
  });

  await t.test('$validate takes and answers XML', async (t) => {
    const res = await xmlRequest('POST', '/Patient/$validate', patientXml);
    t.equal(res.status, 200);
    const outcome = (await readXml(res)) as unknown as OperationOutcome;
    t.equal(outcome.resourceType, 'OperationOutcome');
  });

  await t.test('delete, then a read is a 410 OperationOutcome in XML', async (t) => {
    t.equal((await xmlRequest('DELETE', `/Patient/${id}`)).status, 204);
    const gone = await xmlRequest('GET', `/Patient/${id}`);
    t.equal(gone.status, 410);
    t.equal((await readXml(gone)).resourceType, 'OperationOutcome');
  });

  await t.test('malformed and invalid XML: 400 OperationOutcomes naming the element', async (t) => {
    const refused = async (body: string, pattern: RegExp, expression?: string) => {
      const res = await xmlRequest('POST', '/Patient', body);
      t.equal(res.status, 400, String(pattern));
      const outcome = (await readXml(res)) as unknown as OperationOutcome;
      t.match(outcome.issue?.[0]?.diagnostics, pattern);
      if (expression) t.same(outcome.issue?.[0]?.expression, [expression]);
    };
    const ns = 'xmlns="http://hl7.org/fhir"';
    await refused('<Patient', /not well-formed XML/);
    await refused('<Patient/>', /not in the FHIR namespace/);
    await refused(
      `<Patient ${ns}><gender value="female"/><active value="true"/></Patient>`,
      /<active> in Patient \(line 1\) is out of order/,
      'Patient.active',
    );
    await refused(
      `<Patient ${ns}><name><nickname value="x"/></name></Patient>`,
      /Patient\.name\[0\] has an element <nickname>/,
      'Patient.name[0].nickname',
    );
    await refused(
      `<Patient ${ns}><active value="yes"/></Patient>`,
      /Patient\.active has value="yes", which is not a valid boolean/,
      'Patient.active',
    );
    await refused(`<Patient ${ns}><birthDate value="02/04/1980"/></Patient>`, /not a valid date/, 'Patient.birthDate');
    await refused(`<Patient ${ns}><multipleBirthInteger value="1.5"/></Patient>`, /not a valid integer/);
    await refused(`<Patient ${ns}>hello<active value="true"/></Patient>`, /Patient holds text/);
    await refused(`<Patient ${ns}><active value="true"/><active value="false"/></Patient>`, /Patient\.active appears more than once/);
    await refused(`<Patient ${ns}><gender/></Patient>`, /Patient\.gender has neither a value attribute nor extensions/);
    await refused(`<Patient ${ns}><name><family value="x" colour="red"/></name></Patient>`, /attribute "colour"/);
    await refused(`<Observation ${ns}><status value="final"/></Observation>`, /Observation|Patient/);
    await refused(`<Nonsense ${ns}/>`, /not a resource type of FHIR R4/);
    await refused(`<?xml version="1.0" encoding="ISO-8859-1"?><Patient ${ns}/>`, /UTF-8/);
    await refused(`<Patient ${ns}><text><status value="generated"/><div><p>x</p></div></text></Patient>`, /Patient\.text\.div/);
    const deep =
      `<Patient ${ns}><contained>`.repeat(1) +
      '<Basic><extension url="u">'.repeat(200) +
      '</extension>'.repeat(200) +
      '</Basic></contained></Patient>';
    await refused(deep, /nests deeper than/);
  });

  await t.test('another FHIR version is refused; a stylesheet instruction is ignored', async (t) => {
    const res = await fetch(`${base}/Patient`, {
      method: 'POST',
      headers: { 'content-type': `${XML}; fhirVersion=3.0`, accept: XML },
      body: patientXml,
    });
    t.equal(res.status, 415);
    const pi = await xmlRequest(
      'POST',
      '/Patient',
      `<?xml version="1.0"?><?xml-stylesheet href="x.xsl"?>${patientXml.slice(patientXml.indexOf('?>') + 2)}`,
    );
    t.equal(pi.status, 201);
  });

  await t.test('XXE and billion laughs are refused quickly, and the named file is never read', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'xxe-'));
    const secret = join(dir, 'secret.txt');
    writeFileSync(secret, 'TOP-SECRET-CONTENT');
    const before = statSync(secret);
    const xxe = `<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file://${secret}">]><Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name></Patient>`;
    const laughs =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
      Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('') +
      ']><Patient xmlns="http://hl7.org/fhir"><name><family value="&lol9;"/></name></Patient>';
    for (const [name, body] of [
      ['XXE', xxe],
      ['billion laughs', laughs],
    ] as const) {
      const started = performance.now();
      const res = await xmlRequest('POST', '/Patient', body);
      const elapsed = performance.now() - started;
      t.equal(res.status, 400, `${name}: 400`);
      const text = await res.text();
      t.match(text, /document type declaration/, `${name}: says why`);
      t.notMatch(text, /TOP-SECRET|lollollol/, `${name}: nothing expanded`);
      t.ok(elapsed < 5000, `${name}: answered without expanding (${elapsed.toFixed(0)} ms)`);
    }
    // An entity reference without a declaration is no way around it.
    const undeclared = await xmlRequest(
      'POST',
      '/Patient',
      '<Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name></Patient>',
    );
    t.equal(undeclared.status, 400);
    t.equal(readFileSync(secret, 'utf8'), 'TOP-SECRET-CONTENT', 'the file is untouched');
    t.equal(statSync(secret).mtimeMs, before.mtimeMs);
    const listed = (await (await fetch(`${base}/Patient?family=TOP-SECRET-CONTENT`)).json()) as Bundle;
    t.equal(listed.total ?? listed.entry?.length ?? 0, 0, 'nothing was stored');
  });

  await t.test('non-FHIR answers stay JSON; JSON answers stay JSON', async (t) => {
    const json = await fetch(`${base}/Patient?_count=1`, { headers: { accept: 'application/fhir+json' } });
    t.match(json.headers.get('content-type'), /^application\/fhir\+json/);
    const patient = (await (await fetch(`${base}/Patient?_count=1`)).json()) as Bundle<Patient>;
    t.equal(patient.resourceType, 'Bundle');
    const roundTrip = resourceToXml(patientJson);
    t.same(resourceFromXmlText(roundTrip), patientJson, 'the converter itself');
  });
});

t.test('refusals before negotiation (no token, a scope too narrow) answer in the format asked for', async (t) => {
  const secured = await startSecuredApp(t);
  const { app } = secured;
  const anonymous = await app.inject({ url: '/Patient/x', headers: { accept: XML } });
  t.equal(anonymous.statusCode, 401);
  t.match(anonymous.headers['content-type'], /^application\/fhir\+xml/);
  t.match(resourceFromXmlText(anonymous.body), { resourceType: 'OperationOutcome', issue: [{ code: 'login' }] });
  t.match(anonymous.headers['www-authenticate'], /^Bearer/);
  const viaFormat = await app.inject({ url: '/Patient/x?_format=xml&_pretty=true' });
  t.equal(viaFormat.statusCode, 401);
  t.match(viaFormat.body, /\n {2}<issue>/, '_format=xml, _pretty indents');
  const narrow = await app.inject({
    url: '/Patient/x',
    headers: { accept: XML, authorization: await secured.bearer('system/Encounter.r') },
  });
  t.equal(narrow.statusCode, 403);
  t.equal(resourceFromXmlText(narrow.body).resourceType, 'OperationOutcome');
  const json = await app.inject({ url: '/Patient/x' });
  t.match(json.headers['content-type'], /^application\/fhir\+json/, 'JSON by default');
  const unwritable = await app.inject({ url: '/Patient/x', headers: { accept: 'application/fhir+xml; fhirVersion=3.0' } });
  t.match(unwritable.headers['content-type'], /^application\/fhir\+json/, 'JSON when what was asked for cannot be written');
});

t.test('an unknown route answers its 404 in XML when asked', async (t) => {
  const { app } = await startTestApp(t);
  const res = await app.inject({ url: '/no/such/thing', headers: { accept: XML } });
  t.equal(res.statusCode, 404);
  t.match(resourceFromXmlText(res.body), { resourceType: 'OperationOutcome', issue: [{ code: 'not-found' }] });
});
