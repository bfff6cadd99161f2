/**
 * The audit trail through the HTTP API, with authorization on: every interaction leaves exactly the AuditEvent(s)
 * it should, in the IHE BALP shape (subtype, action, outcome, agents, entities), including refused requests (401,
 * 403); a write and its AuditEvent commit together (and a failed transaction leaves only its failure event); the
 * events are searchable through the API with a scope that names AuditEvent, never writable, and valid R4.
 *
 * The app flushes buffered events only when told (flush interval of a minute), so the test knows which events are
 * committed with their writes and which wait in the buffer.
 */
import { randomUUID } from 'node:crypto';
import type {
  AuditEvent,
  AuditEventAgent,
  AuditEventEntity,
  Bundle,
  OperationOutcome,
  OperationOutcomeIssue,
  Resource,
} from '@medplum/fhirtypes';
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { AUDIT_SYSTEM, JTI_URN_PREFIX } from '../../src/fhir/audit/audit-event.js';
import { VersionConflictError, type HeadDocument } from '../../src/store/resource-store.js';
import { stopMongoAtEnd, testValidator } from '../helpers/app.js';
import { TEST_ISSUER, startSecuredApp, type TokenClaims } from '../helpers/auth.js';

const FHIR_JSON = 'application/fhir+json';
const CLINICAL = 'user/*.cruds';
const AUDIT_READ = 'system/AuditEvent.rs';
const CLIENT_ID = 'ward-app';
const USER = 'user-42';
const FHIR_USER = 'Practitioner/p7';
const IDENTIFIER_SYSTEM = 'urn:example:mrn';

// Teardowns run last-registered first: the per-process MongoDB must stop after the app's teardown (registered by
// startSecuredApp below) has closed the app and dropped its database.
stopMongoAtEnd(t);
const secured = await startSecuredApp(t, { audit: { enabled: true, flushIntervalMs: 60_000, bufferMax: 5000 } });
const { app, store } = secured;
const validator = await testValidator();

// ---------------------------------------------------------------------------------------------------------------
// requests and events

interface Call {
  res: LightMyRequestResponse;
  /** The x-request-id the server answered with. */
  rid: string;
  /** The jti of the token used (undefined: no token). */
  jti: string | undefined;
}

interface CallOptions {
  payload?: unknown;
  headers?: Record<string, string>;
  /** undefined: no Authorization header at all. */
  scope?: string;
  claims?: TokenClaims;
}

async function call(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, options: CallOptions = {}): Promise<Call> {
  const headers: Record<string, string> = { ...options.headers };
  let jti: string | undefined;
  if (options.scope !== undefined) {
    jti = randomUUID();
    headers.authorization = await secured.bearer(options.scope, {
      client_id: CLIENT_ID,
      sub: USER,
      fhirUser: FHIR_USER,
      jti,
      ...options.claims,
    });
  }
  if (options.payload !== undefined && headers['content-type'] === undefined) headers['content-type'] = FHIR_JSON;
  const res = await app.inject({
    method,
    url,
    headers,
    ...(options.payload === undefined
      ? {}
      : { payload: typeof options.payload === 'string' ? options.payload : JSON.stringify(options.payload) }),
  });
  const rid = res.headers['x-request-id'];
  if (typeof rid !== 'string' || rid.length === 0) throw new Error(`${method} ${url}: no x-request-id in the answer`);
  return { res, rid, jti };
}

/** The AuditEvents in MongoDB whose X-Request-Id entity is `rid` (read straight from the versions collection). */
async function storedEvents(rid: string): Promise<AuditEvent[]> {
  const docs = await store.versions.find({ type: 'AuditEvent', 'resource.entity.what.identifier.value': rid }).toArray();
  return docs.map((d) => d.resource as AuditEvent);
}

/** Writes the buffer, then the events of `rid`. */
async function eventsOf(rid: string): Promise<AuditEvent[]> {
  await secured.flushAudit();
  return storedEvents(rid);
}

async function onlyEvent(t: Test, rid: string): Promise<AuditEvent> {
  const events = await eventsOf(rid);
  t.equal(events.length, 1, `exactly one AuditEvent for request ${rid}`);
  return events[0]!;
}

const hasCode = (code: string) => (a: AuditEventAgent) => a.type?.coding?.some((c) => c.code === code) ?? false;
const clientAgent = (e: AuditEvent) => e.agent.find(hasCode('110150'));
const userAgent = (e: AuditEvent) => e.agent.find(hasCode('UserOauthAgent'));
const serverAgent = (e: AuditEvent) => e.agent.find((a) => a.who?.identifier?.system === AUDIT_SYSTEM.uri);
const entitiesWith = (e: AuditEvent, system: string, code: string, role?: string): AuditEventEntity[] =>
  (e.entity ?? []).filter((x) => x.type?.system === system && x.type.code === code && (role === undefined || x.role?.code === role));
