/**
 * Durable state: an append-only JSON-lines journal. Line 1 is the genesis (accounts and
 * their keys), every further line one handled transaction with all its effects. A result
 * is written and fdatasync'ed before it is applied or acknowledged, so a kill -9 loses
 * nothing a client was told about. Replay applies the stored effects instead of re-running
 * the transactions, so receipts, timestamps and running hashes come back byte for byte
 * even if the handling code changes later.
 *
 * A process killed in the middle of a write leaves a last line without its newline; that
 * partial line was never acknowledged and is cut off on open. Damage anywhere else stops
 * the start with an error rather than silently dropping history.
 */
import { closeSync, existsSync, fdatasyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDirectory } from './files.js';
import { formatEntityId, parseEntityId, type EntityId, type TransactionIdParts } from './ids.js';
import type {
  AccountState,
  ChunkInfo,
  Genesis,
  TopicDefinition,
  TopicMessage,
  TransactionResult,
  TransactionType,
} from './ledger-state.js';
import { proto, statusName, type ResponseCode } from './proto.js';

export const JOURNAL_FILE = 'journal.jsonl';
const FORMAT = 'local-hedera-journal/1';

/** Where handled transactions go; the in-memory network uses a journal that keeps nothing. */
export interface Journal {
  append(result: TransactionResult): void;
  close(): void;
}

export const memoryJournal: Journal = {
  append() {},
  close() {},
};

// ---------------------------------------------------------------------------------------
// JSON codec. bigints as decimal strings, bytes as base64, statuses by name.

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

const b64 = (b: Buffer): string => b.toString('base64');
const unb64 = (s: string): Buffer => Buffer.from(s, 'base64');

function obj(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`journal: ${what} is not an object`);
  return value as Record<string, unknown>;
}
function str(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new Error(`journal: field ${key} is not a string`);
  return v;
}
function optStr(o: Record<string, unknown>, key: string): string | null {
  const v = o[key];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') throw new Error(`journal: field ${key} is not a string`);
  return v;
}
function num(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number') throw new Error(`journal: field ${key} is not a number`);
  return v;
}
function arr(o: Record<string, unknown>, key: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) throw new Error(`journal: field ${key} is not an array`);
  return v;
}
function entity(text: string): EntityId {
  const id = parseEntityId(text);
  if (!id) throw new Error(`journal: bad entity id ${text}`);
  return id;
}
function status(name: string): ResponseCode {
  const code = (proto.ResponseCodeEnum as unknown as Record<string, number | undefined>)[name];
  if (code === undefined) throw new Error(`journal: unknown status ${name}`);
  return code as ResponseCode;
}

function encodeTxId(id: TransactionIdParts): Json {
  return { payer: formatEntityId(id.payer), validStartNs: id.validStartNs.toString(), nonce: id.nonce, scheduled: id.scheduled };
}
function decodeTxId(value: unknown): TransactionIdParts {
  const o = obj(value, 'transaction id');
  return {
    payer: entity(str(o, 'payer')),
    validStartNs: BigInt(str(o, 'validStartNs')),
    nonce: num(o, 'nonce'),
    scheduled: o['scheduled'] === true,
  };
}

function encodeTopic(t: TopicDefinition): Json {
  return {
    id: formatEntityId(t.id),
    memo: t.memo,
    adminKey: t.adminKey ? b64(t.adminKey) : null,
    submitKey: t.submitKey ? b64(t.submitKey) : null,
    autoRenewPeriodSeconds: t.autoRenewPeriodSeconds.toString(),
    autoRenewAccount: t.autoRenewAccount,
    createdNs: t.createdNs.toString(),
    expirationSeconds: t.expirationSeconds.toString(),
  };
}
function decodeTopic(value: unknown): TopicDefinition {
  const o = obj(value, 'topic');
  const adminKey = optStr(o, 'adminKey');
  const submitKey = optStr(o, 'submitKey');
  return {
    id: entity(str(o, 'id')),
    memo: str(o, 'memo'),
    adminKey: adminKey === null ? null : unb64(adminKey),
    submitKey: submitKey === null ? null : unb64(submitKey),
    autoRenewPeriodSeconds: BigInt(str(o, 'autoRenewPeriodSeconds')),
    autoRenewAccount: optStr(o, 'autoRenewAccount'),
    createdNs: BigInt(str(o, 'createdNs')),
    expirationSeconds: BigInt(str(o, 'expirationSeconds')),
  };
}

function encodeMessage(m: TopicMessage): Json {
  return {
    topicId: m.topicId,
    sequenceNumber: m.sequenceNumber.toString(),
    consensusNs: m.consensusNs.toString(),
    runningHash: b64(m.runningHash),
    runningHashVersion: m.runningHashVersion,
    message: b64(m.message),
    payer: m.payer,
    chunkInfo: m.chunkInfo
      ? { initialTransactionId: encodeTxId(m.chunkInfo.initialTransactionId), number: m.chunkInfo.number, total: m.chunkInfo.total }
      : null,
  };
}
function decodeMessage(value: unknown): TopicMessage {
  const o = obj(value, 'message');
  let chunkInfo: ChunkInfo | null = null;
  if (o['chunkInfo'] !== null && o['chunkInfo'] !== undefined) {
    const c = obj(o['chunkInfo'], 'chunk info');
    chunkInfo = { initialTransactionId: decodeTxId(c['initialTransactionId']), number: num(c, 'number'), total: num(c, 'total') };
  }
  return {
    topicId: str(o, 'topicId'),
    sequenceNumber: BigInt(str(o, 'sequenceNumber')),
    consensusNs: BigInt(str(o, 'consensusNs')),
    runningHash: unb64(str(o, 'runningHash')),
    runningHashVersion: num(o, 'runningHashVersion'),
    message: unb64(str(o, 'message')),
    payer: str(o, 'payer'),
    chunkInfo,
  };
}

