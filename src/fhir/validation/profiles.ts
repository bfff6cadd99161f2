/**
 * Loading of profiles/ : every *.json file (recursively) holding a StructureDefinition, ValueSet, CodeSystem
 * or a Bundle of them. StructureDefinitions without a snapshot get one generated from their differential
 * (snapshot.ts); those for which that fails are refused with a log line.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Bundle, CodeSystem, Resource, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import type { ValidationLogger } from './logging.js';
import { generateSnapshot } from './snapshot.js';

export interface LoadedProfiles {
  readonly structureDefinitions: StructureDefinition[];
  readonly terminology: (ValueSet | CodeSystem)[];
}

export async function loadProfileDirectory(
  dir: string,
  baseDefinitions: ReadonlyMap<string, StructureDefinition>,
  logger: ValidationLogger,
): Promise<LoadedProfiles> {
  const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((f) => f.isFile() && f.name.endsWith('.json'))
    .map((f) => join(f.parentPath ?? (f as unknown as { path: string }).path, f.name))
    .sort();

  const sds: StructureDefinition[] = [];
  const terminology: (ValueSet | CodeSystem)[] = [];
  for (const file of files) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      // A broken file in profiles/ is a deployment error: fail at start, naming the file.
      throw new Error(`profiles: cannot parse ${relative(dir, file)}: ${(err as Error).message}`);
    }
    for (const resource of unpack(parsed)) {
      if (resource.resourceType === 'StructureDefinition') {
        sds.push(resource);
      } else if (resource.resourceType === 'ValueSet' || resource.resourceType === 'CodeSystem') {
        terminology.push(resource);
      } else {
        logger.once(
          `profiles-ignored:${file}:${resource.resourceType}`,
          `profiles: ignoring ${resource.resourceType} in ${relative(dir, file)}`,
        );
      }
    }
  }

  // Generate missing snapshots; a profile may derive from another profile of the directory.
  const byUrl = new Map<string, StructureDefinition>();
  for (const sd of sds) {
    if (sd.url && sd.snapshot?.element?.length) {
      byUrl.set(sd.url, sd);
    }
  }
  let pending = sds.filter((sd) => !sd.snapshot?.element?.length);
  const resolve = (key: string): StructureDefinition | undefined =>
    byUrl.get(key) ?? baseDefinitions.get(key) ?? baseDefinitions.get(key.split('|')[0] as string);
  while (pending.length) {
    const next: StructureDefinition[] = [];
    for (const sd of pending) {
      const baseUrl = sd.baseDefinition ?? '';
      if (pending.some((p) => p !== sd && p.url === baseUrl)) {
        next.push(sd); // its base is generated first
        continue;
      }
      try {
        const withSnapshot = generateSnapshot(sd, resolve);
        byUrl.set(sd.url as string, withSnapshot);
        logger.once(`snapshot:${sd.url}`, `profiles: ${sd.url} has no snapshot; generated one from its differential`);
      } catch (err) {
        logger.once(`snapshot-failed:${sd.url}`, `profiles: ${sd.url} refused: ${(err as Error).message}`);
      }
    }
    if (next.length === pending.length) {
      for (const sd of next) {
        logger.once(`snapshot-failed:${sd.url}`, `profiles: ${sd.url} refused: circular baseDefinition`);
      }
      break;
    }
    pending = next;
  }

  return { structureDefinitions: [...byUrl.values()], terminology };
}

function unpack(parsed: unknown): (Resource & { resourceType: string })[] {
  if (!parsed || typeof parsed !== 'object') {
    return [];
  }
  if (Array.isArray(parsed)) {
    return parsed.flatMap(unpack);
  }
  const r = parsed as Resource;
  if (r.resourceType === 'Bundle') {
    return ((r as Bundle).entry ?? []).flatMap((e) => unpack(e.resource));
  }
  return typeof r.resourceType === 'string' ? [r] : [];
}
