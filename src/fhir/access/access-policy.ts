/**
 * What the caller may do, decided in one place: every route's declared requirement, every Bundle entry, every
 * read, search, include, chain, history page and write asks the request's AccessPolicy. It is free of HTTP: the
 * HTTP layer builds it from a verified token (src/http/access.ts) and hands it to the interactions through the
 * FhirContext, so a batch entry and a single request are judged by the same rules.
 *
 * Semantics (SMART App Launch 2.x, scopes-and-launch-context):
 * - A scope grants permissions (c r u d s) on one type or on every type ('*'). Scopes add up: a request is allowed
 *   when any scope allows it, and sees the union of what the scopes let it see.
 * - patient/ scopes are confined to the Patient compartment of the token's `patient` context: reads and searches
 *   see only resources in that compartment, and writes may only create or change resources in it. A patient/
 *   scope without a patient in the token grants nothing. Types outside the Patient compartment definition are
 *   not patient-specific; patient/ scopes grant them as user/ scopes would.
 * - user/ and system/ scopes are not confined (this server has no per-user access lists; the identity provider
 *   decides which scopes a user gets).
 * - A scope with search parameters (patient/Observation.rs?category=laboratory) narrows what it lets a read or a
 *   search see to resources matching them. It grants no write: c/u/d in such a scope are refused with a 403 that
 *   says so, since checking a write against arbitrary search parameters before it happens is not supported.
 * - '*' does not cover AuditEvent: the audit trail is read only with a scope that names it
 *   (system/AuditEvent.rs), so that a client granted all clinical data does not also read who else accessed it.
 *   patient/ scopes grant nothing on it at all (UNCONFINABLE_TYPES): one AuditEvent can name several patients.
 */
import type { IndexValues } from '../../store/resource-store.js';
import type { Condition } from '../../store/search/query.js';
import { FhirError, issue } from '../outcome.js';
import { compartmentCondition, inPatientCompartment, inPatientCompartmentDefinition } from './compartment.js';
import type { Principal } from './principal.js';
import { NAMED_SCOPE_ONLY_TYPES, parseScopes, type ParsedScopes, type Permission, type ResourceScope } from './scopes.js';

export { NAMED_SCOPE_ONLY_TYPES };

/**
 * Types patient/ scopes grant nothing on: one resource of them can name several patients (an AuditEvent lists every
 * patient an access touched), so "in the token's patient's compartment" would still show other patients' data, and
 * a search cannot ask "in no other patient's compartment". They need a user/ or system/ scope.
 */
export const UNCONFINABLE_TYPES: ReadonlySet<string> = new Set(['AuditEvent']);

const PERMISSION_WORDS: Record<Permission, string> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };

/**
 * What a read or search may see of one type: everything, nothing, or the resources that satisfy at least one
 * branch (each branch: in a patient's compartment, and/or matching a scope's search parameters).
 */
export type Visibility = { kind: 'all' } | { kind: 'none'; reason: string } | { kind: 'some'; branches: VisibilityBranch[] };

export interface VisibilityBranch {
  /** Confined to this patient's compartment. */
  patient?: string;
  /** Confined to resources matching a scope's search parameters. */
  query?: Condition;
  /** The scope that grants this branch, for messages. */
  scope: string;
}

/** Checks a stored version against a (non-compartment) condition: one indexed lookup, done by the caller's store. */
export type VersionMatcher = (condition: Condition) => Promise<boolean>;

export interface AccessPolicy {
  /** The caller, when authenticated (undefined with AUTH_MODE=off and for the server's own work). */
  readonly principal: Principal | undefined;
  /** True when nothing is restricted (AUTH_MODE=off, internal work): callers may skip every check. */
  readonly unrestricted: boolean;
  /** Changes with anything that changes what the caller may see: search cursors are bound to it. */
  readonly fingerprint: string;
  allows(permission: Permission, type: string): boolean;
  /**
   * Whether a user/ or system/ scope grants `permission` on `type` (not a patient/ one): what operations over a
   * whole type need, such as Bulk export, even for types outside the Patient compartment that patient/ scopes read.
   */
  allowsBeyondPatient(permission: Permission, type: string): boolean;
  /** Throws a 403 naming the scope that would allow it, unless some scope grants `permission` on `type`. */
  require(permission: Permission, type: string): void;
  /** What reads ('r') or searches ('s') of `type` may see. */
  visibility(permission: 'r' | 's', type: string): Visibility;
  /**
   * Throws a 403 unless `permission` on `type` is granted by a scope without search parameters and, when only
   * patient/ scopes grant it, the resource (its id and index values) is in the token's patient compartment.
   */
  requireWritable(permission: 'c' | 'u' | 'd', type: string, id: string, idx: IndexValues | undefined): void;
  /**
   * Throws a 403 unless a read ('r') may see this stored resource; `matches` evaluates scope search parameters
   * against it (only called when a scope has them).
   */
  requireVisible(permission: 'r' | 's', type: string, id: string, idx: IndexValues | undefined, matches: VersionMatcher): Promise<void>;
}

