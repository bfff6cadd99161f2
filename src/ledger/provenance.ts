/**
 * Derived, read-only FHIR R4 Provenance resources: one per stored version, built on the fly from the version
 * document and its anchor (nothing is stored as Provenance, so it can never disagree with the ledger state).
 *
 *   id         "{type}-{versionId}-{id}" (e.g. Patient-3-123), or "h-" + 40 hex of SHA-256("Type/id/versionId")
 *              when that would exceed FHIR's 64 characters (such ids are found by search, not by read)
 *   target     the version-specific reference Patient/123/_history/3
 *   recorded   the version's meta.lastUpdated
 *   activity   v3-DataOperation CREATE / UPDATE / DELETE (from the method that made the version)
 *   agent      type custodian; who = this server, as a Reference of type Device identified by its base URL
 *              (display only: the server does not host Device resources; an identifier-only Reference is valid R4)
 *   extension  LEDGER_ANCHOR_EXTENSION, a complex extension with the anchor: status, commitment, network,
 *              topic, sequence number, consensus timestamp (also as an instant), batch, leaf index, root,
 *              transaction id, running hash, and links to $verify and HashScan
 *
 * Why an extension rather than Provenance.signature: R4's Signature asserts that a party signed the target
 * (type, when, who, data); a ledger timestamp of a salted commitment is not a signature by anyone, and calling
 * it one would mislead. Why not entity: entity.what would have to reference the HCS message, which is not a
 * FHIR resource. The extension carries the facts as they are and points to $verify, which checks them.
 */
import { createHash } from 'node:crypto';
import type { Extension, Provenance } from '@medplum/fhirtypes';
import { consensusTimestampToInstant } from './hedera-ids.js';
import type { AnchorView } from './ledger-store.js';
import { hashscanLinks } from './network.js';

export const LEDGER_ANCHOR_EXTENSION = 'urn:fhir-ledger-server:StructureDefinition:ledger-anchor';
const DATA_OPERATION = 'http://terminology.hl7.org/CodeSystem/v3-DataOperation';
const PARTICIPANT_TYPE = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';

export interface ProvenanceSource {
  type: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  method: string;
  anchor: AnchorView | null;
}

export function provenanceId(type: string, id: string, versionId: number): string {
  const plain = `${type}-${versionId}-${id}`;
  if (plain.length <= 64) return plain;
  return `h-${createHash('sha256').update(`${type}/${id}/${versionId}`).digest('hex').slice(0, 40)}`;
}

function activity(method: string, versionId: number): { code: string; display: string } {
  if (method === 'DELETE') return { code: 'DELETE', display: 'delete' };
  if (method === 'POST' || versionId === 1) return { code: 'CREATE', display: 'create' };
  return { code: 'UPDATE', display: 'revise' };
}

function anchorExtension(source: ProvenanceSource, baseUrl: string): Extension {
  const parts: Extension[] = [];
  const a = source.anchor;
  const add = (url: string, value: Omit<Extension, 'url'>): void => {
    parts.push({ url, ...value });
  };
  add('status', { valueCode: a ? (a.state === 'anchored' ? 'anchored' : 'pending') : 'none' });
  if (a) add('commitment', { valueString: a.commitment.toString('hex') });
  if (a?.state === 'batched' && a.batch !== undefined) add('batch', { valueInteger: a.batch });
  if (a?.state === 'anchored') {
    if (a.network) add('network', { valueString: a.network });
    if (a.topicId) add('topic', { valueString: a.topicId });
    if (a.sequenceNumber !== undefined) add('sequenceNumber', { valueInteger: a.sequenceNumber });
    if (a.consensusTimestamp) {
      add('consensusTimestamp', { valueString: a.consensusTimestamp });
      const instant = consensusTimestampToInstant(a.consensusTimestamp);
      if (instant) add('consensusTime', { valueInstant: instant });
    }
    if (a.batch !== undefined) add('batch', { valueInteger: a.batch });
    if (a.leafIndex !== undefined) add('leafIndex', { valueInteger: a.leafIndex });
    if (a.root) add('root', { valueString: a.root.toString('hex') });
    if (a.transactionId) add('transactionId', { valueString: a.transactionId });
    if (a.runningHash) add('runningHash', { valueString: a.runningHash.toString('hex') });
    const links = a.network && a.topicId && a.consensusTimestamp ? hashscanLinks(a.network, a.topicId, a.consensusTimestamp) : null;
    if (links) add('hashscan', { valueUri: links.transaction });
  }
  add('verify', { valueUri: `${baseUrl}/${source.type}/${source.id}/_history/${source.versionId}/$verify` });
  return { url: LEDGER_ANCHOR_EXTENSION, extension: parts };
}

export function provenanceOf(source: ProvenanceSource, baseUrl: string, software: string): Provenance {
  const act = activity(source.method, source.versionId);
  return {
    resourceType: 'Provenance',
    id: provenanceId(source.type, source.id, source.versionId),
    extension: [anchorExtension(source, baseUrl)],
    target: [{ reference: `${source.type}/${source.id}/_history/${source.versionId}` }],
    recorded: source.lastUpdated.toISOString(),
    activity: { coding: [{ system: DATA_OPERATION, code: act.code, display: act.display }] },
    agent: [
      {
        type: { coding: [{ system: PARTICIPANT_TYPE, code: 'custodian', display: 'Custodian' }] },
        who: { type: 'Device', identifier: { system: 'urn:ietf:rfc:3986', value: baseUrl }, display: `${software} at ${baseUrl}` },
      },
    ],
  };
}
