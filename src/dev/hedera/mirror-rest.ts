/**
 * A mirror-node REST API over the local ledger: the topic and transaction endpoints of
 * Hedera's mirror node (/api/v1/...), with the same JSON field names, timestamp and id
 * formats, error bodies ({ _status: { messages: [{ message }] } }) and `links.next` paging,
 * so code written against testnet's mirror node runs unchanged against this one.
 *
 * It reads the LedgerState directly: everything in it has reached (local) consensus, which
 * is exactly what a mirror node shows.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  formatEntityId,
  formatTimestamp,
  parseEntityId,
  parseTimestamp,
  parseTransactionId,
  transactionIdKey,
  transactionIdMirrorString,
  type TransactionIdParts,
} from './ids.js';
import type { LedgerState, TopicMessage, TopicState, TransactionResult } from './ledger-state.js';
import { statusName } from './proto.js';
import { keyToMirrorJson } from './signatures.js';

export const NETWORK_LABEL = 'local (not Hedera)';
const DEFAULT_LIMIT = 25;
const MAX_LIMIT = 100;

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const invalid = (name: string) => new HttpError(400, `Invalid parameter: ${name}`);
const notFound = (message = 'Not found') => new HttpError(404, message);

// ---------------------------------------------------------------------------------------
// JSON shapes

function transactionIdJson(id: TransactionIdParts): Json {
  return {
    account_id: formatEntityId(id.payer),
    nonce: id.nonce,
    scheduled: id.scheduled,
    transaction_valid_start: formatTimestamp(id.validStartNs),
  };
}

export function messageJson(m: TopicMessage, encoding: 'base64' | 'utf-8' = 'base64'): Json {
  return {
    chunk_info: m.chunkInfo
      ? {
          initial_transaction_id: transactionIdJson(m.chunkInfo.initialTransactionId),
          number: m.chunkInfo.number,
          total: m.chunkInfo.total,
        }
      : null,
    consensus_timestamp: formatTimestamp(m.consensusNs),
    message: encoding === 'utf-8' ? m.message.toString('utf8') : m.message.toString('base64'),
    payer_account_id: m.payer,
    running_hash: m.runningHash.toString('base64'),
    running_hash_version: m.runningHashVersion,
    sequence_number: Number(m.sequenceNumber),
    topic_id: m.topicId,
  };
}

function topicJson(t: TopicState): Json {
  const created = formatTimestamp(t.createdNs);
  return {
    admin_key: keyToMirrorJson(t.adminKey),
    auto_renew_account: t.autoRenewAccount,
    auto_renew_period: Number(t.autoRenewPeriodSeconds),
    created_timestamp: created,
    custom_fees: { created_timestamp: created, fixed_fees: [] },
    deleted: false,
    fee_exempt_key_list: [],
    fee_schedule_key: null,
    memo: t.memo,
    submit_key: keyToMirrorJson(t.submitKey),
    timestamp: { from: created, to: null },
    topic_id: formatEntityId(t.id),
  };
}

function transactionJson(r: TransactionResult): Json {
  return {
    assessed_custom_fees: [],
    batch_key: null,
    bytes: null,
    charged_tx_fee: Number(r.chargedFee),
    consensus_timestamp: formatTimestamp(r.consensusNs),
    entity_id: r.entityId,
    max_custom_fees: [],
    max_fee: r.maxFee.toString(),
    memo_base64: Buffer.from(r.memo, 'utf8').toString('base64'),
    name: r.type,
    nft_transfers: [],
    node: r.node,
    nonce: r.transactionId.nonce,
    parent_consensus_timestamp: null,
    result: statusName(r.status),
    scheduled: r.transactionId.scheduled,
    staking_reward_transfers: [],
    token_transfers: [],
    transaction_hash: r.transactionHash.toString('base64'),
    transaction_id: transactionIdMirrorString(r.transactionId),
    transfers: r.transfers.map((t) => ({ account: t.account, amount: Number(t.amount), is_approval: false })),
    valid_duration_seconds: r.validDurationSeconds.toString(),
    valid_start_timestamp: formatTimestamp(r.transactionId.validStartNs),
  };
}

// ---------------------------------------------------------------------------------------
// Topic message filters

type Op = 'eq' | 'gt' | 'gte' | 'lt' | 'lte' | 'ne';
interface Filter {
  op: Op;
  value: bigint;
}

function parseFilters(values: string[], name: string, allowed: readonly Op[], parse: (v: string) => bigint | null): Filter[] {
  return values.map((raw) => {
    const m = /^(?:(eq|gt|gte|lt|lte|ne):)?(.+)$/.exec(raw);
    const op = (m?.[1] ?? 'eq') as Op;
    const value = m ? parse(m[2]!) : null;
    if (value === null || !allowed.includes(op)) throw invalid(name);
    return { op, value };
  });
}

/** First index whose key is >= (or > when `strict`) the value; keys are ascending. */
function bound(messages: readonly TopicMessage[], key: (m: TopicMessage) => bigint, value: bigint, strict: boolean): number {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const k = key(messages[mid]!);
    if (k < value || (strict && k === value)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function linkValue(value: string): string {
  // The mirror node's links keep "gt:" readable.
  return encodeURIComponent(value).replace(/%3A/gi, ':');
}

function listMessages(topic: TopicState, idText: string, params: URLSearchParams): Json {
  const limitValues = params.getAll('limit');
  let limit = DEFAULT_LIMIT;
  if (limitValues.length > 0) {
    const last = limitValues[limitValues.length - 1]!;
    if (!/^\d{1,10}$/.test(last) || Number(last) < 1) throw invalid('limit');
    limit = Math.min(Number(last), MAX_LIMIT);
  }
  const orderValue = (params.get('order') ?? 'asc').toLowerCase();
  if (orderValue !== 'asc' && orderValue !== 'desc') throw invalid('order');
  const order = orderValue;
  const encodingValue = (params.get('encoding') ?? 'base64').toLowerCase();
  const encoding = encodingValue === 'utf-8' || encodingValue === 'utf8' ? 'utf-8' : 'base64';

  const seqFilters = parseFilters(params.getAll('sequencenumber'), 'sequencenumber', ['eq', 'gt', 'gte', 'lt', 'lte'], (v) =>
    /^\d{1,19}$/.test(v) ? BigInt(v) : null,
  );
  const tsFilters = parseFilters(params.getAll('timestamp'), 'timestamp', ['eq', 'gt', 'gte', 'lt', 'lte', 'ne'], (v) =>
    /^\d{1,10}(\.\d{1,9})?$/.test(v) ? parseTimestamp(v) : null,
  );

  // Messages are ascending in both sequence number and timestamp: filters become index bounds.
  const messages = topic.messages;
  const seq = (m: TopicMessage) => m.sequenceNumber;
  const ts = (m: TopicMessage) => m.consensusNs;
  let lo = 0;
  let hi = messages.length;
  const excluded = new Set<bigint>();
  for (const f of seqFilters) {
    if (f.op === 'eq' || f.op === 'gte') lo = Math.max(lo, bound(messages, seq, f.value, false));
    if (f.op === 'gt') lo = Math.max(lo, bound(messages, seq, f.value, true));
    if (f.op === 'eq' || f.op === 'lte') hi = Math.min(hi, bound(messages, seq, f.value, true));
    if (f.op === 'lt') hi = Math.min(hi, bound(messages, seq, f.value, false));
  }
  for (const f of tsFilters) {
    if (f.op === 'ne') excluded.add(f.value);
    if (f.op === 'eq' || f.op === 'gte') lo = Math.max(lo, bound(messages, ts, f.value, false));
    if (f.op === 'gt') lo = Math.max(lo, bound(messages, ts, f.value, true));
    if (f.op === 'eq' || f.op === 'lte') hi = Math.min(hi, bound(messages, ts, f.value, true));
    if (f.op === 'lt') hi = Math.min(hi, bound(messages, ts, f.value, false));
  }

  const page: TopicMessage[] = [];
  const step = order === 'asc' ? 1 : -1;
  // Bounded by the index range and the limit.
  for (let i = order === 'asc' ? lo : hi - 1; i >= lo && i < hi && page.length < limit; i += step) {
    const m = messages[i]!;
    if (!excluded.has(m.consensusNs)) page.push(m);
  }

  let next: string | null = null;
  if (page.length === limit && page.length > 0) {
    // As the mirror node does: same query, with the timestamp bound moved past the last row.
    const last = formatTimestamp(page[page.length - 1]!.consensusNs);
    const forward = order === 'asc' ? ['gt:', 'gte:'] : ['lt:', 'lte:'];
    const kept: string[] = [];
    for (const [k, v] of params) {
      if (k === 'timestamp' && forward.some((p) => v.startsWith(p))) continue;
      if (k === 'limit') continue;
      kept.push(`${encodeURIComponent(k)}=${linkValue(v)}`);
    }
    kept.unshift(`limit=${limit}`);
    kept.push(`timestamp=${order === 'asc' ? 'gt' : 'lt'}:${last}`);
    next = `/api/v1/topics/${idText}/messages?${kept.join('&')}`;
  }
  return { messages: page.map((m) => messageJson(m, encoding)), links: { next } };
}

// ---------------------------------------------------------------------------------------
// Routing

function route(state: LedgerState, info: Json, path: string, params: URLSearchParams): Json {
  if (path === '/' || path === '/api/v1' || path === '/api/v1/') return info;

  let m = /^\/api\/v1\/topics\/messages\/([^/]+)$/.exec(path);
  if (m) {
    const text = decodeURIComponent(m[1]!);
    const ns = /^\d{1,10}(\.\d{1,9})?$/.test(text) ? parseTimestamp(text) : null;
    if (ns === null) throw invalid('consensus_timestamp');
    const message = state.messageAt(ns);
    if (!message) throw notFound();
    return messageJson(message);
  }

  m = /^\/api\/v1\/topics\/([^/]+)(?:\/messages(?:\/([^/]+))?)?$/.exec(path);
  if (m) {
    const idText = decodeURIComponent(m[1]!);
    const id = parseEntityId(idText);
    const isMessages = path.includes('/messages');
    const seqText = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    if (!id) throw invalid('topic.id');
    if (seqText !== undefined && !/^\d{1,19}$/.test(seqText)) throw invalid('sequencenumber');
    const topic = state.topics.get(formatEntityId(id));
    if (!isMessages) {
      if (!topic) throw notFound();
      return topicJson(topic);
    }
    if (!topic) throw notFound(`No such topic id - ${idText}`);
    if (seqText === undefined) return listMessages(topic, idText, params);
    const seq = BigInt(seqText);
    const message = seq >= 1n && seq <= BigInt(topic.messages.length) ? topic.messages[Number(seq) - 1] : undefined;
    if (!message) throw notFound();
    return messageJson(message);
  }

  m = /^\/api\/v1\/transactions\/([^/]+)$/.exec(path);
  if (m) {
    const id = parseTransactionId(decodeURIComponent(m[1]!));
    if (!id) {
      throw new HttpError(
        400,
        'Invalid Transaction id. Please use \\shard.realm.num-sss-nnn\\ format where sss are seconds and nnn are nanoseconds',
      );
    }
    const result = state.transaction(transactionIdKey(id));
    if (!result) throw notFound();
    return { transactions: [transactionJson(result)] };
  }

  throw notFound();
}

export interface MirrorRest {
  port: number;
  close(): Promise<void>;
}

export async function startMirrorRest(opts: {
  host: string;
  port: number;
  state: LedgerState;
  info: Record<string, Json>;
  log: (msg: string) => void;
}): Promise<MirrorRest> {
  const info: Json = { network: NETWORK_LABEL, ...opts.info };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: Json): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        // Says on every response what this is, without touching the Hedera JSON shapes.
        'x-ledger-network': NETWORK_LABEL,
        // As Hedera's public mirror nodes do: a verifier running in a browser page (any origin, or a saved file)
        // reads the ledger directly. The data is public; no credentials are involved.
        'access-control-allow-origin': '*',
        'access-control-expose-headers': 'x-ledger-network',
      });
      res.end(req.method === 'HEAD' ? undefined : text);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'Method not allowed');
      const url = new URL(req.url ?? '/', 'http://local');
      send(200, route(opts.state, info, url.pathname, url.searchParams));
    } catch (e) {
      if (e instanceof HttpError) {
        send(e.status, { _status: { messages: [{ message: e.message }] } });
      } else {
        opts.log(`mirror REST error: ${(e as Error).stack ?? String(e)}`);
        send(500, { _status: { messages: [{ message: 'Internal error' }] } });
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
