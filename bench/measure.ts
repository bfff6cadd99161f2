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
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

/** Runs op(i) for i in [0, count) with `concurrency` in flight; every op must succeed. */
export async function measure(
  name: string,
  count: number,
  concurrency: number,
  op: (i: number) => Promise<void>,
): Promise<Measurement> {
  const latencies: number[] = new Array(count);
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      await op(i);
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.slice().sort((a, b) => a - b);
  return {
    name,
    count,
    concurrency,
    seconds,
    throughput: count / seconds,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
  };
}

export function markdownTable(rows: Measurement[]): string {
  const lines = [
    '| operation | count | concurrency | throughput (/s) | p50 (ms) | p95 (ms) | p99 (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.name} | ${r.count} | ${r.concurrency} | ${r.throughput.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p95.toFixed(2)} | ${r.p99.toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}

/** The machine a run was measured on, for the heading of a docs/benchmarks.md section. */
export function machineDescription(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}`;
}
