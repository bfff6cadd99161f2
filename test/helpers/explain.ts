/** Reading MongoDB explain output in tests: the benchmarks' reading of a winning plan (bench/plans.ts). */
export { planStages } from '../../bench/plans.js';