/** A 403 with an OperationOutcome that says what is missing (issue code forbidden). */
export function forbidden(diagnostics: string): FhirError {
  return new FhirError(403, issue('error', 'forbidden', diagnostics));
}

/** Everything allowed: AUTH_MODE=off, and the server's own work (bulk export jobs, import in-process, reindex). */
export const UNRESTRICTED_ACCESS: AccessPolicy = {
  principal: undefined,
  unrestricted: true,
  fingerprint: 'unrestricted',
  allows: () => true,
  allowsBeyondPatient: () => true,
  require: () => undefined,
  visibility: () => ({ kind: 'all' }),
  requireWritable: () => undefined,
  requireVisible: async () => undefined,
};

/** The condition a scope's search parameters denote for `type`; throws when they are not a valid search. */
export type ScopeQueryParser = (type: string, query: Array<[string, string]>) => Condition;

/** The access a verified SMART token gives. */
export class SmartAccessPolicy implements AccessPolicy {
  readonly unrestricted = false;
  readonly fingerprint: string;
  private readonly scopes: ParsedScopes;

  constructor(
    readonly principal: Principal,
    private readonly parseQuery: ScopeQueryParser,
  ) {
    this.scopes = parseScopes(principal.scopes);
    this.fingerprint = `${principal.patient ?? ''}|${this.scopes.resources
      .map((s) => s.text)
      .sort()
      .join(' ')}`;
  }

  /** The scopes that grant `permission` on `type` and can be used (a patient/ scope needs a patient context). */
  private grants(permission: Permission, type: string): ResourceScope[] {
    return this.scopes.resources.filter(
      (scope) =>
        scope.permissions.has(permission) &&
        (scope.resourceType === type || (scope.resourceType === '*' && !NAMED_SCOPE_ONLY_TYPES.has(type))) &&
        (scope.context !== 'patient' || (this.principal.patient !== undefined && !UNCONFINABLE_TYPES.has(type))),
    );
  }

  allows(permission: Permission, type: string): boolean {
    return this.grants(permission, type).length > 0;
  }

  allowsBeyondPatient(permission: Permission, type: string): boolean {
    return this.grants(permission, type).some((scope) => scope.context !== 'patient');
  }

  require(permission: Permission, type: string): void {
    if (!this.allows(permission, type)) throw forbidden(this.missing(permission, type));
  }

  /** "needs a scope that grants read on Patient, e.g. system/Patient.r" plus what the token has, and why it is not enough. */
  private missing(permission: Permission, type: string, detail?: string): string {
    const contexts = [...new Set(this.scopes.resources.map((s) => s.context))];
    const context = contexts.length === 1 ? contexts[0] : 'system';
    const example = `${context}/${type}.${permission}`;
    const granted = this.scopes.resources.map((s) => s.text);
    const notes: string[] = [];
    if (detail) notes.push(detail);
    const unusable = this.scopes.resources.filter((s) => s.context === 'patient' && this.principal.patient === undefined);
    if (unusable.length > 0)
      notes.push(
        `patient/ scopes (${unusable.map((s) => s.text).join(' ')}) grant nothing without a patient in the token's launch context`,
      );
    if (UNCONFINABLE_TYPES.has(type) && this.scopes.resources.some((s) => s.context === 'patient' && s.resourceType === type)) {
      notes.push(
        `patient/ scopes do not grant ${type}: one ${type} can name several patients, so it cannot be confined to one; use a user/ or system/ scope`,
      );
    }
    if (NAMED_SCOPE_ONLY_TYPES.has(type) && this.scopes.resources.some((s) => s.resourceType === '*')) {
      notes.push(`'*' scopes do not cover ${type}: name it`);
    }
    if (this.scopes.invalid.length > 0)
      notes.push(`malformed scopes grant nothing: ${this.scopes.invalid.map((s) => `${s.text} (${s.reason})`).join('; ')}`);
    return (
      `Insufficient scope: ${PERMISSION_WORDS[permission]} on ${type} needs a scope such as ${example} ` +
      `(SMART 1: ${context}/${type}.${permission === 'c' || permission === 'u' || permission === 'd' ? 'write' : 'read'}); ` +
      `the token grants ${granted.length > 0 ? granted.join(' ') : 'no resource scopes'}` +
      (notes.length > 0 ? `. ${notes.join('. ')}` : '')
    );
  }

