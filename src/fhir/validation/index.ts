/**
 * The resource validator every write goes through.
 *
 * Layering:
 * 1. Guards (this file): the input must be a JSON object with a known resourceType, nested no deeper than
 *    maxDepth (default 64) — checked iteratively, before anything recursive runs.
 * 2. @medplum/core's validateResource against the base R4 definition: cardinalities, JSON types,
 *    primitive regexes, choice types, error-severity invariants of the elements it visits. Its issues are
 *    normalised (issues.ts); its unknown-element reports are replaced by the walker's.
 * 3. Our walker (walker.ts), once with the base definition and once per applicable profile: what medplum
 *    does not check (bindings, the other invariants, stricter R4 primitives, Object.prototype-named keys,
 *    contained resources, extension definitions) and everything a profile adds (cardinality, fixed/pattern,
 *    slicing, choice restrictions). Profiles do not go through medplum: its validateResource({ profile })
 *    re-parses the StructureDefinition on each call (~4 ms for US Core Patient).
 *
 * Everything expensive (definitions, schemas, value set expansions, parsed FHIRPath) is built once in
 * createResourceValidator; validate() is synchronous.
 */
import type { InternalTypeSchema } from '@medplum/core';
import { OperationOutcomeError, isResourceType, parseStructureDefinition, tryGetDataType, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { FEATURED_RESOURCE_TYPES } from '../resource-types.js';
import { loadBaseDefinitions } from './definitions.js';
import { InvariantEngine } from './invariants.js';
import type { KeyedIssue } from './issues.js';
import { makeIssue, normalizeMedplumIssue } from './issues.js';
import type { LogSink } from './logging.js';
import { ValidationLogger } from './logging.js';
import { loadProfileDirectory } from './profiles.js';
import { Terminology } from './terminology.js';
import type { ExtensionDefinition, WalkerServices } from './walker.js';
import { Walker, isJsonShapeIssue } from './walker.js';

export interface ValidationOptions {
  /** canonical URL to validate against in addition to meta.profile */
  profile?: string;
}

export interface ResourceValidator {
  /** all issues, errors and warnings; empty = valid */
  validate(resource: Resource, options?: ValidationOptions): OperationOutcomeIssue[];
  /** loaded from profiles/, by canonical url (and url|version) */
  readonly profiles: ReadonlyMap<string, StructureDefinition>;
  /** invariants never evaluated because @medplum/core's FHIRPath cannot (key: expression -> reason) */
  readonly skippedInvariants: ReadonlyMap<string, string>;
}

export interface ValidatorConfig {
  profilesDir: string;
  /** resourceType -> canonical URLs every resource of that type must conform to */
  requiredProfiles?: Partial<Record<string, string[]>>;
  /** where one-time notes go (skipped invariants, unexpandable value sets...); default console.warn */
  log?: LogSink;
  /** maximum nesting of objects/arrays in a resource (default 64) */
  maxDepth?: number;
}

export const DEFAULT_MAX_DEPTH = 64;

/**
 * The featured resource types: their bindings and invariants are prepared at start (the first resource of any
 * other type prepares its own).
 */
const WARM_TYPES: readonly string[] = FEATURED_RESOURCE_TYPES;

interface LoadedProfile {
  readonly sd: StructureDefinition;
  readonly schema: InternalTypeSchema;
  readonly label: string;
}

export async function createResourceValidator(config: ValidatorConfig): Promise<ResourceValidator> {
  const logger = new ValidationLogger(config.log);
  const base = loadBaseDefinitions();
  const terminology = new Terminology(logger);
  for (const r of base.terminology) {
    terminology.addResource(r);
  }

  const loaded = await loadProfileDirectory(config.profilesDir, base.structureDefinitions, logger);
  for (const r of loaded.terminology) {
    terminology.addResource(r);
  }

  const profiles = new Map<string, StructureDefinition>();
  const byCanonical = new Map<string, LoadedProfile>();
  const extensionSds = new Map<string, StructureDefinition>(base.extensions);
  for (const sd of loaded.structureDefinitions) {
    let schema: InternalTypeSchema;
    try {
      schema = parseStructureDefinition(sd);
    } catch (err) {
      logger.once(`parse:${sd.url}`, `profiles: ${sd.url} refused: ${(err as Error).message}`);
      continue;
    }
    const url = sd.url as string;
    const entry: LoadedProfile = { sd, schema, label: `profile ${url}${sd.version ? `|${sd.version}` : ''}` };
    profiles.set(url, sd);
    byCanonical.set(url, entry);
    if (sd.version) {
      profiles.set(`${url}|${sd.version}`, sd);
      byCanonical.set(`${url}|${sd.version}`, entry);
    }
    if (sd.type === 'Extension' && sd.derivation === 'constraint') {
      extensionSds.set(url, sd);
    }
  }

  const required = new Map<string, LoadedProfile[]>();
  for (const [type, urls] of Object.entries(config.requiredProfiles ?? {})) {
    const list: LoadedProfile[] = [];
    for (const url of urls ?? []) {
      const p = byCanonical.get(url);
      if (!p) {
        throw new Error(`requiredProfiles: ${type} requires ${url}, which is not among the profiles loaded from ${config.profilesDir}`);
      }
      if (p.sd.type !== type) {
        throw new Error(`requiredProfiles: ${url} constrains ${p.sd.type}, not ${type}`);
      }
      list.push(p);
    }
    required.set(type, list);
  }

  const engine = new InvariantEngine(logger);
  const extensions = new Map<string, ExtensionDefinition | null>();
  const services: WalkerServices = {
    engine,
    terminology,
    logger,
    extension: (url) => {
      let def = extensions.get(url);
      if (def === undefined) {
        const sd = extensionSds.get(url);
        def = sd ? makeExtensionDefinition(sd, logger) : null;
        extensions.set(url, def);
      }
      return def ?? undefined;
    },
  };

  // Extension definitions from profiles/ are parsed now; the ~400 R4 core ones on first use (once each).
  for (const sd of loaded.structureDefinitions) {
    if (sd.type === 'Extension' && sd.url) {
      services.extension(sd.url);
    }
  }
  warmUp(base.structureDefinitions, loaded.structureDefinitions, terminology, engine);
  return new Validator(services, byCanonical, profiles, required, engine, logger, config.maxDepth ?? DEFAULT_MAX_DEPTH);
}

class Validator implements ResourceValidator {
  constructor(
    private readonly services: WalkerServices,
    private readonly byCanonical: ReadonlyMap<string, LoadedProfile>,
    readonly profiles: ReadonlyMap<string, StructureDefinition>,
    private readonly required: ReadonlyMap<string, LoadedProfile[]>,
    private readonly engine: InvariantEngine,
    private readonly logger: ValidationLogger,
    private readonly maxDepth: number,
  ) {}

  get skippedInvariants(): ReadonlyMap<string, string> {
    return this.engine.skippedConstraints;
  }

  validate(resource: Resource, options?: ValidationOptions): OperationOutcomeIssue[] {
    try {
      return this.run(resource, options);
    } catch (err) {
      // Never crash a write: an input the validator cannot process is not accepted either.
      this.logger.once(`crash:${(err as Error).message}`, `validator failure: ${(err as Error).stack ?? String(err)}`);
      const type = (resource as { resourceType?: unknown })?.resourceType;
      return [
        {
          severity: 'error',
          code: 'exception',
          expression: [typeof type === 'string' ? type : 'Resource'],
          diagnostics: `The resource could not be validated: ${(err as Error).message}`,
        },
      ];
    }
  }

  private run(resource: Resource, options?: ValidationOptions): OperationOutcomeIssue[] {
    if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
      return [issue('error', 'structure', 'Resource', 'A resource must be a JSON object')];
    }
    const resourceType = (resource as { resourceType?: unknown }).resourceType;
    if (typeof resourceType !== 'string' || resourceType === '') {
      return [issue('error', 'required', 'Resource.resourceType', 'Missing resourceType')];
    }
    if (!isResourceType(resourceType)) {
      return [issue('error', 'not-supported', 'Resource.resourceType', `Unknown resource type '${resourceType.slice(0, 64)}'`)];
    }
    const depth = exceedsDepth(resource, this.maxDepth);
    if (depth) {
      return [
        issue(
          'error',
          'too-costly',
          depth,
          `The resource is nested more than ${this.maxDepth} levels deep (at ${depth}); it is not processed`,
        ),
      ];
    }

    const collector = new IssueCollector();
    const { profiles, issues: profileIssues } = this.applicableProfiles(resource, resourceType, options);
    collector.add(profileIssues);

    const baseSchema = tryGetDataType(resourceType) as InternalTypeSchema;
    const walked = new Walker(resource, this.services).run(baseSchema, undefined);
    collector.add(this.medplum(resource, walked.some(isJsonShapeIssue)));
    collector.add(walked);
    for (const p of profiles) {
      // Profiles are checked by our walker over a schema parsed once at start: medplum's
      // validateResource({ profile }) re-parses the StructureDefinition on every call (~4 ms for US Core
      // Patient), too slow for every write.
      collector.add(new Walker(resource, this.services, { label: p.label, profile: true }).run(p.schema, baseSchema));
    }
    return collector.result();
  }

  /**
   * @medplum/core's validation against the base R4 definition, normalised. `malformedJson`: the walker found the
   * JSON representation broken (an `_x` array beside a single value...), which medplum may fail on with a
   * TypeError: those issues then say what is wrong.
   */
  private medplum(resource: Resource, malformedJson: boolean): KeyedIssue[] {
    let raw: OperationOutcomeIssue[];
    try {
      raw = validateResource(resource);
    } catch (err) {
      if (!(err instanceof OperationOutcomeError)) {
        if (malformedJson) return [];
        throw err;
      }
      raw = err.outcome.issue ?? [];
    }
    const out: KeyedIssue[] = [];
    for (const i of raw) {
      const n = normalizeMedplumIssue(i, resource, (fhirpath, message) =>
        this.logger.once(`medplum-eval:${fhirpath}`, `invariant not evaluated by @medplum/core (${message}): ${fhirpath}`),
      );
      if (n) {
        out.push(n);
      }
    }
    return out;
  }

  private applicableProfiles(
    resource: Resource,
    resourceType: string,
    options: ValidationOptions | undefined,
  ): { profiles: LoadedProfile[]; issues: KeyedIssue[] } {
    const issues: KeyedIssue[] = [];
    const profiles: LoadedProfile[] = [];
    const addProfile = (p: LoadedProfile, expression: string): void => {
      if (p.sd.type !== resourceType) {
        issues.push(makeIssue('error', 'invalid', expression, `Profile ${p.sd.url} constrains ${p.sd.type}, not ${resourceType}`));
      } else if (!profiles.includes(p)) {
        profiles.push(p);
      }
    };

    const claimed = resource.meta?.profile;
    if (Array.isArray(claimed)) {
      claimed.forEach((url, i) => {
        if (typeof url !== 'string') {
          return; // medplum reports the wrong type
        }
        const p = this.lookupProfile(url);
        if (p) {
          addProfile(p, `${resourceType}.meta.profile[${i}]`);
        } else {
          // A claimed profile we do not hold is a warning, not an error: meta.profile is the sender's
          // assertion, and FHIR does not oblige a server to know every IG. Rejecting would refuse valid
          // data from any client using a profile we have not loaded; the resource is still fully
          // validated against the base definition (and any configured required profiles).
          issues.push(
            makeIssue(
              'warning',
              'not-supported',
              `${resourceType}.meta.profile[${i}]`,
              `Profile ${url.slice(0, 256)} is not known to this server; the resource was not checked against it`,
            ),
          );
        }
      });
    }
    if (options?.profile) {
      const p = this.lookupProfile(options.profile);
      if (p) {
        addProfile(p, resourceType);
      } else {
        // Explicitly requested by the caller: validation against it cannot be done, which is an error.
        issues.push(makeIssue('error', 'not-supported', resourceType, `Requested profile ${options.profile} is not known to this server`));
      }
    }
    for (const p of this.required.get(resourceType) ?? []) {
      addProfile(p, resourceType);
    }
    return { profiles, issues };
  }

  private lookupProfile(canonical: string): LoadedProfile | undefined {
    const exact = this.byCanonical.get(canonical);
    if (exact) {
      return exact;
    }
    const bar = canonical.indexOf('|');
    if (bar > 0) {
      const any = this.byCanonical.get(canonical.slice(0, bar));
      if (any) {
        this.logger.once(
          `profile-version:${canonical}`,
          `profile ${canonical} requested; validating against the version held (${any.sd.version ?? 'unversioned'})`,
        );
        return any;
      }
    }
    return undefined;
  }
}