export function encodeResult(r: TransactionResult): Json {
  return {
    kind: 'transaction',
    transactionId: encodeTxId(r.transactionId),
    consensusNs: r.consensusNs.toString(),
    type: r.type,
    status: statusName(r.status),
    node: r.node,
    transactionHash: b64(r.transactionHash),
    memo: r.memo,
    maxFee: r.maxFee.toString(),
    chargedFee: r.chargedFee.toString(),
    validDurationSeconds: r.validDurationSeconds.toString(),
    transfers: r.transfers.map((t) => ({ account: t.account, amount: t.amount.toString() })),
    entityId: r.entityId,
    createdTopic: r.createdTopic ? encodeTopic(r.createdTopic) : null,
    message: r.message ? encodeMessage(r.message) : null,
  };
}

const TYPES: readonly TransactionType[] = ['CONSENSUSCREATETOPIC', 'CONSENSUSSUBMITMESSAGE', 'CRYPTOTRANSFER'];

export function decodeResult(value: unknown): TransactionResult {
  const o = obj(value, 'entry');
  const type = str(o, 'type');
  if (!(TYPES as readonly string[]).includes(type)) throw new Error(`journal: unknown transaction type ${type}`);
  return {
    transactionId: decodeTxId(o['transactionId']),
    consensusNs: BigInt(str(o, 'consensusNs')),
    type: type as TransactionType,
    status: status(str(o, 'status')),
    node: str(o, 'node'),
    transactionHash: unb64(str(o, 'transactionHash')),
    memo: str(o, 'memo'),
    maxFee: BigInt(str(o, 'maxFee')),
    chargedFee: BigInt(str(o, 'chargedFee')),
    validDurationSeconds: BigInt(str(o, 'validDurationSeconds')),
    transfers: arr(o, 'transfers').map((t) => {
      const to = obj(t, 'transfer');
      return { account: str(to, 'account'), amount: BigInt(str(to, 'amount')) };
    }),
    entityId: optStr(o, 'entityId'),
    createdTopic: o['createdTopic'] ? decodeTopic(o['createdTopic']) : null,
    message: o['message'] ? decodeMessage(o['message']) : null,
  };
}

function encodeGenesis(g: Genesis): Json {
  return {
    kind: 'genesis',
    format: FORMAT,
    network: 'local (not Hedera)',
    firstEntityNum: g.firstEntityNum.toString(),
    accounts: g.accounts.map((a) => ({ id: a.id, balance: a.balance.toString(), key: a.key ? b64(a.key) : null })),
  };
}

function decodeGenesis(value: unknown): Genesis {
  const o = obj(value, 'genesis');
  if (o['kind'] !== 'genesis' || o['format'] !== FORMAT) throw new Error('journal: first line is not a genesis of a known format');
  const accounts: AccountState[] = arr(o, 'accounts').map((a) => {
    const ao = obj(a, 'account');
    const key = optStr(ao, 'key');
    return { id: str(ao, 'id'), balance: BigInt(str(ao, 'balance')), key: key === null ? null : unb64(key) };
  });
  return { accounts, firstEntityNum: BigInt(str(o, 'firstEntityNum')) };
}

// ---------------------------------------------------------------------------------------
// File handling

class FileJournal implements Journal {
  constructor(private fd: number | null) {}

  append(result: TransactionResult): void {
    this.write(JSON.stringify(encodeResult(result)) + '\n');
  }

  write(line: string): void {
    if (this.fd === null) throw new Error('journal is closed');
    const bytes = Buffer.from(line, 'utf8');
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(this.fd, bytes, offset, bytes.length - offset);
    // The caller acknowledges right after this returns, so it must be on disk.
    fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export interface OpenedJournal {
  journal: Journal;
  genesis: Genesis;
  results: TransactionResult[];
  /** Bytes of an unfinished last line that were cut off (0 normally). */
  truncatedBytes: number;
}

/**
 * Opens (or creates, with `makeGenesis`) the journal in `dir` and reads it back. The caller
 * replays `results` in order onto a LedgerState built from `genesis`.
 */
export function openJournal(dir: string, makeGenesis: () => Genesis): OpenedJournal {
  const path = join(dir, JOURNAL_FILE);
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const lastNewline = text.lastIndexOf('\n');
  const complete = lastNewline < 0 ? '' : text.slice(0, lastNewline + 1);
  const truncatedBytes = Buffer.byteLength(text, 'utf8') - Buffer.byteLength(complete, 'utf8');

  const isNew = !existsSync(path);
  const fd = openSync(path, isNew ? 'w+' : 'r+');
  if (isNew) fsyncDirectory(dir);
  if (truncatedBytes > 0) {
    ftruncateSync(fd, Buffer.byteLength(complete, 'utf8'));
    fdatasyncSync(fd);
  }
  closeSync(fd);
  const journal = new FileJournal(openSync(path, 'a'));

  const lines = complete.split('\n').filter((l) => l.length > 0);
  if (lines.length === 0) {
    const genesis = makeGenesis();
    journal.write(JSON.stringify(encodeGenesis(genesis)) + '\n');
    return { journal, genesis, results: [], truncatedBytes };
  }
  const parse = (line: string, index: number): unknown => {
    try {
      return JSON.parse(line) as unknown;
    } catch {
      throw new Error(`journal ${path}: line ${index + 1} is damaged`);
    }
  };
  const genesis = decodeGenesis(parse(lines[0]!, 0));
  const results = lines.slice(1).map((line, i) => decodeResult(parse(line, i + 1)));
  return { journal, genesis, results, truncatedBytes };
}
