/**
 * The hygiene of an API exposed to the network, in one plugin: CORS for SMART browser apps, per-client rate limits,
 * and security headers on every response (including errors, 404s and streamed files).
 *
 * Register it once, right after the error plugin and before any authentication hook or route:
 *
 *   await app.register(errorPlugin, …);        // 'fhir-errors' (a declared dependency: the 429s are FhirErrors)
 *   await app.register(exposurePlugin, …);     // this plugin: its onRequest hooks run before authentication
 *   app.addHook('onRequest', authenticate);    // sets request.principal
 *   … routes …
 *
 * Request lifecycle, as this plugin shapes it:
 *   onRequest   helmet sets the security headers on the raw response (so even a 401 or 500 carries them);
 *               CORS adds Access-Control-* and answers a preflight with 204 right here, so no later hook
 *               (authentication included) ever sees a preflight;
 *               the failed-authentication limit refuses, per address, a caller whose recent requests ended in 401.
 *   (the app's authentication hook, onRequest)
 *   preParsing  the per-client rate limit: the principal is known, and the body has not been read yet.
 *   onSend      Cache-Control: no-store unless the route chose its own.
 *   onResponse  a refused credential (401, or 400 with WWW-Authenticate) counts against the caller's address.
 */
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit, { normalizeIP, type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { FhirError, issue } from '../fhir/outcome.js';

export interface ExposureOptions {
  /** Origins a browser may call from: exact origins (scheme://host[:port]) or ['*']; [] = no CORS headers at all. */
  corsOrigins: string[];
  /** Requests per minute per client; 0 = no limit. */
  rateLimitPerMinute: number;
  /** Key for the rate limit: the caller's client id once authenticated, else its address. Called per request. */
  rateLimitKey: (request: FastifyRequest) => string;
  /**
   * Refused credentials (401, or 400 with WWW-Authenticate) per minute per address, after which further requests
   * from that address are refused (429) in onRequest, before authentication is attempted: a flood of bad tokens then
   * costs no token verification. Default: rateLimitPerMinute; 0 = no such limit.
   */
  failedAuthPerMinute?: number;
}

export const CORS_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export const CORS_ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'Accept',
  'If-Match',
  'If-None-Match',
  'If-None-Exist',
  'If-Modified-Since',
  'Prefer',
  'X-Request-Id',
  'X-Security-Context',
] as const;
export const CORS_EXPOSED_HEADERS = [
  'Location',
  'Content-Location',
  'ETag',
  'Last-Modified',
  'WWW-Authenticate',
  'Retry-After',
  'X-Progress',
  'X-Request-Id',
  'Expires',
  // So that a browser app can pace itself before it meets a 429.
  'X-RateLimit-Limit',
  'X-RateLimit-Remaining',
  'X-RateLimit-Reset',
] as const;
/** How long a browser may cache a preflight answer (browsers cap it: Chromium at 7200 s, Firefox at 86400 s). */
export const CORS_MAX_AGE_SECONDS = 600;

/** Polled by orchestrators: never rate-limited. */
export const RATE_LIMIT_EXEMPT_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** Entries of the per-client counter (an LRU: the least recently seen client is forgotten first). */
export const RATE_LIMIT_STORE_SIZE = 10_000;
/** Entries of the per-address failed-authentication counter (an LRU too). */
export const FAILED_AUTH_STORE_SIZE = 10_000;

const MINUTE_MS = 60_000;

/** Cache-Control for responses whose route did not choose one: patient data must not be stored by any cache. */
export const DEFAULT_CACHE_CONTROL = 'no-store';

/** The caller's address as a rate-limit key: IPv4 as is, IPv6 reduced to its /64 (one subscriber's prefix). */
export function addressKey(request: FastifyRequest): string {
  return normalizeIP(request.ip);
}

/**
 * Checks the configured origins: ['*'] alone, or serialized origins exactly as browsers send them in the Origin
 * header (lower-case scheme and host, no default port, no path or trailing slash), so that a typo fails at start
 * instead of silently matching nothing. 'null' (sandboxed frames, file://) is refused: anyone can send it.
 */
export function checkCorsOrigins(origins: readonly string[]): void {
  if (origins.includes('*')) {
    if (origins.length > 1) throw new Error(`CORS origins: '*' allows every origin and cannot be combined with others`);
    return;
  }
  for (const origin of origins) {
    let serialized: string | undefined;
    try {
      const url = new URL(origin);
      if (url.protocol === 'http:' || url.protocol === 'https:') serialized = url.origin;
    } catch {
      serialized = undefined;
    }
    if (serialized !== origin) {
      throw new Error(
        `CORS origin '${origin}' is not an http(s) origin as browsers send it (scheme://host[:port], no path)` +
          (serialized ? `; did you mean '${serialized}'?` : ''),
      );
    }
  }
}

function throttled(diagnostics: string, retryAfterSeconds: number): FhirError {
  return new FhirError(429, issue('error', 'throttled', diagnostics), { 'retry-after': String(retryAfterSeconds) });
}

