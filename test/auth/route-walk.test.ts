/**
 * Every route of the route table, walked through the HTTP API with the credentials that must not be enough:
 *
 *   (a) no Authorization header                         -> 401, bare Bearer challenge, OperationOutcome
 *   (b) a token for another server (aud)                -> 401, error="invalid_token"
 *   (c) a token that expired 10 minutes ago (> 30 s skew) -> 401
 *   (d) a valid token with too few scopes               -> 403 naming the missing scope
 *   (e) a patient/ token for P1, sent to requests aimed at P2's data
 *                                                       -> 403 for P2's instances and for writes into P2's compartment;
 *                                                          403 or an answer without any id of P2's resources otherwise
 *
 * After each scenario nothing clinical was written (versions and heads counted in MongoDB, no export job created),
 * and every request left an AuditEvent (outcome 4 when refused, with the route's interaction as subtype). A control
 * pass with the admin token last shows that each sample really reaches P2's data, so a refusal above is the
 * credentials' doing and not a broken sample.
 *
 * The app has every optional part on (ledger routes, Bulk export, the own authorization server), so that the table
 * holds every route the server can have. `sampleFor` maps each declared route (method + URL pattern) to its sample
 * requests: a route it does not know fails the walk by name, so a new route cannot go unwalked.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Db } from 'mongodb';
import t, { type Test } from 'tap';
import { AccessTokenVerifier } from '../../src/auth/access-tokens.js';
import { AuthorizationServer } from '../../src/auth/authorization-server.js';
import type { OpenedAuth } from '../../src/auth/index.js';
import type { RouteTableEntry } from '../../src/http/route-table.js';
import { clientResourceTypes, r4ResourceTypes, storedResourceTypes } from '../../src/fhir/resource-types.js';
import { connectMongo } from '../../src/store/mongo.js';
import { ResourceStore } from '../../src/store/resource-store.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import { SECURED_CONFIG, TEST_AUDIENCE, startSecuredApp, testIssuer, type TestIssuer } from '../helpers/auth.js';
import {
  SAMPLE_IDENTIFIER_SYSTEM,
  sampleEncounter,
  sampleMedicationRequest,
  sampleObservation,
  samplePatient,
} from '../helpers/fhir-samples.js';
import { testMongo, uniqueDbName } from '../helpers/mongo.js';
import { runtimeFor, startTestNetwork } from '../ledger/helpers/ledger-app.js';

stopMongoAtEnd(t);

const BASE = TEST_AUDIENCE;
const ADMIN_SCOPE = 'system/*.cruds system/AuditEvent.rs';
const ADMIN_CLIENT = 'walk-admin';
const FHIR_JSON = 'application/fhir+json';
const JSON_PATCH = 'application/json-patch+json';
const FORM = 'application/x-www-form-urlencoded';
/**
 * The types walked: the featured ones, Observation for every other hosted type (their routes come from the same
 * code; the walk checks that each of them has exactly Observation's routes and declarations), and the audit trail
 * (read-only).
 */
const CLINICAL = ['Patient', 'Encounter', 'MedicationRequest', 'Observation'] as const;
const TYPES = [...CLINICAL, 'AuditEvent'] as const;
/** The hosted types whose routes are Observation's, renamed. */
const LIKE_OBSERVATION = new Set(clientResourceTypes().filter((type) => !(TYPES as readonly string[]).includes(type)));
/** The R4 types the server does not store: each has POST [type]/$validate and nothing else. */
const UNHOSTED_TYPES = new Set(r4ResourceTypes().filter((type) => !storedResourceTypes().includes(type)));
type ResourceType = (typeof TYPES)[number];

// ---------------------------------------------------------------------------------------------------------------
// The app: secured, with ledger routes, Bulk export and the own authorization server

interface Walk {
  app: FastifyInstance;
  db: Db;
  issuer: TestIssuer;
  exportDir: string;
  flushAudit(): Promise<void>;
}

async function startWalkApp(t: Test): Promise<Walk> {
  // The ledger's read side must see the app's database, so the database is opened here and handed to the app as
  // its store (startSecuredApp lets deps replace the store; its own empty database is dropped at the end).
  const mongo = await testMongo();
  const connection = await connectMongo(mongo.uri, uniqueDbName('walk'));
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  await store.ensureIndexes();
  const net = await startTestNetwork(t);
  const runtime = runtimeFor(net, connection, []);
  await runtime.init();
  const exportDir = await mkdtemp(join(tmpdir(), 'route-walk-'));

  // Authentication trusting both the test identity provider (tokens of any shape) and the server's own
  // authorization server (whose routes then join the table).
  const test = await testIssuer();
  const server = await AuthorizationServer.open({
    db: connection.db,
    issuer: `${BASE}/auth`,
    audience: TEST_AUDIENCE,
    tokenTtlSeconds: 300,
    clockSkewSeconds: 30,
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
  });
  const ownKeys = server.publicJwks();
  const auth: OpenedAuth = {
    verifier: new AccessTokenVerifier({
      issuers: [
        { issuer: test.issuer, keys: { kind: 'local', jwks: () => test.jwks }, own: false },
        { issuer: server.issuer, keys: { kind: 'local', jwks: () => ownKeys }, own: true },
      ],
      audience: TEST_AUDIENCE,
      clockSkewSeconds: 30,
      isClientActive: (clientId) => server.clients.isActive(clientId),
    }),
    server,
    smartConfiguration: () => ({ issuer: server.issuer, token_endpoint: server.tokenEndpoint }),
    tokenEndpoint: server.tokenEndpoint,
    close: () => server.close(),
  };

  const secured = await startSecuredApp(
    t,
    { ...SECURED_CONFIG, auth: { ...SECURED_CONFIG.auth, server: { enabled: true, tokenTtlSeconds: 300, devClient: false } } },
    {
      store,
      auth,
      ledger: runtime.service,
      bulkExport: { dir: exportDir, tuning: { pollIntervalMs: 50 } },
    },
  );
  // Teardowns run in reverse: the app (startSecuredApp's teardown) closes first, then these.
  t.teardown(async () => {
    await runtime.stop();
    await auth.close();
    await connection.db.dropDatabase().catch(() => undefined);
    await connection.close();
    await rm(exportDir, { recursive: true, force: true });
  });
  return { app: secured.app, db: connection.db, issuer: secured.issuer, exportDir, flushAudit: secured.flushAudit };
}

