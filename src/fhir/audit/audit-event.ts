/**
 * The AuditEvent recorded for one access to the FHIR API, shaped after IHE Basic Audit Log Patterns (BALP,
 * https://profiles.ihe.net/ITI/BALP/): its RESTful patterns (Create, Read, Update, Delete, Query and their Patient
 * variants) for the event itself, and its OAuth access-token patterns (OAUTHaccessTokenUse.Minimal and
 * .Comprehensive) for who did it.
 *
 * Pure and cheap: plain object construction from an AccessRecord, no FHIRPath, no JSON round trips. It runs on every
 * request, and one search can touch up to 1000 resources, so each entity carries only what.reference, type and role.
 *
 * The shape (see buildAuditEvent for the details):
 * - type: audit-event-type#rest; subtype: the restful-interaction code; action C/R/U/D/E; outcome from the status;
 *   outcomeDesc "HTTP <status>[: <why it failed>]".
 * - agent client: who.identifier.value = the OAuth client_id (a display saying why there is none otherwise),
 *   network = its IP address. Its type carries DCM 110150 "Application" (always, so the client is found by one code
 *   in every event) and, as BALP fixes per pattern, DCM 110153 "Source Role ID" (create, update, delete, search,
 *   operations, Bundles: the request flows to the server) or DCM 110152 "Destination Role ID" (read, vread, history,
 *   capabilities: the data flows to the client). requestor is true only when there is no user agent.
 * - agent server: this FHIR server (who.identifier = its base URL, network = its base URL as a URI), typed as the
 *   client's counterpart (110152 / 110153), plus provenance-participant-type#custodian for a delete (BALP Delete).
 * - agent user (when a token was presented): type BALP UserAgentTypes#UserOauthAgent plus v3-ParticipationType IRCP
 *   (information recipient; actions R and E) or AUT (author; C, U, D); who.identifier = { system: iss,
 *   value: sub }, who.reference = the SMART fhirUser when it is a relative reference (altId when it is an absolute
 *   URL), policy = "urn:ietf:params:oauth:jti:" + jti, requestor true.
 * - source: this server (type security-source-type#4 "Application Server").
 * - entities: the X-Request-Id (BALP BasicAuditEntityType#XrequestId, what.identifier.value), the query for searches
 *   (object-role#24, query = base64), the operation for $operations, one entity per patient (audit-entity-type#1
 *   Person, object-role#1 Patient), one per touched resource (audit-entity-type#2 System Object, object-role#4
 *   Domain Resource).
 * - meta.profile: the BALP profiles the event provably conforms to (balpProfiles); none when it conforms to none.
 * - text: a one-line narrative.
 */
import type {
  AuditEvent,
  AuditEventAgent,
  AuditEventEntity,
  AuditEventSource,
  CodeableConcept,
  Coding,
  Narrative,
} from '@medplum/fhirtypes';
import type { Principal } from '../access/principal.js';

export type AuditedInteraction =
  | 'read'
  | 'vread'
  | 'update'
  | 'patch'
  | 'delete'
  | 'history-instance'
  | 'history-type'
  | 'history-system'
  | 'create'
  | 'search-type'
  | 'search-system'
  | 'capabilities'
  | 'transaction'
  | 'batch'
  | 'operation';

export interface AuditEntityRef {
  /** "Type/id" or "Type/id/_history/vid" (relative to the FHIR base). */
  reference: string;
  /** Optional per-entity detail, e.g. the Bundle entry index or the HTTP status of that entry ("entry 3: 201"). */
  detail?: string;
}

export interface AccessRecord {
  interaction: AuditedInteraction;
  /** For 'operation': its name without $, e.g. 'everything', 'export', 'verify', 'proof', 'validate'. */
  operation?: string;
  recorded: Date;
  /** HTTP status of the answer (of the entry, for Bundle entries). */
  status: number;
  /** Why it failed, in words (the OperationOutcome's first diagnostics), when status >= 400. */
  failure?: string;
  /** The caller; undefined when no valid token was presented (401) or authorization is off. */
  principal?: Principal;
  /** True when the server runs with AUTH_MODE=off (say so in the event: nobody was authenticated). */
  authorizationOff?: boolean;
  /** Network address of the client (request.ip). */
  clientAddress?: string;
  /** The request id (X-Request-Id), always present. */
  requestId: string;
  /** HTTP method and path (no query string) of the request, e.g. "GET /Patient/123". */
  request: string;
  /** Searches (and other query-driven interactions): the query as received (without the leading ?), and the types searched. */
  query?: { text: string; types: string[] };
  /** The resources this access touched (read, returned, written), in order, without duplicates. */
  entities: AuditEntityRef[];
  /** The patients whose data this access touched: "Patient/123". */
  patients: string[];
  /** The FHIR server: its base URL and software name and version (for the observer and the server agent). */
  server: { baseUrl: string; name: string; version: string };
}

