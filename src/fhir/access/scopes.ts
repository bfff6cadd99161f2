/**
 * SMART on FHIR scopes (App Launch 2.x, with the 1.0 forms accepted), parsed into what they grant.
 *
 *   <context>/<resource type or *>.<permissions>[?<search parameters>]
 *
 * context: patient | user | system. Permissions: SMART 2 letters in the order c r u d s (create, read, update,
 * delete, search; any non-empty subset, e.g. "rs", "cruds"), or SMART 1 words: read (= rs), write (= cud), * (=
 * cruds). A SMART 2 scope may narrow itself with search parameters, e.g. patient/Observation.rs?category=laboratory.
 */
export type ScopeContext = 'patient' | 'user' | 'system';
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface ResourceScope {
  /** The scope exactly as granted. */
  text: string;
  context: ScopeContext;
  /** A resource type, or '*' for every type. */
  resourceType: string;
  permissions: ReadonlySet<Permission>;
  /** SMART 2 finer-grained restriction: search parameters (name, value), decoded; empty when none. */
  query: Array<[string, string]>;
}

export interface ParsedScopes {
  /** Resource scopes, in the order granted. */
  resources: ResourceScope[];
  /** Recognised scopes that grant no resource access themselves: openid, fhirUser, launch, launch/patient, offline_access… */
  other: string[];
  /**
   * Scopes that grant nothing because they are malformed: patient/, user/ or system/ scopes that do not parse, and
   * any item that is not a string, holds control characters or is longer than MAX_SCOPE_LENGTH. `text` is cut short
   * for over-long items.
   */
  invalid: Array<{ text: string; reason: string }>;
}

/** Longest scope accepted; longer ones are invalid (SMART warns about token size; 1 KB is already generous). */
export const MAX_SCOPE_LENGTH = 1024;

const CONTEXT_PREFIX = /^(patient|user|system)\//;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
/** SMART 2: a non-empty subset of c r u d s, in that order. */
const SMART2_PERMISSIONS = /^c?r?u?d?s?$/;
/** SMART 1 permission words and their SMART 2 meaning. */
const SMART1_PERMISSIONS: ReadonlyMap<string, readonly Permission[]> = new Map([
  ['read', ['r', 's']],
  ['write', ['c', 'u', 'd']],
  ['*', ['c', 'r', 'u', 'd', 's']],
]);
/** C0 controls, DEL and C1 controls: never part of a scope. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Parses granted scopes (a space-separated string, as in a token's `scope` claim or a token response, or an array,
 * as in an `scp` claim) into resource scopes, other recognised scopes, and malformed resource scopes.
 *
 * Never throws: the input typically comes from a token's claims and may hold anything. A value that is neither a
 * string nor an array, and array items that are not strings, become `invalid` items. Empty items (and null or
 * undefined) are ignored; every string (and every array item) is split on spaces; an exact duplicate is kept once.
 *
 * Classification of one item:
 * - control characters or longer than MAX_SCOPE_LENGTH: invalid (whatever it looks like);
 * - starts with `patient/`, `user/` or `system/`: a resource scope, or invalid with the reason it does not parse;
 * - anything else (openid, fhirUser, launch/patient, an identity provider's own scopes such as `email` or
 *   `api://foo/.default`): other. Such scopes grant nothing here, so accepting them costs nothing.
 */
export function parseScopes(scope: string | readonly unknown[] | null | undefined): ParsedScopes {
  const result: ParsedScopes = { resources: [], other: [], invalid: [] };
  const seen = new Set<string>();
  const items: unknown[] = typeof scope === 'string' ? [scope] : Array.isArray(scope) ? [...(scope as readonly unknown[])] : [scope];
  for (const item of items) {
    if (item === undefined || item === null) continue;
    if (typeof item !== 'string') {
      result.invalid.push({ text: describeNonString(item), reason: 'not a string' });
      continue;
    }
    for (const text of item.split(' ')) {
      if (text === '' || seen.has(text)) continue;
      seen.add(text);
      classify(text, result);
    }
  }
  return result;
}

function classify(text: string, out: ParsedScopes): void {
  if (text.length > MAX_SCOPE_LENGTH) {
    out.invalid.push({ text: `${text.slice(0, 64)}…`, reason: `longer than ${MAX_SCOPE_LENGTH} characters` });
    return;
  }
  if (CONTROL.test(text)) {
    out.invalid.push({ text, reason: 'contains control characters' });
    return;
  }
  const prefix = CONTEXT_PREFIX.exec(text);
  if (!prefix) {
    // openid, fhirUser, profile, launch, launch/patient, launch/encounter, offline_access, online_access, and any
    // identity provider's own scopes alike: none of them grants resource access here.
    out.other.push(text);
    return;
  }
  const parsed = parseResourceScope(text, prefix[1] as ScopeContext, text.slice(prefix[0].length));
  if (typeof parsed === 'string') out.invalid.push({ text, reason: parsed });
  else out.resources.push(parsed);
}