function makeExtensionDefinition(sd: StructureDefinition, logger: ValidationLogger): ExtensionDefinition | null {
  try {
    return {
      url: sd.url as string,
      schema: parseStructureDefinition(sd),
      contexts: (sd.context ?? []).flatMap((c) => (c.type && c.expression ? [{ type: c.type, expression: c.expression }] : [])),
      label: `extension ${sd.url}${sd.version ? `|${sd.version}` : ''}`,
    };
  } catch (err) {
    logger.once(`ext-parse:${sd.url}`, `extension definition ${sd.url} cannot be used: ${(err as Error).message}`);
    return null;
  }
}

/** Expands the value sets and compiles the invariants of the hosted types, datatypes and profiles once. */
function warmUp(
  baseSds: ReadonlyMap<string, StructureDefinition>,
  profileSds: readonly StructureDefinition[],
  terminology: Terminology,
  engine: InvariantEngine,
): void {
  const sds: StructureDefinition[] = [...profileSds];
  for (const sd of new Set(baseSds.values())) {
    if (
      sd.kind === 'complex-type' ||
      sd.kind === 'primitive-type' ||
      (sd.type && WARM_TYPES.includes(sd.type) && sd.derivation !== 'constraint')
    ) {
      sds.push(sd);
    }
  }
  for (const sd of sds) {
    for (const el of sd.snapshot?.element ?? []) {
      const b = el.binding;
      if (b?.valueSet && (b.strength === 'required' || b.strength === 'extensible')) {
        terminology.expand(b.valueSet);
      }
      for (const c of el.constraint ?? []) {
        if (c.key && c.expression !== undefined) {
          engine.compile({ key: c.key, severity: c.severity ?? 'error', expression: c.expression ?? '', description: c.human ?? '' });
        }
      }
    }
  }
}