export type AuditAction = NonNullable<AuditEvent['action']>;
export type AuditOutcome = NonNullable<AuditEvent['outcome']>;

/**
 * AuditEvent.action per interaction, as BALP fixes it: create C; update and patch U; delete D; read, vread (BALP Read)
 * and, by the same reasoning, history and capabilities R; searches E (BALP Query: a query is executed); transaction,
 * batch and operations E (they execute a request that may do anything).
 */
export const ACTION_OF: Readonly<Record<AuditedInteraction, AuditAction>> = {
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
};

/** Canonical URLs of the BALP profiles an event may claim (BALP 1.1.x, written for FHIR R4). */
export const BALP_PROFILE = {
  Create: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Create',
  PatientCreate: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate',
  Read: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Read',
  PatientRead: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead',
  Update: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Update',
  PatientUpdate: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientUpdate',
  Delete: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Delete',
  PatientDelete: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientDelete',
  OAuthMinimal: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.OAUTHaccessTokenUse.Minimal',
  OAuthComprehensive: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.OAUTHaccessTokenUse.Comprehensive',
} as const;

/** Who an agent is (a Reference to a Device, Practitioner, Patient... or just an identifier or a display). */
type AgentWho = NonNullable<AuditEventAgent['who']>;

/** Code systems and codes used in the events. */
export const AUDIT_SYSTEM = {
  eventType: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  restfulInteraction: 'http://hl7.org/fhir/restful-interaction',
  dicom: 'http://dicom.nema.org/resources/ontology/DCM',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  provenanceParticipantType: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
  sourceType: 'http://terminology.hl7.org/CodeSystem/security-source-type',
  entityType: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  objectRole: 'http://terminology.hl7.org/CodeSystem/object-role',
  resourceTypes: 'http://hl7.org/fhir/resource-types',
  balpEntityType: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType',
  balpUserAgentType: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes',
  uri: 'urn:ietf:rfc:3986',
} as const;

/** BALP's required prefix for a JWT ID recorded in agent.policy (RFC 3553 URN namespace). */
export const JTI_URN_PREFIX = 'urn:ietf:params:oauth:jti:';

/** AuditEventEntityDetail.type of the per-entity detail (AuditEntityRef.detail). */
export const ENTITY_DETAIL_TYPE = 'detail';

/** Longest failure text kept in outcomeDesc (diagnostics of a rejected Bundle can be long). */
const MAX_FAILURE_LENGTH = 1024;

/**
 * AuditEvent.outcome for an HTTP status. R4 defines 0 success, 4 minor failure ("often equivalent to an HTTP 400
 * response"), 8 serious failure ("some kind of unexpected error, often equivalent to an HTTP 500") and 12 major
 * failure (the system is no longer available). So: < 400 (2xx, and 3xx such as 304 Not Modified, an answered
 * request) is 0; 4xx, the client's request refused (401, 403, 404, 412, 422...), is 4; 5xx, the server failed, is 8.
 * 12 is never derived from a status: a server that produced one was still available. A value outside 100..599 cannot
 * come from a real answer and is counted as a serious failure (8).
 */
export function auditOutcome(status: number): AuditOutcome {
  if (status >= 100 && status < 400) {
    return '0';
  }
  if (status >= 400 && status < 500) {
    return '4';
  }
  return '8';
}

/**
 * The BALP profiles this record's event conforms to, checked against the profiles' rules (the server does not hold
 * BALP's StructureDefinitions, so a claim is not validated when the event is stored: only claim what is certain).
 *
 * - Create/Read/Update/Delete (and their Patient variants): only successful events (BALP fixes outcome to 0) of
 *   create, read/vread, update/patch and delete, with the client's network address known (client.network 1..1),
 *   exactly one touched resource (the one "data" entity), and at most one patient (the Patient variant then; BALP
 *   allows one patient entity per event). Never the Query profiles: BALP's Query events do not list the results,
 *   while ours list every returned resource as a System Object entity, which BALP's query slice (matched on
 *   entity.type alone) would not accept.
 * - OAUTHaccessTokenUse.Minimal: a token with a jti (user agent typed UserOauthAgent with the jti in policy).
 * - OAUTHaccessTokenUse.Comprehensive: additionally a client_id (client agent DCM 110150 with who.identifier.value).
 */
