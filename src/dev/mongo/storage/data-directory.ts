/**
 * One server per data directory: a lock file naming the owning process, taken
 * over when that process is gone (killed), refused while it lives.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const LOCK_FILE = 'mongod.lock';

/** Data directories open in this process (a lock file alone cannot tell two servers of one process apart). */
const openDirectories = new Set<string>();

async function processAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed child that its parent has not reaped yet is a zombie: it holds nothing.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return !/^\d+ \(.*\) Z/.test(stat);
}

/** Creates the directory if needed and takes it; refuses one another live server uses. */
export async function lockDataDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const key = resolve(dir);
  if (openDirectories.has(key)) throw new Error(`embedded mongo: data directory ${dir} is already in use by this process`);
  const lockPath = join(dir, LOCK_FILE);
  const previous = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
  if (previous && previous !== process.pid && (await processAlive(previous))) {
    throw new Error(`embedded mongo: data directory ${dir} is in use by process ${previous}`);
  }
  await writeFile(lockPath, `${process.pid}\n`);
  openDirectories.add(key);
}

export async function unlockDataDirectory(dir: string): Promise<void> {
  openDirectories.delete(resolve(dir));
  await rm(join(dir, LOCK_FILE), { force: true });
}
