/**
 * Sending resources to the target and reading its verdicts. Resources with an id go as PUT [type]/[id]
 * (update-as-create: they keep their ids, and sending one twice makes no second resource — an unchanged update
 * makes no version on this server); resources without one as POST [type]. Several at once go as one `batch`
 * Bundle when the server declares the batch interaction; one at a time otherwise, or when the server will not take
 * a batch as a whole, so that each line still gets its own verdict.
 */
import type { Bundle, BundleEntry, BundleEntryResponse, Resource } from '@medplum/fhirtypes';
import type { ServerCapabilities } from './capabilities.js';
import { ACCESS_REFUSALS, diagnosticsOf, type EntryOutcome } from './report.js';
import type { ImportTarget, TargetResponse } from './target.js';

export interface Item {
  resource: Resource;
  /** Where it came from, for the report. */
  line: number;
}

export type Verdict =
  { outcome: Exclude<EntryOutcome, 'rejected' | 'skipped'> } | { outcome: 'rejected'; status: number; diagnostics: string[] };

/** The HTTP status at the start of a Bundle entry's response.status ("201 Created"). */
export function statusOf(response: BundleEntryResponse | undefined): number {
  const status = Number.parseInt(response?.status ?? '', 10);
  return Number.isFinite(status) ? status : 0;
}

/**
 * 201 created and 200 updated are both imported; a 200 whose OperationOutcome says the update changed nothing
 * (this server: "No change: …") is unchanged. Anything else is a rejection with the server's diagnostics.
 */
export function verdictOf(status: number, outcome: unknown): Verdict {
  if (status === 201) return { outcome: 'imported' };
  if (status === 200) {
    const issues = (outcome as { resourceType?: string; issue?: Array<{ diagnostics?: string }> } | undefined)?.issue;
    const noChange = Array.isArray(issues) && issues.some((i) => /^No change\b/.test(i.diagnostics ?? ''));
    return { outcome: noChange ? 'unchanged' : 'imported' };
  }
  return { outcome: 'rejected', status, diagnostics: diagnosticsOf(outcome, `HTTP ${status}`) };
}

/** A refusal of the caller rather than of the data (ACCESS_REFUSALS): the line must not be recorded as done. */
export function isAccessRefusal(verdict: Verdict): boolean {
  return verdict.outcome === 'rejected' && ACCESS_REFUSALS.has(verdict.status);
}

function requestOf(resource: Resource): { method: 'PUT' | 'POST'; path: string } {
  return resource.id
    ? { method: 'PUT', path: `${resource.resourceType}/${encodeURIComponent(resource.id)}` }
    : { method: 'POST', path: resource.resourceType };
}

async function sendOne(target: ImportTarget, item: Item): Promise<Verdict> {
  const { method, path } = requestOf(item.resource);
  const response = await target.request(method, path, item.resource);
  return verdictOf(response.status, response.body);
}

function batchOf(items: Item[]): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'batch',
    entry: items.map((item): BundleEntry => {
      const { method, path } = requestOf(item.resource);
      return { resource: item.resource, request: { method, url: path } };
    }),
  };
}

function batchResponseEntries(response: TargetResponse, expected: number): BundleEntry[] | undefined {
  const body = response.body as Bundle | undefined;
  if (response.status !== 200 || body?.resourceType !== 'Bundle' || body.type !== 'batch-response') return undefined;
  return body.entry?.length === expected ? body.entry : undefined;
}

/** The verdict for every item, in order. */
export async function sendItems(target: ImportTarget, capabilities: ServerCapabilities, items: Item[]): Promise<Verdict[]> {
  if (items.length === 0) return [];
  if (capabilities.batch && items.length > 1) {
    const response = await target.request('POST', '', batchOf(items));
    const entries = batchResponseEntries(response, items.length);
    if (entries) {
      return entries.map((entry, i) => {
        const verdict = verdictOf(statusOf(entry.response), entry.response?.outcome);
        if (verdict.outcome !== 'rejected') return verdict;
        // The batch is the importer's packaging: say where in the resource, not where in a Bundle the user never saw.
        const type = items[i].resource.resourceType;
        const diagnostics = verdict.diagnostics.map((d) =>
          d.replace(/^Bundle\.entry\[\d+\]:\s*/, '').replace(/Bundle\.entry\[\d+\]\.resource\b/g, type),
        );
        return { ...verdict, diagnostics };
      });
    }
    if (response.status === 413) {
      // Too large for the server's body limit: halves until it fits (a single resource is then judged alone).
      const middle = Math.ceil(items.length / 2);
      return [
        ...(await sendItems(target, capabilities, items.slice(0, middle))),
        ...(await sendItems(target, capabilities, items.slice(middle))),
      ];
    }
  }
  const verdicts: Verdict[] = [];
  for (const item of items) verdicts.push(await sendOne(target, item));
  return verdicts;
}
