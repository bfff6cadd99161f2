/**
 * The embedded MongoDB-compatible server in a process of its own (the server's default, `npm start`): its query
 * execution is synchronous JavaScript, and in the FHIR server's process a costly scan would stall every other
 * client and /healthz with it. In a child process that scan slows the query that asked for it, nothing else —
 * as with a real mongod.
 *
 * The child lives and dies with this process: it watches its stdin (a pipe from here), so when this process ends
 * in any way, SIGKILL included, the child sees the pipe close, writes its state and exits. It runs in its own
 * process group, so a Ctrl-C in the terminal reaches the FHIR server only, which stops the child last, after
 * draining its requests. A restart on the same data directory waits for a previous child that is still writing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface EmbeddedMongoProcess {
  uri: string;
  pid: number | undefined;
  /**
   * Asks the child to stop (SIGTERM: it syncs its data file and exits) and waits up to `waitMs` (default 10 s) for
   * it. A child still stopping then finishes on its own: it is not killed halfway.
   */
  stop(waitMs?: number): Promise<void>;
}

export interface EmbeddedMongoProcessOptions {
  /** Directory of the LMDB data file; undefined: a temporary one, removed when the child stops. */
  dataDir?: string;
  /** V8 heap limit of the child in MB (its heap holds the catalog and the decoded-document cache, not the data). */
  heapMb?: number;
  /** How long to wait for a previous process to release the data directory. */
  lockWaitMs?: number;
  log: (line: string) => void;
}

/** The CLI next to this file: compiled (dist) or, under a TypeScript loader, the source. */
function embeddedCli(): string {
  const compiled = fileURLToPath(new URL('./mongo/cli.js', import.meta.url));
  return existsSync(compiled) ? compiled : fileURLToPath(new URL('./mongo/cli.ts', import.meta.url));
}

class DirectoryBusyError extends Error {}

function startOnce(options: EmbeddedMongoProcessOptions): Promise<{ child: ChildProcess; uri: string }> {
  // Under a TypeScript loader (tests, development) the child needs the same loader flags.
  const loaderFlags = process.execArgv.filter(
    (arg) => arg.includes('typescript') || arg.startsWith('--import') || arg.startsWith('--loader'),
  );
  const args = [
    ...loaderFlags,
    ...(options.heapMb ? [`--max-old-space-size=${options.heapMb}`] : []),
    embeddedCli(),
    '--port',
    '0',
    '--quiet',
    '--exit-with-parent',
    ...(options.dataDir ? ['--data-dir', options.dataDir] : []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the embedded MongoDB did not start in 60 s:\n${output}`));
    }, 60_000);
    const onStdout = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /mongodb:\/\/\S+/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off('data', onStdout);
        child.off('exit', onEarlyExit);
        resolve({ child, uri: match[0] });
      }
    };
    const onEarlyExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(
        /is in use by process/.test(output)
          ? new DirectoryBusyError(output.trim())
          : new Error(`the embedded MongoDB exited (${code}) before it was ready:\n${output}`),
      );
    };
    child.stdout!.on('data', onStdout);
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', onEarlyExit);
  });
}

export async function startEmbeddedMongoProcess(options: EmbeddedMongoProcessOptions): Promise<EmbeddedMongoProcess> {
  const deadline = Date.now() + (options.lockWaitMs ?? 30_000);
  let started: { child: ChildProcess; uri: string };
  for (;;) {
    try {
      started = await startOnce(options);
      break;
    } catch (error) {
      // A previous server's child, still writing its state after its parent ended: wait for it.
      if (!(error instanceof DirectoryBusyError) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  const { child, uri } = started;
  child.stderr!.on('data', (chunk: Buffer) => options.log(`[embedded-mongo] ${chunk.toString().trimEnd()}`));
  child.stdout!.resume();
  // Neither the pipes nor the child keep this process alive; the stdin pipe is how the child knows we are here.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  let stopping: Promise<void> | undefined;
  return {
    uri,
    pid: child.pid,
    stop: (waitMs = 10_000) =>
      (stopping ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        // Waiting keeps this process alive (the child and its pipes are unref'ed while it runs).
        const timer = setTimeout(() => {
          options.log(`[embedded-mongo] still writing its state after ${waitMs} ms; it finishes on its own`);
          resolve();
        }, waitMs);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      })),
  };
}
