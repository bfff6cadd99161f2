/**
 * Loads the benchmark population straight into MongoDB: for each generated resource it does what the write
 * path (src/fhir/interactions/versions.ts storeNextVersion) does — stamp meta.versionId 1 and meta.lastUpdated,
 * extract the search index values, compute the pending anchor — and hands chunks to the store's bulk loader
 * (src/store/bulk-load.ts), which writes exactly the documents writeVersion writes. Validation runs on a sample
 * (every `validateEvery`-th patient record) since the generator's output is already covered by a test.
 *
 * Two chunks are in flight at a time, so this process builds the next chunk (index extraction, commitments,
 * BSON) while MongoDB stores the previous one.
 */
import type { Resource } from '@medplum/fhirtypes';
import { extractIndex } from '../src/fhir/search/extract.js';
import { searchRegistry } from '../src/fhir/search/registry.js';
import type { ResourceValidator } from '../src/fhir/validation/index.js';
import { pendingAnchorFor } from '../src/ledger/pending-anchor.js';
import { insertNewVersions } from '../src/store/bulk-load.js';
import type { NewVersion, ResourceStore } from '../src/store/resource-store.js';
import { generatePatient, resourcesOf } from './population.js';

export interface LoadOptions {
  store: ResourceStore;
  baseUrl: string;
  seed: number;
  /** Patients [from, to) of the population. */
  from: number;
  to: number;
  /** Resources per insertMany. */
  chunkSize?: number;
  /** Validate every n-th patient record (0: none). */
  validateEvery?: number;
  validator?: ResourceValidator;
  progress?: (patientsDone: number, resourcesDone: number) => void;
  /** Resuming an interrupted load: resources already stored are left as they are. */
  skipExisting?: boolean;
  /** The clock, for meta.lastUpdated. */
  now?: () => number;
}

export interface LoadResult {
  patients: number;
  resources: number;
  byType: Record<string, number>;
  seconds: number;
  validated: number;
  /** meta.lastUpdated of the first and last resource loaded. */
  firstUpdated: Date;
  lastUpdated: Date;
}

/** A version 1 as storeNextVersion would make it. */
export function firstVersionOf(resource: Resource, lastUpdated: Date, baseUrl: string): NewVersion {
  const { meta, ...content } = resource;
  const stamped = { ...content, meta: { ...meta, versionId: '1', lastUpdated: lastUpdated.toISOString() } } as Resource;
  const index = extractIndex(searchRegistry(), stamped, baseUrl);
  return {
    type: resource.resourceType,
    id: resource.id!,
    versionId: 1,
    lastUpdated,
    deleted: false,
    method: 'POST',
    resource: stamped,
    idx: index.idx,
    idxVersion: index.idxVersion,
    anchor: pendingAnchorFor(stamped),
  };
}

export async function loadPopulation(options: LoadOptions): Promise<LoadResult> {
  const chunkSize = options.chunkSize ?? 1000;
  const validateEvery = options.validateEvery ?? 0;
  const clock = options.now ?? Date.now;
  const byType: Record<string, number> = {};
  const started = performance.now();
  let firstUpdated: Date | undefined;
  let lastUpdated = new Date(0);
  let resources = 0;
  let validated = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let chunk: NewVersion[] = [];

  const flush = async (): Promise<void> => {
    const batch = chunk;
    chunk = [];
    const insert = insertNewVersions(options.store, batch, { skipExisting: options.skipExisting }).catch((error: unknown) => {
      failure ??= error;
    });
    inFlight.add(insert);
    void insert.finally(() => inFlight.delete(insert));
    if (inFlight.size >= 2) await Promise.race(inFlight);
    if (failure) throw failure;
  };

  for (let index = options.from; index < options.to; index++) {
    const record = generatePatient(options.seed, index);
    for (const resource of resourcesOf(record)) {
      if (validateEvery > 0 && options.validator && index % validateEvery === 0) {
        const errors = options.validator.validate(resource).filter((i) => i.severity === 'error' || i.severity === 'fatal');
        if (errors.length > 0)
          throw new Error(`${resource.resourceType}/${resource.id} is invalid: ${errors.map((e) => e.diagnostics).join('; ')}`);
        validated++;
      }
      lastUpdated = new Date(clock());
      firstUpdated ??= lastUpdated;
      chunk.push(firstVersionOf(resource, lastUpdated, options.baseUrl));
      byType[resource.resourceType] = (byType[resource.resourceType] ?? 0) + 1;
      resources++;
      if (chunk.length >= chunkSize) await flush();
    }
    if (options.progress && (index - options.from + 1) % 5000 === 0) options.progress(index - options.from + 1, resources);
  }
  if (chunk.length > 0) await flush();
  await Promise.all(inFlight);
  if (failure) throw failure;
  return {
    patients: options.to - options.from,
    resources,
    byType,
    seconds: (performance.now() - started) / 1000,
    validated,
    firstUpdated: firstUpdated ?? lastUpdated,
    lastUpdated,
  };
}
