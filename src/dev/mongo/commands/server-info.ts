/**
 * Handshake and diagnostic commands. hello presents this server as the
 * primary of a one-member replica set, which is what lets the driver use
 * sessions, retryable writes and transactions over a plain connection
 * string; it supports the awaitable (streaming) form the driver's monitor
 * uses.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Long, ObjectId, type Document } from 'bson';
import { isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { LOGICAL_SESSION_TIMEOUT_MINUTES, MAX_WIRE_VERSION, REPLICA_SET_NAME, SERVER_VERSION } from '../instance.js';
import { TRANSACTION_LIFETIME_MS } from '../txn/manager.js';
import { MAX_BSON_OBJECT_SIZE } from '../write/validation.js';
import { MAX_MESSAGE_BYTES } from '../wire/messages.js';
import type { CommandContext, CommandDefinition } from './context.js';

/** A fixed election id: this primary never changes. */
const ELECTION_ID = new ObjectId('7fffffff0000000000000001');

function topologyVersion(ctx: CommandContext): Document {
  return { processId: ctx.instance.identity.processId, counter: Long.fromNumber(0) };
}

/**
 * Awaitable hello: when the client already knows our current topology
 * version, wait up to maxAwaitTimeMS (the topology never changes, so the
 * full time) before answering.
 */
async function awaitTopologyChange(ctx: CommandContext): Promise<void> {
  const tv = ctx.body.topologyVersion;
  const maxAwait = ctx.body.maxAwaitTimeMS;
  if (!isPlainObject(tv) || maxAwait === undefined) return;
  const sameProcess = tv.processId instanceof ObjectId && tv.processId.equals(ctx.instance.identity.processId);
  if (!sameProcess) return;
  const signal = AbortSignal.any([ctx.connection.closed, ctx.instance.shutdown.signal]);
  await delay(Math.max(0, Number(maxAwait)), undefined, { signal }).catch(() => undefined);
}

async function hello(ctx: CommandContext): Promise<Document> {
  await awaitTopologyChange(ctx);
  const me = ctx.instance.identity.me;
  const now = new Date();
  const opTime = { ts: ctx.instance.clusterTime(), t: Long.fromNumber(1) };
  const legacy = ctx.name !== 'hello';
  const reply: Document = {};
  if (ctx.body.helloOk === true) reply.helloOk = true;
  reply.topologyVersion = topologyVersion(ctx);
  if (legacy) reply.ismaster = true;
  else reply.isWritablePrimary = true;
  Object.assign(reply, {
    hosts: [me],
    setName: REPLICA_SET_NAME,
    setVersion: 1,
    secondary: false,
    primary: me,
    me,
    electionId: ELECTION_ID,
    lastWrite: { opTime, lastWriteDate: now, majorityOpTime: opTime, majorityWriteDate: now },
    maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
    maxMessageSizeBytes: MAX_MESSAGE_BYTES,
    maxWriteBatchSize: 100000,
    localTime: now,
    logicalSessionTimeoutMinutes: LOGICAL_SESSION_TIMEOUT_MINUTES,
    connectionId: ctx.connection.id,
    minWireVersion: 0,
    maxWireVersion: MAX_WIRE_VERSION,
    readOnly: false,
    ok: 1,
  });
  return reply;
}

function buildInfo(): Document {
  const [major, minor, patch] = SERVER_VERSION.split('.').map(Number);
  return {
    version: SERVER_VERSION,
    gitVersion: 'embedded',
    modules: [],
    allocator: 'system',
    javascriptEngine: 'none',
    sysInfo: 'deprecated',
    versionArray: [major, minor, patch, 0],
    bits: 64,
    debug: false,
    maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
    storageEngines: ['embedded'],
    ok: 1,
  };
}

/** mongod 8.0's metrics.query.planCache.classic counters (plan-cache.ts says what each counts). */
function planCacheMetrics(ctx: CommandContext): Document {
  const m = ctx.instance.planCaches.metrics;
  return {
    hits: Long.fromNumber(m.hits),
    misses: Long.fromNumber(m.misses),
    replanned: Long.fromNumber(m.replanned),
    skipped: Long.fromNumber(m.skipped),
  };
}

