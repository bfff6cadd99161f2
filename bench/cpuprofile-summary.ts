/**
 * Where a CPU profile's time went: self time by area (the embedded engine's query planner, mingo, BSON, the
 * driver, ...) and the top functions, from a .cpuprofile written by `node --cpu-prof`.
 *
 *   node dist/bench/cpuprofile-summary.js /tmp/prof/CPU.*.cpuprofile [--top 25] [--inclusive]
 *
 * Self time is the time a function itself ran (not its callees), so the areas add up to the whole profile.
 * "total" per area (inclusive time, counted once per sample even when an area re-enters itself) tells how much
 * ran under that area's functions, callees included.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, inclusive: { type: 'boolean', default: false } },
});

/** The area a source URL belongs to, most specific first. */
function areaOf(url: string, functionName: string): string {
  if (url.includes('/src/dev/mongo/query/planner')) return 'engine: planner (plans, trial, execution)';
  if (url.includes('/src/dev/mongo/query/plan-cache')) return 'engine: plan cache';
  if (url.includes('/src/dev/mongo/query/count')) return 'engine: count';
  if (url.includes('/src/dev/mongo/query/bounds')) return 'engine: index bounds';
  if (url.includes('/src/dev/mongo/query/shape')) return 'engine: query shape';
  if (url.includes('/src/dev/mongo/query/filter')) return 'engine: filter compilation';
  if (url.includes('/src/dev/mongo/query/mingo-context')) return 'engine: BSON-aware mingo operators';
  if (url.includes('/src/dev/mongo/query/')) return 'engine: other query code';
  if (url.includes('/src/dev/mongo/storage/')) return 'engine: storage (B-tree, documents)';
  if (url.includes('/src/dev/mongo/bson/')) return 'engine: key strings, BSON values';
  if (url.includes('/src/dev/mongo/')) return 'engine: commands, wire, cursors';
  if (url.includes('/node_modules/mingo/')) return 'mingo';
  if (url.includes('/node_modules/bson/')) return 'bson (serialization)';
  if (url.includes('/node_modules/mongodb/')) return 'mongodb driver';
  if (url.includes('/src/store/') || url.includes('/src/fhir/')) return 'FHIR store (query building)';
  if (url.includes('/bench/')) return 'benchmark';
  if (url.startsWith('node:') || url === '') {
    if (functionName === '(garbage collector)') return 'garbage collection';
    if (functionName === '(idle)' || functionName === '(program)') return functionName;
    return 'node internals';
  }
  return 'other';
}

function main(): void {
  const file = positionals[0];
  if (!file) throw new Error('usage: cpuprofile-summary <file.cpuprofile>');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfByNode = new Map<number, number>();
  profile.samples.forEach((id, i) => selfByNode.set(id, (selfByNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  let busy = 0;
  const areaSelf = new Map<string, number>();
  const areaTotal = new Map<string, number>();
  const fnSelf = new Map<string, number>();
  const fnTotal = new Map<string, number>();
  const keyOf = (node: ProfileNode): string => {
    const short = node.callFrame.url.replace(/^.*\/(node_modules\/[^/]+|src|bench)\//, '$1/');
    return `${node.callFrame.functionName || '(anonymous)'} ${short}:${node.callFrame.lineNumber + 1}`;
  };
  for (const [id, micros] of selfByNode) {
    const node = byId.get(id)!;
    const area = areaOf(node.callFrame.url, node.callFrame.functionName);
    if (area === '(idle)') continue;
    busy += micros;
    areaSelf.set(area, (areaSelf.get(area) ?? 0) + micros);
    const key = keyOf(node);
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + micros);
    const seenFns = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = keyOf(byId.get(at)!);
      if (seenFns.has(k)) continue;
      seenFns.add(k);
      fnTotal.set(k, (fnTotal.get(k) ?? 0) + micros);
    }
    // Inclusive: every distinct area on the stack gets the sample once.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const n = byId.get(at)!;
      const a = areaOf(n.callFrame.url, n.callFrame.functionName);
      if (seen.has(a)) continue;
      seen.add(a);
      areaTotal.set(a, (areaTotal.get(a) ?? 0) + micros);
    }
  }
  const pct = (micros: number): string => `${((100 * micros) / busy).toFixed(1)} %`;
  console.log(`busy (not idle) CPU time: ${(busy / 1e6).toFixed(2)} s\n`);
  console.log('| area | self | total (with callees) |\n|---|---:|---:|');
  for (const [area, micros] of [...areaSelf].sort((a, b) => b[1] - a[1])) {
    console.log(`| ${area} | ${pct(micros)} | ${pct(areaTotal.get(area) ?? 0)} |`);
  }
  console.log('\n| function | self |\n|---|---:|');
  for (const [fn, micros] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
    console.log(`| ${fn.replace(/\|/g, '\\|')} | ${pct(micros)} |`);
  }
  if (values.inclusive) {
    console.log('\n| function (src/dev/mongo) | total (with callees) |\n|---|---:|');
    for (const [fn, micros] of [...fnTotal]
      .filter(([k]) => k.includes('dev/mongo/'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, Number(values.top))) {
      console.log(`| ${fn} | ${pct(micros)} |`);
    }
  }
}

main();
