/**
 * The query plan MongoDB picks for a benchmark search (its first page, or for the deep-page search a page read
 * from a keyset position), reduced to the stages that matter: "IXSCAN(search_Patient_identifier) > FETCH > LIMIT".
 */
import type { Document, Filter } from 'mongodb';
import type { FhirContext } from '../src/fhir/context.js';
import { DEFAULT_SEARCH_SETTINGS, parseForScope, storeQueryOf } from '../src/fhir/search/search.js';
import type { HeadDocument } from '../src/store/resource-store.js';
import { compileFilter, fullSort, keysetAfter, sortDocument } from '../src/store/search/compile.js';
import type { BenchSearch } from './searches.js';

export interface PlanSummary {
  /** Every stage of the winning plan, outermost first. */
  stages: Document[];
  /** e.g. "LIMIT < FETCH < IXSCAN(search_Patient_identifier)". */
  summary: string;
}

export function planStages(plan: Document, out: Document[] = []): Document[] {
  // MongoDB 7+ (slot-based engine) nests the classic-shaped tree under queryPlan.
  if (plan.queryPlan) return planStages(plan.queryPlan as Document, out);
  out.push(plan);
  if (plan.inputStage) planStages(plan.inputStage as Document, out);
  for (const input of (plan.inputStages as Document[] | undefined) ?? []) planStages(input, out);
  return out;
}

function summarise(explain: Document): PlanSummary {
  const planner = (explain.queryPlanner ?? (explain.stages as Document[] | undefined)?.[0]?.$cursor?.queryPlanner) as Document;
  const stages = planStages(planner.winningPlan as Document);
  const summary = stages.map((s) => (s.stage === 'IXSCAN' ? `IXSCAN(${s.indexName as string})` : (s.stage as string))).join(' < ');
  return { stages, summary };
}

/**
 * Explains one query of a benchmark search with executionStats: the page query exactly as the search runs it
 * (chains resolved, sort with the key tie-breaker, _count + 1). For the deep-page search, `afterId` is the
 * resource key ("Type/id") the page starts after, which is what a next link's cursor holds in the default order.
 * The count a search may add for Bundle.total is a second query, not explained here.
 */
export async function explainBenchSearch(ctx: FhirContext, search: BenchSearch, query: string, afterId?: string): Promise<PlanSummary> {
  const params = [...new URLSearchParams(query).entries()];
  const scope = { types: [search.type], path: search.type };
  const parsed = parseForScope(ctx, DEFAULT_SEARCH_SETTINGS, scope, { params, strict: true });
  const resolved = await storeQueryOf(ctx, parsed);
  const sort = fullSort(resolved.sort);
  const filter = compileFilter(resolved);
  if (search.deepPage && afterId !== undefined) {
    if (sort.length !== 1 || sort[0].field !== '_id') throw new Error('the deep-page search must use the default order (by key)');
    filter.$and = [...((filter.$and as Document[] | undefined) ?? []), keysetAfter(sort, [afterId])];
  }
  const explain = await ctx.store.heads
    .find(filter as Filter<HeadDocument>)
    .sort(sortDocument(sort))
    .limit(Math.max(parsed.count, 1) + 1)
    .explain('executionStats');
  const plan = summarise(explain);
  const stats = explain.executionStats as Document | undefined;
  if (stats) plan.summary += `; keys/docs examined ${stats.totalKeysExamined as number}/${stats.totalDocsExamined as number}`;
  return plan;
}

/** Whether a plan uses only the search's allowed indexes, without a collection scan (and without a blocking sort when required). */
export function planProblems(search: BenchSearch, plan: PlanSummary): string[] {
  const problems: string[] = [];
  const scans = plan.stages.filter((s) => s.stage === 'IXSCAN').map((s) => s.indexName as string);
  if (plan.stages.some((s) => s.stage === 'COLLSCAN')) problems.push('collection scan');
  if (scans.length === 0 && !plan.stages.some((s) => s.stage === 'IDHACK')) problems.push('no index scan');
  for (const name of scans) if (!search.index.test(name)) problems.push(`scans ${name}, expected ${search.index}`);
  if (search.sortFromIndex && plan.stages.some((s) => s.stage === 'SORT'))
    problems.push('blocking SORT (the index should deliver the order)');
  return problems;
}