const resourceRefs = (e: AuditEvent) => entitiesWith(e, AUDIT_SYSTEM.entityType, '2', '4').map((x) => x.what?.reference ?? '');
const patientRefs = (e: AuditEvent) => entitiesWith(e, AUDIT_SYSTEM.entityType, '1', '1').map((x) => x.what?.reference ?? '');
const queryEntities = (e: AuditEvent) => entitiesWith(e, AUDIT_SYSTEM.entityType, '2', '24');
const requestIds = (e: AuditEvent) => entitiesWith(e, AUDIT_SYSTEM.balpEntityType, 'XrequestId').map((x) => x.what?.identifier?.value);
const operationNames = (e: AuditEvent) => (e.entity ?? []).filter((x) => x.type?.code === 'OperationDefinition').map((x) => x.name);
const sorted = (values: string[]) => [...values].sort();

interface Expected {
  subtype: string;
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  outcome: '0' | '4' | '8';
  /** Resource entities (Type/id/_history/vid), any order. */
  resources?: string[];
  patients?: string[];
  /** The query as the query entity holds it, decoded ("GET /Patient?name=x"). */
  query?: string;
  operation?: string;
  /** outcomeDesc must match. */
  outcomeDesc?: RegExp;
  /** Token presented (user agent expected) - by default yes. */
  user?: boolean;
  /** The status the event records (a Bundle entry's), when not the answer's. */
  status?: number;
}

/** The BALP shape of one event of a request made by `call`. */
function checkShape(t: Test, event: AuditEvent, c: Call, expected: Expected): void {
  t.equal(event.resourceType, 'AuditEvent');
  t.same(event.type, { system: AUDIT_SYSTEM.eventType, code: 'rest', display: 'Restful Operation' }, 'type rest');
  t.equal(event.subtype?.[0]?.system, AUDIT_SYSTEM.restfulInteraction);
  t.equal(event.subtype?.[0]?.code, expected.subtype, `subtype ${expected.subtype}`);
  t.equal(event.action, expected.action, `action ${expected.action}`);
  t.equal(event.outcome, expected.outcome, `outcome ${expected.outcome}`);
  t.match(event.outcomeDesc, new RegExp(`^HTTP ${expected.status ?? c.res.statusCode}`), 'outcomeDesc names the status');
  if (expected.outcomeDesc) t.match(event.outcomeDesc, expected.outcomeDesc, 'outcomeDesc says why');
  t.ok(event.recorded && Math.abs(Date.parse(event.recorded) - Date.now()) < 60_000, 'recorded just now');
  t.equal(event.meta?.versionId, '1', 'stored as version 1');

  // who
  const client = clientAgent(event);
  t.ok(client, 'client agent (DCM 110150 Application)');
  t.equal(client?.network?.address, '127.0.0.1', 'client network address');
  t.ok(serverAgent(event), 'server agent');
  const user = userAgent(event);
  if (expected.user === false) {
    t.equal(user, undefined, 'no user agent without a token');
    t.match(client?.who?.display, /no valid access token/, 'the client agent says nobody was authenticated');
    t.equal(client?.requestor, true, 'the client is the requestor');
  } else {
    t.equal(client?.who?.identifier?.value, CLIENT_ID, 'client_id');
    t.equal(user?.who?.identifier?.value, USER, 'user sub');
    t.equal(user?.who?.identifier?.system, TEST_ISSUER, 'user issuer');
    t.equal(user?.who?.reference, FHIR_USER, 'fhirUser');
    t.same(user?.policy, [JTI_URN_PREFIX + c.jti], 'the token jti');
    t.equal(user?.requestor, true);
  }

  // from where
  t.same(requestIds(event), [c.rid], 'X-Request-Id entity = the x-request-id header of the answer');

  // what
  if (expected.resources)
    t.same(sorted(resourceRefs(event)), sorted(expected.resources), `resources ${expected.resources.join(', ') || '(none)'}`);
  if (expected.patients)
    t.same(sorted(patientRefs(event)), sorted(expected.patients), `patients ${expected.patients.join(', ') || '(none)'}`);
  const queries = queryEntities(event);
  if (expected.query !== undefined) {
    t.equal(queries.length, 1, 'one query entity');
    t.equal(Buffer.from(queries[0]?.query ?? '', 'base64').toString('utf8'), expected.query, 'the query, base64');
  }
  if (expected.operation !== undefined) t.same(operationNames(event), [`$${expected.operation}`], `operation $${expected.operation}`);
}

const patientBody = (family: string, mrn?: string) => ({
  resourceType: 'Patient',
  ...(mrn ? { identifier: [{ system: IDENTIFIER_SYSTEM, value: mrn }] } : {}),
  name: [{ family, given: ['Audit'] }],
  gender: 'female',
  birthDate: '1970-01-01',
});

