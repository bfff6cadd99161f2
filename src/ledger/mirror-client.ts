/**
 * The few mirror-node REST calls a verifier needs (https://docs.hedera.com, "Mirror Node REST API"):
 *
 *   GET /api/v1/topics/{topicId}/messages/{sequenceNumber}    one topic message
 *   GET /api/v1/topics/{topicId}/messages?sequencenumber=...  a range, paged through links.next
 *   GET /api/v1/transactions/{transactionId}                  a transaction's result and consensus timestamp
 *
 * The mirror node is a public, independent copy of the ledger: the $verify operation, the worker's recovery
 * and the CLIs all read the published batch roots from it, never from our own database. A 404 is an answer
 * ("not there"); a refused connection, a timeout, a 5xx or an unparseable body is MirrorUnavailableError, which
 * callers report as "could not check" rather than as tampering.
 *
 * It needs nothing of Node (fetch, AbortSignal), so the verification page (src/verify-ui/browser) uses it as it is,
 * with the request options and the wording of a failure a browser calls for (MirrorClientOptions).
 */
import { mirrorTransactionId } from './hedera-ids.js';

export class MirrorUnavailableError extends Error {
  constructor(
    readonly url: string,
    detail: string,
  ) {
    super(`mirror node ${url} could not be read: ${detail}`);
    this.name = 'MirrorUnavailableError';
  }
}

/** A topic message as the mirror node returns it (the fields verification reads). */
export interface MirrorTopicMessage {
  consensus_timestamp: string;
  /** base64 of the message bytes */
  message: string;
  payer_account_id: string;
  /** base64 of the 48-byte running hash after this message */
  running_hash: string;
  running_hash_version: number;
  sequence_number: number;
  topic_id: string;
  chunk_info?: { number: number; total: number } | null;
}

export interface MirrorTransaction {
  consensus_timestamp: string;
  result: string;
  transaction_id: string;
  entity_id?: string | null;
  name?: string;
}

export interface MirrorClientOptions {
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
  /** Added to every request (a browser page: no credentials, no cache, no referrer). */
  requestInit?: Pick<RequestInit, 'credentials' | 'cache' | 'referrerPolicy'>;
  /** Says why a request got no HTTP answer at all; default: the network error's code or message. */
  describeUnreachable?: (error: unknown, timeoutMs: number) => string;
}

function networkFailure(error: unknown): string {
  return (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
}

const PAGE_LIMIT = 100;

function isTopicMessage(value: unknown): value is MirrorTopicMessage {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.consensus_timestamp === 'string' &&
    typeof v.message === 'string' &&
    typeof v.payer_account_id === 'string' &&
    typeof v.running_hash === 'string' &&
    typeof v.running_hash_version === 'number' &&
    typeof v.sequence_number === 'number' &&
    typeof v.topic_id === 'string'
  );
}

export class MirrorClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly requestInit: MirrorClientOptions['requestInit'];
  private readonly describeUnreachable: NonNullable<MirrorClientOptions['describeUnreachable']>;

  constructor(baseUrl: string, options: MirrorClientOptions = {}) {
    // Accept ".../api/v1" and a trailing slash too: people paste either.
    this.baseUrl = baseUrl.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.requestInit = options.requestInit;
    this.describeUnreachable = options.describeUnreachable ?? networkFailure;
  }

  /** GET a mirror path; null on 404. */
  private async get(path: string): Promise<unknown> {
    const url = `${this.baseUrl}${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        ...this.requestInit,
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new MirrorUnavailableError(this.baseUrl, this.describeUnreachable(error, this.timeoutMs));
    }
    if (response.status === 404) {
      await response.arrayBuffer().catch(() => undefined);
      return null;
    }
    if (!response.ok) {
      await response.arrayBuffer().catch(() => undefined);
      throw new MirrorUnavailableError(this.baseUrl, `HTTP ${response.status} for ${path}`);
    }
    try {
      return await response.json();
    } catch {
      throw new MirrorUnavailableError(this.baseUrl, `a body that is not JSON for ${path}`);
    }
  }

  /** One topic message by sequence number; null when the mirror has no such message (yet). */
  async topicMessage(topicId: string, sequenceNumber: number): Promise<MirrorTopicMessage | null> {
    const body = await this.get(`/api/v1/topics/${encodeURIComponent(topicId)}/messages/${sequenceNumber}`);
    if (body === null) return null;
    if (!isTopicMessage(body)) throw new MirrorUnavailableError(this.baseUrl, 'an unexpected topic message shape');
    return body;
  }

  /** The topic message with this consensus timestamp; null when there is none. */
  async topicMessageAt(consensusTimestamp: string): Promise<MirrorTopicMessage | null> {
    const body = await this.get(`/api/v1/topics/messages/${encodeURIComponent(consensusTimestamp)}`);
    if (body === null) return null;
    if (!isTopicMessage(body)) throw new MirrorUnavailableError(this.baseUrl, 'an unexpected topic message shape');
    return body;
  }

  /**
   * Messages from..to (inclusive) in sequence order, following links.next. Bounded: at most
   * ceil((to - from + 1) / 100) + 1 pages are fetched.
   */
  async topicMessages(topicId: string, from: number, to: number): Promise<MirrorTopicMessage[]> {
    const out: MirrorTopicMessage[] = [];
    let path: string | null =
      `/api/v1/topics/${encodeURIComponent(topicId)}/messages?sequencenumber=gte:${from}&sequencenumber=lte:${to}&order=asc&limit=${PAGE_LIMIT}`;
    const maxPages = Math.ceil((to - from + 1) / PAGE_LIMIT) + 1;
    for (let page = 0; path !== null && page < maxPages; page++) {
      const body = (await this.get(path)) as { messages?: unknown; links?: { next?: unknown } } | null;
      if (body === null) return out;
      if (!Array.isArray(body.messages) || !body.messages.every(isTopicMessage)) {
        throw new MirrorUnavailableError(this.baseUrl, 'an unexpected topic messages page');
      }
      out.push(...body.messages);
      const next = body.links?.next;
      path = typeof next === 'string' && body.messages.length > 0 ? next : null;
    }
    return out.filter((m) => m.sequence_number >= from && m.sequence_number <= to);
  }

  /** Every record the mirror has for a transaction id (either form); null when it has none. */
  async transactions(transactionId: string): Promise<MirrorTransaction[] | null> {
    const id = mirrorTransactionId(transactionId);
    if (!id) throw new TypeError(`not a transaction id: ${transactionId}`);
    const body = (await this.get(`/api/v1/transactions/${id}`)) as { transactions?: unknown } | null;
    if (body === null) return null;
    if (!Array.isArray(body.transactions)) throw new MirrorUnavailableError(this.baseUrl, 'an unexpected transactions shape');
    return body.transactions as MirrorTransaction[];
  }
}