// ---------------------------------------------------------------------------------------------------------------
// Seed

interface Seed {
  p1: string;
  p2: string;
  /** P2's family name (searched by chains, so search URLs never name P2's ids). */
  p2Family: string;
  e1: string;
  e2: string;
  m1: string;
  m2: string;
  o1: string;
  o2: string;
  /** An AuditEvent about P2 (the one committed with P2's creation). */
  audit2: string;
  /** The admin client's completed export job, and one of its files. */
  jobId: string;
  jobFile: string;
  /** Every id in P2's compartment, and the AuditEvent about P2: none may appear in an answer to P1's token. */
  p2Ids: string[];
}

async function send(
  app: FastifyInstance,
  authorization: string | undefined,
  request: { method: string; url: string; body?: unknown; contentType?: string; headers?: Record<string, string> },
  requestId?: string,
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { accept: FHIR_JSON, ...request.headers };
  if (authorization) headers.authorization = authorization;
  if (requestId) headers['x-request-id'] = requestId;
  let payload: string | undefined;
  if (request.body !== undefined) {
    headers['content-type'] = request.contentType ?? FHIR_JSON;
    payload = typeof request.body === 'string' ? request.body : JSON.stringify(request.body);
  }
  return app.inject({ method: request.method as 'GET', url: request.url, headers, ...(payload !== undefined ? { payload } : {}) });
}

async function created(app: FastifyInstance, admin: string, type: string, body: object): Promise<string> {
  const res = await send(app, admin, { method: 'POST', url: `/${type}`, body });
  if (res.statusCode !== 201) throw new Error(`seeding ${type}: ${res.statusCode} ${res.body}`);
  return (res.json() as { id: string }).id;
}

async function seed(walk: Walk, admin: string): Promise<Seed> {
  const { app } = walk;
  const p1 = await created(app, admin, 'Patient', samplePatient('Erstling', 'p1'));
  const p2Family = 'Zweitling';
  const p2 = await created(app, admin, 'Patient', samplePatient(p2Family, 'p2'));
  const e1 = await created(app, admin, 'Encounter', sampleEncounter(p1, 'e1'));
  const e2 = await created(app, admin, 'Encounter', sampleEncounter(p2, 'e2'));
  const m1 = await created(app, admin, 'MedicationRequest', sampleMedicationRequest(p1, e1, 'm1'));
  const m2 = await created(app, admin, 'MedicationRequest', sampleMedicationRequest(p2, e2, 'm2'));
  const o1 = await created(app, admin, 'Observation', sampleObservation(p1, 'o1'));
  const o2 = await created(app, admin, 'Observation', sampleObservation(p2, 'o2'));
  // One updated resource: P2 gets a version 2.
  const update = await send(app, admin, {
    method: 'PUT',
    url: `/Patient/${p2}`,
    body: { ...samplePatient(p2Family, 'p2'), id: p2, gender: 'male' },
  });
  if (update.statusCode !== 200) throw new Error(`seeding the update: ${update.statusCode} ${update.body}`);

  // The AuditEvent committed with P2's creation names P2.
  await walk.flushAudit();
  const auditDoc = await walk.db
    .collection('resource_versions')
    .findOne({ type: 'AuditEvent', 'resource.entity.what.reference': `Patient/${p2}`, 'resource.subtype.code': 'create' });
  if (!auditDoc) throw new Error('no AuditEvent about P2');
  const audit2 = auditDoc.id as string;

  // A completed export of the admin client.
  const kick = await send(app, admin, { method: 'GET', url: '/$export', headers: { prefer: 'respond-async', accept: FHIR_JSON } });
  if (kick.statusCode !== 202) throw new Error(`export kick-off: ${kick.statusCode} ${kick.body}`);
  const jobId = String(kick.headers['content-location']).split('/').pop()!;
  let manifest: { output: Array<{ type: string; url: string }> } | undefined;
  for (let i = 0; i < 200 && !manifest; i++) {
    const status = await send(app, admin, { method: 'GET', url: `/$export-status/${jobId}` });
    if (status.statusCode === 200) manifest = status.json();
    else if (status.statusCode !== 202) throw new Error(`export status: ${status.statusCode} ${status.body}`);
    else await new Promise((r) => setTimeout(r, 50));
  }
  if (!manifest) throw new Error('the export did not complete within 10 s');
  const patientFile = manifest.output.find((f) => f.type === 'Patient');
  if (!patientFile) throw new Error(`no Patient file in ${JSON.stringify(manifest)}`);
  const jobFile = patientFile.url.split('/').pop()!;
  return { p1, p2, p2Family, e1, e2, m1, m2, o1, o2, audit2, jobId, jobFile, p2Ids: [p2, e2, m2, o2, audit2] };
}

