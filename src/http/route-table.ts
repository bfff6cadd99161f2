/**
 * The route table: every route of the server is declared once, with its FHIR interaction, the resource type it
 * acts on and the scope it needs. From that one declaration follow
 * - registration (method, URL, schemas, handler),
 * - the CapabilityStatement's interactions,
 * - authorization: the access hook (access.ts) reads the declaration of the route a request matched and refuses
 *   what the token does not grant before the handler runs,
 * - the audit trail: the same hook opens the AuditEvent of the interaction the declaration names.
 *
 * A route registered without a declaration makes buildApp fail (`requireDeclarations`), so a new route cannot
 * slip past authorization and audit by being forgotten. Routes that serve no data say so explicitly
 * (`publicRoute`: health probes, CORS preflight, 405 answers).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, HTTPMethods, RouteOptions } from 'fastify';
import type { Capabilities, SystemInteraction, TypeInteraction } from '../fhir/capability-statement.js';
import type { Permission } from '../fhir/access/scopes.js';
import type { AuditedInteraction } from '../fhir/audit/audit-event.js';
import { errors } from '../fhir/outcome.js';

/**
 * What a route needs before its handler runs:
 * - 'public': no token at all (the CapabilityStatement, SMART discovery, the token endpoint); such routes serve no
 *   resources, and their requests carry an access policy that grants nothing.
 * - 'token': a valid token; what it may do depends on the request's content and is decided by the interaction
 *   itself through the same policy (Bundles entry by entry, system-level search by the types searched).
 * - anyOf: at least one of these permissions on the route's `type`.
 */
export type RouteRequirement = 'public' | 'token' | { anyOf: Permission[] };

export interface FhirRouteDeclaration {
  interaction: AuditedInteraction;
  /** For operations: the name without $ ('everything', 'export', 'verify', ...). */
  operation?: string;
  /** The resource type the URL names, if any. */
  type?: string;
  requires: RouteRequirement;
}

/** Why a route needs no declaration: it touches no FHIR data ('static-page': a page that holds none, GET /verify). */
export type PublicReason = 'health' | 'cors-preflight' | 'method-not-allowed' | 'authorization-server' | 'static-page';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's FHIR declaration (route-table.ts). */
    fhir?: FhirRouteDeclaration;
    /** A route that serves no FHIR data, and why. */
    public?: PublicReason;
  }
}

/** One registered route, as the table lists it (tests walk it). */
export interface RouteTableEntry {
  method: string;
  url: string;
  declaration?: FhirRouteDeclaration;
  public?: PublicReason;
}

const TYPE_INTERACTIONS = new Set<string>([
  'read',
  'vread',
  'update',
  'patch',
  'delete',
  'history-instance',
  'history-type',
  'create',
  'search-type',
]);
const SYSTEM_INTERACTIONS = new Set<string>(['transaction', 'batch', 'search-system', 'history-system']);

export type Handler = (request: FastifyRequest, reply: FastifyReply) => unknown;

export interface RouteSpec {
  declare: FhirRouteDeclaration;
  handler: Handler;
  schema?: FastifySchema;
  bodyLimit?: number;
  /** false: an interaction refused on purpose (a write to the audit trail), not one to list in the CapabilityStatement. */
  capability?: false;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
type Method = (typeof METHODS)[number];

export type RouteFamily = Partial<Record<Method, RouteSpec>>;

/**
 * Registers one declared route, and adds its interaction to the CapabilityStatement (when it is one a
 * CapabilityStatement lists: operations are declared there by their modules, with their definitions).
 */
export function fhirRoute(
  fastify: FastifyInstance,
  capabilities: Capabilities | undefined,
  method: HTTPMethods,
  url: string,
  spec: RouteSpec,
): void {
  const options: RouteOptions = {
    method,
    url,
    handler: spec.handler,
    config: { fhir: spec.declare },
  };
  if (spec.schema) options.schema = spec.schema;
  if (spec.bodyLimit !== undefined) options.bodyLimit = spec.bodyLimit;
  fastify.route(options);
  const { interaction, type } = spec.declare;
  if (!capabilities || spec.capability === false) return;
  if (type !== undefined && TYPE_INTERACTIONS.has(interaction)) capabilities.addInteraction(type, interaction as TypeInteraction);
  if (SYSTEM_INTERACTIONS.has(interaction)) capabilities.addSystemInteraction(interaction as SystemInteraction);
}

/**
 * Registers the declared handlers of one URL, and answers 405 Method Not Allowed, with an Allow header, for the
 * methods it does not support (Fastify alone would answer 404, which tells a client the resource does not exist).
 */
export function routeFamily(fastify: FastifyInstance, capabilities: Capabilities | undefined, url: string, family: RouteFamily): void {
  const allowed = METHODS.filter((method) => family[method] !== undefined);
  for (const method of allowed) fhirRoute(fastify, capabilities, method, url, family[method]!);
  const others: HTTPMethods[] = METHODS.filter((method) => family[method] === undefined);
  if (others.length === 0) return;
  const allow = allowed.includes('GET') ? ['GET', 'HEAD', ...allowed.filter((m) => m !== 'GET')] : allowed;
  fastify.route({
    method: others,
    url,
    config: { public: 'method-not-allowed' },
    handler: async (request) => {
      throw errors.methodNotAllowed(request.method, request.url.split('?')[0], allow);
    },
  });
}

/**
 * Makes every route registered from now on carry a declaration (or say why it is public), and lists them all:
 * buildApp calls it first, so a route without one stops the server from starting.
 */
export function requireDeclarations(app: FastifyInstance): RouteTableEntry[] {
  const table: RouteTableEntry[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    // @fastify/cors answers preflights in its own hook; its catch-all OPTIONS route serves nothing.
    if (methods.length === 1 && methods[0] === 'OPTIONS' && (route.url === '*' || route.url.endsWith('/*'))) {
      route.config = { ...(route.config as object), public: 'cors-preflight' };
    }
    const config = route.config as { fhir?: FhirRouteDeclaration; public?: PublicReason } | undefined;
    if (!config?.fhir && !config?.public) {
      throw new Error(
        `Route ${methods.join(',')} ${route.url} has no declaration: register it with fhirRoute/routeFamily (interaction, type, ` +
          'required scope), or mark it public with a reason, so that authorization and audit cover it',
      );
    }
    for (const method of methods) table.push({ method, url: route.url, declaration: config.fhir, public: config.public });
  });
  return table;
}