async function createPatient(family: string, mrn?: string): Promise<{ id: string; c: Call }> {
  const c = await call('POST', '/Patient', { scope: CLINICAL, payload: patientBody(family, mrn) });
  if (c.res.statusCode !== 201) throw new Error(`create: ${c.res.statusCode} ${c.res.body}`);
  return { id: (c.res.json() as Resource).id!, c };
}

// ---------------------------------------------------------------------------------------------------------------

t.test('each interaction leaves exactly the AuditEvent(s) expected, in the BALP shape', async (t) => {
  await t.test('create: committed with the write, no flush needed', async (t) => {
    const flushed = app.auditRecorder!.pending;
    const { id, c } = await createPatient('Create');
    // Straight from MongoDB, without flushing: the event was written in the same transaction as the version.
    const events = await storedEvents(c.rid);
    t.equal(events.length, 1, 'the AuditEvent is in MongoDB as soon as the create answered');
    t.equal(app.auditRecorder!.pending, flushed, 'nothing was added to the buffer');
    checkShape(t, events[0]!, c, {
      subtype: 'create',
      action: 'C',
      outcome: '0',
      resources: [`Patient/${id}/_history/1`],
      patients: [`Patient/${id}`],
    });
    // A read, by contrast, waits in the buffer until the flush.
    const read = await call('GET', `/Patient/${id}`, { scope: CLINICAL });
    t.equal(read.res.statusCode, 200);
    t.equal((await storedEvents(read.rid)).length, 0, 'a read event is buffered, not yet written');
    t.ok(app.auditRecorder!.pending > 0, 'it waits in the buffer');
    t.equal((await eventsOf(read.rid)).length, 1, 'and is written by the flush');
  });

  const { id } = await createPatient('Subject', 'mrn-subject');
  const patientRef = `Patient/${id}`;

  await t.test('read', async (t) => {
    const c = await call('GET', `/Patient/${id}`, { scope: CLINICAL });
    t.equal(c.res.statusCode, 200);
    checkShape(t, await onlyEvent(t, c.rid), c, {
      subtype: 'read',
      action: 'R',
      outcome: '0',
      resources: [`${patientRef}/_history/1`],
      patients: [patientRef],
    });
  });

  await t.test('vread', async (t) => {
    const c = await call('GET', `/Patient/${id}/_history/1`, { scope: CLINICAL });
    t.equal(c.res.statusCode, 200);
    checkShape(t, await onlyEvent(t, c.rid), c, {
      subtype: 'vread',
      action: 'R',
      outcome: '0',
      resources: [`${patientRef}/_history/1`],
      patients: [patientRef],
    });
  });

  await t.test('search: the query, base64, and every result', async (t) => {
    const other = await createPatient('Subject');
    const c = await call('GET', '/Patient?family=Subject&_count=10', { scope: CLINICAL });
    t.equal(c.res.statusCode, 200);
    t.equal((c.res.json() as Bundle).entry?.length, 2);
    checkShape(t, await onlyEvent(t, c.rid), c, {
      subtype: 'search-type',
      action: 'E',
      outcome: '0',
      query: 'GET /Patient?family=Subject&_count=10',
      resources: [`${patientRef}/_history/1`, `Patient/${other.id}/_history/1`],
      patients: [patientRef, `Patient/${other.id}`],
    });
  });

  await t.test('update, patch, history', async (t) => {
    const update = await call('PUT', `/Patient/${id}`, {
      scope: CLINICAL,
      payload: { ...patientBody('Subject', 'mrn-subject'), id, gender: 'male' },
    });
    t.equal(update.res.statusCode, 200, update.res.body);
    const updated = await onlyEvent(t, update.rid);
    checkShape(t, updated, update, { subtype: 'update', action: 'U', outcome: '0', patients: [patientRef] });
    t.ok(resourceRefs(updated).includes(`${patientRef}/_history/2`), 'names the version it stored');

    const patch = await call('PATCH', `/Patient/${id}`, {
      scope: CLINICAL,
      headers: { 'content-type': 'application/json-patch+json' },
      payload: [{ op: 'replace', path: '/birthDate', value: '1971-02-03' }],
    });
    t.equal(patch.res.statusCode, 200, patch.res.body);
    const patched = await onlyEvent(t, patch.rid);
    checkShape(t, patched, patch, { subtype: 'patch', action: 'U', outcome: '0', patients: [patientRef] });
    t.ok(resourceRefs(patched).includes(`${patientRef}/_history/3`), 'names the version it stored');

    const hist = await call('GET', `/Patient/${id}/_history`, { scope: CLINICAL });
    t.equal(hist.res.statusCode, 200);
    checkShape(t, await onlyEvent(t, hist.rid), hist, {
      subtype: 'history-instance',
      action: 'R',
      outcome: '0',
      // The instance whose history was read, and every version returned.
      resources: [patientRef, ...[1, 2, 3].map((v) => `${patientRef}/_history/${v}`)],
      patients: [patientRef],
    });
  });

  await t.test('$validate and $everything', async (t) => {
    const validate = await call('POST', '/Patient/$validate', { scope: CLINICAL, payload: patientBody('Valid') });
    t.equal(validate.res.statusCode, 200, validate.res.body);
    checkShape(t, await onlyEvent(t, validate.rid), validate, {
      subtype: 'operation',
      action: 'E',
      outcome: '0',
      operation: 'validate',
      resources: [],
      patients: [],
    });

    const enc = await call('POST', '/Encounter', {
      scope: CLINICAL,
      payload: {
        resourceType: 'Encounter',
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        subject: { reference: patientRef },
      },
    });
    t.equal(enc.res.statusCode, 201, enc.res.body);
    const encId = (enc.res.json() as Resource).id!;
    const everything = await call('GET', `/Patient/${id}/$everything`, { scope: CLINICAL });
    t.equal(everything.res.statusCode, 200, everything.res.body);
    checkShape(t, await onlyEvent(t, everything.rid), everything, {
      subtype: 'operation',
      action: 'E',
      outcome: '0',
      operation: 'everything',
      // The patient whose record was asked for, and every resource returned.
      resources: [patientRef, `${patientRef}/_history/3`, `Encounter/${encId}/_history/1`],
      patients: [patientRef],
    });
  });

  await t.test('conditional create, update and delete', async (t) => {
    const mrn = `mrn-${randomUUID()}`;
    const first = await call('POST', '/Patient', {
      scope: CLINICAL,
      payload: patientBody('Cond', mrn),
      headers: { 'if-none-exist': `identifier=${IDENTIFIER_SYSTEM}|${mrn}` },
    });
    t.equal(first.res.statusCode, 201, first.res.body);
    const condId = (first.res.json() as Resource).id!;
    const ref = `Patient/${condId}`;
    checkShape(t, await onlyEvent(t, first.rid), first, {
      subtype: 'create',
      action: 'C',
      outcome: '0',
      resources: [`${ref}/_history/1`],
      patients: [ref],
    });

    const again = await call('POST', '/Patient', {
      scope: CLINICAL,
      payload: patientBody('Cond', mrn),
      headers: { 'if-none-exist': `identifier=${IDENTIFIER_SYSTEM}|${mrn}` },
    });
    t.equal(again.res.statusCode, 200, 'the existing one');
    checkShape(t, await onlyEvent(t, again.rid), again, {
      subtype: 'create',
      action: 'C',
      outcome: '0',
      resources: [`${ref}/_history/1`],
      patients: [ref],
    });

    const update = await call('PUT', `/Patient?identifier=${IDENTIFIER_SYSTEM}|${mrn}`, {
      scope: CLINICAL,
      payload: { ...patientBody('Cond2', mrn) },
    });
    t.equal(update.res.statusCode, 200, update.res.body);
    const updated = await onlyEvent(t, update.rid);
    checkShape(t, updated, update, { subtype: 'update', action: 'U', outcome: '0', patients: [ref] });
    t.ok(resourceRefs(updated).includes(`${ref}/_history/2`), 'names the version it stored');

    const del = await call('DELETE', `/Patient?identifier=${IDENTIFIER_SYSTEM}|${mrn}`, { scope: CLINICAL });
    t.equal(del.res.statusCode, 204, del.res.body);
    const deleted = await onlyEvent(t, del.rid);
    checkShape(t, deleted, del, { subtype: 'delete', action: 'D', outcome: '0', patients: [ref] });
    t.ok(resourceRefs(deleted).includes(`${ref}/_history/3`), 'names the deletion it stored');
  });

  await t.test('delete', async (t) => {
    const { id: gone } = await createPatient('Gone');
    const del = await call('DELETE', `/Patient/${gone}`, { scope: CLINICAL });
    t.equal(del.res.statusCode, 204);
    const event = await onlyEvent(t, del.rid);
    checkShape(t, event, del, { subtype: 'delete', action: 'D', outcome: '0', patients: [`Patient/${gone}`] });
    t.ok(resourceRefs(event).includes(`Patient/${gone}/_history/2`), 'names the deletion version');
    t.ok(event.agent.some(hasCode('custodian')), 'the server is custodian (BALP Delete)');
  });

  await t.test('batch: one AuditEvent per entry, none for the Bundle', async (t) => {
    const { id: target } = await createPatient('BatchTarget');
    const c = await call('POST', '/', {
      scope: CLINICAL,
      payload: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'POST', url: 'Patient' }, resource: patientBody('InBatch') },
          { request: { method: 'GET', url: `Patient/${target}` } },
          { request: { method: 'GET', url: 'Patient/does-not-exist' } },
        ],
      },
    });
    t.equal(c.res.statusCode, 200, c.res.body);
    const bundle = c.res.json() as Bundle;
    const created = bundle.entry?.[0]?.response?.location?.split('/')[1];
    t.ok(created, 'entry 0 created a Patient');
    const events = await eventsOf(c.rid);
    t.equal(events.length, 3, 'three entries, three AuditEvents');
    const bySubtype = (code: string, outcome: string) => events.filter((e) => e.subtype?.[0]?.code === code && e.outcome === outcome);
    const [create] = bySubtype('create', '0');
    const [read] = bySubtype('read', '0');
    const [missing] = bySubtype('read', '4');
    t.ok(create && read && missing, 'a create, a read and a failed read');
    if (create)
      checkShape(t, create, c, {
        subtype: 'create',
        action: 'C',
        outcome: '0',
        status: 201,
        resources: [`Patient/${created}/_history/1`],
        patients: [`Patient/${created}`],
      });
    if (read)
      checkShape(t, read, c, {
        subtype: 'read',
        action: 'R',
        outcome: '0',
        status: 200,
        resources: [`Patient/${target}/_history/1`],
        patients: [`Patient/${target}`],
      });
    if (missing) {
      checkShape(t, missing, c, {
        subtype: 'read',
        action: 'R',
        outcome: '4',
        status: 404,
        resources: ['Patient/does-not-exist'],
        outcomeDesc: /^HTTP 404: /,
      });
    }
    t.match(
      events.map((e) => entitiesWith(e, AUDIT_SYSTEM.balpEntityType, 'XrequestId')[0]?.description).sort(),
      [/^Bundle\.entry\[0\] POST Patient/, /^Bundle\.entry\[1\] GET Patient\//, /^Bundle\.entry\[2\] GET Patient\/does-not-exist/],
      'each names its entry',
    );
  });

  await t.test('transaction: one AuditEvent naming every entry, committed with them', async (t) => {
    const c = await call('POST', '/', {
      scope: CLINICAL,
      payload: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:1b6e7d1a-7d6b-4d3f-9a0e-6f7b2b1f1a01',
            request: { method: 'POST', url: 'Patient' },
            resource: patientBody('InTx'),
          },
          {
            request: { method: 'POST', url: 'Encounter' },
            resource: {
              resourceType: 'Encounter',
              status: 'planned',
              class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
              subject: { reference: 'urn:uuid:1b6e7d1a-7d6b-4d3f-9a0e-6f7b2b1f1a01' },
            },
          },
        ],
      },
    });
    t.equal(c.res.statusCode, 200, c.res.body);
    const locations = ((c.res.json() as Bundle).entry ?? []).map(
      (e) => e.response?.location?.replace(/^.*?\b(Patient|Encounter)\//, '$1/') ?? '',
    );
    const [pid, eid] = locations.map((l) => l.split('/')[1]);
    const committed = await storedEvents(c.rid);
    t.equal(committed.length, 1, 'in MongoDB right away, without a flush');
    t.equal((await eventsOf(c.rid)).length, 1, 'and no other event after the flush');
    checkShape(t, committed[0]!, c, {
      subtype: 'transaction',
      action: 'E',
      outcome: '0',
      resources: [`Patient/${pid}/_history/1`, `Encounter/${eid}/_history/1`],
      patients: [`Patient/${pid}`],
    });
  });

  await t.test('401: no principal, but the client address and the request id', async (t) => {
    const c = await call('GET', `/Patient/${id}`);
    t.equal(c.res.statusCode, 401);
    const event = await onlyEvent(t, c.rid);
    // What was asked for is named even though nothing was served.
    checkShape(t, event, c, {
      subtype: 'read',
      action: 'R',
      outcome: '4',
      user: false,
      resources: [patientRef],
      patients: [patientRef],
      outcomeDesc: /^HTTP 401: Authorization: /,
    });
  });

  await t.test('403: the principal, outcome 4 and the reason', async (t) => {
    const c = await call('GET', `/Patient/${id}`, { scope: 'user/Encounter.rs' });
    t.equal(c.res.statusCode, 403);
    const reason = (c.res.json() as OperationOutcome).issue[0]?.diagnostics ?? '';
    t.ok(reason.length > 0, 'the answer says why');
    const event = await onlyEvent(t, c.rid);
    checkShape(t, event, c, {
      subtype: 'read',
      action: 'R',
      outcome: '4',
      resources: [patientRef],
      patients: [patientRef],
      outcomeDesc: /^HTTP 403: /,
    });
    t.equal(event.outcomeDesc, `HTTP 403: ${reason}`, 'the same reason as the client got');
  });
});