/** The scope after its context prefix: `<type>.<permissions>[?query]`. A string result is the reason it is malformed. */
function parseResourceScope(text: string, context: ScopeContext, rest: string): ResourceScope | string {
  const questionMark = rest.indexOf('?');
  const head = questionMark === -1 ? rest : rest.slice(0, questionMark);
  const rawQuery = questionMark === -1 ? undefined : rest.slice(questionMark + 1);
  const dot = head.indexOf('.');
  if (dot === -1) return 'no permissions: expected <type>.<permissions>, e.g. patient/Observation.rs';
  const resourceType = head.slice(0, dot);
  const permissionText = head.slice(dot + 1);
  if (resourceType !== '*' && !RESOURCE_TYPE.test(resourceType)) {
    return resourceType === '' ? 'no resource type' : 'the resource type is not a FHIR type name or *';
  }
  let permissions: readonly Permission[];
  const smart1 = SMART1_PERMISSIONS.get(permissionText);
  if (smart1 !== undefined) {
    if (rawQuery !== undefined) return 'search parameters are only allowed with SMART 2 permissions (c r u d s)';
    permissions = smart1;
  } else if (permissionText !== '' && SMART2_PERMISSIONS.test(permissionText)) {
    permissions = [...permissionText] as Permission[];
  } else {
    return permissionText === ''
      ? 'no permissions after the dot'
      : 'permissions must be read, write, * or a subset of c r u d s in that order';
  }
  let query: Array<[string, string]> = [];
  if (rawQuery !== undefined) {
    const parsedQuery = parseQuery(rawQuery);
    if (typeof parsedQuery === 'string') return parsedQuery;
    query = parsedQuery;
  }
  return { text, context, resourceType, permissions: new Set(permissions), query };
}

/** application/x-www-form-urlencoded, strictly: every pair needs a name and a value; bad %-escapes are refused. */
function parseQuery(raw: string): Array<[string, string]> | string {
  if (raw === '') return 'empty search parameters after ?';
  const pairs: Array<[string, string]> = [];
  for (const part of raw.split('&')) {
    const equals = part.indexOf('=');
    const rawName = equals === -1 ? part : part.slice(0, equals);
    const rawValue = equals === -1 ? '' : part.slice(equals + 1);
    const name = formDecode(rawName);
    const value = formDecode(rawValue);
    if (name === undefined || value === undefined) return 'bad percent-encoding in the search parameters';
    if (name === '') return 'a search parameter has no name';
    // An empty value would not narrow anything: refusing it keeps a restriction from silently becoming none.
    if (value === '') return 'a search parameter has no value';
    if (CONTROL.test(name) || CONTROL.test(value)) return 'control characters in the search parameters';
    pairs.push([name, value]);
  }
  return pairs;
}

function formDecode(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

function describeNonString(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'object':
      return Array.isArray(value) ? '[array]' : '[object]';
    default:
      return `[${typeof value}]`;
  }
}

/** Resource types that a '*' scope does not cover: they must be named (the audit trail). */
export const NAMED_SCOPE_ONLY_TYPES: ReadonlySet<string> = new Set(['AuditEvent']);

/**
 * Whether `requested` asks for no more than `granted` allows: same context, the same type (or a '*' that covers it),
 * a subset of its permissions, and no broader restriction (a granted scope with search parameters covers only the
 * same parameters). An authorization server uses it to let a client ask for less than it was registered for.
 */
export function scopeCovers(granted: ResourceScope, requested: ResourceScope): boolean {
  if (granted.context !== requested.context) return false;
  if (granted.resourceType !== requested.resourceType) {
    if (granted.resourceType !== '*' || requested.resourceType === '*' || NAMED_SCOPE_ONLY_TYPES.has(requested.resourceType)) return false;
  }
  for (const permission of requested.permissions) if (!granted.permissions.has(permission)) return false;
  if (granted.query.length === 0) return true;
  const key = (query: Array<[string, string]>) =>
    query
      .map(([name, value]) => `${name}=${value}`)
      .sort()
      .join('&');
  return key(granted.query) === key(requested.query);
}
