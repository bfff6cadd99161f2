import t from 'tap';
import { connect, type Socket } from 'node:net';
import { BSON, type Document } from 'mongodb';
import type { Test } from 'tap';
import { crc32c } from '../../../src/dev/mongo/wire/crc32c.js';
import { forEachBackend, rejection, type TestDoc } from './backends.js';

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_MSG = 2013;

let requestId = 1000;

function header(length: number, opCode: number, id = requestId++): Buffer {
  const h = Buffer.alloc(16);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(id, 4);
  h.writeInt32LE(0, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

function opMsg(
  body: Document,
  options: { sequences?: Record<string, Document[]>; flags?: number; checksum?: boolean; id?: number } = {},
): Buffer {
  const parts: Buffer[] = [Buffer.from([0]), Buffer.from(BSON.serialize(body))];
  for (const [id, docs] of Object.entries(options.sequences ?? {})) {
    const payload = Buffer.concat([Buffer.from(id + '\0'), ...docs.map((d) => Buffer.from(BSON.serialize(d)))]);
    const size = Buffer.alloc(4);
    size.writeInt32LE(payload.length + 4, 0);
    parts.push(Buffer.from([1]), size, payload);
  }
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE((options.flags ?? 0) | (options.checksum ? 1 : 0), 0);
  const bodyBytes = Buffer.concat([flags, ...parts]);
  const length = 16 + bodyBytes.length + (options.checksum ? 4 : 0);
  const message = Buffer.concat([header(length, OP_MSG, options.id), bodyBytes]);
  if (!options.checksum) return message;
  const sum = Buffer.alloc(4);
  sum.writeUInt32LE(crc32c(message), 0);
  return Buffer.concat([message, sum]);
}

function opQuery(collection: string, query: Document): Buffer {
  const body = Buffer.concat([
    Buffer.alloc(4),
    Buffer.from(collection + '\0'),
    Buffer.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
    Buffer.from(BSON.serialize(query)),
  ]);
  return Buffer.concat([header(16 + body.length, OP_QUERY), body]);
}

interface Reply {
  responseTo: number;
  opCode: number;
  flags: number;
  doc: Document;
}

/** A raw connection that reads whole replies, or reports that the server closed it. */
class RawClient {
  private buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }

  static open(host: string, port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Next reply, or 'closed' when the server hung up; gives up after `ms`. */
  async next(ms = 3000): Promise<Reply | 'closed' | 'timeout'> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.buffer.length >= 4) {
        const length = this.buffer.readInt32LE(0);
        if (this.buffer.length >= length) {
          const msg = this.buffer.subarray(0, length);
          this.buffer = this.buffer.subarray(length);
          const opCode = msg.readInt32LE(12);
          const flags = msg.readInt32LE(16);
          const docStart = opCode === OP_REPLY ? 36 : 21;
          return { responseTo: msg.readInt32LE(8), opCode, flags, doc: BSON.deserialize(msg.subarray(docStart)) };
        }
      }
      if (this.closed) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiting = undefined;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function hostPort(uri: string): { host: string; port: number } | undefined {
  const m = /^mongodb:\/\/([^/@,]+):(\d+)\/?/.exec(uri);
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
}

await forEachBackend(t, async (t, { backend, db }) => {
  await t.test('unknown command answers CommandNotFound (59)', async (t) => {
    const err = await rejection(db.command({ frobnicate: 1 }));
    t.equal(err.code, 59);
    t.equal(err.codeName, 'CommandNotFound');
    t.equal(err.errmsg ?? err.message, "no such command: 'frobnicate'");
  });

  const address = hostPort(backend.uri);
  if (!address) {
    t.comment('raw wire tests need a single host:port URI without credentials');
    return;
  }
  const raw = async (t: Test): Promise<RawClient> => {
    const c = await RawClient.open(address.host, address.port);
    t.teardown(() => c.close());
    return c;
  };

  await t.test('OP_MSG with a document sequence (kind 1)', async (t) => {
    const c = await raw(t);
    const id = requestId++;
    c.send(opMsg({ insert: 'seq', $db: db.databaseName }, { sequences: { documents: [{ _id: 1 }, { _id: 2 }, { _id: 3 }] }, id }));
    const reply = await c.next();
    if (typeof reply === 'string') return t.fail(reply);
    t.equal(reply.opCode, OP_MSG);
    t.equal(reply.responseTo, id);
    t.equal(reply.doc.ok, 1);
    t.equal(reply.doc.n, 3);
    t.equal(await db.collection<TestDoc>('seq').countDocuments(), 3);
  });

  await t.test('OP_MSG with a valid checksum is accepted', async (t) => {
    const c = await raw(t);
    c.send(opMsg({ ping: 1, $db: 'admin' }, { checksum: true }));
    const reply = await c.next();
    if (typeof reply === 'string') return t.fail(reply);
    t.equal(reply.doc.ok, 1);
  });

  await t.test('moreToCome requests get no reply', async (t) => {
    const c = await raw(t);
    c.send(opMsg({ insert: 'fire', documents: [{ _id: 'x' }], writeConcern: { w: 0 }, $db: db.databaseName }, { flags: 2 }));
    const id = requestId++;
    c.send(opMsg({ find: 'fire', filter: {}, $db: db.databaseName }, { id }));
    const reply = await c.next();
    if (typeof reply === 'string') return t.fail(reply);
    t.equal(reply.responseTo, id, 'the first reply answers the second request');
    t.same(reply.doc.cursor.firstBatch, [{ _id: 'x' }]);
  });

  await t.test('legacy OP_QUERY handshake gets an OP_REPLY', async (t) => {
    const c = await raw(t);
    c.send(opQuery('admin.$cmd', { isMaster: 1, helloOk: true }));
    const reply = await c.next();
    if (typeof reply === 'string') return t.fail(reply);
    t.equal(reply.opCode, OP_REPLY);
    t.equal(reply.doc.ok, 1);
    t.equal(reply.doc.ismaster, true);
    t.ok(reply.doc.maxWireVersion >= 17);
  });

  const malformed: Array<[string, Buffer]> = [
    ['a length below the header size', Buffer.from([8, 0, 0, 0, 1, 2, 3, 4])],
    ['an unknown opCode', Buffer.concat([header(20, 9999), Buffer.alloc(4)])],
    [
      'invalid BSON in the body',
      (() => {
        const body = Buffer.concat([Buffer.alloc(4), Buffer.from([0]), Buffer.from([40, 0, 0, 0, 2, 0x61, 0, 0xff, 0xff, 0xff, 0x7f, 0])]);
        return Buffer.concat([header(16 + body.length, OP_MSG), body]);
      })(),
    ],
    [
      'a bad checksum',
      (() => {
        const m = opMsg({ ping: 1, $db: 'admin' }, { checksum: true });
        m.writeUInt32LE((m.readUInt32LE(m.length - 4) ^ 1) >>> 0, m.length - 4);
        return m;
      })(),
    ],
    [
      'a huge declared length',
      (() => {
        const h = header(0x7fffffff, OP_MSG);
        return h;
      })(),
    ],
  ];
  for (const [what, bytes] of malformed) {
    await t.test(`a message with ${what} closes that connection only`, async (t) => {
      const bystander = await raw(t);
      const c = await raw(t);
      c.send(bytes);
      const outcome = await c.next();
      if (backend.name === 'embedded') {
        t.equal(outcome, 'closed');
      } else {
        // mongod closes on framing errors but answers some parse errors with an error reply.
        t.ok(outcome === 'closed' || (typeof outcome === 'object' && outcome.doc.ok === 0), `mongod: ${JSON.stringify(outcome)}`);
      }
      bystander.send(opMsg({ ping: 1, $db: 'admin' }));
      const reply = await bystander.next();
      t.ok(typeof reply !== 'string' && reply.doc.ok === 1, 'other connections keep working');
      t.equal((await db.command({ ping: 1 })).ok, 1, 'the server keeps serving new requests');
    });
  }
});