t.test('a write and its AuditEvent commit together', async (t) => {
  await t.test('a transaction with one bad entry leaves no version and only a (buffered) failure event', async (t) => {
    const before = await store.versions.countDocuments({ type: { $ne: 'AuditEvent' } });
    const eventsBefore = await store.versions.countDocuments({ type: 'AuditEvent' });
    const c = await call('POST', '/', {
      scope: CLINICAL,
      payload: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { request: { method: 'POST', url: 'Patient' }, resource: patientBody('TxGood') },
          { request: { method: 'POST', url: 'Patient' }, resource: { ...patientBody('TxBad'), gender: 'not-a-gender' } },
        ],
      },
    });
    t.ok(c.res.statusCode >= 400 && c.res.statusCode < 500, `refused (${c.res.statusCode})`);
    t.equal(await store.versions.countDocuments({ type: { $ne: 'AuditEvent' } }), before, 'no version was written');
    t.equal(await store.versions.countDocuments({ type: 'AuditEvent' }), eventsBefore, 'no AuditEvent was written with it');
    t.equal((await storedEvents(c.rid)).length, 0, 'its failure event waits in the buffer');
    const event = await onlyEvent(t, c.rid);
    checkShape(t, event, c, {
      subtype: 'transaction',
      action: 'E',
      outcome: '4',
      resources: [],
      outcomeDesc: new RegExp(`^HTTP ${c.res.statusCode}: `),
    });
    t.equal(await store.versions.countDocuments({ type: { $ne: 'AuditEvent' } }), before, 'still no version');
  });

  await t.test('an update retried after a version conflict leaves one AuditEvent, for the version stored', async (t) => {
    const { id } = await createPatient('Conflict');
    const ref = `Patient/${id}`;
    // Another writer stores version 2 between this update's read of the head and its write: the update's first
    // attempt (based on version 1) meets a conflict, and its retry stores version 3.
    const stale = (await store.readCurrent('Patient', id))!;
    const other = await call('PUT', `/Patient/${id}`, { scope: CLINICAL, payload: { ...patientBody('Conflict'), id, gender: 'other' } });
    t.equal(other.res.statusCode, 200);
    const realRead = store.readCurrent.bind(store);
    const realWrite = store.writeVersion.bind(store);
    let staleServed = false;
    let conflicts = 0;
    store.readCurrent = async (type: string, rid: string, session?: Parameters<typeof realRead>[2]): Promise<HeadDocument | null> => {
      if (type === 'Patient' && rid === id && !staleServed) {
        staleServed = true;
        return stale;
      }
      return realRead(type, rid, session);
    };
    store.writeVersion = async (...args: Parameters<typeof realWrite>) => {
      try {
        return await realWrite(...args);
      } catch (error) {
        if (error instanceof VersionConflictError) conflicts++;
        throw error;
      }
    };
    let c: Call;
    try {
      c = await call('PUT', `/Patient/${id}`, { scope: CLINICAL, payload: { ...patientBody('Conflict'), id, gender: 'male' } });
    } finally {
      store.readCurrent = realRead;
      store.writeVersion = realWrite;
    }
    t.equal(c.res.statusCode, 200, c.res.body);
    t.equal(conflicts, 1, 'the first attempt met a version conflict');
    t.equal(c.res.headers.etag, 'W/"3"', 'the retry stored version 3');
    const committed = await storedEvents(c.rid);
    t.equal(committed.length, 1, 'one AuditEvent, committed with version 3');
    t.equal((await eventsOf(c.rid)).length, 1, 'none from the failed attempt, none buffered');
    const event = committed[0]!;
    checkShape(t, event, c, { subtype: 'update', action: 'U', outcome: '0', patients: [ref] });
    t.ok(resourceRefs(event).includes(`${ref}/_history/3`), 'names version 3');
    t.comment(`entities of the retried update's event: ${resourceRefs(event).join(', ')}`);
    const namingV3 = await store.versions.countDocuments({
      type: 'AuditEvent',
      'resource.entity.what.reference': `${ref}/_history/3`,
      'resource.subtype.code': 'update',
    });
    t.equal(namingV3, 1, 'exactly one update event names version 3');
  });
});

