/**
 * What an import did: per resource type how many were imported (created or changed), unchanged (a no-op update:
 * the server kept the current version), skipped (a type the server does not host) and rejected; every rejection
 * with where it came from and the server's OperationOutcome diagnostics; and the reference rewrites made while
 * filtering Bundles.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';

export type EntryOutcome = 'imported' | 'unchanged' | 'skipped' | 'rejected';

/**
 * Refusals that judge the caller, not the data: no or a bad access token (401), scopes that do not allow the write
 * (403), a rate limit (429). The same line is accepted once the token (or the minute) is right, so an NDJSON line
 * refused so is not recorded as done in the checkpoint.
 */
export const ACCESS_REFUSALS: ReadonlySet<number> = new Set([401, 403, 429]);

export interface TypeTotals {
  imported: number;
  unchanged: number;
  skipped: number;
  rejected: number;
}

export interface Rejection {
  file: string;
  /** NDJSON: the 1-based line. */
  line?: number;
  /** Bundle: the index of the entry in the file's Bundle.entry (before filtering). */
  entry?: number;
  resourceType?: string;
  id?: string;
  /** The HTTP status; absent when the line never reached the server (not JSON, no resourceType). */
  status?: number;
  diagnostics: string[];
}

export interface ReferenceRewrites {
  /** urn:uuid references to dropped entries, rewritten to Type/id. */
  logical: number;
  /** References to dropped entries without an id, reduced to type (+ display). */
  typeOnly: number;
  /** Conditional references to unhosted types, rewritten to a logical reference by identifier. */
  conditional: number;
}

export interface ImportReportJson {
  target: string;
  startedAt: string;
  finishedAt: string;
  completed: boolean;
  totals: Record<string, TypeTotals>;
  sum: TypeTotals;
  referenceRewrites: ReferenceRewrites;
  /** Input files (or parts of them) skipped because the checkpoint records them as done. */
  resumed: string[];
  /** Files in a named directory that hold no FHIR content (e.g. a manifest), left alone. */
  ignored: string[];
  rejections: Rejection[];
  /** Rejections beyond MAX_LISTED_REJECTIONS are counted in the totals but not listed. */
  rejectionsNotListed: number;
}

/** Keeps a pathological input (every line bad) from growing the report without bound. */
const MAX_LISTED_REJECTIONS = 10_000;

export class ImportReport {
  private readonly totals = new Map<string, TypeTotals>();
  private readonly rejections: Rejection[] = [];
  private notListed = 0;
  readonly rewrites: ReferenceRewrites = { logical: 0, typeOnly: 0, conditional: 0 };
  readonly resumed: string[] = [];
  readonly ignored: string[] = [];
  private readonly startedAt = new Date();

  constructor(readonly target: string) {}

  count(type: string, outcome: EntryOutcome, howMany = 1): void {
    let totals = this.totals.get(type);
    if (!totals) this.totals.set(type, (totals = { imported: 0, unchanged: 0, skipped: 0, rejected: 0 }));
    totals[outcome] += howMany;
  }

  /** Lists a rejection; `counted` false when its entries are already counted as rejected by type. */
  reject(rejection: Rejection, counted = true): void {
    if (counted) this.count(rejection.resourceType ?? '(unknown)', 'rejected');
    if (this.rejections.length < MAX_LISTED_REJECTIONS) this.rejections.push(rejection);
    else this.notListed++;
  }

  addRewrites(rewrites: ReferenceRewrites): void {
    this.rewrites.logical += rewrites.logical;
    this.rewrites.typeOnly += rewrites.typeOnly;
    this.rewrites.conditional += rewrites.conditional;
  }

  get rejectedCount(): number {
    return [...this.totals.values()].reduce((sum, t) => sum + t.rejected, 0);
  }

  toJSON(completed: boolean): ImportReportJson {
    const totals = Object.fromEntries([...this.totals.entries()].sort(([a], [b]) => a.localeCompare(b)));
    const sum: TypeTotals = { imported: 0, unchanged: 0, skipped: 0, rejected: 0 };
    for (const t of this.totals.values()) {
      sum.imported += t.imported;
      sum.unchanged += t.unchanged;
      sum.skipped += t.skipped;
      sum.rejected += t.rejected;
    }
    return {
      target: this.target,
      startedAt: this.startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      completed,
      totals,
      sum,
      referenceRewrites: { ...this.rewrites },
      resumed: [...this.resumed],
      ignored: [...this.ignored],
      rejections: [...this.rejections],
      rejectionsNotListed: this.notListed,
    };
  }
}

/** The report as a person reads it: a table of totals, the rewrites, then each rejection on its own line. */
export function formatReport(report: ImportReportJson): string {
  const rows = Object.entries(report.totals).map(([type, t]) => [type, t.imported, t.unchanged, t.skipped, t.rejected]);
  rows.push(['total', report.sum.imported, report.sum.unchanged, report.sum.skipped, report.sum.rejected]);
  const header = ['type', 'imported', 'unchanged', 'skipped', 'rejected'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells: Array<string | number>): string =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  const out = [line(header), ...rows.map(line)];
  const r = report.referenceRewrites;
  if (r.logical + r.typeOnly + r.conditional > 0) {
    out.push(
      `references to entries of unhosted types rewritten: ${r.logical} to Type/id, ${r.typeOnly} to type+display only, ` +
        `${r.conditional} conditional to type+identifier`,
    );
  }
  for (const resumed of report.resumed) out.push(`resumed: ${resumed}`);
  for (const ignored of report.ignored) out.push(`ignored: ${ignored}`);
  for (const j of report.rejections) {
    const where = j.line !== undefined ? `line ${j.line}` : j.entry !== undefined ? `entry ${j.entry}` : 'whole file';
    const what = j.resourceType ? ` ${j.resourceType}${j.id ? `/${j.id}` : ''}` : '';
    out.push(`REJECTED ${j.file} ${where}${what}: ${j.status ?? 'not sent'} ${j.diagnostics.join('; ')}`);
  }
  if (report.rejectionsNotListed > 0) out.push(`... and ${report.rejectionsNotListed} more rejections (counted above)`);
  const refused = report.rejections.filter((j) => j.line !== undefined && j.status !== undefined && ACCESS_REFUSALS.has(j.status)).length;
  if (refused > 0) {
    out.push(
      `${refused} lines were refused access (HTTP 401/403/429: no valid access token, scopes that do not allow the write, or ` +
        'a rate limit), which says nothing about the data: the checkpoint was not moved past them; run the same command ' +
        'again with a valid token (FHIR_ACCESS_TOKEN or --token-file) to import them',
    );
  }
  out.push(report.completed ? 'import complete' : 'import interrupted: run the same command again to resume');
  return `${out.join('\n')}\n`;
}

/** The diagnostics of an OperationOutcome's error issues (all issues when none is an error). */
export function diagnosticsOf(outcome: unknown, fallback: string): string[] {
  const oo = outcome as OperationOutcome | undefined;
  if (!oo || oo.resourceType !== 'OperationOutcome' || !Array.isArray(oo.issue)) return [fallback];
  const errorsFirst = oo.issue.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  const chosen = errorsFirst.length > 0 ? errorsFirst : oo.issue;
  const texts = chosen.map((i) => {
    const where = i.expression?.length ? ` (at ${i.expression.join(', ')})` : '';
    return `${i.diagnostics ?? i.details?.text ?? i.code}${where}`;
  });
  return texts.length > 0 ? texts : [fallback];
}