/**
 * Returns the FHIRPath-ish location where nesting first exceeds maxDepth, or undefined. Iterative: a
 * hostile document cannot overflow the stack here, and nothing recursive runs on it afterwards.
 */
export function exceedsDepth(root: unknown, maxDepth: number): string | undefined {
  const stack: { value: unknown; depth: number; path: string }[] = [
    { value: root, depth: 0, path: (root as { resourceType?: string }).resourceType ?? 'Resource' },
  ];
  while (stack.length) {
    const { value, depth, path } = stack.pop() as { value: unknown; depth: number; path: string };
    if (depth > maxDepth) {
      return path;
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const v = value[i];
        if (v && typeof v === 'object') {
          stack.push({ value: v, depth: depth + 1, path: `${path}[${i}]` });
        }
      }
    } else if (value && typeof value === 'object') {
      for (const key of Object.keys(value)) {
        const v = (value as Record<string, unknown>)[key];
        if (v && typeof v === 'object') {
          stack.push({ value: v, depth: depth + 1, path: `${path}.${key.slice(0, 64)}` });
        }
      }
    }
  }
  return undefined;
}

class IssueCollector {
  private readonly seen = new Set<string>();
  private readonly issues: OperationOutcomeIssue[] = [];

  add(list: readonly KeyedIssue[]): void {
    for (const { issue: i, key } of list) {
      if (!this.seen.has(key)) {
        this.seen.add(key);
        this.issues.push(i);
      }
    }
  }

  result(): OperationOutcomeIssue[] {
    const rank = { fatal: 0, error: 1, warning: 2, information: 3 } as const;
    return this.issues
      .map((i, n) => ({ i, n }))
      .sort((a, b) => rank[a.i.severity] - rank[b.i.severity] || a.n - b.n)
      .map(({ i }) => i);
  }
}

function issue(
  severity: OperationOutcomeIssue['severity'],
  code: OperationOutcomeIssue['code'],
  expression: string,
  diagnostics: string,
): OperationOutcomeIssue {
  return { severity, code, expression: [expression], diagnostics };
}
