/**
 * Graceful shutdown within a bound, on SIGTERM or SIGINT:
 *   1. stop accepting connections; requests in flight go on, idle keep-alive connections close;
 *   2. the anchoring worker and the export runner stop at their next safe point, meanwhile;
 *   3. after the grace period, requests still running are stopped at their next step (a batch answers the entries
 *      it did not run with 503, anything else answers 503 with Retry-After), and a few seconds later connections
 *      still open are closed;
 *   4. the audit trail is written out, then MongoDB is closed, last;
 *   5. exit 0. A second signal exits at once (1), and so does a shutdown that overruns its bound.
 */
import type { FastifyInstance } from 'fastify';

export interface ShutdownOptions {
  app: FastifyInstance;
  /** How long requests in flight may take to finish before they are stopped. */
  graceMs: number;
  /** Background work that stops at a safe point (the anchoring worker, the local ledger), beside the draining. */
  stopBackground: () => Promise<void>;
  /** Closes the database connection and the database the server started, once nothing uses them. */
  closeDatabase: () => Promise<void>;
  log: {
    info(fields: object, message: string): void;
    warn(fields: object, message: string): void;
    error(fields: object, message: string): void;
  };
  exit: (code: number) => void;
}

/** After the grace period: how long stopped requests get to write their 503 before their connections are closed. */
const ANSWER_STOPPED_MS = 3_000;
/** Beyond grace + this, the shutdown itself has hung: exit anyway. */
const OVERRUN_MS = 20_000;

/** Returns the signal handler: call it with the signal's name. */
export function gracefulShutdown(options: ShutdownOptions): (signal: string) => void {
  const { app, log } = options;
  let stopping = false;
  return (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      options.exit(1);
      return;
    }
    stopping = true;
    const started = Date.now();
    log.info(
      { signal, inFlight: app.inFlight.count, graceMs: options.graceMs },
      'shutting down: no new connections, letting requests in flight finish',
    );
    const overrun = setTimeout(() => {
      log.error({ ms: Date.now() - started }, 'shutdown overran its bound: exiting');
      options.exit(1);
    }, options.graceMs + OVERRUN_MS);
    overrun.unref();
    const stopLate = setTimeout(() => {
      log.warn({ inFlight: app.inFlight.count }, 'grace period over: stopping the requests still in flight (503)');
      app.inFlight.stopAll();
      const cut = setTimeout(() => app.server.closeAllConnections(), ANSWER_STOPPED_MS);
      cut.unref();
    }, options.graceMs);
    stopLate.unref();

    void (async () => {
      try {
        // Requests drain (then the app's onClose hooks: export runner, audit trail) while background work stops.
        await Promise.all([app.close(), options.stopBackground()]);
        clearTimeout(stopLate);
        await options.closeDatabase();
        log.info({ ms: Date.now() - started }, 'shut down cleanly');
        options.exit(0);
      } catch (error) {
        log.error({ err: error }, 'error during shutdown');
        options.exit(1);
      }
    })();
  };
}
