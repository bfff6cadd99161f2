/**
 * Configuration: environment variables -> one typed, validated object.
 *
 * Everything the server reads from the environment is read here, once, at start. Validation goes through
 * ajv so that every rule is declared in one schema, and every error names the variable and what it should be.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { clientResourceTypes, whyNotHostable } from './fhir/resource-types.js';
import { PUBLIC_MIRROR_URLS } from './ledger/network.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** The values of FHIR's _total (R4 search.html#total). */
export type SearchTotalMode = 'none' | 'estimate' | 'accurate';

export interface ServerConfig {
  /** TCP port the HTTP server listens on (0 picks a free port). */
  port: number;
  /** Interface to bind; loopback by default so a fresh checkout never exposes patient data by accident. */
  host: string;
  /** Path under which the FHIR base lives ('' for the root, or e.g. '/fhir'). */
  basePath: string;
  /** Absolute URL of the FHIR base as clients see it (used in Location headers, fullUrl and links). */
  baseUrl: string;
  /** MongoDB connection string; undefined means "start an embedded server". */
  mongodbUri: string | undefined;
  /** Database name. */
  mongodbDb: string;
  /** Directory for local state: the embedded MongoDB's files and the local ledger's. */
  dataDir: string;
  logLevel: LogLevel;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
  /** strict: references to hosted types must resolve to stored resources; lenient: stored as given. */
  referencePolicy: 'strict' | 'lenient';
  /** The resource types clients read and write (RESOURCE_TYPES): every storable R4 type unless restricted. */
  resourceTypes: readonly string[];
  /** Profiles every resource of a type must conform to (resourceType -> canonical URLs). */
  requiredProfiles: Partial<Record<string, string[]>>;
  /** How long to wait for a real mongod (mongodb-memory-server) before falling back to the embedded server. */
  mongodStartTimeoutMs: number;
  /** The anchoring of versions on Hedera (HEDERA_* and LEDGER_* variables). */
  ledger: LedgerConfig;
  /** Search paging: _count when none is given, and the largest page (SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT). */
  search: {
    defaultCount: number;
    maxCount: number;
    limits: { maxParameters: number; maxValues: number; maxIncludes: number; maxChainDepth: number };
    /** maxTimeMS of each query a search, history or $everything runs (SEARCH_TIMEOUT_MS). */
    timeoutMs: number;
    /** _total when a search gives none (SEARCH_DEFAULT_TOTAL): none, estimate (a bounded count) or accurate. */
    defaultTotal: SearchTotalMode;
  };
  /** Bulk Data export: how long finished exports are kept, and the most resources per NDJSON file (BULK_EXPORT_*). */
  bulkExport: { retentionHours: number; maxResourcesPerFile: number };
  /** Batch and transaction Bundles (POST [base]): most entries, and largest body in bytes (BUNDLE_*). */
  bundle: { maxEntries: number; maxSearches: number; bodyLimit: number };
  /** Who may call: SMART on FHIR access tokens, and the server's own authorization server (AUTH_*). */
  auth: AuthConfig;
  /** The audit trail: one AuditEvent per access (AUDIT_*). */
  audit: AuditConfig;
  /** Browser origins allowed by CORS (CORS_ORIGINS), and the per-client rate limit (RATE_LIMIT_*). */
  exposure: ExposureConfig;
  /** Connection and time limits of the HTTP server (HTTP_*). */
  http: HttpLimits;
  /** On SIGTERM/SIGINT: how long requests in flight may take before they are stopped (SHUTDOWN_GRACE_MS). */
  shutdownGraceMs: number;
}

/**
 * What one connection may take of the server: a client that sends its headers or body slowly, keeps an idle
 * connection open, or opens connections without end is cut off instead of holding resources.
 */
export interface HttpLimits {
  /** Time to receive a request's headers, from the connection's first byte (or the previous response). */
  headersTimeoutMs: number;
  /** Time to receive a whole request, headers and body. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections open at once; more are refused at accept. */
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
};

export type AuthMode = 'smart' | 'off';