function serverStatus(ctx: CommandContext): Document {
  const uptimeMillis = Date.now() - ctx.instance.identity.startedAt.getTime();
  const [host] = ctx.instance.identity.me.split(':');
  return {
    host,
    version: SERVER_VERSION,
    process: 'mongod',
    pid: Long.fromNumber(process.pid),
    uptime: Math.floor(uptimeMillis / 1000),
    uptimeMillis: Long.fromNumber(uptimeMillis),
    uptimeEstimate: Long.fromNumber(Math.floor(uptimeMillis / 1000)),
    localTime: new Date(),
    connections: {
      current: ctx.instance.connectionsOpen,
      available: 1_000_000,
      totalCreated: ctx.instance.connectionsCreated,
    },
    storageEngine: { name: 'lmdb', supportsCommittedReads: true, persistent: ctx.instance.engine.backend.persistent },
    transactions: ctx.instance.txns.describe(),
    repl: { setName: REPLICA_SET_NAME, isWritablePrimary: true, hosts: [ctx.instance.identity.me], me: ctx.instance.identity.me },
    mem: { bits: 64, resident: Math.round(process.memoryUsage().rss / (1024 * 1024)) },
    metrics: {
      query: { planCache: { classic: planCacheMetrics(ctx) } },
      // Keys and documents examined by the plans that ran (a rejected plan's trial work is not added).
      queryExecutor: {
        scanned: Long.fromNumber(ctx.instance.queryExecutor.scanned),
        scannedObjects: Long.fromNumber(ctx.instance.queryExecutor.scannedObjects),
      },
    },
    ok: 1,
  };
}

const PARAMETERS: Record<string, unknown> = {
  featureCompatibilityVersion: { version: SERVER_VERSION.split('.').slice(0, 2).join('.') },
  transactionLifetimeLimitSeconds: TRANSACTION_LIFETIME_MS / 1000,
  maxTransactionLockRequestTimeoutMillis: 5,
  authenticationMechanisms: [],
  logLevel: 0,
  cursorTimeoutMillis: Long.fromNumber(600000),
  localLogicalSessionTimeoutMinutes: LOGICAL_SESSION_TIMEOUT_MINUTES,
};

function getParameter(ctx: CommandContext): Document {
  const all = ctx.body.getParameter === '*' || (isPlainObject(ctx.body.getParameter) && ctx.body.getParameter.allParameters === true);
  const reply: Document = {};
  for (const [k, v] of Object.entries(PARAMETERS)) {
    if (all || (k in ctx.body && k !== 'getParameter')) reply[k] = v;
  }
  if (Object.keys(reply).length === 0) throw new CommandError(ErrorCode.InvalidOptions, 'no option found to get');
  reply.ok = 1;
  return reply;
}

function replSetGetStatus(ctx: CommandContext): Document {
  const now = new Date();
  const opTime = { ts: ctx.instance.clusterTime(), t: Long.fromNumber(1) };
  return {
    set: REPLICA_SET_NAME,
    date: now,
    myState: 1,
    term: Long.fromNumber(1),
    members: [
      {
        _id: 0,
        name: ctx.instance.identity.me,
        health: 1,
        state: 1,
        stateStr: 'PRIMARY',
        uptime: Math.floor((Date.now() - ctx.instance.identity.startedAt.getTime()) / 1000),
        optime: opTime,
        optimeDate: now,
        self: true,
      },
    ],
    ok: 1,
  };
}

async function fsync(ctx: CommandContext): Promise<Document> {
  await ctx.instance.engine.durable();
  return { numFiles: 1, ok: 1 };
}

export const serverInfoCommands: Record<string, CommandDefinition> = {
  hello: { handler: hello, inTransaction: true },
  isMaster: { handler: hello, inTransaction: true },
  ismaster: { handler: hello, inTransaction: true },
  ping: { handler: () => ({ ok: 1 }), inTransaction: true },
  buildInfo: { handler: buildInfo, inTransaction: true },
  buildinfo: { handler: buildInfo, inTransaction: true },
  serverStatus: { handler: serverStatus },
  getParameter: { handler: getParameter, adminOnly: true },
  connectionStatus: {
    handler: () => ({ authInfo: { authenticatedUsers: [], authenticatedUserRoles: [] }, ok: 1 }),
    inTransaction: true,
  },
  getLastError: { handler: () => ({ n: 0, err: null, ok: 1 }) },
  getlasterror: { handler: () => ({ n: 0, err: null, ok: 1 }) },
  whatsmyuri: { handler: (ctx) => ({ you: ctx.connection.remote, ok: 1 }) },
  hostInfo: {
    handler: () => ({
      system: { currentTime: new Date(), hostname: 'embedded', numCores: 1 },
      os: { type: process.platform },
      extra: {},
      ok: 1,
    }),
  },
  getCmdLineOpts: { handler: () => ({ argv: ['mongod'], parsed: {}, ok: 1 }), adminOnly: true },
  getLog: { handler: () => ({ totalLinesWritten: 0, log: [], ok: 1 }), adminOnly: true },
  replSetGetStatus: { handler: replSetGetStatus, adminOnly: true },
  fsync: { handler: fsync, adminOnly: true },
  logout: { handler: () => ({ ok: 1 }) },
};
