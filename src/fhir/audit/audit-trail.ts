/**
 * The audit record of one interaction while it runs: who is calling (from the HTTP layer), and what the
 * interaction touched (reported by the interactions themselves: the resources read, returned, written, the query
 * of a search, the patients concerned). When the interaction ends, the trail becomes ONE AuditEvent:
 *
 * - An interaction that stores a version commits its AuditEvent in the same storage transaction as the version
 *   (`companionFor` / `markCommitted`): a write and its AuditEvent exist together or not at all.
 * - A transaction Bundle is one interaction: its AuditEvent, naming every entry, is written inside the Bundle's
 *   transaction (`forTransaction`).
 * - A batch Bundle's entries are separate interactions: each gets its own trail (`forEntry`), and the batch
 *   itself records nothing more (`delegate`) unless it failed before any entry ran.
 * - Everything else (reads, searches, operations, refusals, failed writes) is handed to the sink, which buffers
 *   it for at most the flush interval (see audit-recorder.ts).
 */
import type { IndexValues, NewVersion } from '../../store/resource-store.js';
import { patientsOf } from '../access/compartment.js';
import type { Principal } from '../access/principal.js';
import type { AccessRecord, AuditedInteraction, AuditEntityRef } from './audit-event.js';

export interface AuditSink {
  /** Records an access that stored nothing; resolves once it is buffered (waits while the buffer is full). */
  record(record: AccessRecord): Promise<void>;
  /** The stored version of the AuditEvent for an access, to be committed with the write it records. */
  versionOf(record: AccessRecord): NewVersion;
}

/** What the trail knows about the request, from the HTTP layer. */
export interface AccessContext {
  principal: Principal | undefined;
  authorizationOff: boolean;
  clientAddress: string | undefined;
  requestId: string;
  /** "GET /Patient/123" (no query string). */
  request: string;
  server: AccessRecord['server'];
  now: () => Date;
}

/** A stored resource an interaction touched: its key, version and index values (for its patients). */
export interface TouchedVersion {
  type: string;
  id: string;
  versionId: number;
  idx?: IndexValues;
}

export class AuditTrail {
  private readonly entities = new Map<string, AuditEntityRef>();
  private readonly patients = new Set<string>();
  private query: AccessRecord['query'];
  private pendingWrite: { entity: AuditEntityRef; patients: string[] } | undefined;
  private committed = false;
  private delegated = false;

  constructor(
    private readonly sink: AuditSink,
    readonly access: AccessContext,
    /** Settable: POST [base] learns from its body whether it is a batch or a transaction. */
    public interaction: AuditedInteraction,
    readonly operation?: string,
  ) {}

  /** Records a resource this interaction read, returned or acted on. */
  touched(reference: string, patients: readonly string[], detail?: string): void {
    if (!this.entities.has(reference)) this.entities.set(reference, detail === undefined ? { reference } : { reference, detail });
    for (const patient of patients) this.patients.add(patient);
  }

  /** Records a stored version (its patients from its index values). */
  touchedVersion(version: TouchedVersion, detail?: string): void {
    this.touched(`${version.type}/${version.id}/_history/${version.versionId}`, patientsOf(version.type, version.id, version.idx), detail);
  }

  /** Records the query of a search (as received, without the leading ?) and the types it searched. */
  searched(text: string, types: string[]): void {
    this.query = { text, types };
  }

  /** The request recorded its interactions itself (a batch's entries): no event for the request as a whole. */
  delegate(): void {
    this.delegated = true;
  }

  get isCommitted(): boolean {
    return this.committed;
  }

  /**
   * The AuditEvent to store with a write that is about to happen (status: what the interaction will answer).
   * A retried write asks again; only the attempt that commits counts (`markCommitted`).
   */
  companionFor(written: TouchedVersion, status: number): NewVersion {
    const entity: AuditEntityRef = { reference: `${written.type}/${written.id}/_history/${written.versionId}` };
    this.pendingWrite = { entity, patients: patientsOf(written.type, written.id, written.idx) };
    return this.sink.versionOf(this.toRecord(status));
  }

