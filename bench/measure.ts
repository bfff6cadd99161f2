/** Latency and throughput of a bounded number of operations run with fixed concurrency. */
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';

export interface Measurement {
  name: string;
  count: number;
  concurrency: number;
  seconds: number;
  throughput: number;
  p50: number;
  p95: number;
  p99: number;
  /** The query plan MongoDB chose, e.g. "IXSCAN(search_Patient_identifier)" (searches only). */
  plan?: string;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

/** A Measurement from latencies (ms) collected over `seconds` of wall time. */
export function summarize(name: string, latencies: number[], seconds: number, concurrency: number): Measurement {
  const sorted = latencies.slice().sort((a, b) => a - b);
  return {
    name,
    count: latencies.length,
    concurrency,
    seconds,
    throughput: seconds > 0 ? latencies.length / seconds : 0,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
  };
}

/**
 * Runs op(i) for i in [0, count) with `concurrency` in flight; every op must succeed. With maxSeconds, no new op
 * starts after that much time (the measurement then covers the ops that ran).
 */
export async function measure(
  name: string,
  count: number,
  concurrency: number,
  op: (i: number) => Promise<void>,
  options: { maxSeconds?: number } = {},
): Promise<Measurement> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = options.maxSeconds !== undefined ? started + options.maxSeconds * 1000 : Infinity;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      await op(i);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return summarize(name, latencies, (performance.now() - started) / 1000, concurrency);
}

export function markdownTable(rows: Measurement[]): string {
  const withPlan = rows.some((r) => r.plan !== undefined);
  const lines = [
    `| operation | count | concurrency | throughput (/s) | p50 (ms) | p95 (ms) | p99 (ms) |${withPlan ? ' plan (explain) |' : ''}`,
    `|---|---:|---:|---:|---:|---:|---:|${withPlan ? '---|' : ''}`,
  ];
  // A | inside a cell (a token search such as system|code) would end the cell.
  const cell = (text: string): string => text.replace(/\|/g, '\\|');
  for (const r of rows) {
    lines.push(
      `| ${cell(r.name)} | ${r.count} | ${r.concurrency} | ${r.throughput.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p95.toFixed(2)} | ${r.p99.toFixed(2)} |` +
        (withPlan ? ` ${cell(r.plan ?? '')} |` : ''),
    );
  }
  return lines.join('\n');
}

/** The machine a run was measured on, for the heading of a docs/benchmarks.md section. */
export function machineDescription(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}`;
}