// ---------------------------------------------------------------------------------------------------------------
// Samples: one function, keyed by method + URL pattern

interface Sample {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  /**
   * What the patient/ token for P1 must get:
   * - 'forbidden': 403 (an instance of P2, or a write into P2's compartment);
   * - 'confined': 403, or a 2xx whose body holds no id of P2's resources (type- and system-level reads).
   */
  patient: 'forbidden' | 'confined';
  /** The 403 diagnostics for too few scopes must match this (they name the scope that is missing). */
  missing: RegExp;
  /**
   * The answer to a client other than the admin's (the patient app) when it is not 403: an export job's URLs answer
   * 404 to any client but the one that kicked the job off, whatever its scopes (the job is not theirs: not even its
   * existence is disclosed). The too-few-scopes token is the admin client's own, so there they answer 403.
   */
  otherClientStatus?: number;
  /** A batch Bundle: refusals come back per entry (each with this interaction's AuditEvent), inside a 200. */
  batchEntries?: string;
  /**
   * Refused for every valid token with this status whatever its scopes (a write to the audit trail: 405); the route
   * is declared so that the attempt needs a token and is audited.
   */
  refusedForAll?: number;
  /** Statuses the admin token gets (control pass). */
  control: number[];
  /** The admin's answer holds a P2 id (the sample reaches P2's data). */
  controlShowsP2?: boolean;
}

/** The route's URL with its resource type replaced by [type], for the generic cases. */
function shapeOf(url: string): { shape: string; type: ResourceType | undefined } {
  const match = /^\/([A-Za-z]+)(\/.*)?$/.exec(url);
  const type = match && (TYPES as readonly string[]).includes(match[1]) ? (match[1] as ResourceType) : undefined;
  return { shape: type ? `/[type]${match![2] ?? ''}` : url, type };
}

