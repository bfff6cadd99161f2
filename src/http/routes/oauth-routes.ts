/**
 * Mounts the server's own authorization server (src/auth/authorization-server.ts) under `/auth` relative to the
 * prefix this plugin is registered with (the app registers it under the FHIR base path): `[base]/auth/token`,
 * `[base]/auth/jwks`, `[base]/auth/.well-known/openid-configuration`. Optionally also serves
 * `[base]/.well-known/smart-configuration`.
 *
 * Requests are handed to oidc-provider's Koa application as they came (reply.hijack()): it reads the form body
 * itself, so this plugin is an encapsulated scope whose content type parser leaves every body unread. Every
 * route is public (`config.access`): a client asks for a token before it has one.
 */
import type { FastifyContextConfig, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthorizationServer } from '../../auth/authorization-server.js';
import { smartConfiguration } from '../../auth/smart-configuration.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'public': the route needs no access token (the authorization server's own endpoints and discovery). */
    access?: 'public';
  }
}

export interface OAuthRoutesOptions {
  server: AuthorizationServer;
  /** When given, `/.well-known/smart-configuration` is served too, listing these scopes. */
  smartConfiguration?: { scopesSupported: readonly string[] };
  /** The `config` of every route registered here; default `{ access: 'public' }`. */
  routeConfig?: FastifyContextConfig;
}

/** Where the provider is mounted, relative to the plugin's prefix. */
export const OAUTH_MOUNT = '/auth';

const PUBLIC: FastifyContextConfig = { access: 'public' };

function oauthError(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return reply
    .code(status)
    .header('cache-control', 'no-store')
    .type('application/json; charset=utf-8')
    .send({ error, error_description: description });
}

export const oauthRoutes: FastifyPluginAsync<OAuthRoutesOptions> = async (fastify, options) => {
  const { server } = options;
  const config = options.routeConfig ?? PUBLIC;
  const mount = `${fastify.prefix}${OAUTH_MOUNT}`;

  // Leave request bodies to oidc-provider (in this scope only: the plugin is not wrapped in fastify-plugin).
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const forward = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const relativeUrl = request.url.startsWith(mount) ? request.url.slice(mount.length) : '';
    const match = server.endpoint(request.method, relativeUrl.split('?')[0]!);
    if (!match.served) {
      if (match.reason === 'not-found')
        oauthError(reply, 404, 'invalid_request', `no such endpoint; the token endpoint is ${server.tokenEndpoint}`);
      else oauthError(reply.header('allow', match.allow.join(', ')), 405, 'invalid_request', `use ${match.allow[0]} here`);
      return;
    }
    // Headers the app's hooks have set so far (security headers, rate limits…) still apply; onSend hooks do not
    // run for a hijacked reply.
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(name, value);
    reply.hijack();
    try {
      await server.handle(request.raw, reply.raw, relativeUrl);
    } catch (error) {
      request.log.error({ err: error }, 'authorization server failed');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        reply.raw.end(JSON.stringify({ error: 'server_error', error_description: 'the authorization server failed' }));
      } else {
        reply.raw.destroy();
      }
    }
  };

  fastify.all(OAUTH_MOUNT, { config }, forward);
  fastify.all(`${OAUTH_MOUNT}/*`, { config }, forward);

  if (options.smartConfiguration) {
    const document = smartConfiguration({
      issuer: server.issuer,
      tokenEndpoint: server.tokenEndpoint,
      jwksUri: server.jwksUri,
      scopesSupported: options.smartConfiguration.scopesSupported,
      signingAlgs: server.clientAssertionAlgs,
    });
    fastify.get('/.well-known/smart-configuration', { config }, async (_request, reply) =>
      reply.header('cache-control', 'public, max-age=3600').type('application/json; charset=utf-8').send(document),
    );
  }
};

/** The same, as a call: `await registerOAuthRoutes(app, server)` inside the FHIR base scope. */
export async function registerOAuthRoutes(
  fastify: FastifyInstance,
  server: AuthorizationServer,
  extra: Omit<OAuthRoutesOptions, 'server'> = {},
): Promise<void> {
  await fastify.register(oauthRoutes, { server, ...extra });
}

export default oauthRoutes;