export interface AuthConfig {
  /** smart: every FHIR request needs a valid access token with the scopes it uses; off: nobody is asked (loopback only). */
  mode: AuthMode;
  /** The `aud` every access token must carry: the FHIR base URL as clients see it. */
  audience: string;
  /** An outside identity provider whose JWT access tokens are accepted, verified against its JWKS. */
  externalIssuer: { issuer: string; jwksUrl: string | undefined } | undefined;
  /** Tolerance for exp, nbf and iat between this server's clock and the issuer's. */
  clockSkewSeconds: number;
  /** The server's own authorization server (SMART Backend Services: client_credentials with private_key_jwt). */
  server: {
    enabled: boolean;
    /** Lifetime of the access tokens it issues. */
    tokenTtlSeconds: number;
    /** On loopback: a development client (client_secret_basic) whose credentials the server prints at start. */
    devClient: boolean;
    /** Registered clients' jwks_uri may point to loopback or private-network addresses (off: no SSRF into the LAN). */
    allowPrivateJwksUris?: boolean;
  };
}

export interface AuditConfig {
  /** false: no AuditEvents are recorded (measurement and local development only). */
  enabled: boolean;
  /**
   * AuditEvents of reads, searches and refusals are buffered and written at least this often: the most a crash can
   * lose is what was recorded in the last interval. Writes commit their AuditEvent with the write itself.
   */
  flushIntervalMs: number;
  /** When this many AuditEvents wait to be written, requests wait for the write instead of adding more. */
  bufferMax: number;
}

export interface ExposureConfig {
  /** Origins a browser may call from (exact origins, or '*'); empty: no CORS headers at all. */
  corsOrigins: string[];
  /**
   * Proxies whose X-Forwarded-For is believed (Fastify's trustProxy): their addresses or CIDR ranges, or a hop
   * count. Unset: the peer's own address is the client's (what the audit trail and the rate limits use).
   */
  trustProxy?: string | number;
  /** Requests per minute per client (per address for requests without a valid token); 0 turns the limit off. */
  rateLimitPerMinute: number;
}

/** Public Hedera networks, and `local`: the project's own Hedera-compatible network (src/dev/hedera), NOT Hedera. */
export type HederaNetworkName = 'testnet' | 'mainnet' | 'previewnet' | 'local';

export interface LedgerConfig {
  /** False: no anchoring worker and no ledger routes; versions keep their pending anchors until it is enabled. */
  enabled: boolean;
  network: HederaNetworkName;
  /** Payer and submit key of the topic; both unset on `local`, where the local network's operator is used. */
  operatorId: string | undefined;
  /** Never logged. */
  operatorKey: string | undefined;
  /** The HCS topic; unset means "create one (submit key = operator key) and remember it in MongoDB". */
  topicId: string | undefined;
  /** Mirror node REST base URL; unset on `local` (the local network supplies its own). */
  mirrorUrl: string | undefined;
  /**
   * On `local`: the port of the local network's mirror REST API on 127.0.0.1. Fixed (5551 by default) so that the
   * mirrorUrl written into proof packages still answers after a restart, and when the local ledger runs alone.
   */
  localMirrorPort: number;
  /** A batch closes when it holds this many versions... */
  batchMaxLeaves: number;
  /** ...or when its oldest version has waited this long. */
  batchIntervalMs: number;
  /** How long the anchoring lease lasts without renewal; another process takes over after it. */
  leaseTtlMs: number;
  /** Upper bound of the exponential backoff between retries while Hedera or the mirror node is unreachable. */
  retryMaxMs: number;
  /** Test hook: the worker exits the process right after submitting a batch (crash-recovery tests only). */
  testCrashAfterSubmit: boolean;
}

/** One entry per environment variable: its schema and how it maps onto ServerConfig. */
interface VariableSpec {
  description: string;
  schema: Record<string, unknown>;
  /** A secret (a private key): error messages name the variable but never echo its value. */
  secret?: boolean;
}

const ENTITY_ID_PATTERN = '^\\d{1,10}\\.\\d{1,10}\\.\\d{1,10}$';