  visibility(permission: 'r' | 's', type: string): Visibility {
    const grants = this.grants(permission, type);
    if (grants.length === 0) return { kind: 'none', reason: this.missing(permission, type) };
    const branches: VisibilityBranch[] = [];
    const problems: string[] = [];
    for (const scope of grants) {
      const patient = scope.context === 'patient' && inPatientCompartmentDefinition(type) ? this.principal.patient : undefined;
      let query: Condition | undefined;
      if (scope.query.length > 0) {
        try {
          query = this.parseQuery(type, scope.query);
        } catch (error) {
          problems.push(`${scope.text}: ${(error as Error).message}`);
          continue;
        }
      }
      if (patient === undefined && query === undefined) return { kind: 'all' };
      branches.push({ patient, query, scope: scope.text });
    }
    if (branches.length === 0) {
      return {
        kind: 'none',
        reason: this.missing(
          permission,
          type,
          `scopes with search parameters this server cannot apply grant nothing: ${problems.join('; ')}`,
        ),
      };
    }
    return { kind: 'some', branches };
  }

  requireWritable(permission: 'c' | 'u' | 'd', type: string, id: string, idx: IndexValues | undefined): void {
    const grants = this.grants(permission, type);
    if (grants.length === 0) throw forbidden(this.missing(permission, type));
    const usable = grants.filter((scope) => scope.query.length === 0);
    if (usable.length === 0) {
      throw forbidden(
        `${PERMISSION_WORDS[permission]} on ${type} is granted only by scopes with search parameters (${grants.map((s) => s.text).join(' ')}); ` +
          'this server honours such scopes for reads and searches only: a write needs a scope without parameters',
      );
    }
    if (usable.some((scope) => scope.context !== 'patient' || !inPatientCompartmentDefinition(type))) return;
    const patient = this.principal.patient!;
    if (!inPatientCompartment(type, id, idx, patient)) {
      throw forbidden(
        `${PERMISSION_WORDS[permission]} on ${type}/${id} is outside the compartment of Patient/${patient}, the patient this token's ` +
          `patient/ scopes are confined to`,
      );
    }
  }

  async requireVisible(
    permission: 'r' | 's',
    type: string,
    id: string,
    idx: IndexValues | undefined,
    matches: VersionMatcher,
  ): Promise<void> {
    const visibility = this.visibility(permission, type);
    if (visibility.kind === 'all') return;
    if (visibility.kind === 'none') throw forbidden(visibility.reason);
    for (const branch of visibility.branches) {
      if (branch.patient !== undefined && !inPatientCompartment(type, id, idx, branch.patient)) continue;
      if (branch.query !== undefined && !(await matches(branch.query))) continue;
      return;
    }
    const confined = visibility.branches.filter((b) => b.patient !== undefined).map((b) => b.patient);
    throw forbidden(
      `${type}/${id} is not visible to this token: its scopes (${visibility.branches.map((b) => b.scope).join(' ')}) ` +
        (confined.length > 0
          ? `are confined to the compartment of Patient/${confined[0]}`
          : 'restrict by search parameters it does not match'),
    );
  }
}

/**
 * The search condition a visibility puts on resources of `type` (undefined: no restriction), over heads or (with
 * `versions`) over version documents.
 */
export function visibilityCondition(type: string, visibility: Visibility, options: { versions?: boolean } = {}): Condition | undefined {
  if (visibility.kind === 'all') return undefined;
  if (visibility.kind === 'none') return { op: 'none' };
  const branches: Condition[] = visibility.branches.map((branch) => {
    const parts: Condition[] = [];
    if (branch.patient !== undefined) parts.push(compartmentCondition(type, branch.patient, options));
    if (branch.query !== undefined) parts.push(branch.query);
    return parts.length === 1 ? parts[0] : { op: 'and', of: parts };
  });
  return branches.length === 1 ? branches[0] : { op: 'or', of: branches };
}

/**
 * Nothing allowed: the policy of requests that reached no declared route, and of public routes (which serve no
 * resources). A handler that forgot to use the request's own policy fails closed with it.
 */
export const NO_ACCESS: AccessPolicy = {
  principal: undefined,
  unrestricted: false,
  fingerprint: 'none',
  allows: () => false,
  allowsBeyondPatient: () => false,
  require: (permission, type) => {
    throw forbidden(`This request carries no authorization for ${PERMISSION_WORDS[permission]} on ${type}`);
  },
  visibility: (permission, type) => ({
    kind: 'none',
    reason: `This request carries no authorization for ${PERMISSION_WORDS[permission]} on ${type}`,
  }),
  requireWritable: (permission, type) => {
    throw forbidden(`This request carries no authorization for ${PERMISSION_WORDS[permission]} on ${type}`);
  },
  requireVisible: async (permission, type) => {
    throw forbidden(`This request carries no authorization for ${PERMISSION_WORDS[permission]} on ${type}`);
  },
};
