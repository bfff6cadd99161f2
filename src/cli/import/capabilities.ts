/**
 * What the target server can take, from its CapabilityStatement (GET [base]/metadata): the resource types it hosts
 * (rest.resource.type) and whether it answers POST [base] with a batch or transaction Bundle (rest.interaction).
 */
import type { CapabilityStatement } from '@medplum/fhirtypes';
import type { ImportTarget } from './target.js';

export interface ServerCapabilities {
  hostedTypes: Set<string>;
  batch: boolean;
  transaction: boolean;
}

export class CapabilitiesError extends Error {
  override name = 'CapabilitiesError';
}

export async function readCapabilities(target: ImportTarget): Promise<ServerCapabilities> {
  const response = await target.request('GET', 'metadata');
  const statement = response.body as CapabilityStatement | undefined;
  if (response.status !== 200 || statement?.resourceType !== 'CapabilityStatement') {
    throw new CapabilitiesError(
      `GET ${target.description}/metadata answered ${response.status} without a CapabilityStatement: is this a FHIR base?`,
    );
  }
  const server = (statement.rest ?? []).filter((rest) => rest.mode === 'server');
  const hostedTypes = new Set<string>();
  const system = new Set<string>();
  for (const rest of server) {
    for (const resource of rest.resource ?? []) {
      // Types served read-only (e.g. derived Provenance) cannot take imported resources.
      const writable = (resource.interaction ?? []).some((i) => i.code === 'update' || i.code === 'create');
      if (resource.type && writable) hostedTypes.add(resource.type);
    }
    for (const interaction of rest.interaction ?? []) if (interaction.code) system.add(interaction.code);
  }
  return { hostedTypes, batch: system.has('batch'), transaction: system.has('transaction') };
}
