/** Helpers shared by the search tests: create through the API, run a search, read ids from a searchset. */
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';

export const BASE = 'http://127.0.0.1:8080';
export const JSON_HEADERS = { 'content-type': 'application/fhir+json' };

export async function create<T extends Resource>(app: FastifyInstance, resource: T): Promise<T & { id: string }> {
  const res = await app.inject({ method: 'POST', url: `/${resource.resourceType}`, headers: JSON_HEADERS, payload: resource });
  if (res.statusCode !== 201) throw new Error(`create ${resource.resourceType}: ${res.statusCode} ${res.body}`);
  return res.json() as T & { id: string };
}

export async function update<T extends Resource>(app: FastifyInstance, resource: T): Promise<T & { id: string }> {
  const res = await app.inject({
    method: 'PUT',
    url: `/${resource.resourceType}/${resource.id}`,
    headers: JSON_HEADERS,
    payload: resource,
  });
  if (res.statusCode !== 200 && res.statusCode !== 201) throw new Error(`update: ${res.statusCode} ${res.body}`);
  return res.json() as T & { id: string };
}

export interface SearchResult {
  status: number;
  bundle: Bundle;
  /** Ids of the match entries, in order. */
  ids: string[];
  /** "Type/id" of the include entries. */
  included: string[];
  /** Diagnostics of the outcome entry, if any. */
  warnings: string[];
}

function modeOf(entry: BundleEntry): string | undefined {
  return entry.search?.mode;
}

export async function search(app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<SearchResult> {
  let path = url.startsWith(BASE) ? url.slice(BASE.length) : url;
  if (!path.startsWith('/')) path = `/${path}`;
  const res = await app.inject({ url: path, headers });
  const bundle = res.json() as Bundle;
  const entries = bundle.entry ?? [];
  return {
    status: res.statusCode,
    bundle,
    ids: entries.filter((e) => modeOf(e) === 'match').map((e) => e.resource!.id!),
    included: entries.filter((e) => modeOf(e) === 'include').map((e) => `${e.resource!.resourceType}/${e.resource!.id}`),
    warnings: entries
      .filter((e) => modeOf(e) === 'outcome')
      .flatMap((e) => ((e.resource as { issue?: Array<{ diagnostics?: string }> }).issue ?? []).map((i) => i.diagnostics ?? '')),
  };
}

/** The ids a search matches, sorted (for set comparisons). */
export async function ids(app: FastifyInstance, url: string): Promise<string[]> {
  const result = await search(app, url);
  if (result.status !== 200) throw new Error(`${url}: ${result.status} ${JSON.stringify(result.bundle)}`);
  return [...result.ids].sort();
}

export function sorted(values: Array<string | undefined>): string[] {
  return values.filter((v): v is string => v !== undefined).sort();
}

export function link(bundle: Bundle, relation: string): string | undefined {
  return bundle.link?.find((l) => l.relation === relation)?.url;
}
