/**
 * POST [base] with a batch or transaction Bundle. The route only translates HTTP: the Bundle's rules live in
 * fhir/bundle. Bundles are bigger than single resources, so the route has its own body limit
 * (BUNDLE_BODY_LIMIT) and, in its own scope, its own wording of the 413 that names that limit.
 *
 * The route needs a valid token; every entry is then judged as the same request sent on its own would be (a
 * transaction with one forbidden entry fails whole, before anything is written).
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { runBatch } from '../../fhir/bundle/batch.js';
import { parseBundleRequest } from '../../fhir/bundle/bundle-request.js';
import { runTransaction } from '../../fhir/bundle/transaction.js';
import type { Capabilities } from '../../fhir/capability-statement.js';
import type { FhirContext } from '../../fhir/context.js';
import { errors } from '../../fhir/outcome.js';
import type { SearchSettings } from '../../fhir/search/search.js';
import { requestContext } from '../request-context.js';
import { returnPreference } from '../respond.js';
import { fhirRoute } from '../route-table.js';

export interface BundleSettings {
  /** More entries than this: 413. */
  maxEntries: number;
  /** More search and history entries than this: 413. */
  maxSearches: number;
  /** Largest POST [base] body in bytes. */
  bodyLimit: number;
}

export const DEFAULT_BUNDLE_SETTINGS: BundleSettings = { maxEntries: 10_000, maxSearches: 100, bodyLimit: 50 * 1024 * 1024 };

export interface BundleRoutesOptions {
  ctx: FhirContext;
  capabilities: Capabilities;
  bundle: BundleSettings;
  search: SearchSettings;
}

export default async function bundleRoutes(fastify: FastifyInstance, options: BundleRoutesOptions): Promise<void> {
  const { ctx: base, bundle: settings } = options;
  // Rethrown errors reach the FHIR error handler of the parent scope, which renders the OperationOutcome.
  fastify.setErrorHandler((error: FastifyError) => {
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      throw errors.payloadTooLarge(`The Bundle is larger than the limit of ${settings.bodyLimit} bytes (BUNDLE_BODY_LIMIT)`);
    }
    throw error;
  });

  fhirRoute(fastify, options.capabilities, 'POST', '/', {
    declare: { interaction: 'transaction', requires: 'token' },
    bodyLimit: settings.bodyLimit,
    handler: async (request) => {
      const ctx = requestContext(base, request);
      const bundle = parseBundleRequest(
        request.body,
        { maxEntries: settings.maxEntries, maxSearches: settings.maxSearches },
        ctx.resourceTypes,
        ctx.baseUrl,
      );
      const bundleOptions = { returnPreference: returnPreference(request), search: options.search };
      if (bundle.kind === 'transaction') return runTransaction(ctx, bundle, bundleOptions);
      if (ctx.audit) ctx.audit.interaction = 'batch';
      return runBatch(ctx, bundle, bundleOptions, (error, index) => request.log.error({ err: error, entry: index }, 'batch entry failed'));
    },
  });
  options.capabilities.addSystemInteraction('transaction').addSystemInteraction('batch');
}
