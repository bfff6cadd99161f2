/**
 * The MongoDB a benchmark runs against: MONGODB_URI when set, else the project's embedded MongoDB-compatible
 * server started as a CHILD process, in memory, with a large heap. A separate process because at 100 000
 * patients it holds about a million documents and their index entries in JS memory (several GB), and because
 * it then has a core of its own rather than competing with the FHIR server's event loop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BenchMongo {
  uri: string;
  description: string;
  /** The child's process id (none for MONGODB_URI). */
  pid?: number;
  stop(): Promise<void>;
}

/** The embedded server's CLI next to this file: compiled (dist) or, under a TypeScript loader, the source. */
function embeddedCli(): string {
  const compiled = fileURLToPath(new URL('../src/dev/mongo/cli.js', import.meta.url));
  return existsSync(compiled) ? compiled : fileURLToPath(new URL('../src/dev/mongo/cli.ts', import.meta.url));
}

export async function benchMongo(options: { heapMb: number; log: (line: string) => void }): Promise<BenchMongo> {
  const configured = process.env.MONGODB_URI;
  if (configured) {
    return { uri: configured, description: `MONGODB_URI (${configured.replace(/\/\/[^@/]*@/, '//…@')})`, stop: async () => {} };
  }
  // Under a TypeScript loader (tests, development) the child needs the same loader flags.
  const loaderFlags = process.execArgv.filter((arg) => arg.includes('typescript') || arg.startsWith('--import') || arg.startsWith('--loader'));
  const child: ChildProcess = spawn(
    process.execPath,
    [...loaderFlags, `--max-old-space-size=${options.heapMb}`, embeddedCli(), '--port', '0', '--quiet'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' } },
  );
  const uri = await new Promise<string>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`the embedded MongoDB did not start in 60 s:\n${output}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /mongodb:\/\/\S+/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the embedded MongoDB exited (${code}) before it was ready:\n${output}`));
    });
  });
  child.stderr!.on('data', (chunk: Buffer) => options.log(`[embedded-mongo] ${chunk.toString().trimEnd()}`));
  // The child must not outlive the benchmark (Ctrl-C, a timeout's SIGTERM, an uncaught error).
  const killChild = (): void => {
    if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.once('exit', killChild);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killChild();
      process.exit(130);
    });
  }
  return {
    uri,
    pid: child.pid,
    description: `the project's EMBEDDED MongoDB-compatible server (src/dev/mongo), in memory, in a child process (heap ${options.heapMb} MB)`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
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