t.test('AuditEvents are searchable through the API, with a scope for them only', async (t) => {
  const { id } = await createPatient('Searched');
  const ref = `Patient/${id}`;
  const read = await call('GET', `/${ref}`, { scope: CLINICAL });
  const refused = await call('GET', `/${ref}`, { scope: 'user/Encounter.rs' });
  t.equal(refused.res.statusCode, 403);
  await secured.flushAudit();
  const today = new Date().toISOString().slice(0, 10);

  const search = async (query: string, scope = AUDIT_READ): Promise<{ status: number; bundle: Bundle<AuditEvent>; body: string }> => {
    const c = await call('GET', `/AuditEvent?${query}`, { scope });
    return { status: c.res.statusCode, bundle: c.res.json() as Bundle<AuditEvent>, body: c.res.body };
  };
  const found = (bundle: Bundle<AuditEvent>) => (bundle.entry ?? []).map((e) => e.resource!);
  const rids = (bundle: Bundle<AuditEvent>) => found(bundle).flatMap(requestIds);

  await t.test('by entity, date, patient, type, subtype, outcome', async (t) => {
    const byEntity = await search(`entity=${ref}`);
    t.equal(byEntity.status, 200, byEntity.body);
    t.same(
      sorted(found(byEntity.bundle).map((e) => e.subtype?.[0]?.code ?? '')),
      ['create', 'read', 'read'],
      'its create, its read and the refused read',
    );

    const withDate = await search(`entity=${ref}&date=ge${today}`);
    t.equal(found(withDate.bundle).length, 3, 'date=ge today keeps them');
    const future = await search(`entity=${ref}&date=ge2999-01-01`);
    t.equal(found(future.bundle).length, 0, 'date=ge2999 excludes them');

    const byPatient = await search(`patient=${ref}`);
    t.same(
      sorted(found(byPatient.bundle).map((e) => e.subtype?.[0]?.code ?? '')),
      ['create', 'read', 'read'],
      'patient=, refusals included',
    );

    const reads = await search(`entity=${ref}&type=rest&subtype=read`);
    t.equal(found(reads.bundle).length, 2, 'type=rest&subtype=read');
    const failures = await search(`entity=${ref}&outcome=4`);
    t.same(rids(failures.bundle), [refused.rid], 'outcome=4: the refused read');
    const refusedOnPatient = await search(`patient=${ref}&outcome=4`);
    t.same(rids(refusedOnPatient.bundle), [refused.rid], "patient=&outcome=4: refused attempts on a patient's data");
    const successes = await search(`entity=${ref}&outcome=0&action=R`);
    t.same(rids(successes.bundle), [read.rid], 'outcome=0&action=R: the read');
  });

  await t.test('by who: fhirUser reference, client and user identifiers, token id, address', async (t) => {
    const byFhirUser = await search(`agent=${FHIR_USER}&entity=${ref}`);
    t.equal(byFhirUser.status, 200, byFhirUser.body);
    t.equal(found(byFhirUser.bundle).length, 3, 'agent=Practitioner/p7 (the fhirUser is agent.who.reference)');
    const byClient = await search(`agent:identifier=${CLIENT_ID}&entity=${ref}`);
    t.equal(byClient.status, 200, byClient.body);
    t.equal(found(byClient.bundle).length, 3, 'agent:identifier=<client_id>');
    const byUser = await search(`agent:identifier=${encodeURIComponent(`${TEST_ISSUER}|${USER}`)}&entity=${ref}`);
    t.equal(found(byUser.bundle).length, 3, 'agent:identifier=<iss>|<sub>');
    const byJti = await search(`policy=${encodeURIComponent(JTI_URN_PREFIX + read.jti)}`);
    t.equal(byJti.status, 200, byJti.body);
    t.same(rids(byJti.bundle), [read.rid], 'policy=urn:ietf:params:oauth:jti:<jti>: what one token did');
    const byAddress = await search(`address=127.0.0.1&entity=${ref}`);
    t.equal(byAddress.status, 200, byAddress.body);
    t.equal(found(byAddress.bundle).length, 3, 'address=<client IP>');
    const byRequest = await search(`entity:identifier=${read.rid}`);
    t.equal(byRequest.status, 200, byRequest.body);
    t.same(rids(byRequest.bundle), [read.rid], 'entity:identifier=<X-Request-Id>');
    const noSuchAgent = await search(`agent=Practitioner/nobody&entity=${ref}`);
    t.equal(found(noSuchAgent.bundle).length, 0);
  });

  await t.test('sorted newest first, with an accurate total', async (t) => {
    const res = await search(`entity=${ref}&_sort=-date&_total=accurate`);
    t.equal(res.status, 200, res.body);
    t.equal(res.bundle.total, 3, '_total=accurate');
    const times = found(res.bundle).map((e) => Date.parse(e.recorded));
    t.same(
      times,
      [...times].sort((a, b) => b - a),
      '_sort=-date: newest first',
    );
    t.equal(found(res.bundle).at(-1)?.subtype?.[0]?.code, 'create', 'the create is the oldest');
  });

  await t.test('without a scope naming AuditEvent: 403, even with system/*.cruds', async (t) => {
    for (const scope of ['system/*.cruds', 'user/*.cruds', 'system/*.rs']) {
      const res = await search(`entity=${ref}`, scope);
      t.equal(res.status, 403, `${scope}: 403`);
      const read = await call('GET', `/AuditEvent/${found((await search(`entity=${ref}`)).bundle)[0]!.id}`, { scope });
      t.equal(read.res.statusCode, 403, `${scope}: read 403`);
    }
    const system = await call('GET', `/?_type=AuditEvent`, { scope: 'system/*.cruds' });
    t.equal(system.res.statusCode, 403, 'system search for AuditEvent: 403');
    const withScope = await call('GET', `/AuditEvent/${found((await search(`entity=${ref}`)).bundle)[0]!.id}`, { scope: AUDIT_READ });
    t.equal(withScope.res.statusCode, 200, 'read with system/AuditEvent.rs');
  });

  await t.test('never written through the API: 405 with an OperationOutcome, and no Bundle entry may write one', async (t) => {
    const someId = found((await search(`entity=${ref}`)).bundle)[0]!.id!;
    const event = (await call('GET', `/AuditEvent/${someId}`, { scope: AUDIT_READ })).res.json() as AuditEvent;
    const writes: Array<['POST' | 'PUT' | 'PATCH' | 'DELETE', string, unknown]> = [
      ['POST', '/AuditEvent', { ...event, id: undefined }],
      ['PUT', `/AuditEvent/${someId}`, { ...event, outcome: '0' }],
      ['PATCH', `/AuditEvent/${someId}`, [{ op: 'replace', path: '/outcome', value: '0' }]],
      ['DELETE', `/AuditEvent/${someId}`, undefined],
      ['PUT', `/AuditEvent?entity=${ref}`, event],
      ['DELETE', `/AuditEvent?entity=${ref}`, undefined],
    ];
    for (const [method, url, payload] of writes) {
      const c = await call(method, url, {
        scope: 'system/AuditEvent.cruds system/*.cruds',
        payload,
        headers: method === 'PATCH' ? { 'content-type': 'application/json-patch+json' } : {},
      });
      t.equal(c.res.statusCode, 405, `${method} ${url}: 405`);
      t.equal((c.res.json() as OperationOutcome).resourceType, 'OperationOutcome', 'with an OperationOutcome');
      t.match(c.res.headers.allow, /GET/, 'Allow names what is allowed');
      t.equal((await eventsOf(c.rid)).length, 1, 'the attempt to write the audit trail is itself audited');
    }
    const after = (await call('GET', `/AuditEvent/${someId}`, { scope: AUDIT_READ })).res.json() as AuditEvent;
    t.same(after, event, 'the event is unchanged');

    for (const type of ['batch', 'transaction'] as const) {
      const c = await call('POST', '/', {
        scope: 'system/AuditEvent.cruds system/*.cruds',
        payload: {
          resourceType: 'Bundle',
          type,
          entry: [
            { request: { method: 'POST', url: 'AuditEvent' }, resource: { ...event, id: undefined } },
            { request: { method: 'DELETE', url: `AuditEvent/${someId}` } },
          ],
        },
      });
      if (type === 'batch') {
        t.equal(c.res.statusCode, 200, c.res.body);
        const statuses = ((c.res.json() as Bundle).entry ?? []).map((e) => Number.parseInt(e.response?.status ?? '0', 10));
        t.ok(
          statuses.every((s) => s >= 400 && s < 500),
          `batch: every AuditEvent entry refused (${statuses.join(', ')})`,
        );
      } else {
        t.ok(c.res.statusCode >= 400 && c.res.statusCode < 500, `transaction refused (${c.res.statusCode})`);
      }
    }
    const still = await call('GET', `/AuditEvent/${someId}`, { scope: AUDIT_READ });
    t.equal(still.res.statusCode, 200, 'the event is still there');
    t.same(still.res.json(), event, 'unchanged');
  });
});

