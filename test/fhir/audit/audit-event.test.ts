/**
 * AuditEvents after IHE BALP: every interaction kind gives a valid R4 AuditEvent (checked with the server's own
 * validator), with the BALP shape: subtype, action, outcome, agents (client, server, OAuth user), the query, patient,
 * domain-resource and X-Request-Id entities, and the profiles claimed only where the event conforms.
 */
import t, { type Test } from 'tap';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, OperationOutcomeIssue } from '@medplum/fhirtypes';
import type { Principal } from '../../../src/fhir/access/principal.js';
import {
  ACTION_OF,
  AUDIT_SYSTEM,
  BALP_PROFILE,
  ENTITY_DETAIL_TYPE,
  JTI_URN_PREFIX,
  auditOutcome,
  balpProfiles,
  buildAuditEvent,
  type AccessRecord,
  type AuditedInteraction,
} from '../../../src/fhir/audit/audit-event.js';
import { testValidator } from '../../helpers/app.js';

const validator = await testValidator();

const SERVER = { baseUrl: 'https://fhir.example.org/fhir', name: 'fhir-ledger-server', version: '0.1.0' };
const RECORDED = new Date('2026-03-04T05:06:07.089Z');

function principal(overrides: Partial<Principal> = {}): Principal {
  return {
    clientId: 'ward-app',
    subject: 'user-42',
    fhirUser: 'Practitioner/p7',
    patient: undefined,
    scopes: ['user/Encounter.rs', 'user/Patient.rs'],
    issuer: 'https://idp.example.org/realms/hospital',
    tokenId: '0b9f6c1e-5d1c-4f7e-9d55-3f1f0c7a2b11',
    expiresAt: 1_900_000_000,
    ownIssuer: false,
    ...overrides,
  };
}

function record(overrides: Partial<AccessRecord> = {}): AccessRecord {
  return {
    interaction: 'read',
    recorded: RECORDED,
    status: 200,
    principal: principal(),
    clientAddress: '10.1.2.3',
    requestId: 'c07cf648-f068-4dd9-9411-8e69ca07d525',
    request: 'GET /Encounter/e1',
    entities: [{ reference: 'Encounter/e1' }],
    patients: ['Patient/p1'],
    server: SERVER,
    ...overrides,
  };
}

