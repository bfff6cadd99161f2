/**
 * Configuration: environment variables -> one typed, validated object.
 *
 * Everything the server reads from the environment is read here, once, at start. Validation goes through
 * ajv so that every rule is declared in one schema, and every error names the variable and what it should be.
 */
import { Ajv, type ErrorObject } from 'ajv';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

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
  /** Profiles every resource of a type must conform to (resourceType -> canonical URLs). */
  requiredProfiles: Partial<Record<string, string[]>>;
  /** How long to wait for a real mongod (mongodb-memory-server) before falling back to the embedded server. */
  mongodStartTimeoutMs: number;
}

/** One entry per environment variable: its schema and how it maps onto ServerConfig. */
interface VariableSpec {
  description: string;
  schema: Record<string, unknown>;
}

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
  REFERENCE_POLICY: {
    description: 'strict (references to Patient, Encounter and MedicationRequest must resolve) or lenient',
    schema: { type: 'string', enum: ['strict', 'lenient'], default: 'strict' },
  },
  REQUIRED_PROFILES: {
    description: 'a comma-separated list of Type=canonical-url, e.g. Patient=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient',
    schema: { type: 'string', pattern: '^\\s*[A-Z][A-Za-z]+=\\S+(\\s*,\\s*[A-Z][A-Za-z]+=\\S+)*\\s*$' },
  },
  MONGOD_START_TIMEOUT_MS: {
    description: 'milliseconds from 0 to 600000',
    schema: { type: 'integer', minimum: 0, maximum: 600000, default: 5000 },
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
  const spec = VARIABLES[name];
  const value = input[name];
  return spec ? `${name}=${JSON.stringify(value)} is invalid: it should be ${spec.description}` : `${name}: ${error.message ?? 'invalid'}`;
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
  return {
    port,
    host,
    basePath,
    baseUrl: (input.BASE_URL as string | undefined) ?? `http://${displayHost}:${port}${basePath}`,
    mongodbUri: input.MONGODB_URI as string | undefined,
    mongodbDb: input.MONGODB_DB as string,
    dataDir: input.DATA_DIR as string,
    logLevel: input.LOG_LEVEL as LogLevel,
    bodyLimit: input.BODY_LIMIT as number,
    referencePolicy: input.REFERENCE_POLICY as 'strict' | 'lenient',
    requiredProfiles: parseRequiredProfiles(input.REQUIRED_PROFILES as string | undefined),
    mongodStartTimeoutMs: input.MONGOD_START_TIMEOUT_MS as number,
  };
}

function parseRequiredProfiles(value: string | undefined): Partial<Record<string, string[]>> {
  const result: Partial<Record<string, string[]>> = {};
  for (const pair of (value ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
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
