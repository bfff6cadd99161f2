/**
 * The MongoDB a benchmark runs against: MONGODB_URI when set, else the project's embedded MongoDB-compatible
 * server started as a CHILD process (its data on LMDB in a temporary directory), as `npm start` runs it: it then
 * has a core of its own rather than competing with the FHIR server's event loop.
 */
import { readFileSync } from 'node:fs';
import { startEmbeddedMongoProcess } from '../src/dev/mongo-process.js';

export interface BenchMongo {
  uri: string;
  description: string;
  /** The child's process id (none for MONGODB_URI). */
  pid?: number;
  stop(): Promise<void>;
}

export async function benchMongo(options: { heapMb: number; log: (line: string) => void }): Promise<BenchMongo> {
  const configured = process.env.MONGODB_URI;
  if (configured) {
    return { uri: configured, description: `MONGODB_URI (${configured.replace(/\/\/[^@/]*@/, '//…@')})`, stop: async () => {} };
  }
  // The same child process `npm start` uses (it ends with this process, however this process ends).
  const child = await startEmbeddedMongoProcess({ heapMb: options.heapMb, log: options.log });
  return {
    uri: child.uri,
    pid: child.pid,
    description: `the project's EMBEDDED MongoDB-compatible server (src/dev/mongo, LMDB storage), in a child process`,
    stop: () => child.stop(30_000),
  };
}

/** Resident memory of a process in MB (Linux /proc), for the report; undefined where /proc does not exist. */
export function residentMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Math.round(Number(match[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a child process has used, in ms, from /proc (Linux); 0 when unknown. */
export function childCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}
