/**
 * Reading a batch or transaction Bundle (FHIR R4 http.html#transaction) into actions the interactions know.
 *
 * Problems with the Bundle as a whole (not a Bundle, wrong type, too many entries, duplicate fullUrls) throw a
 * FhirError. Problems with one entry (no request, a URL no interaction answers, an unsupported resource type)
 * are kept on that entry: a batch answers them in the entry's response, a transaction fails naming the entry.
 */
import type { Binary, BundleEntry, Parameters, Resource } from '@medplum/fhirtypes';
import { parseJsonText } from '../json-text.js';
import { parseVersionTag } from '../interactions/versions.js';
import { FhirError, errors, issue } from '../outcome.js';
import type { PatchDocument } from '../patch/index.js';
import { parseCriteria } from '../search/conditional.js';
import { AUDIT_EVENT_TYPE } from '../resource-types.js';

export type BundleKind = 'batch' | 'transaction';
export type EntryMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export type EntryAction =
  | { kind: 'create'; type: string; resource: Resource; ifNoneExist?: Array<[string, string]> }
  | { kind: 'update'; type: string; id: string; resource: Resource; ifMatch?: number }
  | { kind: 'conditional-update'; type: string; criteria: Array<[string, string]>; resource: Resource; ifMatch?: number }
  | { kind: 'patch'; type: string; id: string; patch: PatchDocument; ifMatch?: number }
  | { kind: 'delete'; type: string; id: string; ifMatch?: number }
  | { kind: 'conditional-delete'; type: string; criteria: Array<[string, string]>; ifMatch?: number }
  | { kind: 'read'; type: string; id: string; ifNoneMatch?: string; ifModifiedSince?: string }
  | { kind: 'vread'; type: string; id: string; vid: string }
  | { kind: 'search'; type: string; params: Array<[string, string]> }
  | { kind: 'history'; type: string; id?: string; params: Array<[string, string]> };

export interface BundleRequestEntry {
  /** Position in Bundle.entry: responses keep this order, and errors name it. */
  index: number;
  fullUrl?: string;
  /** Undefined when the entry has no usable request.method. */
  method?: EntryMethod;
  /** request.url as given (for the entry's audit record). */
  url?: string;
  /** Set when the entry could be read; otherwise `error` says why not. */
  action?: EntryAction;
  error?: FhirError;
}

export interface BundleRequest {
  kind: BundleKind;
  entries: BundleRequestEntry[];
}

export interface BundleLimits {
  /** More entries than this: 413. */
  maxEntries: number;
  /** More search and history entries than this: 413 (each is a search, with its own cost). */
  maxSearches: number;
}

const METHODS: readonly EntryMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
const JSON_PATCH = 'application/json-patch+json';
const ID = '[A-Za-z0-9\\-.]{1,64}';
const TYPE = '[A-Z][A-Za-z]+';

/** "Bundle.entry[3]": how errors name an entry. */
export function entryPath(index: number): string {
  return `Bundle.entry[${index}]`;
}

function entryError(
  index: number,
  status: number,
  code: 'invalid' | 'not-found' | 'not-supported' | 'required',
  text: string,
  where = '',
): FhirError {
  return new FhirError(status, issue('error', code, `${entryPath(index)}: ${text}`, `${entryPath(index)}${where}`));
}

