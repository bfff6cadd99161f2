/**
 * Where an import goes. Both targets speak the FHIR REST API, so the import's FHIR semantics are one code path:
 * - HttpTarget: a running server, over HTTP with Node's fetch (undici).
 * - InProcessTarget: the server's own app built in this process on a MongoDB connection (the same wiring as
 *   main.ts) and driven with app.inject — validation, index extraction, pending ledger anchors and transactions
 *   are exactly the server's. No ledger worker runs here: the server's worker anchors the imported versions later.
 */
import { stringifyFhirJson } from '../../fhir/decimal-text.js';
import type { FastifyInstance } from 'fastify';
import type { ServerConfig } from '../../config.js';
import { buildApp } from '../../app.js';
import type { ResourceValidator } from '../../fhir/validation/index.js';
import type { MongoConnection } from '../../store/mongo.js';
import { openStoreAndValidator } from '../../wiring.js';

export type Method = 'GET' | 'POST' | 'PUT';

export interface TargetResponse {
  status: number;
  /** Parsed JSON, or the raw text when the body is not JSON, or undefined when empty. */
  body: unknown;
}

export interface ImportTarget {
  /** For the report: the URL, or the MongoDB database. */
  readonly description: string;
  /** `path` is relative to the FHIR base ('' for the base itself, 'metadata', 'Patient/1'). */
  request(method: Method, path: string, body?: unknown): Promise<TargetResponse>;
  close(): Promise<void>;
}

/** The target could not be reached (or kept failing with 502/503/504): exit code 3. */
export class TargetUnreachableError extends Error {
  override name = 'TargetUnreachableError';
}

const FHIR_JSON = 'application/fhir+json';
/**
 * The import reads statuses and outcomes, never the stored resource: return=OperationOutcome keeps answers small
 * and lets this server say when an update changed nothing ("No change: …").
 */
const HEADERS = { accept: FHIR_JSON, prefer: 'return=OperationOutcome' };
/** Gateway and overload statuses worth retrying; anything else is the server's answer. */
const TRANSIENT = new Set([502, 503, 504]);
const RETRY_DELAYS_MS = [250, 1000, 3000, 8000];

function parseBody(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Retries transient failures with growing pauses; after the last, the target counts as unreachable. A target
 * that never answered at all (a wrong URL, a server not started) fails at once: retrying would only delay the news.
 */
async function withRetries(describe: string, attempt: () => Promise<TargetResponse>, answeredBefore: boolean): Promise<TargetResponse> {
  let last = '';
  for (let i = 0; ; i++) {
    try {
      const response = await attempt();
      if (!TRANSIENT.has(response.status)) return response;
      last = `HTTP ${response.status}`;
    } catch (error) {
      if (!(error instanceof TargetUnreachableError)) throw error;
      if (!answeredBefore) throw new TargetUnreachableError(`${describe}: ${error.message}`);
      last = error.message;
    }
    if (i >= RETRY_DELAYS_MS.length) throw new TargetUnreachableError(`${describe}: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[i]));
  }
}

export class HttpTarget implements ImportTarget {
  private readonly base: string;
  private answered = false;

  private readonly headers: Record<string, string>;

  constructor(
    baseUrl: string,
    /** A Bearer access token for servers with authorization on (never logged or printed). */
    accessToken?: string,
    private readonly timeoutMs = 10 * 60_000,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
    this.headers = accessToken ? { ...HEADERS, authorization: `Bearer ${accessToken}` } : { ...HEADERS };
  }

  get description(): string {
    return this.base;
  }

  request(method: Method, path: string, body?: unknown): Promise<TargetResponse> {
    const url = path === '' ? this.base : `${this.base}/${path}`;
    return withRetries(
      `${method} ${url}`,
      async () => {
        let response: Response;
        try {
          response = await fetch(url, {
            method,
            headers: body === undefined ? this.headers : { ...this.headers, 'content-type': FHIR_JSON },
            body: body === undefined ? undefined : stringifyFhirJson(body),
            signal: AbortSignal.timeout(this.timeoutMs),
          });
        } catch (error) {
          // fetch rejects only when no HTTP answer came: refused, reset, DNS, TLS, timeout.
          const cause = (error as { cause?: { code?: string; message?: string } }).cause;
          throw new TargetUnreachableError(cause?.code ?? cause?.message ?? (error as Error).message);
        }
        this.answered = true;
        return { status: response.status, body: parseBody(await response.text()) };
      },
      this.answered,
    );
  }

  async close(): Promise<void> {}
}

export class InProcessTarget implements ImportTarget {
  private constructor(
    readonly description: string,
    private readonly app: FastifyInstance,
    private readonly connection: MongoConnection,
    private readonly basePath: string,
  ) {}

  /** Opens MongoDB and builds the app with the server's configuration (REFERENCE_POLICY, REQUIRED_PROFILES, …). */
  static async open(uri: string, config: ServerConfig, validator?: ResourceValidator): Promise<InProcessTarget> {
    let deps;
    try {
      deps = await openStoreAndValidator(uri, config, () => {}, validator);
    } catch (error) {
      const name = (error as Error).name;
      if (/^Mongo(ServerSelection|Network|Parse)Error$/.test(name) || name === 'MongoAPIError') {
        throw new TargetUnreachableError(`MongoDB at ${redact(uri)}: ${(error as Error).message}`);
      }
      throw error;
    }
    try {
      // The tool writes as the server itself, with no caller to authorize; its writes are still audited (the
      // AuditEvents say authorization was off) and anchored.
      const app = await buildApp(
        { ...config, auth: { ...config.auth, mode: 'off' }, exposure: { ...config.exposure, rateLimitPerMinute: 0 } },
        { store: deps.store, validator: deps.validator, logger: false },
      );
      await app.ready();
      return new InProcessTarget(`MongoDB ${redact(uri)} database ${config.mongodbDb}`, app, deps.connection, config.basePath);
    } catch (error) {
      await deps.connection.close();
      throw error;
    }
  }

  async request(method: Method, path: string, body?: unknown): Promise<TargetResponse> {
    const response = await this.app.inject({
      method,
      url: `${this.basePath}/${path}`,
      headers: body === undefined ? HEADERS : { ...HEADERS, 'content-type': FHIR_JSON },
      payload: body === undefined ? undefined : stringifyFhirJson(body),
    });
    return { status: response.statusCode, body: parseBody(response.body) };
  }

  async close(): Promise<void> {
    await this.app.close();
    await this.connection.close();
  }
}

/** A connection string without its password, for messages and reports. */
export function redact(uri: string): string {
  return uri.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
}