function isExempt(request: FastifyRequest): boolean {
  return !request.is404 && RATE_LIMIT_EXEMPT_PATHS.has(request.routeOptions.url ?? '');
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number ≥ 0, got ${value}`);
}

async function exposurePlugin(fastify: FastifyInstance, options: ExposureOptions): Promise<void> {
  checkCorsOrigins(options.corsOrigins);
  const perMinute = options.rateLimitPerMinute;
  const failedAuthPerMinute = options.failedAuthPerMinute ?? perMinute;
  checkCount('rateLimitPerMinute', perMinute);
  checkCount('failedAuthPerMinute', failedAuthPerMinute);
  const corsEnabled = options.corsOrigins.length > 0;

  // 1. Security headers, for a JSON API rather than HTML pages. Helmet writes them on the raw response in onRequest,
  //    so they survive every later outcome: errors, 404s, 304s, streams. It never touches Content-Type.
  await fastify.register(helmet, {
    global: true,
    contentSecurityPolicy: { useDefaults: false, directives: { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] } },
    // Cross-Origin-Resource-Policy is only checked for no-cors requests (<img>, <script>): a SMART app's fetch() is a
    // CORS request and is governed by Access-Control-Allow-Origin alone, so same-origin breaks no browser app while
    // keeping other sites from pulling responses into their pages.
    crossOriginResourcePolicy: { policy: 'same-origin' },
    xFrameOptions: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // Sent on every response: browsers ignore it over plain http (RFC 6797 §8.1), and behind a TLS-terminating proxy
    // the server cannot tell. No includeSubDomains: the API cannot speak for other hosts under its name.
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: false },
  });

  // 2. CORS, only for the configured origins; without any, no Access-Control-* header and no OPTIONS route.
  if (corsEnabled) {
    await fastify.register(cors, {
      origin: options.corsOrigins.includes('*') ? '*' : [...options.corsOrigins],
      methods: [...CORS_METHODS],
      allowedHeaders: [...CORS_ALLOWED_HEADERS],
      exposedHeaders: [...CORS_EXPOSED_HEADERS],
      credentials: false,
      maxAge: CORS_MAX_AGE_SECONDS,
      hook: 'onRequest',
      preflight: true,
      preflightContinue: false,
      // A plain OPTIONS without Origin/Access-Control-Request-Method gets 204 with the allowed methods instead of
      // the plugin's text/plain 400 (every refusal of this server is an OperationOutcome).
      strictPreflight: false,
    });
  }

  // 3. Rate limits. The plugin is registered with global: false (it would otherwise add its hook route by route,
  //    missing 404s and any route registered before it), and this plugin calls its limiter from one hook instead.
  if (perMinute > 0 || failedAuthPerMinute > 0) {
    await fastify.register(rateLimit, {
      global: false,
      max: perMinute,
      timeWindow: MINUTE_MS,
      cache: RATE_LIMIT_STORE_SIZE,
      keyGenerator: options.rateLimitKey,
      errorResponseBuilder: (_request, context) =>
        throttled(
          `Too many requests: the limit is ${context.max} requests per minute for this client; ` +
            `retry in ${Math.ceil(context.ttl / 1000)} seconds`,
          Math.ceil(context.ttl / 1000),
        ),
    });
  }

  if (perMinute > 0) {
    // preParsing: after every onRequest hook (authentication has set the principal, so rateLimitKey can use the
    // client id), and before the body is read and parsed, so a throttled client costs no parsing.
    const limit = fastify.rateLimit();
    fastify.addHook('preParsing', async function perClientLimit(request, reply) {
      if (isExempt(request)) return;
      await limit.call(fastify, request, reply);
    });
  }

  if (failedAuthPerMinute > 0) {
    const failureOptions: RateLimitOptions = {
      max: failedAuthPerMinute,
      timeWindow: MINUTE_MS,
      keyGenerator: addressKey,
      cache: FAILED_AUTH_STORE_SIZE,
    };
    const failures = fastify.createRateLimit(failureOptions);
    // Before authentication (this hook is added before the app's): read, do not count.
    fastify.addHook('onRequest', async function failedAuthLimit(request) {
      if (isExempt(request)) return;
      const state = await failures(request, { increment: false });
      if (state.isAllowed || state.remaining > 0 || state.ttl <= 0) return;
      const seconds = Math.ceil(state.ttl / 1000);
      throw throttled(
        `Too many requests without valid credentials from this address: the limit is ${state.max} per minute; ` +
          `retry in ${seconds} seconds`,
        seconds,
      );
    });
    // After the response: count only refused credentials, i.e. 401, or 400 with a WWW-Authenticate challenge
    // (RFC 6750 invalid_request: a malformed Authorization header). 403 insufficient_scope is not a failed login.
    fastify.addHook('onResponse', async function countFailedAuth(request, reply) {
      const status = reply.statusCode;
      if (status === 401 || (status === 400 && reply.hasHeader('www-authenticate'))) await failures(request);
    });
  }

  // 4. No cache keeps patient data, unless a route chose its own policy (e.g. a public CapabilityStatement).
  //    no-store does not affect FHIR conditional requests: ETag, If-None-Match -> 304 and If-Match are unchanged.
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', DEFAULT_CACHE_CONTROL);
    done(null, payload);
  });
}

export default fp(exposurePlugin, { name: 'exposure', fastify: '5.x', dependencies: ['fhir-errors'] });
