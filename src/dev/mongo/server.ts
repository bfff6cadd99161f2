/**
 * TCP listener and per-connection request loop. Requests on one connection
 * are handled one at a time, in order (as mongod does); connections are
 * independent. A protocol violation closes only the offending connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Document } from 'bson';
import { dispatch } from './commands/dispatch.js';
import type { ConnectionInfo } from './commands/context.js';
import type { MongoInstance } from './instance.js';
import { endSession } from './commands/sessions.js';
import { LOGICAL_SESSION_TIMEOUT_MINUTES } from './instance.js';
import { expireDocuments } from './storage/ttl.js';
import {
  MessageFramer,
  REPLY_QUERY_FAILURE,
  encodeOpMsg,
  encodeOpReply,
  parseMessage,
  type OpMsgRequest,
  type OpQueryRequest,
} from './wire/messages.js';

const HANDSHAKE_COMMANDS = new Set(['hello', 'isMaster', 'ismaster']);
/** mongod's TTL monitor period (ttlMonitorSleepSecs); idle cursors and sessions are reaped on the same beat. */
const HOUSEKEEPING_INTERVAL_MS = 60_000;

function isAwaitableHello(body: Document): boolean {
  const name = Object.keys(body)[0];
  return name !== undefined && HANDSHAKE_COMMANDS.has(name) && body.maxAwaitTimeMS !== undefined && body.topologyVersion !== undefined;
}

export class WireServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private nextConnectionId = 1;
  private housekeeping: NodeJS.Timeout | undefined;

  constructor(private readonly instance: MongoInstance) {
    this.server = createServer((socket) => this.accept(socket));
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.housekeeping = setInterval(() => this.sweep(), HOUSEKEEPING_INTERVAL_MS);
        this.housekeeping.unref();
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  /** TTL deletes, idle cursors and expired sessions, as mongod's background threads do. */
  private sweep(): void {
    const expired = expireDocuments(this.instance.engine, this.instance.txns);
    if (expired) this.instance.log(`TTL monitor deleted ${expired} documents`);
    this.instance.cursors.reapIdle();
    for (const s of this.instance.sessions.expired(LOGICAL_SESSION_TIMEOUT_MINUTES * 60_000)) endSession(this.instance, s);
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    this.sockets.add(socket);
    this.instance.connectionsCreated++;
    this.instance.connectionsOpen++;
    const closed = new AbortController();
    const connection: ConnectionInfo = {
      id: this.nextConnectionId++,
      remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`,
      closed: closed.signal,
    };
    const framer = new MessageFramer();
    let queue: Promise<void> = Promise.resolve();
    const fail = (err: unknown): void => {
      if (!socket.destroyed) {
        this.instance.log(
          `closing connection ${connection.id} (${connection.remote}): ${err instanceof Error ? err.message : String(err)}`,
        );
        socket.destroy();
      }
    };
    socket.on('data', (chunk: Buffer) => {
      let messages: Buffer[];
      try {
        messages = framer.push(chunk);
      } catch (err) {
        fail(err);
        return;
      }
      for (const message of messages) {
        queue = queue.then(() => (socket.destroyed ? undefined : this.handle(socket, connection, message))).catch(fail);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed.abort();
      this.sockets.delete(socket);
      this.instance.connectionsOpen--;
    });
  }

  private async handle(socket: Socket, connection: ConnectionInfo, message: Buffer): Promise<void> {
    const request = parseMessage(message);
    if (request.kind === 'query') await this.handleQuery(socket, connection, request);
    else await this.handleMsg(socket, connection, request);
  }

  private async handleQuery(socket: Socket, connection: ConnectionInfo, request: OpQueryRequest): Promise<void> {
    const respond = (doc: Document, flags = 0): void => {
      if (!socket.destroyed) socket.write(encodeOpReply(request.header.requestId, doc, flags));
    };
    if (!request.collection.endsWith('.$cmd')) {
      respond(
        { $err: 'OP_QUERY is no longer supported. The client driver may require an upgrade.', code: 5739101, ok: 0 },
        REPLY_QUERY_FAILURE,
      );
      return;
    }
    let body = request.query;
    if ('$query' in body && typeof body.$query === 'object' && body.$query !== null) body = body.$query as Document;
    const name = Object.keys(body)[0] ?? '';
    // Since MongoDB 6.0 OP_QUERY carries only the connection handshake.
    if (!HANDSHAKE_COMMANDS.has(name)) {
      respond({
        ok: 0,
        errmsg: `Unsupported OP_QUERY command: ${name}. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal`,
        code: 352,
        codeName: 'UnsupportedOpQueryCommand',
      });
      return;
    }
    const db = request.collection.slice(0, -'.$cmd'.length);
    respond(await dispatch(this.instance, connection, { ...body, $db: db }));
  }

  private async handleMsg(socket: Socket, connection: ConnectionInfo, request: OpMsgRequest): Promise<void> {
    let responseTo = request.header.requestId;
    for (;;) {
      const reply = await dispatch(this.instance, connection, request.body);
      if (request.moreToCome || socket.destroyed) return;
      // Exhaust: keep answering an awaitable hello, each reply chained to the previous one.
      const streaming = request.exhaustAllowed && isAwaitableHello(request.body) && reply.ok === 1;
      const out = encodeOpMsg(responseTo, reply, streaming);
      socket.write(out);
      if (!streaming) return;
      responseTo = out.readInt32LE(4);
    }
  }

  async close(): Promise<void> {
    if (this.housekeeping) clearInterval(this.housekeeping);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}