export function balpProfiles(record: AccessRecord): string[] {
  const profiles: string[] = [];
  if (
    record.status >= 200 &&
    record.status < 400 &&
    record.clientAddress &&
    !record.query &&
    record.entities.length === 1 &&
    record.patients.length <= 1
  ) {
    const withPatient = record.patients.length === 1;
    switch (record.interaction) {
      case 'create':
        profiles.push(withPatient ? BALP_PROFILE.PatientCreate : BALP_PROFILE.Create);
        break;
      case 'read':
      case 'vread':
        profiles.push(withPatient ? BALP_PROFILE.PatientRead : BALP_PROFILE.Read);
        break;
      case 'update':
      case 'patch':
        profiles.push(withPatient ? BALP_PROFILE.PatientUpdate : BALP_PROFILE.Update);
        break;
      case 'delete':
        profiles.push(withPatient ? BALP_PROFILE.PatientDelete : BALP_PROFILE.Delete);
        break;
      default:
        break;
    }
  }
  const principal = record.principal;
  if (principal?.tokenId) {
    profiles.push(BALP_PROFILE.OAuthMinimal);
    if (principal.clientId) {
      profiles.push(BALP_PROFILE.OAuthComprehensive);
    }
  }
  return profiles;
}

/**
 * The R4 AuditEvent for one access. `id` is the server-assigned id of the AuditEvent. meta holds only the claimed BALP
 * profiles (balpProfiles), when there are any; versionId and lastUpdated are the store's, which must keep meta.profile.
 */