/** Warnings every event may carry, for reasons explained in audit-event.ts (BALP's own codes; unknown profiles). */
function expectedWarning(i: OperationOutcomeIssue): boolean {
  return (
    (i.code === 'not-supported' && /^Profile https:\/\/profiles\.ihe\.net\/ITI\/BALP\//.test(i.diagnostics ?? '')) ||
    (i.code === 'code-invalid' && (i.diagnostics ?? '').includes('BasicAuditEntityType|XrequestId'))
  );
}

function assertValid(t: Test, event: AuditEvent): void {
  const issues = validator.validate(event);
  const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  t.same(errors, [], 'no error or fatal issue');
  t.same(
    issues.filter((i) => !errors.includes(i) && !expectedWarning(i)),
    [],
    'no warning beyond the expected ones',
  );
}

const byCode = (code: string) => (a: AuditEventAgent) => a.type?.coding?.some((c) => c.code === code) ?? false;
const client = (e: AuditEvent): AuditEventAgent | undefined => e.agent.find(byCode('110150'));
const user = (e: AuditEvent): AuditEventAgent | undefined => e.agent.find(byCode('UserOauthAgent'));
const server = (e: AuditEvent): AuditEventAgent | undefined => e.agent.find((a) => a !== client(e) && a !== user(e));
const codes = (a: AuditEventAgent | undefined): string[] => (a?.type?.coding ?? []).map((c) => c.code ?? '');
const entitiesWith = (e: AuditEvent, system: string, code: string, role?: string): AuditEventEntity[] =>
  (e.entity ?? []).filter((x) => x.type?.system === system && x.type.code === code && (role === undefined || x.role?.code === role));
const patientEntities = (e: AuditEvent) => entitiesWith(e, AUDIT_SYSTEM.entityType, '1', '1');
const resourceEntities = (e: AuditEvent) => entitiesWith(e, AUDIT_SYSTEM.entityType, '2', '4');
const queryEntities = (e: AuditEvent) => entitiesWith(e, AUDIT_SYSTEM.entityType, '2', '24');
const requestIdEntities = (e: AuditEvent) => entitiesWith(e, AUDIT_SYSTEM.balpEntityType, 'XrequestId');

/** A plausible record for each interaction kind. */
const CASES: Record<AuditedInteraction, Partial<AccessRecord>> = {
  read: { request: 'GET /Encounter/e1' },
  vread: { request: 'GET /Encounter/e1/_history/2', entities: [{ reference: 'Encounter/e1/_history/2' }] },
  update: { request: 'PUT /Encounter/e1', entities: [{ reference: 'Encounter/e1/_history/3' }] },
  patch: { request: 'PATCH /Encounter/e1', entities: [{ reference: 'Encounter/e1/_history/4' }] },
  delete: { request: 'DELETE /Encounter/e1', status: 204, entities: [{ reference: 'Encounter/e1/_history/5' }] },
  'history-instance': {
    request: 'GET /Encounter/e1/_history',
    entities: [{ reference: 'Encounter/e1/_history/2' }, { reference: 'Encounter/e1/_history/1' }],
  },
  'history-type': {
    request: 'GET /Encounter/_history',
    query: { text: '_since=2026-01-01', types: ['Encounter'] },
    entities: [{ reference: 'Encounter/e1/_history/2' }, { reference: 'Encounter/e2/_history/1' }],
    patients: ['Patient/p1', 'Patient/p2'],
  },
  'history-system': {
    request: 'GET /_history',
    query: { text: '_count=2', types: [] },
    entities: [{ reference: 'Patient/p1/_history/1' }, { reference: 'Encounter/e1/_history/1' }],
  },
  create: { request: 'POST /Encounter', status: 201, entities: [{ reference: 'Encounter/e9/_history/1' }] },
  'search-type': {
    request: 'GET /Encounter',
    query: { text: 'patient=Patient/p1&_count=10', types: ['Encounter'] },
    entities: [{ reference: 'Encounter/e1' }, { reference: 'Encounter/e2' }],
  },
  'search-system': {
    request: 'GET /',
    query: { text: '_type=Patient,Encounter&_lastUpdated=gt2026-01-01', types: ['Patient', 'Encounter'] },
    entities: [{ reference: 'Patient/p1' }, { reference: 'Encounter/e1' }],
  },
  capabilities: { request: 'GET /metadata', entities: [], patients: [] },
  transaction: {
    request: 'POST /',
    entities: [
      { reference: 'Patient/p3/_history/1', detail: 'entry 0: 201' },
      { reference: 'Encounter/e3/_history/1', detail: 'entry 1: 201' },
    ],
    patients: ['Patient/p3'],
  },
  batch: {
    request: 'POST /',
    entities: [
      { reference: 'Encounter/e1', detail: 'entry 0: 200' },
      { reference: 'MedicationRequest/m1/_history/2', detail: 'entry 1: 200' },
    ],
  },
  operation: {
    request: 'GET /Patient/p1/$everything',
    operation: 'everything',
    entities: [{ reference: 'Patient/p1' }, { reference: 'Encounter/e1' }, { reference: 'MedicationRequest/m1' }],
  },
};

t.test('the validator does check AuditEvents (the assertions below mean something)', async (t) => {
  const event = buildAuditEvent(record(), 'a');
  const broken = { ...event, outcome: '5', agent: [{ ...event.agent[0], requestor: undefined }] } as unknown as AuditEvent;
  const errors = validator.validate(broken).filter((i) => i.severity === 'error');
  t.ok(
    errors.some((i) => i.expression?.[0] === 'AuditEvent.outcome'),
    'unknown outcome code',
  );
  t.ok(
    errors.some((i) => i.expression?.[0]?.startsWith('AuditEvent.agent[0]')),
    'agent.requestor missing',
  );
});

t.test('ACTION_OF follows BALP', async (t) => {
  t.same(ACTION_OF, {
    read: 'R',
    vread: 'R',
    update: 'U',
    patch: 'U',
    delete: 'D',
    'history-instance': 'R',
    'history-type': 'R',
    'history-system': 'R',
    create: 'C',
    'search-type': 'E',
    'search-system': 'E',
    capabilities: 'R',
    transaction: 'E',
    batch: 'E',
    operation: 'E',
  });
});

t.test('every interaction kind gives a valid event with its subtype and action', async (t) => {
  for (const [interaction, overrides] of Object.entries(CASES) as [AuditedInteraction, Partial<AccessRecord>][]) {
    t.test(interaction, async (t) => {
      const rec = record({ interaction, ...overrides });
      const event = buildAuditEvent(rec, `ae-${interaction}`);
      assertValid(t, event);
      t.equal(event.resourceType, 'AuditEvent');
      t.equal(event.id, `ae-${interaction}`);
      t.same(event.type, { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'Restful Operation' });
      t.same(
        event.subtype?.map((c) => [c.system, c.code]),
        [['http://hl7.org/fhir/restful-interaction', interaction]],
      );
      t.equal(event.action, ACTION_OF[interaction]);
      t.equal(event.recorded, '2026-03-04T05:06:07.089Z');
      t.equal(event.outcome, '0');
      t.equal(event.outcomeDesc, `HTTP ${rec.status}`);
      t.same(event.source.type, [
        { system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' },
      ]);
      t.same(event.source.observer.identifier, { system: 'urn:ietf:rfc:3986', value: SERVER.baseUrl });
      t.equal(event.source.site, 'fhir.example.org');
      t.equal(event.agent.length, 3, 'client, server, user');
      t.same(
        resourceEntities(event).map((e) => e.what?.reference),
        rec.entities.map((e) => e.reference),
      );
      t.same(
        patientEntities(event).map((e) => e.what?.reference),
        rec.patients,
      );
      t.equal(requestIdEntities(event).length, 1);
      t.equal(queryEntities(event).length, rec.query ? 1 : 0);
      t.match(event.text?.div, new RegExp(`^<div xmlns="http://www.w3.org/1999/xhtml">${interaction}`));
    });
  }
});

t.test('outcome for an HTTP status', async (t) => {
  const cases: [number, string][] = [
    [200, '0'],
    [201, '0'],
    [204, '0'],
    [304, '0'],
    [400, '4'],
    [401, '4'],
    [403, '4'],
    [404, '4'],
    [410, '4'],
    [422, '4'],
    [500, '8'],
    [503, '8'],
  ];
  for (const [status, outcome] of cases) {
    t.equal(auditOutcome(status), outcome, `${status}`);
    const failure = status >= 400 ? `failure ${status}` : undefined;
    const event = buildAuditEvent(record({ status, failure }), 'a');
    assertValid(t, event);
    t.equal(event.outcome, outcome, `event outcome for ${status}`);
    t.equal(event.outcomeDesc, failure ? `HTTP ${status}: ${failure}` : `HTTP ${status}`);
  }
  t.equal(auditOutcome(0), '8', 'not an HTTP status: serious failure');
  t.equal(auditOutcome(999), '8');
  const long = buildAuditEvent(record({ status: 422, failure: 'x'.repeat(5000) }), 'a');
  t.ok((long.outcomeDesc ?? '').length < 1100, 'a long failure text is cut');
});

t.test('OAuth client and user agents (BALP OAUTHaccessTokenUse)', async (t) => {
  const event = buildAuditEvent(record(), 'a');
  assertValid(t, event);

  const c = client(event);
  t.same(codes(c), ['110152', '110150'], 'read: client is Destination Role ID, and Application');
  t.same(c?.who, { identifier: { value: 'ward-app' } }, 'client_id in who.identifier.value');
  t.same(c?.network, { address: '10.1.2.3', type: '2' });
  t.equal(c?.requestor, false);

  const s = server(event);
  t.same(codes(s), ['110153'], 'read: server is Source Role ID');
  t.same(s?.who?.identifier, { system: 'urn:ietf:rfc:3986', value: SERVER.baseUrl });
  t.equal(s?.who?.display, 'fhir-ledger-server 0.1.0');
  t.same(s?.network, { address: SERVER.baseUrl, type: '5' });
  t.equal(s?.requestor, false);

  const u = user(event);
  t.same(u?.type?.coding, [
    {
      system: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes',
      code: 'UserOauthAgent',
      display: 'User OAuth Agent participant',
    },
    { system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP', display: 'information recipient' },
  ]);
  t.same(u?.who, {
    reference: 'Practitioner/p7',
    identifier: { system: 'https://idp.example.org/realms/hospital', value: 'user-42' },
  });
  t.same(u?.policy, [`${JTI_URN_PREFIX}0b9f6c1e-5d1c-4f7e-9d55-3f1f0c7a2b11`]);
  t.equal(u?.requestor, true);
  t.notOk(u?.network, 'users are not network devices');
  t.notOk(u?.altId);

  t.test('a write: client Source Role ID, server Destination Role ID, user author', async (t) => {
    const e = buildAuditEvent(record({ ...CASES.create, interaction: 'create' }), 'a');
    assertValid(t, e);
    t.same(codes(client(e)), ['110153', '110150']);
    t.same(codes(server(e)), ['110152']);
    t.same(codes(user(e)), ['UserOauthAgent', 'AUT']);
  });

  t.test('a delete: BALP Delete client Application, server Custodian', async (t) => {
    const e = buildAuditEvent(record({ ...CASES.delete, interaction: 'delete' }), 'a');
    assertValid(t, e);
    t.same(codes(client(e)), ['110153', '110150']);
    t.same(codes(server(e)), ['custodian', '110152']);
    t.equal(server(e)?.type?.coding?.[0]?.system, 'http://terminology.hl7.org/CodeSystem/provenance-participant-type');
  });

  t.test('a search: client Source Role ID, server Destination Role ID, user information recipient', async (t) => {
    const e = buildAuditEvent(record({ ...CASES['search-type'], interaction: 'search-type' }), 'a');
    t.same(codes(client(e)), ['110153', '110150']);
    t.same(codes(server(e)), ['110152']);
    t.same(codes(user(e)), ['UserOauthAgent', 'IRCP']);
  });

  t.test('fhirUser: relative reference, absolute URL into this server, elsewhere', async (t) => {
    const own = user(buildAuditEvent(record({ principal: principal({ fhirUser: `${SERVER.baseUrl}/Patient/p1` }) }), 'a'));
    t.equal(own?.who?.reference, 'Patient/p1', 'an absolute URL into this server is made relative');
    const elsewhere = buildAuditEvent(
      record({ principal: principal({ fhirUser: 'https://directory.example.org/fhir/Practitioner/9' }) }),
      'a',
    );
    assertValid(t, elsewhere);
    t.notOk(user(elsewhere)?.who?.reference, 'no reference to another server');
    t.equal(user(elsewhere)?.altId, 'https://directory.example.org/fhir/Practitioner/9', 'kept as altId');
    t.same(user(elsewhere)?.who?.identifier, { system: 'https://idp.example.org/realms/hospital', value: 'user-42' });
    const none = user(buildAuditEvent(record({ principal: principal({ fhirUser: undefined }) }), 'a'));
    t.same(none?.who, { identifier: { system: 'https://idp.example.org/realms/hospital', value: 'user-42' } });
  });

  t.test('client_credentials token: the subject is the client; no jti, no policy', async (t) => {
    const e = buildAuditEvent(record({ principal: principal({ subject: undefined, fhirUser: undefined, tokenId: undefined }) }), 'a');
    assertValid(t, e);
    t.same(user(e)?.who, { identifier: { system: 'https://idp.example.org/realms/hospital', value: 'ward-app' } });
    t.notOk(user(e)?.policy);
    t.same(e.meta?.profile, [BALP_PROFILE.PatientRead], 'no OAuth profile without a jti');
  });

  t.test('token without client_id', async (t) => {
    const e = buildAuditEvent(record({ principal: principal({ clientId: undefined }) }), 'a');
    assertValid(t, e);
    t.match(client(e)?.who?.display, /no client_id/);
    t.notOk(client(e)?.who?.identifier);
    t.notOk(e.meta?.profile?.includes(BALP_PROFILE.OAuthComprehensive));
  });
});

t.test('search: the query entity holds the request, base64', async (t) => {
  const rec = record({
    interaction: 'search-type',
    request: 'GET /Encounter',
    query: { text: 'subject=Patient/p1,Patient/p2&date=ge2026-01-01&_count=50', types: ['Encounter'] },
    entities: [{ reference: 'Encounter/e1' }, { reference: 'Encounter/e2' }, { reference: 'Encounter/e3' }],
    patients: ['Patient/p1', 'Patient/p2'],
  });
  const event = buildAuditEvent(rec, 'a');
  assertValid(t, event);
  const [query] = queryEntities(event);
  t.ok(query, 'query entity: System Object, role Query');
  t.equal(
    Buffer.from(query?.query ?? '', 'base64').toString('utf8'),
    'GET /Encounter?subject=Patient/p1,Patient/p2&date=ge2026-01-01&_count=50',
  );
  t.equal(query?.description, 'Encounter');
  t.notOk(query?.what, 'BALP: the query entity has no what');
  t.equal(event.action, 'E');

  const hostile = buildAuditEvent(
    record({
      interaction: 'search-type',
      request: 'GET /Patient',
      query: { text: "name=<script>&x=' OR 1=1 --\u0000", types: ['Patient'] },
    }),
    'a',
  );
  assertValid(t, hostile);
  t.equal(
    Buffer.from(queryEntities(hostile)[0]?.query ?? '', 'base64').toString('utf8'),
    "GET /Patient?name=<script>&x=' OR 1=1 --\u0000",
    'kept exactly',
  );

  const noParams = buildAuditEvent(
    record({ interaction: 'search-type', request: 'GET /Encounter', query: { text: '', types: ['Encounter'] } }),
    'a',
  );
  assertValid(t, noParams);
  t.equal(Buffer.from(queryEntities(noParams)[0]?.query ?? '', 'base64').toString('utf8'), 'GET /Encounter');
});

t.test('patients and touched resources', async (t) => {
  const event = buildAuditEvent(
    record({
      interaction: 'search-type',
      request: 'GET /Encounter',
      query: { text: 'status=finished', types: ['Encounter'] },
      entities: [{ reference: 'Encounter/e1' }, { reference: 'Encounter/e2' }],
      patients: ['Patient/p1', 'Patient/p2'],
    }),
    'a',
  );
  const patients = patientEntities(event);
  t.same(
    patients,
    [
      {
        what: { reference: 'Patient/p1' },
        type: { system: AUDIT_SYSTEM.entityType, code: '1' },
        role: { system: AUDIT_SYSTEM.objectRole, code: '1' },
      },
      {
        what: { reference: 'Patient/p2' },
        type: { system: AUDIT_SYSTEM.entityType, code: '1' },
        role: { system: AUDIT_SYSTEM.objectRole, code: '1' },
      },
    ],
    'one Person / Patient entity per patient, nothing more',
  );
  t.same(
    resourceEntities(event),
    [
      {
        what: { reference: 'Encounter/e1' },
        type: { system: AUDIT_SYSTEM.entityType, code: '2' },
        role: { system: AUDIT_SYSTEM.objectRole, code: '4' },
      },
      {
        what: { reference: 'Encounter/e2' },
        type: { system: AUDIT_SYSTEM.entityType, code: '2' },
        role: { system: AUDIT_SYSTEM.objectRole, code: '4' },
      },
    ],
    'one System Object / Domain Resource entity per touched resource, nothing more',
  );

  const read = buildAuditEvent(
    record({ request: 'GET /Patient/p1', entities: [{ reference: 'Patient/p1' }], patients: ['Patient/p1'] }),
    'a',
  );
  t.equal(patientEntities(read).length, 1, 'a read Patient is the patient…');
  t.equal(resourceEntities(read).length, 1, '…and the resource read');

  const bundle = buildAuditEvent(record({ ...CASES.transaction, interaction: 'transaction' }), 'a');
  assertValid(t, bundle);
  t.same(
    resourceEntities(bundle).map((e) => e.detail),
    [[{ type: ENTITY_DETAIL_TYPE, valueString: 'entry 0: 201' }], [{ type: ENTITY_DETAIL_TYPE, valueString: 'entry 1: 201' }]],
  );
});

t.test('the X-Request-Id entity', async (t) => {
  const event = buildAuditEvent(record({ requestId: 'req-7', request: 'GET /Encounter/e1' }), 'a');
  t.same(requestIdEntities(event), [
    {
      what: { identifier: { value: 'req-7' } },
      type: { system: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType', code: 'XrequestId' },
      description: 'GET /Encounter/e1',
    },
  ]);
});

t.test('operation: named in an OperationDefinition entity', async (t) => {
  const event = buildAuditEvent(record({ ...CASES.operation, interaction: 'operation' }), 'a');
  assertValid(t, event);
  t.same(entitiesWith(event, AUDIT_SYSTEM.resourceTypes, 'OperationDefinition'), [
    { type: { system: AUDIT_SYSTEM.resourceTypes, code: 'OperationDefinition' }, name: '$everything' },
  ]);
  t.match(event.text?.div, /operation \$everything GET \/Patient\/p1\/\$everything: HTTP 200/);
});

t.test('401: no principal', async (t) => {
  const event = buildAuditEvent(
    record({
      interaction: 'search-type',
      request: 'GET /Encounter',
      query: { text: 'patient=Patient/p1', types: ['Encounter'] },
      status: 401,
      failure: 'A valid Bearer access token is required',
      principal: undefined,
      entities: [],
      patients: [],
    }),
    'a',
  );
  assertValid(t, event);
  t.equal(event.outcome, '4');
  t.equal(event.outcomeDesc, 'HTTP 401: A valid Bearer access token is required');
  t.equal(event.agent.length, 2, 'client and server only');
  t.notOk(user(event));
  t.match(client(event)?.who, { display: /unauthenticated client: no valid access token/ });
  t.equal(client(event)?.requestor, true, 'without a user, the client is the requestor');
  t.same(client(event)?.network, { address: '10.1.2.3', type: '2' });
  t.equal(event.meta, undefined, 'no profile claimed');
  t.equal(queryEntities(event).length, 1, 'the refused query is still recorded');
});

t.test('403: the principal is known', async (t) => {
  const event = buildAuditEvent(record({ status: 403, failure: 'scope user/Encounter.rs is required' }), 'a');
  assertValid(t, event);
  t.equal(event.outcome, '4');
  t.ok(user(event));
  t.same(
    event.meta?.profile,
    [BALP_PROFILE.OAuthMinimal, BALP_PROFILE.OAuthComprehensive],
    'only the OAuth profiles: BALP REST patterns are for successes',
  );
});

t.test('authorization off: nobody was authenticated', async (t) => {
  const event = buildAuditEvent(record({ principal: undefined, authorizationOff: true, clientAddress: undefined }), 'a');
  assertValid(t, event);
  t.equal(event.agent.length, 2);
  t.match(client(event)?.who?.display, /authorization is off \(AUTH_MODE=off\), nobody was authenticated/);
  t.equal(client(event)?.requestor, true);
  t.notOk(client(event)?.network, 'no address known');
  t.equal(event.meta, undefined);
});

t.test('profiles are claimed only where the event conforms', async (t) => {
  const oauth = [BALP_PROFILE.OAuthMinimal, BALP_PROFILE.OAuthComprehensive];
  t.same(balpProfiles(record()), [BALP_PROFILE.PatientRead, ...oauth]);
  t.same(balpProfiles(record({ interaction: 'vread', patients: [] })), [BALP_PROFILE.Read, ...oauth]);
  t.same(balpProfiles(record({ ...CASES.create, interaction: 'create' })), [BALP_PROFILE.PatientCreate, ...oauth]);
  t.same(balpProfiles(record({ ...CASES.patch, interaction: 'patch', patients: [] })), [BALP_PROFILE.Update, ...oauth]);
  t.same(balpProfiles(record({ ...CASES.delete, interaction: 'delete' })), [BALP_PROFILE.PatientDelete, ...oauth]);
  t.same(
    balpProfiles(record({ ...CASES['search-type'], interaction: 'search-type' })),
    oauth,
    'searches list their results: not BALP Query',
  );
  t.same(balpProfiles(record({ ...CASES['history-instance'], interaction: 'history-instance' })), oauth);
  t.same(balpProfiles(record({ patients: ['Patient/p1', 'Patient/p2'] })), oauth, 'BALP allows one patient per event');
  t.same(balpProfiles(record({ clientAddress: undefined })), oauth, 'BALP requires the client network address');
  t.same(balpProfiles(record({ status: 404 })), oauth, 'BALP REST patterns fix outcome success');
  t.same(balpProfiles(record({ principal: principal({ tokenId: undefined }) })), [BALP_PROFILE.PatientRead]);
  t.same(balpProfiles(record({ principal: undefined })), [BALP_PROFILE.PatientRead]);
  const event = buildAuditEvent(record(), 'a');
  t.same(event.meta, { profile: [BALP_PROFILE.PatientRead, ...oauth] });
});

t.test('hostile text from the request never makes the event invalid', async (t) => {
  const event = buildAuditEvent(
    record({
      interaction: 'read',
      request: 'Bundle.entry[2] GET /Patient/\u0000x\uD800<i>',
      status: 404,
      failure: 'Resource Patient/\u0007\u001b[31m not found \uDFFF',
      requestId: 'req\u0001',
      entities: [{ reference: 'Patient/p1', detail: 'entry 2: 404 \u0000' }],
      principal: principal({
        subject: 'user\u0000',
        clientId: 'app\u0002',
        fhirUser: 'https://x.example/\u0003',
        tokenId: 'jti with space',
      }),
    }),
    'a',
  );
  assertValid(t, event);
  t.equal(event.outcomeDesc, 'HTTP 404: Resource Patient/\uFFFD\uFFFD[31m not found \uFFFD');
  t.same(user(event)?.policy, [`${JTI_URN_PREFIX}jti%20with%20space`]);
  t.equal(requestIdEntities(event)[0]?.what?.identifier?.value, 'req\uFFFD');
});

t.test('the narrative escapes markup', async (t) => {
  const event = buildAuditEvent(record({ request: 'GET /Encounter/<b>&x', status: 404, failure: 'not found' }), 'a');
  assertValid(t, event);
  t.equal(event.text?.div, '<div xmlns="http://www.w3.org/1999/xhtml">read GET /Encounter/&lt;b&gt;&amp;x: HTTP 404</div>');
});

t.test('a search returning 1000 resources of 1000 patients still validates, with small entities', async (t) => {
  const entities = Array.from({ length: 1000 }, (_, i) => ({ reference: `Encounter/e${i}` }));
  const patients = Array.from({ length: 1000 }, (_, i) => `Patient/p${i}`);
  const rec = record({
    interaction: 'search-type',
    request: 'GET /Encounter',
    query: { text: '_count=1000', types: ['Encounter'] },
    entities,
    patients,
  });
  const event = buildAuditEvent(rec, 'big');
  t.equal(event.entity?.length, 2002, 'X-Request-Id, query, 1000 patients, 1000 encounters');
  assertValid(t, event);
  const bytes = Buffer.byteLength(JSON.stringify(event));
  // ~200 bytes an entity, nearly all of it the two code system URLs, which R4's bindings need.
  t.ok(bytes / 2002 < 230, `small entities (${bytes} bytes in all)`);
});