  /** The write (and with it the AuditEvent from companionFor) is committed: nothing more to record. */
  markCommitted(): void {
    if (this.pendingWrite) {
      this.touched(this.pendingWrite.entity.reference, this.pendingWrite.patients);
      this.pendingWrite = undefined;
    }
    this.committed = true;
  }

  /** A trail for one entry of a batch Bundle: the same caller, its own interaction and event. */
  forEntry(index: number, interaction: AuditedInteraction, request: string, operation?: string): AuditTrail {
    return new AuditTrail(this.sink, { ...this.access, request: `Bundle.entry[${index}] ${request}` }, interaction, operation);
  }

  /** A fresh trail for one attempt of a transaction Bundle (a retried attempt starts over). */
  forTransaction(): AuditTrail {
    return new AuditTrail(this.sink, this.access, 'transaction');
  }

  /** The AuditEvent of a transaction Bundle, to be written inside its transaction. */
  transactionEvent(status: number): NewVersion {
    return this.sink.versionOf(this.toRecord(status));
  }

  /**
   * The interaction is over: record it unless its AuditEvent was committed with a write or its parts recorded
   * their own. `failure` is the reason given to the client, for statuses >= 400.
   */
  async finish(status: number, failure?: string): Promise<void> {
    if (this.committed || this.delegated) return;
    await this.sink.record(this.toRecord(status, failure));
  }

  toRecord(status: number, failure?: string): AccessRecord {
    const entities = [...this.entities.values()];
    const patients = new Set(this.patients);
    if (this.pendingWrite) {
      if (!this.entities.has(this.pendingWrite.entity.reference)) entities.push(this.pendingWrite.entity);
      for (const patient of this.pendingWrite.patients) patients.add(patient);
    }
    // A request that failed before its interaction touched anything (refused with 401/403 by the access hook,
    // a read of an id that does not exist...) still names what it asked for, so that "who tried to reach
    // Patient/123" is answered by entity=/patient= searches, refusals included.
    if (status >= 400 && entities.length === 0) {
      const target = requestTarget(this.access.request);
      if (target) {
        entities.push({ reference: target.reference, detail: `requested (HTTP ${status})` });
        for (const patient of patientsOf(target.type, target.id, undefined)) patients.add(patient);
      }
    }
    const record: AccessRecord = {
      interaction: this.interaction,
      recorded: this.access.now(),
      status,
      principal: this.access.principal,
      authorizationOff: this.access.authorizationOff,
      clientAddress: this.access.clientAddress,
      requestId: this.access.requestId,
      request: this.access.request,
      entities,
      patients: [...patients],
      server: this.access.server,
    };
    if (this.operation !== undefined) record.operation = this.operation;
    if (failure !== undefined && status >= 400) record.failure = failure;
    if (this.query) record.query = this.query;
    return record;
  }
}

/** The last part of a request line ("GET /fhir/Patient/1/_history/2", "Bundle.entry[3] GET Patient/1?x=y"): Type/id[/_history/vid]. */
const REQUEST_TARGET =
  /(?:^|\/)([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history(?:\/([1-9]\d{0,8}))?)?(?:\/\$[A-Za-z][A-Za-z-]*)?$/;

/**
 * The resource a request's URL names, if it names one (instance and version URLs, their history and operations;
 * not type- or system-level URLs, nor compartment searches).
 */
export function requestTarget(request: string): { type: string; id: string; reference: string } | undefined {
  const path = (request.split(' ').pop() ?? '').split('?')[0] ?? '';
  const match = REQUEST_TARGET.exec(path);
  if (!match) return undefined;
  const [, type, id, versionId] = match as unknown as [string, string, string, string | undefined];
  return { type, id, reference: versionId === undefined ? `${type}/${id}` : `${type}/${id}/_history/${versionId}` };
}
