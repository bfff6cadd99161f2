/**
 * GET /verify: the proof verification page (src/verify-ui), one self-contained HTML file that checks a $proof
 * package against a Hedera mirror node entirely in the browser.
 *
 * Outside the FHIR base and its operations: it is a static page, not a FHIR interaction (no resource, no
 * Parameters, no content negotiation), and it is lower-case, so it can never be read as a resource type. It is
 * public: the page holds no data (the package the user loads, or fetches with their own token, stays in the
 * browser), so there is nothing to authorize or audit.
 *
 * Its Content-Security-Policy replaces the API's `default-src 'none'` for this one response: the inline script is
 * allowed by its hash alone, and connect-src admits the mirror nodes a user may choose.
 */
import type { FastifyInstance } from 'fastify';
import { verifyPage } from '../../verify-ui/build-page.js';

export const VERIFY_PAGE_PATH = '/verify';

export interface VerifyPageRoutesOptions {
  /** The FHIR base path, where the page fetches [type]/[id]/$proof from ('' or '/fhir'). */
  fhirBasePath: string;
}

export default async function verifyPageRoutes(fastify: FastifyInstance, options: VerifyPageRoutesOptions): Promise<void> {
  fastify.get(VERIFY_PAGE_PATH, { config: { public: 'static-page' } }, async (_request, reply) => {
    const page = await verifyPage(options.fhirBasePath);
    return (
      reply
        .header('content-security-policy', page.csp)
        // Holds no data, so it may be cached; revalidated, so a new release's page replaces the old one.
        .header('cache-control', 'no-cache')
        .type('text/html; charset=utf-8')
        .send(page.html)
    );
  });
}