/** The URL relative to the base: "Patient/1?x", with the base (absolute or "/") removed. */
function relativeUrl(url: string, baseUrl: string): string {
  if (/^https?:\/\//.test(url)) return url.startsWith(`${baseUrl}/`) ? url.slice(baseUrl.length + 1) : url;
  return url.replace(/^\/+/, '');
}

function splitQuery(url: string): { path: string; params: Array<[string, string]> | undefined } {
  const at = url.indexOf('?');
  if (at < 0) return { path: url, params: undefined };
  return { path: url.slice(0, at), params: [...new URLSearchParams(url.slice(at + 1)).entries()] };
}

function patchDocumentOf(index: number, resource: Resource | undefined): PatchDocument {
  if (resource?.resourceType === 'Parameters') return { kind: 'fhirpath-patch', parameters: resource as Parameters };
  if (resource?.resourceType === 'Binary') {
    const binary = resource as Binary;
    if (binary.contentType?.split(';')[0].trim().toLowerCase() !== JSON_PATCH || typeof binary.data !== 'string') {
      throw entryError(
        index,
        400,
        'invalid',
        `a PATCH Binary must have contentType ${JSON_PATCH} and the patch as base64 data`,
        '.resource',
      );
    }
    try {
      const text = Buffer.from(binary.data, 'base64').toString('utf8');
      return { kind: 'json-patch', operations: parseJsonText(text) };
    } catch (error) {
      throw entryError(
        index,
        400,
        'invalid',
        `the Binary's data is not a JSON Patch document (${(error as Error).message})`,
        '.resource.data',
      );
    }
  }
  throw entryError(
    index,
    400,
    'invalid',
    'a PATCH entry needs its patch as resource: a Parameters (FHIRPath Patch) or a Binary holding a JSON Patch',
    '.resource',
  );
}

function versionTag(index: number, value: unknown, element: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string')
    throw entryError(index, 400, 'invalid', `request.${element} must be a string such as W/"3"`, `.request.${element}`);
  try {
    return parseVersionTag(value, `${entryPath(index)}.request.${element}`);
  } catch (error) {
    if (error instanceof FhirError)
      throw entryError(index, 400, 'invalid', `request.${element} ${value} is not a version tag such as W/"3"`);
    throw error;
  }
}

/** The action of one entry, or a FhirError naming the entry. */
function actionOf(index: number, entry: BundleEntry, method: EntryMethod, hosted: readonly string[], baseUrl: string): EntryAction {
  const request = entry.request!;
  const url = relativeUrl(request.url!, baseUrl);
  const { path, params } = splitQuery(url);
  const segments = path.split('/').filter((s) => s !== '');
  const type = segments[0] ?? '';
  if (segments.some((s) => s.startsWith('$'))) {
    throw entryError(index, 400, 'not-supported', `operations (${request.url}) are not supported inside a Bundle`, '.request.url');
  }
  if (!new RegExp(`^${TYPE}$`).test(type)) {
    throw entryError(
      index,
      400,
      'invalid',
      `request.url "${request.url}" is not a relative URL of the form Type, Type/id or Type?criteria`,
      '.request.url',
    );
  }
  if (type === AUDIT_EVENT_TYPE) {
    throw entryError(
      index,
      405,
      'not-supported',
      `${type} is recorded by the server: it is never written through the API, and is read through its own URLs ([base]/${type}?...), not inside a Bundle`,
      '.request.url',
    );
  }
  if (!hosted.includes(type)) {
    throw entryError(
      index,
      404,
      'not-supported',
      `resource type ${type} is not hosted by this server ([base]/metadata lists the hosted types)`,
      '.request.url',
    );
  }
  const id = segments[1];
  if (id !== undefined && id !== '_history' && !new RegExp(`^${ID}$`).test(id)) {
    throw entryError(index, 400, 'invalid', `"${id}" in request.url is not a valid id`, '.request.url');
  }
  const resource = entry.resource as Resource | undefined;
  const needsResource = (): Resource => {
    if (resource === undefined || resource === null || typeof resource !== 'object' || Array.isArray(resource)) {
      throw entryError(index, 400, 'required', `${method} ${request.url} needs a resource`, '.resource');
    }
    return resource;
  };
  const ifMatch = versionTag(index, request.ifMatch, 'ifMatch');
  const unsupported = (): FhirError =>
    entryError(
      index,
      400,
      'not-supported',
      `${method} ${request.url} is not an interaction this server supports in a Bundle`,
      '.request.url',
    );

  switch (method) {
    case 'POST': {
      if (segments.length !== 1 || params !== undefined) throw unsupported();
      const ifNoneExist =
        typeof request.ifNoneExist === 'string' && request.ifNoneExist.trim() !== ''
          ? parseCriteria(request.ifNoneExist.trim())
          : undefined;
      return { kind: 'create', type, resource: needsResource(), ...(ifNoneExist ? { ifNoneExist } : {}) };
    }
    case 'PUT':
      if (segments.length === 2 && id !== '_history' && params === undefined)
        return { kind: 'update', type, id, resource: needsResource(), ifMatch };
      if (segments.length === 1 && params !== undefined && params.length > 0) {
        return { kind: 'conditional-update', type, criteria: params, resource: needsResource(), ifMatch };
      }
      throw unsupported();
    case 'PATCH':
      if (segments.length === 2 && id !== '_history' && params === undefined)
        return { kind: 'patch', type, id, patch: patchDocumentOf(index, resource), ifMatch };
      throw unsupported();
    case 'DELETE':
      if (segments.length === 2 && id !== '_history' && params === undefined) return { kind: 'delete', type, id, ifMatch };
      if (segments.length === 1 && params !== undefined && params.length > 0)
        return { kind: 'conditional-delete', type, criteria: params, ifMatch };
      throw unsupported();
    case 'GET':
    case 'HEAD': {
      if (segments.length === 1) return { kind: 'search', type, params: params ?? [] };
      if (segments.length === 2 && id === '_history') return { kind: 'history', type, params: params ?? [] };
      if (segments.length === 2) {
        const read: EntryAction = { kind: 'read', type, id };
        if (typeof request.ifNoneMatch === 'string') read.ifNoneMatch = request.ifNoneMatch;
        if (typeof request.ifModifiedSince === 'string') read.ifModifiedSince = request.ifModifiedSince;
        return read;
      }
      if (segments.length === 3 && segments[2] === '_history') return { kind: 'history', type, id, params: params ?? [] };
      if (segments.length === 4 && segments[2] === '_history') return { kind: 'vread', type, id, vid: segments[3] };
      throw unsupported();
    }
  }
}

function readEntry(index: number, raw: unknown, hosted: readonly string[], baseUrl: string): BundleRequestEntry {
  const result: BundleRequestEntry = { index };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    result.error = entryError(index, 400, 'invalid', 'an entry must be a JSON object');
    return result;
  }
  const entry = raw as BundleEntry;
  if (typeof entry.fullUrl === 'string') result.fullUrl = entry.fullUrl;
  const request = entry.request;
  const method = typeof request?.method === 'string' ? request.method.toUpperCase() : undefined;
  if (METHODS.includes(method as EntryMethod)) result.method = method as EntryMethod;
  if (typeof request?.url === 'string') result.url = request.url.slice(0, 1000);
  try {
    if (!request || typeof request !== 'object')
      throw entryError(index, 400, 'required', 'the entry has no request (method and url)', '.request');
    if (!result.method) {
      throw entryError(
        index,
        400,
        method === undefined ? 'required' : 'invalid',
        `request.method must be one of ${METHODS.join(', ')}`,
        '.request.method',
      );
    }
    if (typeof request.url !== 'string' || request.url.trim() === '')
      throw entryError(index, 400, 'required', 'the entry has no request.url', '.request.url');
    result.action = actionOf(index, entry, result.method, hosted, baseUrl);
  } catch (error) {
    if (!(error instanceof FhirError)) throw error;
    result.error = error;
  }
  return result;
}