t.test('stored AuditEvents are valid R4', async (t) => {
  await secured.flushAudit();
  const docs = await store.versions.find({ type: 'AuditEvent' }).toArray();
  t.ok(docs.length > 20, `${docs.length} events to check`);
  const expectedWarning = (i: OperationOutcomeIssue): boolean =>
    (i.code === 'not-supported' && /^Profile https:\/\/profiles\.ihe\.net\/ITI\/BALP\//.test(i.diagnostics ?? '')) ||
    (i.code === 'code-invalid' && (i.diagnostics ?? '').includes('BasicAuditEntityType|XrequestId'));
  // One of each subtype/outcome combination, read back through the API (as served).
  const seen = new Set<string>();
  for (const doc of docs) {
    const event = doc.resource as AuditEvent;
    const key = `${event.subtype?.[0]?.code}/${event.outcome}/${userAgent(event) ? 'user' : 'anonymous'}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const c = await call('GET', `/AuditEvent/${event.id}`, { scope: AUDIT_READ });
    t.equal(c.res.statusCode, 200);
    const served = c.res.json() as AuditEvent;
    const issues = validator.validate(served);
    t.same(
      issues.filter((i) => i.severity === 'error' || i.severity === 'fatal'),
      [],
      `${key}: no errors`,
    );
    t.same(
      issues.filter((i) => i.severity === 'warning' && !expectedWarning(i)),
      [],
      `${key}: no unexpected warnings`,
    );
  }
  t.ok(seen.size >= 10, `${seen.size} kinds of events validated`);
});
