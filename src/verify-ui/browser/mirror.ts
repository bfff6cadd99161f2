/// <reference lib="dom" />
/**
 * The two mirror-node REST calls the page needs, as src/ledger/mirror-client.ts makes them, with the browser's
 * fetch:
 *
 *   GET /api/v1/topics/{topicId}/messages/{sequenceNumber}   one topic message
 *   GET /api/v1/topics/messages/{consensusTimestamp}         the message at a consensus time
 *
 * A 404 is an answer ("not there"); anything else that is not a well-formed answer is MirrorUnavailableError,
 * reported as "could not check", never as tampering. The requests carry no credentials and only CORS-safelisted
 * headers, so a mirror that sends Access-Control-Allow-Origin (Hedera's public ones do, and so does the project's
 * local one) answers without a preflight.
 */

export class MirrorUnavailableError extends Error {
  constructor(
    readonly url: string,
    detail: string,
  ) {
    super(`mirror node ${url} could not be read: ${detail}`);
    this.name = 'MirrorUnavailableError';
  }
}

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

/** Why a browser's fetch fails without an HTTP answer, in words a user can act on. */
const UNREACHABLE =
  'the browser got no answer (offline, a wrong URL, a mirror that does not allow reading from a web page (CORS), ' +
  "or a plain-http address other than 127.0.0.1/localhost, which this page's security policy refuses)";

export class MirrorClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(baseUrl: string, options: { timeoutMs?: number } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  private async get(path: string): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.timeoutMs),
        credentials: 'omit',
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
      });
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
      throw new MirrorUnavailableError(this.baseUrl, timedOut ? `no answer within ${this.timeoutMs / 1000} s` : UNREACHABLE);
    }
    if (response.status === 404) return null;
    if (!response.ok) throw new MirrorUnavailableError(this.baseUrl, `HTTP ${response.status} for ${path}`);
    try {
      return await response.json();
    } catch {
      throw new MirrorUnavailableError(this.baseUrl, `a body that is not JSON for ${path}`);
    }
  }

  async topicMessage(topicId: string, sequenceNumber: number): Promise<MirrorTopicMessage | null> {
    const body = await this.get(`/api/v1/topics/${encodeURIComponent(topicId)}/messages/${sequenceNumber}`);
    if (body === null) return null;
    if (!isTopicMessage(body)) throw new MirrorUnavailableError(this.baseUrl, 'an unexpected topic message shape');
    return body;
  }

  async topicMessageAt(consensusTimestamp: string): Promise<MirrorTopicMessage | null> {
    const body = await this.get(`/api/v1/topics/messages/${encodeURIComponent(consensusTimestamp)}`);
    if (body === null) return null;
    if (!isTopicMessage(body)) throw new MirrorUnavailableError(this.baseUrl, 'an unexpected topic message shape');
    return body;
  }
}
