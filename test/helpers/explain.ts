/** Reading MongoDB explain output in tests. */
import type { Document } from 'mongodb';

/** Every stage of a winning plan, depth first (MongoDB 7+'s slot-based engine nests the classic tree under queryPlan). */
export function planStages(plan: Document, out: Document[] = []): Document[] {
  if (plan.queryPlan) return planStages(plan.queryPlan as Document, out);
  out.push(plan);
  if (plan.inputStage) planStages(plan.inputStage as Document, out);
  for (const input of (plan.inputStages as Document[] | undefined) ?? []) planStages(input, out);
  return out;
}