export function buildAuditEvent(record: AccessRecord, id: string): AuditEvent {
  const action = ACTION_OF[record.interaction];
  const server = serverParty(record.server);
  const pattern = agentPattern(action);
  const user = record.principal ? userAgent(record.principal, action, record.server.baseUrl) : undefined;

  const agent: AuditEventAgent[] = [clientAgent(record, pattern, user === undefined)];
  agent.push({
    type: { coding: pattern.server.map((c) => ({ ...c })) },
    who: server.who,
    requestor: false,
    network: { address: record.server.baseUrl, type: '5' },
  });
  if (user) {
    agent.push(user);
  }

  const source: AuditEventSource = {
    observer: { ...server.who, identifier: { ...server.who.identifier } },
    type: [{ system: AUDIT_SYSTEM.sourceType, code: '4', display: 'Application Server' }],
  };
  if (server.site) {
    source.site = server.site;
  }

  const profiles = balpProfiles(record);
  return {
    resourceType: 'AuditEvent',
    id,
    ...(profiles.length > 0 ? { meta: { profile: profiles } } : {}),
    text: narrative(record),
    type: { system: AUDIT_SYSTEM.eventType, code: 'rest', display: 'Restful Operation' },
    subtype: [{ system: AUDIT_SYSTEM.restfulInteraction, code: record.interaction, display: record.interaction }],
    action,
    recorded: record.recorded.toISOString(),
    outcome: auditOutcome(record.status),
    outcomeDesc: outcomeDescription(record),
    agent,
    source,
    entity: entities(record),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// agents

interface AgentPattern {
  /** The client's role coding (it also always carries DCM 110150 Application). */
  client: Coding;
  /** The server's codings. */
  server: Coding[];
}

const SOURCE_ROLE: Coding = { system: AUDIT_SYSTEM.dicom, code: '110153', display: 'Source Role ID' };
const DESTINATION_ROLE: Coding = { system: AUDIT_SYSTEM.dicom, code: '110152', display: 'Destination Role ID' };
const APPLICATION: Coding = { system: AUDIT_SYSTEM.dicom, code: '110150', display: 'Application' };
const CUSTODIAN: Coding = { system: AUDIT_SYSTEM.provenanceParticipantType, code: 'custodian', display: 'Custodian' };
const USER_OAUTH_AGENT: Coding = {
  system: AUDIT_SYSTEM.balpUserAgentType,
  code: 'UserOauthAgent',
  display: 'User OAuth Agent participant',
};
const INFORMATION_RECIPIENT: Coding = { system: AUDIT_SYSTEM.participationType, code: 'IRCP', display: 'information recipient' };
const AUTHOR: Coding = { system: AUDIT_SYSTEM.participationType, code: 'AUT', display: 'author (originator)' };

/**
 * BALP's agent types per pattern: Create, Update and Query have the client as Source Role ID and the server as
 * Destination Role ID (the request flows to the server); Read has them the other way round (the data flows to the
 * client); Delete has the client as Application and the server as Custodian. The client always also carries
 * Application (BALP's OAuth client type), so every event finds its client by one code. The Custodian server of a
 * delete also carries Destination Role ID, as for the other writes: custodian is not in R4's (extensible)
 * participation-role-type value set, and with one coding from it the binding is met.
 */
function agentPattern(action: AuditAction): AgentPattern {
  switch (action) {
    case 'R':
      return { client: DESTINATION_ROLE, server: [SOURCE_ROLE] };
    case 'D':
      return { client: SOURCE_ROLE, server: [CUSTODIAN, DESTINATION_ROLE] };
    default:
      return { client: SOURCE_ROLE, server: [DESTINATION_ROLE] };
  }
}

function clientAgent(record: AccessRecord, pattern: AgentPattern, requestor: boolean): AuditEventAgent {
  const coding: Coding[] = [{ ...pattern.client }, { ...APPLICATION }];
  const clientId = record.principal?.clientId;
  let who: AgentWho;
  if (clientId) {
    who = { identifier: { value: clean(clientId) } };
  } else if (record.principal) {
    who = { display: 'OAuth client (the token names no client_id)' };
  } else if (record.authorizationOff) {
    who = { display: 'unauthenticated client: authorization is off (AUTH_MODE=off), nobody was authenticated' };
  } else {
    who = { display: 'unauthenticated client: no valid access token was presented' };
  }
  const agent: AuditEventAgent = { type: { coding }, who, requestor };
  if (record.clientAddress) {
    agent.network = { address: clean(record.clientAddress), type: '2' };
  }
  return agent;
}

/**
 * The user (or, for client_credentials tokens, the client acting for itself) the token speaks for. BALP's OAuth
 * mapping: iss -> who.identifier.system, sub -> who.identifier.value, jti -> policy (urn:ietf:params:oauth:jti:),
 * client_id -> the client agent. SMART's fhirUser -> who.reference when it is a relative reference (or an absolute
 * one into this server, made relative), otherwise altId (an identity of the user from the authentication system).
 */
function userAgent(principal: Principal, action: AuditAction, baseUrl: string): AuditEventAgent {
  const role = action === 'C' || action === 'U' || action === 'D' ? AUTHOR : INFORMATION_RECIPIENT;
  const type: CodeableConcept = { coding: [{ ...USER_OAUTH_AGENT }, { ...role }] };
  const who: AgentWho = {};
  let altId: string | undefined;
  const fhirUser = principal.fhirUser ? relativeReference(principal.fhirUser, baseUrl) : undefined;
  if (fhirUser !== undefined) {
    who.reference = fhirUser;
  } else if (principal.fhirUser) {
    altId = clean(principal.fhirUser);
  }
  const subject = principal.subject || principal.clientId;
  if (principal.issuer || subject) {
    who.identifier = {};
    if (principal.issuer) {
      who.identifier.system = asUri(principal.issuer);
    }
    if (subject) {
      who.identifier.value = clean(subject);
    }
  } else {
    who.display = 'the token names neither issuer nor subject';
  }
  const agent: AuditEventAgent = { type, who, requestor: true };
  if (altId) {
    agent.altId = altId;
  }
  if (principal.tokenId) {
    agent.policy = [JTI_URN_PREFIX + asUri(principal.tokenId)];
  }
  return agent;
}

const RELATIVE_REFERENCE = /^[A-Z][A-Za-z]{1,63}\/[A-Za-z0-9\-.]{1,64}$/;

/** "Type/id" as is; "<this server's base>/Type/id" made relative; anything else undefined. */
function relativeReference(value: string, baseUrl: string): string | undefined {
  if (RELATIVE_REFERENCE.test(value)) {
    return value;
  }
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  if (value.startsWith(base)) {
    const rest = value.slice(base.length);
    if (RELATIVE_REFERENCE.test(rest)) {
      return rest;
    }
  }
  return undefined;
}

/** A uri (R4: no whitespace) from a token claim: whitespace, which no sensible issuer or jti contains, is escaped. */
function asUri(value: string): string {
  const text = clean(value);
  return /\s/.test(text) ? text.replace(/\s/g, (c) => encodeURIComponent(c)) : text;
}

interface ServerParty {
  who: AgentWho;
  site: string | undefined;
}

/** The server as agent and observer: identified by its base URL, named by its software and version. */
function serverParty(server: AccessRecord['server']): ServerParty {
  let site: string | undefined;
  try {
    site = new URL(server.baseUrl).host || undefined;
  } catch {
    site = undefined;
  }
  return {
    who: { identifier: { system: AUDIT_SYSTEM.uri, value: server.baseUrl }, display: clean(`${server.name} ${server.version}`) },
    site,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// outcome and entities

/**
 * A one-line human summary ("search-type GET /Encounter: HTTP 200"): R4 asks every resource for a narrative (dom-6),
 * and an auditor browsing events gets the gist without decoding them. No patient data beyond what the request line
 * names.
 */
function narrative(record: AccessRecord): Narrative {
  const what = record.interaction === 'operation' && record.operation ? `operation $${record.operation}` : record.interaction;
  return {
    status: 'generated',
    div: `<div xmlns="http://www.w3.org/1999/xhtml">${escapeXml(clean(`${what} ${record.request}: HTTP ${record.status}`))}</div>`,
  };
}

function escapeXml(text: string): string {
  return /[<>&]/.test(text) ? text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;') : text;
}

function outcomeDescription(record: AccessRecord): string {
  if (record.status >= 400 && record.failure) {
    const failure = record.failure.length > MAX_FAILURE_LENGTH ? `${record.failure.slice(0, MAX_FAILURE_LENGTH)}…` : record.failure;
    return `HTTP ${record.status}: ${clean(failure)}`;
  }
  return `HTTP ${record.status}`;
}

/**
 * In this order: the X-Request-Id (described by the request line), the query, the operation, the patients, the
 * touched resources. A patient that was itself read or written appears twice, as BALP's Patient* patterns do: as
 * the patient (Person / Patient) and as the resource (System Object / Domain Resource).
 */
function entities(record: AccessRecord): AuditEventEntity[] {
  const out: AuditEventEntity[] = [];
  if (record.requestId) {
    const transaction: AuditEventEntity = {
      what: { identifier: { value: clean(record.requestId) } },
      type: { system: AUDIT_SYSTEM.balpEntityType, code: 'XrequestId' },
    };
    if (record.request) {
      transaction.description = clean(record.request);
    }
    out.push(transaction);
  }
  if (record.query) {
    const text = record.query.text;
    const query: AuditEventEntity = {
      type: { system: AUDIT_SYSTEM.entityType, code: '2' },
      role: { system: AUDIT_SYSTEM.objectRole, code: '24' },
      // BALP: the raw request, base64-encoded so that whatever was sent (even malformed or hostile) is kept exactly.
      query: Buffer.from(text ? `${record.request}?${text}` : record.request || '?', 'utf8').toString('base64'),
    };
    if (record.query.types.length > 0) {
      query.description = clean(record.query.types.join(','));
    }
    out.push(query);
  }
  if (record.interaction === 'operation' && record.operation) {
    out.push({ type: { system: AUDIT_SYSTEM.resourceTypes, code: 'OperationDefinition' }, name: clean(`$${record.operation}`) });
  }
  for (const patient of record.patients) {
    out.push({
      what: { reference: patient },
      type: { system: AUDIT_SYSTEM.entityType, code: '1' },
      role: { system: AUDIT_SYSTEM.objectRole, code: '1' },
    });
  }
  for (const touched of record.entities) {
    const entity: AuditEventEntity = {
      what: { reference: touched.reference },
      type: { system: AUDIT_SYSTEM.entityType, code: '2' },
      role: { system: AUDIT_SYSTEM.objectRole, code: '4' },
    };
    if (touched.detail) {
      entity.detail = [{ type: ENTITY_DETAIL_TYPE, valueString: clean(touched.detail) }];
    }
    out.push(entity);
  }
  return out;
}

const UNSAFE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]/;
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Text from outside (a failure's diagnostics echoing the request, a batch entry's url, token claims) made a valid
 * FHIR string and XHTML text: control characters (other than tab, CR, LF), U+FFFE/U+FFFF and lone surrogates become
 * U+FFFD. An AuditEvent must never be refused for what the request it records contained.
 */
function clean(text: string): string {
  return UNSAFE.test(text) ? text.replace(CONTROL, '\uFFFD').replace(LONE_SURROGATE, '\uFFFD') : text;
}