/** Reads a POST [base] body; throws 400 (or 413) for a body that is no batch or transaction Bundle at all. */
export function parseBundleRequest(body: unknown, limits: BundleLimits, hosted: readonly string[], baseUrl: string): BundleRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw errors.badRequest('POST [base] takes a Bundle of type batch or transaction (a JSON object)');
  }
  const bundle = body as { resourceType?: unknown; type?: unknown; entry?: unknown };
  if (bundle.resourceType !== 'Bundle') {
    throw errors.badRequest(
      `POST [base] takes a Bundle; this body's resourceType is ${JSON.stringify(bundle.resourceType ?? null)}`,
      'resourceType',
    );
  }
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    throw errors.badRequest(
      `Bundle.type must be batch or transaction to be processed; it is ${JSON.stringify(bundle.type ?? null)}`,
      'Bundle.type',
    );
  }
  if (bundle.entry !== undefined && !Array.isArray(bundle.entry)) throw errors.badRequest('Bundle.entry must be an array', 'Bundle.entry');
  const raw = (bundle.entry as unknown[] | undefined) ?? [];
  if (raw.length > limits.maxEntries) {
    throw errors.payloadTooLarge(`The Bundle has ${raw.length} entries; at most ${limits.maxEntries} are accepted (BUNDLE_MAX_ENTRIES)`);
  }
  const entries = raw.map((entry, index) => readEntry(index, entry, hosted, baseUrl));
  const searches = entries.filter((entry) => entry.action?.kind === 'search' || entry.action?.kind === 'history').length;
  if (searches > limits.maxSearches) {
    throw errors.payloadTooLarge(
      `The Bundle has ${searches} search and history entries; at most ${limits.maxSearches} are accepted in one Bundle (BUNDLE_MAX_SEARCHES)`,
    );
  }
  const seen = new Map<string, number>();
  for (const entry of entries) {
    if (entry.fullUrl === undefined) continue;
    const first = seen.get(entry.fullUrl);
    if (first !== undefined) {
      throw new FhirError(
        400,
        issue(
          'error',
          'invalid',
          `${entryPath(entry.index)}: fullUrl ${entry.fullUrl} is also the fullUrl of ${entryPath(first)}; fullUrls must be unique`,
          `${entryPath(entry.index)}.fullUrl`,
        ),
      );
    }
    seen.set(entry.fullUrl, entry.index);
  }
  return { kind: bundle.type, entries };
}