const VARIABLES = {
  PORT: { description: 'an integer from 0 to 65535', schema: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 } },
  HOST: { description: 'a host name or IP address to bind', schema: { type: 'string', minLength: 1, default: '127.0.0.1' } },
  FHIR_BASE_PATH: {
    description: "'' or a path such as /fhir (leading slash, no trailing slash)",
    schema: { type: 'string', pattern: '^(/[A-Za-z0-9._~-]+)*$', default: '' },
  },
  BASE_URL: {
    description: 'an absolute http(s) URL without a trailing slash, e.g. https://fhir.example.org/fhir',
    schema: { type: 'string', pattern: '^https?://[^\\s/]+(/[^\\s]*[^\\s/])?$' },
  },
  MONGODB_URI: {
    description: 'a MongoDB connection string starting with mongodb:// or mongodb+srv://',
    schema: { type: 'string', pattern: '^mongodb(\\+srv)?://.+' },
  },
  MONGODB_DB: {
    description: 'a MongoDB database name (letters, digits, _ and -, at most 63 characters)',
    schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,63}$', default: 'fhir' },
  },
  DATA_DIR: { description: 'a directory path', schema: { type: 'string', minLength: 1, default: './data' } },
  LOG_LEVEL: {
    description: 'one of fatal, error, warn, info, debug, trace, silent',
    schema: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
  },
  BODY_LIMIT: {
    description: 'a size in bytes from 1024 to 1073741824',
    schema: { type: 'integer', minimum: 1024, maximum: 1073741824, default: 16 * 1024 * 1024 },
  },
  RESOURCE_TYPES: {
    description:
      'all (every storable R4 resource type) or a comma-separated list of the types to host, e.g. Patient,Encounter,MedicationRequest,Observation',
    schema: { type: 'string', pattern: '^\\s*(all|[A-Z][A-Za-z]+(\\s*,\\s*[A-Z][A-Za-z]+)*)\\s*$', default: 'all' },
  },
  REFERENCE_POLICY: {
    description: 'strict (a reference to a hosted type must resolve to a stored resource) or lenient',
    schema: { type: 'string', enum: ['strict', 'lenient'], default: 'strict' },
  },
  REQUIRED_PROFILES: {
    description:
      'a comma-separated list of Type=canonical-url, e.g. Patient=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient',
    schema: { type: 'string', pattern: '^\\s*[A-Z][A-Za-z]+=\\S+(\\s*,\\s*[A-Z][A-Za-z]+=\\S+)*\\s*$' },
  },
  MONGOD_START_TIMEOUT_MS: {
    description: 'milliseconds from 0 to 600000',
    schema: { type: 'integer', minimum: 0, maximum: 600000, default: 5000 },
  },
  SEARCH_DEFAULT_COUNT: {
    description: 'an integer from 1 to 10000 (search page size when _count is not given; at most SEARCH_MAX_COUNT)',
    schema: { type: 'integer', minimum: 1, maximum: 10000, default: 20 },
  },
  SEARCH_MAX_COUNT: {
    description: 'an integer from 1 to 10000 (largest search page; a larger _count is reduced to it)',
    schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
  },
  SEARCH_DEFAULT_TOTAL: {
    description:
      'none, estimate or accurate (Bundle.total of a search without _total: none counts nothing, estimate counts up to 1000 matches, accurate counts them all; a free total is always given)',
    schema: { type: 'string', enum: ['none', 'estimate', 'accurate'], default: 'none' },
  },
  SEARCH_TIMEOUT_MS: {
    description:
      'milliseconds from 100 to 600000 (each query of a search, history or $everything is stopped by MongoDB after it: 400 too-costly)',
    schema: { type: 'integer', minimum: 100, maximum: 600000, default: 10000 },
  },
  SEARCH_MAX_PARAMETERS: {
    description: 'an integer from 1 to 1000 (most parameters in one search; more is a 400 too-costly)',
    schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
  },
  SEARCH_MAX_VALUES: {
    description:
      'an integer from 1 to 10000 (most values in one search, counting each comma-separated alternative; more is a 400 too-costly)',
    schema: { type: 'integer', minimum: 1, maximum: 10000, default: 200 },
  },
  SEARCH_MAX_INCLUDES: {
    description: 'an integer from 0 to 100 (most _include and _revinclude parameters in one search; more is a 400 too-costly)',
    schema: { type: 'integer', minimum: 0, maximum: 100, default: 10 },
  },
  SEARCH_MAX_CHAIN_DEPTH: {
    description: 'an integer from 1 to 10 (most levels of a chain or of nested _has; more is a 400 too-costly)',
    schema: { type: 'integer', minimum: 1, maximum: 10, default: 4 },
  },
  BUNDLE_MAX_SEARCHES: {
    description: 'an integer from 0 to 100000 (most search and history entries in one batch or transaction Bundle; more is a 413)',
    schema: { type: 'integer', minimum: 0, maximum: 100000, default: 100 },
  },
  SHUTDOWN_GRACE_MS: {
    description: 'milliseconds from 0 to 600000 (on SIGTERM, requests in flight may finish within it; then they are stopped with 503)',
    schema: { type: 'integer', minimum: 0, maximum: 600000, default: 10000 },
  },
  HTTP_HEADERS_TIMEOUT_MS: {
    description: "milliseconds from 1000 to 600000 (time to receive a request's headers)",
    schema: { type: 'integer', minimum: 1000, maximum: 600000, default: DEFAULT_HTTP_LIMITS.headersTimeoutMs },
  },
  HTTP_REQUEST_TIMEOUT_MS: {
    description:
      'milliseconds from 1000 to 3600000 (time to receive a whole request, headers and body; a slower client is cut off with 408)',
    schema: { type: 'integer', minimum: 1000, maximum: 3600000, default: DEFAULT_HTTP_LIMITS.requestTimeoutMs },
  },
  HTTP_KEEP_ALIVE_TIMEOUT_MS: {
    description: 'milliseconds from 100 to 600000 (an idle keep-alive connection is closed after it)',
    schema: { type: 'integer', minimum: 100, maximum: 600000, default: DEFAULT_HTTP_LIMITS.keepAliveTimeoutMs },
  },
  HTTP_MAX_CONNECTIONS: {
    description: 'an integer from 1 to 1000000 (connections open at once; more are refused)',
    schema: { type: 'integer', minimum: 1, maximum: 1000000, default: DEFAULT_HTTP_LIMITS.maxConnections },
  },
  BUNDLE_MAX_ENTRIES: {
    description: 'an integer from 1 to 1000000 (most entries in a batch or transaction Bundle; more is a 413)',
    schema: { type: 'integer', minimum: 1, maximum: 1000000, default: 10000 },
  },
  BUNDLE_BODY_LIMIT: {
    description: 'a size in bytes from 1024 to 1073741824 (largest batch or transaction Bundle, POST [base] only)',
    schema: { type: 'integer', minimum: 1024, maximum: 1073741824, default: 50 * 1024 * 1024 },
  },
  BULK_EXPORT_RETENTION_HOURS: {
    description: 'a number of hours from 0.01 to 8760 (completed bulk exports and their files are removed after it)',
    schema: { type: 'number', minimum: 0.01, maximum: 8760, default: 24 },
  },
  BULK_EXPORT_FILE_MAX_RESOURCES: {
    description: 'an integer from 1 to 10000000 (most resources in one bulk export NDJSON file)',
    schema: { type: 'integer', minimum: 1, maximum: 10000000, default: 100000 },
  },
  HEDERA_NETWORK: {
    description: 'one of testnet, mainnet, previewnet, local (default: testnet when an operator is configured, else local)',
    schema: { type: 'string', enum: ['testnet', 'mainnet', 'previewnet', 'local'] },
  },
  HEDERA_OPERATOR_ID: {
    description: 'a Hedera account id such as 0.0.12345',
    schema: { type: 'string', pattern: ENTITY_ID_PATTERN },
  },
  HEDERA_OPERATOR_KEY: {
    description: 'the operator private key, DER-encoded hex (302e... for ED25519, 3030... for ECDSA)',
    schema: { type: 'string', pattern: '^(0x)?[0-9a-fA-F]{64,}$' },
    secret: true,
  },
  HEDERA_TOPIC_ID: {
    description: 'a Hedera topic id such as 0.0.12345',
    schema: { type: 'string', pattern: ENTITY_ID_PATTERN },
  },
  HEDERA_MIRROR_URL: {
    description: 'an absolute http(s) URL of a mirror node REST API, without a trailing slash or /api/v1',
    schema: { type: 'string', pattern: '^https?://[^\\s/]+(/[^\\s]*[^\\s/])?$' },
  },
  LEDGER_ENABLED: { description: 'true or false', schema: { type: 'boolean', default: true } },
  LOCAL_LEDGER_MIRROR_PORT: {
    description: 'a port number from 0 to 65535 (0 = any free port)',
    schema: { type: 'integer', minimum: 0, maximum: 65535, default: 5551 },
  },
  AUTH_MODE: {
    description: 'smart (SMART on FHIR access tokens required) or off (no authorization; only on a loopback HOST)',
    schema: { type: 'string', enum: ['smart', 'off'], default: 'smart' },
  },
  AUTH_AUDIENCE: {
    description: 'the aud every access token must carry, an absolute http(s) URL (default: BASE_URL)',
    schema: { type: 'string', pattern: '^https?://[^\\s/]+(/[^\\s]*[^\\s/])?$' },
  },
  AUTH_ISSUER: {
    description: "an identity provider's issuer URL (the iss of its tokens), e.g. https://idp.example.org/realms/hospital",
    schema: { type: 'string', pattern: '^https?://\\S+$' },
  },
  AUTH_JWKS_URL: {
    description: "the identity provider's JWKS URL (default: jwks_uri from AUTH_ISSUER's OpenID discovery document)",
    schema: { type: 'string', pattern: '^https?://\\S+$' },
  },
  AUTH_CLOCK_SKEW_SECONDS: {
    description: 'seconds from 0 to 300 (tolerance for exp, nbf and iat)',
    schema: { type: 'integer', minimum: 0, maximum: 300, default: 30 },
  },
  AUTH_SERVER_ENABLED: {
    description: "true or false (the server's own token endpoint for SMART Backend Services clients)",
    schema: { type: 'boolean', default: true },
  },
  AUTH_TOKEN_TTL_SECONDS: {
    description: 'seconds from 60 to 3600 (lifetime of the access tokens the server issues)',
    schema: { type: 'integer', minimum: 60, maximum: 3600, default: 300 },
  },
  AUTH_DEV_CLIENT: {
    description: 'true or false (a development client printed at start; default true on a loopback HOST, refused elsewhere)',
    schema: { type: 'boolean' },
  },
  AUTH_ALLOW_PRIVATE_JWKS_URIS: {
    description: "true or false (registered clients' jwks_uri may point to loopback or private-network addresses)",
    schema: { type: 'boolean', default: false },
  },
  AUDIT_ENABLED: { description: 'true or false (record an AuditEvent for every access)', schema: { type: 'boolean', default: true } },
  AUDIT_FLUSH_INTERVAL_MS: {
    description: 'milliseconds from 10 to 10000 (buffered AuditEvents are written at least this often; the most a crash can lose)',
    schema: { type: 'integer', minimum: 10, maximum: 10000, default: 200 },
  },
  AUDIT_BUFFER_MAX: {
    description: 'an integer from 1 to 1000000 (AuditEvents waiting to be written before requests wait for them)',
    schema: { type: 'integer', minimum: 1, maximum: 1000000, default: 5000 },
  },
  CORS_ORIGINS: {
    description: "a comma-separated list of origins such as https://app.example.org, or '*' (default: none, no CORS)",
    schema: { type: 'string', pattern: '^\\s*(\\*|https?://[^\\s/,]+)(\\s*,\\s*https?://[^\\s/,]+)*\\s*$' },
  },
  TRUST_PROXY: {
    description:
      'the reverse proxies in front of the server: a comma-separated list of addresses or CIDR ranges (e.g. 10.0.0.0/8), or a number of hops',
    schema: { type: 'string', pattern: '^\\s*(\\d{1,2}|[0-9a-fA-F.:/]+(\\s*,\\s*[0-9a-fA-F.:/]+)*)\\s*$' },
  },
  RATE_LIMIT_PER_MINUTE: {
    description: 'an integer from 0 to 10000000 (requests per minute per client; 0 turns the limit off)',
    schema: { type: 'integer', minimum: 0, maximum: 10000000, default: 6000 },
  },
  LEDGER_BATCH_MAX_LEAVES: {
    description: 'an integer from 1 to 100000 (versions per batch)',
    schema: { type: 'integer', minimum: 1, maximum: 100000, default: 10000 },
  },
  LEDGER_BATCH_INTERVAL_MS: {
    description: 'milliseconds from 10 to 3600000',
    schema: { type: 'integer', minimum: 10, maximum: 3600000, default: 1000 },
  },
  LEDGER_LEASE_TTL_MS: {
    description: 'milliseconds from 1000 to 600000',
    schema: { type: 'integer', minimum: 1000, maximum: 600000, default: 15000 },
  },
  LEDGER_RETRY_MAX_MS: {
    description: 'milliseconds from 100 to 3600000',
    schema: { type: 'integer', minimum: 100, maximum: 3600000, default: 60000 },
  },
  LEDGER_TEST_CRASH_AFTER_SUBMIT: {
    description: 'true or false (test hook: exit right after submitting a batch)',
    schema: { type: 'boolean', default: false },
  },
} satisfies Record<string, VariableSpec>;

