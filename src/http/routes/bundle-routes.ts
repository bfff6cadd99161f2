/**
 * POST [base] with a batch or transaction Bundle. The route only translates HTTP: the Bundle's rules live in
 * fhir/bundle. Bundles are bigger than single resources, so the route has its own body limit
 * (BUNDLE_BODY_LIMIT) and, in its own scope, its own wording of the 413 that names that limit.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { runBatch } from '../../fhir/bundle/batch.js';
import { parseBundleRequest } from '../../fhir/bundle/bundle-request.js';
import { runTransaction } from '../../fhir/bundle/transaction.js';
import type { Capabilities } from '../../fhir/capability-statement.js';
import type { FhirContext } from '../../fhir/context.js';
import { errors } from '../../fhir/outcome.js';
import type { SearchSettings } from '../../fhir/search/search.js';
import { returnPreference } from '../respond.js';

export interface BundleSettings {
  /** More entries than this: 413. */
  maxEntries: number;
  /** Largest POST [base] body in bytes. */
  bodyLimit: number;
}

export const DEFAULT_BUNDLE_SETTINGS: BundleSettings = { maxEntries: 10_000, bodyLimit: 50 * 1024 * 1024 };

export async function registerBundleRoutes(
  fastify: FastifyInstance,
  ctx: FhirContext,
  capabilities: Capabilities,
  settings: { bundle: BundleSettings; search: SearchSettings },
): Promise<void> {
  await fastify.register(async (scope) => {
    // Rethrown errors reach the FHIR error handler of the parent scope, which renders the OperationOutcome.
    scope.setErrorHandler((error: FastifyError) => {
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        throw errors.payloadTooLarge(`The Bundle is larger than the limit of ${settings.bundle.bodyLimit} bytes (BUNDLE_BODY_LIMIT)`);
      }
      throw error;
    });

    scope.post('/', { bodyLimit: settings.bundle.bodyLimit }, async (request) => {
      const bundle = parseBundleRequest(request.body, { maxEntries: settings.bundle.maxEntries }, ctx.resourceTypes, ctx.baseUrl);
      const options = { returnPreference: returnPreference(request), search: settings.search };
      if (bundle.kind === 'transaction') return runTransaction(ctx, bundle, options);
      return runBatch(ctx, bundle, options, (error, index) => request.log.error({ err: error, entry: index }, 'batch entry failed'));
    });
  });
  capabilities.addSystemInteraction('transaction').addSystemInteraction('batch');
}