/** The requests that exercise one route against P2's data; undefined for a route this walk does not know. */
function sampleFor(method: string, url: string, s: Seed): Sample[] | undefined {
  const { shape, type } = shapeOf(url);
  const key = `${method} ${url}`;
  // Routes with literal paths first (Patient's own operations, system level, ledger, export).
  switch (key) {
    case 'GET /Patient/:id/:compartmentType':
      return [
        {
          method: 'GET',
          url: `/Patient/${s.p2}/*`,
          patient: 'forbidden',
          missing: /system\/Patient\.r/,
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'GET /Patient/:id/$everything':
    case 'POST /Patient/:id/$everything':
      return [
        {
          method,
          url: `/Patient/${s.p2}/$everything`,
          ...(method === 'POST' ? { body: { resourceType: 'Parameters', parameter: [{ name: '_count', valueInteger: 50 }] } } : {}),
          patient: 'forbidden',
          missing: /system\/Patient\.r/,
          control: [200],
          controlShowsP2: true,
        } as Sample,
      ];
    case 'GET /Patient/$everything':
    case 'POST /Patient/$everything':
      return [
        {
          method,
          url: '/Patient/$everything?_count=50',
          ...(method === 'POST' ? { body: { resourceType: 'Parameters', parameter: [] } } : {}),
          patient: 'confined',
          missing: /system\/Patient\.r/,
          control: [200],
          controlShowsP2: true,
        } as Sample,
      ];
    case 'GET /_history':
      return [
        {
          method: 'GET',
          url: '/_history?_count=100',
          patient: 'confined',
          missing: /system\/Patient\.r/,
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'GET /':
      return [
        {
          method: 'GET',
          url: '/?_type=Patient,Encounter,MedicationRequest&_total=accurate&_count=100',
          patient: 'confined',
          missing: /system\/Patient\.s/,
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'POST /_search':
      return [
        {
          method: 'POST',
          url: '/_search',
          body: '_type=Patient,Encounter,MedicationRequest&_count=100',
          contentType: FORM,
          patient: 'confined',
          missing: /system\/Patient\.s/,
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'POST /':
      return [
        {
          // A transaction writing into P2's compartment: refused whole, nothing written.
          method: 'POST',
          url: '/',
          body: {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
              {
                fullUrl: `${BASE}/Encounter/${s.e2}`,
                resource: { ...sampleEncounter(s.p2, 'e2'), id: s.e2, status: 'cancelled' },
                request: { method: 'PUT', url: `Encounter/${s.e2}` },
              },
            ],
          },
          patient: 'forbidden',
          missing: /system\/Encounter\.u/,
          control: [200],
        },
        {
          // A batch reading P2's resources: each entry is refused on its own (the Bundle itself answers 200).
          method: 'POST',
          url: '/',
          body: {
            resourceType: 'Bundle',
            type: 'batch',
            entry: [
              { request: { method: 'GET', url: `Patient/${s.p2}` } },
              { request: { method: 'GET', url: `Encounter/${s.e2}` } },
              { request: { method: 'GET', url: `MedicationRequest/${s.m2}` } },
            ],
          },
          batchEntries: 'read',
          patient: 'forbidden',
          missing: /system\/(Patient|Encounter|MedicationRequest)\.r/,
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'GET /$export':
    case 'POST /$export':
    case 'GET /Patient/$export':
    case 'POST /Patient/$export':
      return [
        {
          method,
          url: url === '/$export' ? '/$export?_type=Patient,Encounter,MedicationRequest' : '/Patient/$export',
          headers: { prefer: 'respond-async', accept: FHIR_JSON },
          ...(method === 'POST' ? { body: { resourceType: 'Parameters', parameter: [] } } : {}),
          patient: 'forbidden',
          missing: /system\/Patient\.r/,
          control: [202],
        } as Sample,
      ];
    case 'GET /$ledger-audit':
      return [
        {
          // The completeness audit reads every anchored type, the audit trail included: only a token that reads all of
          // them beyond any patient compartment may run it (it names records of every patient).
          method: 'GET',
          url: '/$ledger-audit?from=1&to=3',
          patient: 'forbidden',
          missing: /system\/\*\.r system\/AuditEvent\.r/,
          control: [200],
        },
      ];
    case 'GET /$export-status/:jobId':
      return [
        {
          method: 'GET',
          url: `/$export-status/${s.jobId}`,
          patient: 'forbidden',
          missing: /system\/Patient\.r/,
          otherClientStatus: 404,
          control: [200],
        },
      ];
    case 'DELETE /$export-status/:jobId':
      return [
        {
          method: 'DELETE',
          url: `/$export-status/${s.jobId}`,
          patient: 'forbidden',
          missing: /system\/Patient\.r/,
          otherClientStatus: 404,
          control: [202],
        },
      ];
    case 'GET /$export-file/:jobId/:file':
      return [
        {
          method: 'GET',
          url: `/$export-file/${s.jobId}/${s.jobFile}`,
          headers: { accept: 'application/fhir+ndjson' },
          patient: 'forbidden',
          missing: /system\/Patient\.r/,
          otherClientStatus: 404,
          control: [200],
          controlShowsP2: true,
        },
      ];
    default:
      break;
  }
  // $validate of the R4 types not stored here: a dry run that reads nothing (the other patient's token may use it).
  const unhosted = /^\/([A-Z][A-Za-z]+)\/\$validate$/.exec(url);
  if (!type && method === 'POST' && unhosted && UNHOSTED_TYPES.has(unhosted[1]!)) {
    const other = unhosted[1]!;
    return [
      {
        method: 'POST',
        url,
        body: { resourceType: other },
        patient: 'confined',
        missing: new RegExp(`system/${other}\\.[cu]`),
        control: [200],
      },
    ];
  }
  if (!type) return undefined;
  // The audit trail is read-only: its write routes answer 405 to every token (declared, so the attempt is audited).
  if (type === 'AuditEvent' && method !== 'GET' && !url.endsWith('/_search')) {
    if (
      !['POST /[type]', 'PUT /[type]', 'DELETE /[type]', 'PUT /[type]/:id', 'PATCH /[type]/:id', 'DELETE /[type]/:id'].includes(
        `${method} ${shape}`,
      )
    )
      return undefined;
    const instanceUrl = shape.endsWith('/:id') ? `/AuditEvent/${s.audit2}` : `/AuditEvent?entity=Patient/${s.p2}`;
    const body =
      method === 'PATCH'
        ? [{ op: 'replace', path: '/outcome', value: '0' }]
        : method === 'DELETE'
          ? undefined
          : { resourceType: 'AuditEvent' };
    return [
      {
        method: method as Sample['method'],
        url: method === 'POST' ? '/AuditEvent' : instanceUrl,
        ...(body !== undefined ? { body } : {}),
        ...(method === 'PATCH' ? { contentType: 'application/json-patch+json' } : {}),
        patient: 'forbidden',
        missing: /AuditEvent/,
        refusedForAll: 405,
        control: [405],
      },
    ];
  }

  // The generic routes of one type, aimed at P2's resource of that type.
  const target: Record<ResourceType, { id: string; body: object; patch: unknown; identifier: string }> = {
    Patient: {
      id: s.p2,
      body: { ...samplePatient(s.p2Family, 'p2'), id: s.p2, gender: 'other' },
      patch: [{ op: 'replace', path: '/gender', value: 'other' }],
      identifier: 'p2',
    },
    Encounter: {
      id: s.e2,
      body: { ...sampleEncounter(s.p2, 'e2'), id: s.e2, status: 'cancelled' },
      patch: [{ op: 'replace', path: '/status', value: 'cancelled' }],
      identifier: 'e2',
    },
    MedicationRequest: {
      id: s.m2,
      body: { ...sampleMedicationRequest(s.p2, s.e2, 'm2'), id: s.m2, status: 'on-hold' },
      patch: [{ op: 'replace', path: '/status', value: 'on-hold' }],
      identifier: 'm2',
    },
    Observation: {
      id: s.o2,
      body: { ...sampleObservation(s.p2, 'o2'), id: s.o2, status: 'amended' },
      patch: [{ op: 'replace', path: '/status', value: 'amended' }],
      identifier: 'o2',
    },
    AuditEvent: { id: s.audit2, body: {}, patch: [], identifier: '' },
  };
  const { id, body, patch, identifier } = target[type];
  /** New data in P2's compartment (a new Patient is in nobody's compartment but its own: not P1's either). */
  const fresh: Record<string, object> = {
    Patient: samplePatient(s.p2Family, 'p2-new'),
    Encounter: sampleEncounter(s.p2, 'e2-new'),
    MedicationRequest: sampleMedicationRequest(s.p2, s.e2, 'm2-new'),
    Observation: sampleObservation(s.p2, 'o2-new'),
  };
  /** Type-level criteria that reach P2's data without naming its ids (so an echoed query is no false alarm). */
  const criteria: Record<ResourceType, string> = {
    Patient: `family=${s.p2Family}&_revinclude=Encounter:subject&_revinclude=MedicationRequest:subject&_total=accurate`,
    Encounter: `subject:Patient.family=${s.p2Family}&_include=Encounter:subject&_revinclude=MedicationRequest:encounter&_total=accurate`,
    MedicationRequest: `subject:Patient.family=${s.p2Family}&_include=MedicationRequest:encounter&_include:iterate=Encounter:subject&_total=accurate`,
    Observation: `subject:Patient.family=${s.p2Family}&_include=Observation:subject&_total=accurate`,
    AuditEvent: 'action=C&_count=100&_total=accurate',
  };
  const perm = (letters: string) => new RegExp(`system/${type}\\.[${letters}]`);
  switch (`${method} ${shape}`) {
    case 'GET /[type]':
      return [
        { method: 'GET', url: `/${type}?${criteria[type]}`, patient: 'confined', missing: perm('s'), control: [200], controlShowsP2: true },
      ];
    case 'POST /[type]/_search':
      return [
        {
          method: 'POST',
          url: `/${type}/_search`,
          body: criteria[type],
          contentType: FORM,
          patient: 'confined',
          missing: perm('s'),
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'POST /[type]':
      return [{ method: 'POST', url: `/${type}`, body: fresh[type], patient: 'forbidden', missing: perm('c'), control: [201] }];
    case 'PUT /[type]':
      // Conditional update: the criteria name P2's resource by identifier, the body keeps its id.
      return [
        {
          method: 'PUT',
          url: `/${type}?identifier=${SAMPLE_IDENTIFIER_SYSTEM}|${identifier}`,
          body,
          patient: 'forbidden',
          missing: perm('u'),
          control: [200],
        },
      ];
    case 'DELETE /[type]':
      // Conditional delete: a patient/ token's criteria search only P1's compartment, so it matches nothing and
      // deletes nothing (204, no P2 data in it): 'confined', with the no-write check of every scenario.
      return [
        {
          method: 'DELETE',
          url: `/${type}?identifier=${SAMPLE_IDENTIFIER_SYSTEM}|${identifier}`,
          patient: 'confined',
          missing: perm('d'),
          control: [204],
        },
      ];
    case 'GET /[type]/:id':
      return [{ method: 'GET', url: `/${type}/${id}`, patient: 'forbidden', missing: perm('r'), control: [200], controlShowsP2: true }];
    case 'PUT /[type]/:id':
      return [{ method: 'PUT', url: `/${type}/${id}`, body, patient: 'forbidden', missing: perm('u'), control: [200] }];
    case 'PATCH /[type]/:id':
      return [
        {
          method: 'PATCH',
          url: `/${type}/${id}`,
          body: patch,
          contentType: JSON_PATCH,
          patient: 'forbidden',
          missing: perm('u'),
          control: [200],
        },
      ];
    case 'DELETE /[type]/:id':
      return [{ method: 'DELETE', url: `/${type}/${id}`, patient: 'forbidden', missing: perm('d'), control: [204] }];
    case 'POST /[type]/$validate':
      return [{ method: 'POST', url: `/${type}/$validate`, body: fresh[type], patient: 'confined', missing: perm('cu'), control: [200] }];
    case 'POST /[type]/:id/$validate':
      return [
        { method: 'POST', url: `/${type}/${id}/$validate?mode=update`, body, patient: 'forbidden', missing: perm('cu'), control: [200] },
      ];
    case 'GET /[type]/:id/_history/:vid':
      return [
        { method: 'GET', url: `/${type}/${id}/_history/1`, patient: 'forbidden', missing: perm('r'), control: [200], controlShowsP2: true },
      ];
    case 'GET /[type]/:id/_history':
      return [
        { method: 'GET', url: `/${type}/${id}/_history`, patient: 'forbidden', missing: perm('r'), control: [200], controlShowsP2: true },
      ];
    case 'GET /[type]/_history':
      return [
        {
          method: 'GET',
          url: `/${type}/_history?_count=100`,
          patient: 'confined',
          missing: perm('r'),
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'GET /[type]/:id/_history/:vid/$verify':
      return [{ method: 'GET', url: `/${type}/${id}/_history/1/$verify`, patient: 'forbidden', missing: perm('r'), control: [200] }];
    case 'GET /[type]/:id/$proof':
      return [
        { method: 'GET', url: `/${type}/${id}/$proof`, patient: 'forbidden', missing: perm('r'), control: [200], controlShowsP2: true },
      ];
    case 'GET /[type]/:id/$provenance':
      return [
        {
          method: 'GET',
          url: `/${type}/${id}/$provenance`,
          patient: 'forbidden',
          missing: perm('r'),
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'GET /[type]/:id/_history/:vid/$provenance':
      return [
        {
          method: 'GET',
          url: `/${type}/${id}/_history/1/$provenance`,
          patient: 'forbidden',
          missing: perm('r'),
          control: [200],
          controlShowsP2: true,
        },
      ];
    case 'GET /[type]/:id/_history/:vid/$proof':
      return [
        {
          method: 'GET',
          url: `/${type}/${id}/_history/1/$proof`,
          patient: 'forbidden',
          missing: perm('r'),
          control: [200],
          controlShowsP2: true,
        },
      ];
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Bookkeeping: what was written, what was audited

interface Counts {
  versions: number;
  heads: number;
  jobs: number;
}

async function counts(db: Db): Promise<Counts> {
  const clinical = { type: { $ne: 'AuditEvent' } };
  return {
    versions: await db.collection('resource_versions').countDocuments(clinical),
    heads: await db.collection('resources').countDocuments(clinical),
    jobs: await db.collection('bulk_export_jobs').countDocuments({}),
  };
}

interface AuditSummary {
  outcome: string;
  subtype: string;
}

/** The AuditEvents recorded for these request ids (read from MongoDB after a flush). */
async function auditEventsOf(walk: Walk, requestIds: string[]): Promise<Map<string, AuditSummary[]>> {
  await walk.flushAudit();
  const docs = await walk.db
    .collection('resource_versions')
    .find({ type: 'AuditEvent', 'resource.entity.what.identifier.value': { $in: requestIds } }, { projection: { resource: 1 } })
    .toArray();
  const byRequest = new Map<string, AuditSummary[]>();
  for (const doc of docs) {
    const event = doc.resource as {
      outcome: string;
      subtype: Array<{ code: string }>;
      entity: Array<{ what?: { identifier?: { value?: string } } }>;
    };
    const requestId = event.entity.find((e) => e.what?.identifier?.value !== undefined)?.what?.identifier?.value;
    if (!requestId) continue;
    const list = byRequest.get(requestId) ?? [];
    list.push({ outcome: event.outcome, subtype: event.subtype[0]?.code ?? '' });
    byRequest.set(requestId, list);
  }
  return byRequest;
}

function diagnosticsOf(res: LightMyRequestResponse): string {
  try {
    const body = res.json() as OperationOutcome;
    return (body.issue ?? []).map((i) => i.diagnostics ?? '').join(' | ');
  } catch {
    return '';
  }
}

function isOperationOutcome(res: LightMyRequestResponse): boolean {
  try {
    return (res.json() as { resourceType?: string }).resourceType === 'OperationOutcome';
  } catch {
    return false;
  }
}

/** The P2 ids a response body holds (raw text: links, entries, included resources, NDJSON lines alike). */
function p2IdsIn(body: string, s: Seed): string[] {
  return s.p2Ids.filter((id) => body.includes(id));
}

// ---------------------------------------------------------------------------------------------------------------
// The walk

interface Walked {
  route: RouteTableEntry;
  sample: Sample;
}

type Scenario = 'no-token' | 'wrong-audience' | 'expired' | 'too-few-scopes' | 'other-patient';

t.test(
  'every route refuses missing, wrong, expired, too narrow and other-patient tokens, writes nothing and audits each refusal',
  async (t) => {
    const started = Date.now();
    const walk = await startWalkApp(t);
    const { app, issuer } = walk;
    const admin = `Bearer ${await issuer.token({ scope: ADMIN_SCOPE, client_id: ADMIN_CLIENT })}`;
    const s = await seed(walk, admin);

    // The table: every declared route, once (HEAD answers with the GET handler; public routes serve no data).
    const everyDeclared = app.routeTable.filter((r) => r.declaration && r.declaration.requires !== 'public' && r.method !== 'HEAD');
    /** The routes walked: all but those of the types whose routes are Observation's (checked to be so below). */
    const declared = everyDeclared.filter((r) => !LIKE_OBSERVATION.has(r.declaration!.type ?? ''));
    await t.test('the route table holds every route the server can have', async (t) => {
      const byInteraction = new Map<string, number>();
      for (const r of declared) {
        const kind = r.declaration!.operation ? `$${r.declaration!.operation}` : r.declaration!.interaction;
        byInteraction.set(kind, (byInteraction.get(kind) ?? 0) + 1);
      }
      const expected: Record<string, number> = {
        'search-type': 5 * 2 + 1, // GET [type] and POST [type]/_search for 4 client types + AuditEvent; Patient compartment
        read: 5,
        vread: 5,
        'history-instance': 5,
        'history-type': 5,
        'history-system': 1,
        'search-system': 2,
        create: 4 + 1, // + POST AuditEvent, refused (405) but declared so that the attempt is audited
        update: 8 + 2, // PUT [type]/[id] and PUT [type]?criteria; + the two on AuditEvent, refused
        patch: 4 + 1,
        delete: 8 + 2,
        transaction: 1,
        $validate: 4 * 2 + UNHOSTED_TYPES.size, // [type] and [type]/[id] of the client types; Parameters (never stored) x 1
        $everything: 4,
        $verify: 5,
        $proof: 10,
        $provenance: 10,
        $export: 4,
        '$export-status': 1,
        '$export-cancel': 1,
        '$export-file': 1,
        '$ledger-audit': 1,
      };
      t.same(Object.fromEntries([...byInteraction].sort()), Object.fromEntries(Object.entries(expected).sort()), 'routes per interaction');
      t.equal(
        declared.length,
        Object.values(expected).reduce((a, b) => a + b, 0),
        'declared routes walked',
      );
      t.same([...UNHOSTED_TYPES], ['Parameters'], 'every R4 type but Parameters is stored');
      t.ok(
        app.routeTable.some((r) => r.public === 'authorization-server'),
        'the own authorization server is mounted (its routes are public)',
      );
      t.ok(
        app.routeTable.every((r) => r.declaration || r.public),
        'every route is declared or says why it is public',
      );
    });

    await t.test("every other hosted type has exactly Observation's routes and declarations", async (t) => {
      const signature = (r: RouteTableEntry, type: string): string =>
        JSON.stringify([r.method, r.url.replace(`/${type}`, '/[type]'), { ...r.declaration, type: '[type]' }]);
      const observation = declared
        .filter((r) => r.declaration!.type === 'Observation')
        .map((r) => signature(r, 'Observation'))
        .sort();
      t.ok(observation.length >= 15, `Observation has its routes (${observation.length})`);
      t.equal(LIKE_OBSERVATION.size, 145 - TYPES.length, 'every other hosted type');
      const differing: string[] = [];
      for (const type of LIKE_OBSERVATION) {
        const routes = everyDeclared.filter((r) => r.declaration!.type === type);
        if (!routes.every((r) => r.url.startsWith(`/${type}`))) differing.push(`${type}: a route outside /${type}`);
        const own = routes.map((r) => signature(r, type)).sort();
        if (JSON.stringify(own) !== JSON.stringify(observation)) differing.push(type);
      }
      t.same(differing, [], 'the same routes, declared the same way');
      t.ok(
        app.routeTable.every((r) => !r.url.includes(':type')),
        'no route takes the type as a parameter (a type the walk did not see could not hide behind one)',
      );
    });

    // Every declared route has a sample; a route without one fails here, by name.
    const walked: Walked[] = [];
    await t.test('every declared route has a sample request', async (t) => {
      for (const route of declared) {
        const samples = sampleFor(route.method, route.url, s);
        if (!samples || samples.length === 0) {
          t.fail(`no sample request for ${route.method} ${route.url}: add one to sampleFor`);
          continue;
        }
        for (const sample of samples) walked.push({ route, sample });
      }
      t.ok(walked.length >= declared.length);
      // The mapping has no catch-all: a route it was not written for gets no sample.
      for (const [method, url] of [
        ['GET', '/Patient/:id/$summary'],
        ['POST', '/AuditEvent/_history'],
        ['GET', '/$import'],
        ['GET', '/Basic/:id'],
      ]) {
        t.equal(sampleFor(method, url, s), undefined, `no sample for an unknown route (${method} ${url})`);
      }
    });
    if (walked.length < declared.length) return;

    const tokens = {
      wrongAudience: `Bearer ${await issuer.token({ scope: ADMIN_SCOPE, client_id: ADMIN_CLIENT }, { audience: 'https://other-server.example/fhir' })}`,
      expired: `Bearer ${await issuer.token({ scope: ADMIN_SCOPE, client_id: ADMIN_CLIENT }, { expiresInSeconds: -600 })}`,
      // Too few scopes, for the admin's own client (so its export job is "theirs", and only the scopes are lacking):
      // reading Parameters, which is never stored.
      narrowClinical: `Bearer ${await issuer.token({ scope: 'system/Parameters.rs', client_id: ADMIN_CLIENT })}`,
      // '*' does not cover the audit trail: a token with every clinical scope is too narrow for AuditEvent routes.
      narrowAudit: `Bearer ${await issuer.token({ scope: 'system/*.cruds', client_id: ADMIN_CLIENT })}`,
      patientP1: `Bearer ${await issuer.token({ scope: 'patient/*.cruds', patient: s.p1, client_id: 'walk-patient-app' })}`,
    };

    let sequence = 0;
    /** Sends every sample with the scenario's token, checks each answer, then the database and the audit trail. */
    const runScenario = async (
      scenario: Scenario,
      tokenFor: (w: Walked) => string | undefined,
      check: (t: Test, w: Walked, res: LightMyRequestResponse) => void,
    ): Promise<void> => {
      await t.test(scenario, async (t) => {
        const before = await counts(walk.db);
        const requests: Array<{ id: string; w: Walked; status: number }> = [];
        for (const w of walked) {
          const id = `walk-${scenario}-${++sequence}`;
          const res = await send(app, tokenFor(w), w.sample, id);
          requests.push({ id, w, status: res.statusCode });
          check(t, w, res);
        }
        t.same(await counts(walk.db), before, 'nothing clinical written, no export job created');

        // One AuditEvent at least per request: outcome 4 (refused) with the route's interaction as subtype; a batch's
        // refusals are recorded per entry, with the entry's interaction.
        const audited = await auditEventsOf(
          walk,
          requests.map((r) => r.id),
        );
        for (const { id, w, status } of requests) {
          const events = audited.get(id) ?? [];
          const label = `${w.sample.method} ${w.route.url}`;
          const refusedEntries = w.sample.batchEntries !== undefined && status === 200;
          const subtype = refusedEntries ? w.sample.batchEntries! : w.route.declaration!.interaction;
          const outcome = status >= 400 || refusedEntries ? '4' : '0';
          const matching = events.filter((e) => e.subtype === subtype && e.outcome === outcome);
          if (refusedEntries) t.equal(matching.length, 3, `${label}: an AuditEvent (outcome 4, ${subtype}) per refused entry`);
          else t.ok(matching.length >= 1, `${label}: AuditEvent with outcome ${outcome} and subtype ${subtype}`, { found: events });
        }
      });
    };

    const unauthorized = (t: Test, w: Walked, res: LightMyRequestResponse, error: RegExp | undefined): void => {
      const label = `${w.sample.method} ${w.route.url}`;
      t.equal(res.statusCode, 401, label);
      const challenge = String(res.headers['www-authenticate'] ?? '');
      t.match(challenge, /^Bearer realm="http:\/\/127\.0\.0\.1:8080"/, `${label}: WWW-Authenticate Bearer with the realm`);
      if (error) t.match(challenge, error, `${label}: the challenge says why`);
      else t.notMatch(challenge, /error=/, `${label}: no error code without credentials (RFC 6750 3.1)`);
      t.ok(isOperationOutcome(res), `${label}: an OperationOutcome`);
    };

    await runScenario(
      'no-token',
      () => undefined,
      (t, w, res) => unauthorized(t, w, res, undefined),
    );
    await runScenario(
      'wrong-audience',
      () => tokens.wrongAudience,
      (t, w, res) => unauthorized(t, w, res, /error="invalid_token", error_description="[^"]*\(aud\)/),
    );
    // exp 10 minutes ago: well beyond the 30 s clock skew the verifier allows.
    await runScenario(
      'expired',
      () => tokens.expired,
      (t, w, res) => unauthorized(t, w, res, /error="invalid_token", error_description="[^"]*expired/),
    );

    await runScenario(
      'too-few-scopes',
      (w) => (w.route.declaration!.type === 'AuditEvent' ? tokens.narrowAudit : tokens.narrowClinical),
      (t, w, res) => {
        const label = `${w.sample.method} ${w.route.url}`;
        if (w.sample.batchEntries !== undefined) {
          t.equal(res.statusCode, 200, `${label}: a batch answers 200 with its entries' statuses`);
          const entries = (res.json() as Bundle).entry ?? [];
          t.same(
            entries.map((e) => e.response?.status?.split(' ')[0]),
            ['403', '403', '403'],
            `${label}: every entry refused`,
          );
          for (const entry of entries)
            t.match(JSON.stringify(entry.response?.outcome), w.sample.missing, `${label}: the entry names the scope`);
          t.same(p2IdsIn(JSON.stringify(entries.map((e) => e.resource ?? null)), s), [], `${label}: no P2 resource`);
          return;
        }
        if (w.sample.refusedForAll !== undefined) {
          t.equal(res.statusCode, w.sample.refusedForAll, `${label}: refused for every token`);
          t.match(diagnosticsOf(res), w.sample.missing, `${label}: the diagnostics say why`);
          return;
        }
        t.equal(res.statusCode, 403, label);
        t.ok(isOperationOutcome(res), `${label}: an OperationOutcome`);
        t.match(diagnosticsOf(res), w.sample.missing, `${label}: the diagnostics name the missing scope`);
      },
    );

    await runScenario(
      'other-patient',
      () => tokens.patientP1,
      (t, w, res) => {
        const label = `${w.sample.method} ${w.route.url}`;
        if (w.sample.batchEntries !== undefined) {
          t.equal(res.statusCode, 200, `${label}: a batch answers 200 with its entries' statuses`);
          const entries = (res.json() as Bundle).entry ?? [];
          t.same(
            entries.map((e) => e.response?.status?.split(' ')[0]),
            ['403', '403', '403'],
            `${label}: every entry naming P2's data refused`,
          );
          t.same(p2IdsIn(JSON.stringify(entries.map((e) => e.resource ?? null)), s), [], `${label}: no P2 resource`);
          return;
        }
        if (w.sample.otherClientStatus !== undefined) {
          // Export status, cancel and files belong to the client that kicked the job off: to any other client the job
          // does not exist (404), whatever its scopes. Not a leak: nothing of the job is shown.
          t.equal(res.statusCode, w.sample.otherClientStatus, `${label}: another client's export job is not found`);
          t.same(p2IdsIn(res.body, s), [], `${label}: no P2 data`);
          return;
        }
        if (w.sample.refusedForAll !== undefined) {
          t.equal(res.statusCode, w.sample.refusedForAll, `${label}: refused for every token`);
          return;
        }
        if (w.sample.patient === 'forbidden') {
          t.equal(res.statusCode, 403, `${label}: refused`, { body: res.body.slice(0, 400) });
          t.ok(isOperationOutcome(res), `${label}: an OperationOutcome`);
          // Why: the token is confined to P1, or grants nothing on the audit trail, or cannot export.
          t.match(
            diagnosticsOf(res),
            new RegExp(`compartment of Patient/${s.p1}|AuditEvent|Bulk export`),
            `${label}: the diagnostics say why`,
          );
          return;
        }
        t.ok(res.statusCode === 403 || (res.statusCode >= 200 && res.statusCode < 300), `${label}: refused or confined`, {
          status: res.statusCode,
          body: res.body.slice(0, 400),
        });
        t.same(p2IdsIn(res.body, s), [], `${label}: nothing of P2's in the answer`);
      },
    );

    // Control: the admin reaches P2's data with every sample (writes last, deletes at the very end), so the
    // refusals above come from the credentials, not from a sample that misses its target.
    await t.test('control: the admin token gets through every sample', async (t) => {
      const rank = (w: Walked) =>
        w.sample.method === 'DELETE'
          ? 2
          : w.sample.method === 'GET' || w.sample.url.includes('_search') || w.sample.url.includes('$everything')
            ? 0
            : 1;
      const ordered = [...walked].sort((a, b) => rank(a) - rank(b));
      for (const w of ordered) {
        const label = `${w.sample.method} ${w.route.url}`;
        const res = await send(app, admin, w.sample);
        t.ok(w.sample.control.includes(res.statusCode), `${label}: admin gets ${w.sample.control.join('/')}`, {
          status: res.statusCode,
          body: res.body.slice(0, 400),
        });
        if (w.sample.controlShowsP2) t.not(p2IdsIn(res.body, s).length, 0, `${label}: the admin's answer holds P2's data`);
      }
    });

    t.ok(Date.now() - started < 60_000, `the walk took ${Date.now() - started} ms (budget 60 s)`);
  },
);
