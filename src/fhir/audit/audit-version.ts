/**
 * An AuditEvent as the store keeps it: a resource version (type AuditEvent, version 1, never changed) with its
 * search index values and its own salted commitment, so that the anchoring worker puts it into the Merkle batches
 * like every clinical version. Built on the request thread for the AuditEvent a write commits with it, and in the
 * audit worker for the others.
 */
import type { AuditEvent, Resource } from '@medplum/fhirtypes';
import { pendingAnchorFor } from '../../ledger/pending-anchor.js';
import type { NewVersion } from '../../store/resource-store.js';
import { extractIndex } from '../search/extract.js';
import { searchRegistry } from '../search/registry.js';
import { buildAuditEvent, type AccessRecord } from './audit-event.js';

export const AUDIT_EVENT_TYPE = 'AuditEvent';

export function auditEventVersion(record: AccessRecord, id: string, baseUrl: string): NewVersion {
  const event: AuditEvent = buildAuditEvent(record, id);
  event.meta = { ...event.meta, versionId: '1', lastUpdated: record.recorded.toISOString() };
  const resource = event as Resource;
  const index = extractIndex(searchRegistry(), resource, baseUrl);
  return {
    type: AUDIT_EVENT_TYPE,
    id,
    versionId: 1,
    lastUpdated: record.recorded,
    deleted: false,
    method: 'POST',
    resource,
    idx: index.idx,
    idxVersion: index.idxVersion,
    anchor: pendingAnchorFor(resource),
  };
}
