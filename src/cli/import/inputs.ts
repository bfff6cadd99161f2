/**
 * The files to import, from the paths on the command line: files as given, directories as their *.ndjson,
 * *.jsonl and *.json files (not recursive, checkpoint files excluded). NDJSON files are imported first, ordered
 * by the type of their first resource — the types others refer to (organizations, practitioners, patients,
 * encounters…) before the rest, Provenance (which refers to everything) last — so that most references resolve on
 * the first pass when the server enforces them (REFERENCE_POLICY=strict; the others are sent again, deferred.ts);
 * then the Bundles, in the order given.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readLines } from './lines.js';

export interface Input {
  /** Absolute path: the checkpoint's key. */
  path: string;
  /** As the user named it (or under the directory they named): the report's name. */
  name: string;
  kind: 'ndjson' | 'bundle';
  size: number;
  /** Found in a named directory rather than named itself: a stray non-FHIR JSON file there is ignored, not rejected. */
  fromDirectory: boolean;
}

export class InputError extends Error {
  override name = 'InputError';
}

const CHECKPOINT_SUFFIX = '.import-state.json';
/** Types most often referenced, in the order they refer to each other; every other type after them. */
const REFERENCE_ORDER = [
  'Organization',
  'Location',
  'Practitioner',
  'PractitionerRole',
  'Patient',
  'RelatedPerson',
  'Group',
  'Device',
  'Substance',
  'Medication',
  'EpisodeOfCare',
  'Encounter',
  'Condition',
];
/** Types that refer to everything else: after every other type. */
const LAST = ['Provenance'];

function kindOf(path: string): Input['kind'] | undefined {
  if (/\.(ndjson|jsonl)$/i.test(path)) return 'ndjson';
  if (/\.json$/i.test(path) && !path.endsWith(CHECKPOINT_SUFFIX)) return 'bundle';
  return undefined;
}

async function firstResourceType(path: string): Promise<string | undefined> {
  for await (const line of readLines(path)) {
    if (line.text.trim() === '') continue;
    try {
      return (JSON.parse(line.text) as { resourceType?: string }).resourceType;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export async function collectInputs(paths: string[]): Promise<Input[]> {
  const found: Array<{ path: string; name: string; fromDirectory: boolean }> = [];
  for (const given of paths) {
    let info;
    try {
      info = await stat(given);
    } catch (error) {
      throw new InputError(
        `${given}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`,
      );
    }
    if (info.isDirectory()) {
      const names = (await readdir(given)).filter((n) => !n.startsWith('.') && kindOf(n)).sort();
      if (names.length === 0) throw new InputError(`${given}: no *.ndjson, *.jsonl or *.json files in this directory`);
      for (const n of names) found.push({ path: resolve(given, n), name: join(given, n), fromDirectory: true });
    } else {
      if (!kindOf(given))
        throw new InputError(`${given}: not an input this tool reads: name NDJSON files *.ndjson or *.jsonl, Bundles *.json`);
      found.push({ path: resolve(given), name: given, fromDirectory: false });
    }
  }
  const unique = [...new Map(found.map((f) => [f.path, f])).values()];
  const inputs = await Promise.all(unique.map(async (f) => ({ ...f, kind: kindOf(f.path)!, size: (await stat(f.path)).size })));
  const ndjson = inputs.filter((i) => i.kind === 'ndjson');
  const rank = new Map<string, number>();
  for (const input of ndjson) {
    const type = (await firstResourceType(input.path)) ?? '';
    const index = REFERENCE_ORDER.indexOf(type);
    rank.set(input.path, index !== -1 ? index : LAST.includes(type) ? REFERENCE_ORDER.length + 1 : REFERENCE_ORDER.length);
  }
  ndjson.sort((a, b) => rank.get(a.path)! - rank.get(b.path)!); // stable: same rank keeps the given order
  return [...ndjson, ...inputs.filter((i) => i.kind === 'bundle')];
}