type VariableName = keyof typeof VARIABLES;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true });
const validateEnvironment = ajv.compile({
  type: 'object',
  properties: Object.fromEntries(Object.entries(VARIABLES).map(([name, spec]) => [name, spec.schema])),
});

function describeError(error: ErrorObject, input: Record<string, unknown>): string {
  const name = error.instancePath.replace(/^\//, '') as VariableName;
  const spec: VariableSpec | undefined = VARIABLES[name];
  const value = spec?.secret ? '(value hidden)' : JSON.stringify(input[name]);
  return spec ? `${name}=${value} is invalid: it should be ${spec.description}` : `${name}: ${error.message ?? 'invalid'}`;
}

/**
 * Reads the configuration from an environment (process.env by default). Empty strings count as unset, because
 * `FOO= npm start` and a docker-compose `FOO:` line both mean "no value" to the person who wrote them.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const input: Record<string, unknown> = {};
  for (const name of Object.keys(VARIABLES)) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') input[name] = value.trim();
  }
  const raw = { ...input };
  if (!validateEnvironment(input)) {
    throw new ConfigError((validateEnvironment.errors ?? []).map((e) => describeError(e, raw)));
  }
  const port = input.PORT as number;
  const host = input.HOST as string;
  const basePath = input.FHIR_BASE_PATH as string;
  const displayHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const baseUrl = (input.BASE_URL as string | undefined) ?? `http://${displayHost}:${port}${basePath}`;
  return {
    port,
    host,
    basePath,
    baseUrl,
    mongodbUri: input.MONGODB_URI as string | undefined,
    mongodbDb: input.MONGODB_DB as string,
    dataDir: input.DATA_DIR as string,
    logLevel: input.LOG_LEVEL as LogLevel,
    bodyLimit: input.BODY_LIMIT as number,
    referencePolicy: input.REFERENCE_POLICY as 'strict' | 'lenient',
    resourceTypes: parseResourceTypes(input.RESOURCE_TYPES as string),
    requiredProfiles: parseRequiredProfiles(input.REQUIRED_PROFILES as string | undefined),
    mongodStartTimeoutMs: input.MONGOD_START_TIMEOUT_MS as number,
    ledger: ledgerConfig(input),
    search: searchConfig(input),
    bulkExport: {
      retentionHours: input.BULK_EXPORT_RETENTION_HOURS as number,
      maxResourcesPerFile: input.BULK_EXPORT_FILE_MAX_RESOURCES as number,
    },
    bundle: {
      maxEntries: input.BUNDLE_MAX_ENTRIES as number,
      maxSearches: input.BUNDLE_MAX_SEARCHES as number,
      bodyLimit: input.BUNDLE_BODY_LIMIT as number,
    },
    auth: authConfig(input, host, baseUrl),
    audit: {
      enabled: input.AUDIT_ENABLED as boolean,
      flushIntervalMs: input.AUDIT_FLUSH_INTERVAL_MS as number,
      bufferMax: input.AUDIT_BUFFER_MAX as number,
    },
    shutdownGraceMs: input.SHUTDOWN_GRACE_MS as number,
    http: {
      headersTimeoutMs: input.HTTP_HEADERS_TIMEOUT_MS as number,
      requestTimeoutMs: input.HTTP_REQUEST_TIMEOUT_MS as number,
      keepAliveTimeoutMs: input.HTTP_KEEP_ALIVE_TIMEOUT_MS as number,
      maxConnections: input.HTTP_MAX_CONNECTIONS as number,
    },
    exposure: {
      corsOrigins: ((input.CORS_ORIGINS as string | undefined) ?? '')
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
      rateLimitPerMinute: input.RATE_LIMIT_PER_MINUTE as number,
      ...trustProxy(input.TRUST_PROXY as string | undefined),
    },
  };
}

function trustProxy(value: string | undefined): { trustProxy?: string | number } {
  if (value === undefined) return {};
  return /^\d+$/.test(value)
    ? { trustProxy: Number(value) }
    : {
        trustProxy: value
          .split(',')
          .map((v) => v.trim())
          .join(','),
      };
}

/** True for the interfaces only this machine can reach: a server bound there exposes nothing. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The AUTH_* variables, with the rules that span several: authorization can be turned off, and a development
 * client exist, only on a loopback interface, so that a server reachable from the network always asks for tokens
 * and never knows a client whose secret went to a log.
 */
function authConfig(input: Record<string, unknown>, host: string, baseUrl: string): AuthConfig {
  const mode = input.AUTH_MODE as AuthMode;
  const loopback = isLoopbackHost(host);
  const serverEnabled = input.AUTH_SERVER_ENABLED as boolean;
  const devClient = (input.AUTH_DEV_CLIENT as boolean | undefined) ?? (loopback && serverEnabled && mode === 'smart');
  const problems: string[] = [];
  if (mode === 'off' && !loopback) {
    problems.push(
      `AUTH_MODE=off is refused with HOST=${host}: without authorization the server may listen on a loopback interface only (127.0.0.1, ::1)`,
    );
  }
  if (devClient && !loopback) {
    problems.push(`AUTH_DEV_CLIENT=true is refused with HOST=${host}: the development client exists on a loopback interface only`);
  }
  if (devClient && !serverEnabled)
    problems.push('AUTH_DEV_CLIENT=true needs AUTH_SERVER_ENABLED=true (the development client gets its tokens there)');
  if (input.AUTH_JWKS_URL !== undefined && input.AUTH_ISSUER === undefined) {
    problems.push('AUTH_JWKS_URL needs AUTH_ISSUER (the iss that tokens verified with those keys must carry)');
  }
  if (mode === 'smart' && !serverEnabled && input.AUTH_ISSUER === undefined) {
    problems.push('AUTH_MODE=smart needs a token issuer: AUTH_SERVER_ENABLED=true, or AUTH_ISSUER for an identity provider');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const issuer = input.AUTH_ISSUER as string | undefined;
  return {
    mode,
    audience: (input.AUTH_AUDIENCE as string | undefined) ?? baseUrl,
    externalIssuer: issuer === undefined ? undefined : { issuer, jwksUrl: input.AUTH_JWKS_URL as string | undefined },
    clockSkewSeconds: input.AUTH_CLOCK_SKEW_SECONDS as number,
    server: {
      enabled: serverEnabled,
      tokenTtlSeconds: input.AUTH_TOKEN_TTL_SECONDS as number,
      devClient,
      allowPrivateJwksUris: input.AUTH_ALLOW_PRIVATE_JWKS_URIS as boolean,
    },
  };
}

function searchConfig(input: Record<string, unknown>): ServerConfig['search'] {
  const defaultCount = input.SEARCH_DEFAULT_COUNT as number;
  const maxCount = input.SEARCH_MAX_COUNT as number;
  if (defaultCount > maxCount) {
    throw new ConfigError([`SEARCH_DEFAULT_COUNT=${defaultCount} is larger than SEARCH_MAX_COUNT=${maxCount}; it must not be`]);
  }
  return {
    defaultCount,
    maxCount,
    limits: {
      maxParameters: input.SEARCH_MAX_PARAMETERS as number,
      maxValues: input.SEARCH_MAX_VALUES as number,
      maxIncludes: input.SEARCH_MAX_INCLUDES as number,
      maxChainDepth: input.SEARCH_MAX_CHAIN_DEPTH as number,
    },
    timeoutMs: input.SEARCH_TIMEOUT_MS as number,
    defaultTotal: input.SEARCH_DEFAULT_TOTAL as SearchTotalMode,
  };
}

/**
 * The ledger variables, with the rules that span several of them: a public network needs an operator (id and
 * key together), and `local` means the project's own network with its own operator, so one configured here
 * would be silently ignored — refused instead.
 */
function ledgerConfig(input: Record<string, unknown>): LedgerConfig {
  const operatorId = input.HEDERA_OPERATOR_ID as string | undefined;
  const operatorKey = input.HEDERA_OPERATOR_KEY as string | undefined;
  const network = (input.HEDERA_NETWORK as HederaNetworkName | undefined) ?? (operatorId || operatorKey ? 'testnet' : 'local');
  const problems: string[] = [];
  if ((operatorId === undefined) !== (operatorKey === undefined)) {
    problems.push('HEDERA_OPERATOR_ID and HEDERA_OPERATOR_KEY must be set together (the account and its private key)');
  }
  if (network === 'local') {
    if (operatorId !== undefined || operatorKey !== undefined) {
      problems.push(
        "HEDERA_NETWORK=local uses the project's own local network and its operator: unset HEDERA_OPERATOR_ID and HEDERA_OPERATOR_KEY",
      );
    }
    if (input.HEDERA_MIRROR_URL !== undefined) {
      problems.push('HEDERA_NETWORK=local serves its own mirror REST API: unset HEDERA_MIRROR_URL');
    }
  } else if (operatorId === undefined && operatorKey === undefined) {
    problems.push(`HEDERA_NETWORK=${network} needs HEDERA_OPERATOR_ID and HEDERA_OPERATOR_KEY (an account that pays for the messages)`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    enabled: input.LEDGER_ENABLED as boolean,
    network,
    operatorId,
    operatorKey,
    topicId: input.HEDERA_TOPIC_ID as string | undefined,
    localMirrorPort: input.LOCAL_LEDGER_MIRROR_PORT as number,
    mirrorUrl: network === 'local' ? undefined : ((input.HEDERA_MIRROR_URL as string | undefined) ?? PUBLIC_MIRROR_URLS[network]),
    batchMaxLeaves: input.LEDGER_BATCH_MAX_LEAVES as number,
    batchIntervalMs: input.LEDGER_BATCH_INTERVAL_MS as number,
    leaseTtlMs: input.LEDGER_LEASE_TTL_MS as number,
    retryMaxMs: input.LEDGER_RETRY_MAX_MS as number,
    testCrashAfterSubmit: input.LEDGER_TEST_CRASH_AFTER_SUBMIT as boolean,
  };
}

/** RESOURCE_TYPES: `all`, or a list whose every name must be a type that can be hosted (else the server does not start). */
function parseResourceTypes(value: string): readonly string[] {
  if (value.trim() === 'all') return clientResourceTypes();
  const listed = new Set(value.split(',').map((name) => name.trim()));
  const problems = [...listed].flatMap((type) => {
    const why = whyNotHostable(type);
    return why ? [`RESOURCE_TYPES: ${why}`] : [];
  });
  if (problems.length > 0) throw new ConfigError(problems);
  // The CapabilityStatement's order: featured types first, then by name.
  return clientResourceTypes().filter((type) => listed.has(type));
}

function parseRequiredProfiles(value: string | undefined): Partial<Record<string, string[]>> {
  const result: Partial<Record<string, string[]>> = {};
  for (const pair of (value ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [type, url] = pair.split('=', 2);
    (result[type] ??= []).push(url);
  }
  return result;
}

/** The variables, their meaning and defaults, for the README table and `--help` output. */
export function describeVariables(): Array<{ name: string; description: string; default: unknown }> {
  return Object.entries(VARIABLES).map(([name, spec]) => ({
    name,
    description: spec.description,
    default: (spec.schema as { default?: unknown }).default,
  }));
}

/**
 * Authorization, audit and exposure settings for in-process uses that have no caller to authorize: tests of
 * other features, benchmarks of the engine, tools that run the app in-process. Never what the server runs with.
 */
export function withoutAccessControl(baseUrl: string): Pick<ServerConfig, 'auth' | 'audit' | 'exposure'> {
  return {
    auth: {
      mode: 'off',
      audience: baseUrl,
      externalIssuer: undefined,
      clockSkewSeconds: 30,
      server: { enabled: false, tokenTtlSeconds: 300, devClient: false },
    },
    audit: { enabled: false, flushIntervalMs: 200, bufferMax: 5000 },
    exposure: { corsOrigins: [], rateLimitPerMinute: 0 },
  };
}
