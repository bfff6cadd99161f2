/**
 * The audit worker thread: turns access records into stored AuditEvents (the BALP resource, its index values, its
 * salted commitment) and writes them in batches, off the thread that serves requests. A request then only hands
 * over a small record; on a machine with more than one core the rest runs beside the request path.
 *
 * Protocol (messages with the parent thread, in order):
 *   in:  { type: 'records', records }  AccessRecords to store, in the order recorded
 *        { type: 'flush', id }          write everything received so far, then answer 'flushed'
 *        { type: 'close' }              write everything, answer 'closed', end
 *   out: { type: 'ready' } | { type: 'written', count } (events stored, in the order received) |
 *        { type: 'flushed', id } | { type: 'closed', unwritten } | { type: 'log', level, fields, message }
 */
import { randomUUID } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { connectMongo } from '../../store/mongo.js';
import { ResourceStore } from '../../store/resource-store.js';
import { searchRegistry } from '../search/registry.js';
import type { AccessRecord } from './audit-event.js';
import { auditEventVersion } from './audit-version.js';
import { AuditWriter } from './audit-writer.js';

export interface AuditWorkerData {
  mongoUri: string;
  dbName: string;
  baseUrl: string;
  flushIntervalMs: number;
}

export type ToAuditWorker = { type: 'records'; records: AccessRecord[] } | { type: 'flush'; id: number } | { type: 'close' };

export type FromAuditWorker =
  | { type: 'ready' }
  | { type: 'written'; count: number }
  | { type: 'flushed'; id: number }
  | { type: 'closed'; unwritten: number }
  | { type: 'log'; level: 'error' | 'warn'; fields: object; message: string };

async function run(port: NonNullable<typeof parentPort>, data: AuditWorkerData): Promise<void> {
  const send = (message: FromAuditWorker): void => port.postMessage(message);
  const log = {
    error: (fields: object, message: string) => send({ type: 'log', level: 'error', fields: serializable(fields), message }),
  };
  // Messages that arrive while connecting wait here (the port queues them, but the handler must exist at once).
  const early: ToAuditWorker[] = [];
  let handle: ((message: ToAuditWorker) => void) | undefined;
  port.on('message', (message: ToAuditWorker) => (handle ? handle(message) : early.push(message)));

  const connection = await connectMongo(data.mongoUri, data.dbName);
  const store = new ResourceStore(connection.db, connection.supportsTransactions);
  searchRegistry(); // the definitions, loaded once before the first event
  const writer = new AuditWriter(store, data.flushIntervalMs, log, (count) => send({ type: 'written', count }));
  writer.start();
  let closing = false;
  handle = (message) => {
    switch (message.type) {
      case 'records':
        writer.add(message.records.map((record) => auditEventVersion(record, randomUUID(), data.baseUrl)));
        return;
      case 'flush':
        void writer.flush().then(() => send({ type: 'flushed', id: message.id }));
        return;
      case 'close':
        if (closing) return;
        closing = true;
        void writer.close().then(async (unwritten) => {
          await connection.close().catch(() => undefined);
          send({ type: 'closed', unwritten });
          port.close();
        });
    }
  };
  for (const message of early.splice(0)) handle(message);
  send({ type: 'ready' });
}

/** Errors do not cross threads as objects worth logging: their message and name do. */
function serializable(fields: object): object {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields))
    out[key] = value instanceof Error ? { name: value.name, message: value.message } : value;
  return out;
}

if (parentPort) {
  const port = parentPort;
  run(port, workerData as AuditWorkerData).catch((error: unknown) => {
    port.postMessage({
      type: 'log',
      level: 'error',
      fields: serializable({ err: error }),
      message: 'audit worker could not start',
    } satisfies FromAuditWorker);
    process.exitCode = 1;
    port.close();
  });
}
