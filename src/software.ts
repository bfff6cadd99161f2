/** Name and version of this software, read once from package.json (whether running from src/ or dist/src/). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function findPackageJson(): { name: string; version: string; root: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name && pkg.version) return { name: pkg.name, version: pkg.version, root: dir };
    }
    dir = dirname(dir);
  }
  throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
}

const found = findPackageJson();
export const SOFTWARE = { name: found.name, version: found.version };
/** The project's root directory as a file URL ending in '/', for data shipped beside the code (profiles/). */
export const PROJECT_ROOT = pathToFileURL(found.root + '/');
