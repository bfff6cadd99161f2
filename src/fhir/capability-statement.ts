/**
 * The CapabilityStatement is generated from what the server registered, never written by hand: each route module
 * declares the interactions and operations it serves in a Capabilities registry, and GET /metadata renders it.
 * That way the statement cannot claim an interaction nobody implemented, nor forget one that exists.
 */
import type {
  CapabilityStatement,
  CapabilityStatementRestResource,
  CapabilityStatementRestResourceOperation,
  CapabilityStatementRestResourceSearchParam,
  CapabilityStatementRestSecurity,
  ResourceType,
} from '@medplum/fhirtypes';

export type TypeInteraction =
  'read' | 'vread' | 'update' | 'patch' | 'delete' | 'history-instance' | 'history-type' | 'create' | 'search-type';
const TYPE_INTERACTION_ORDER: readonly TypeInteraction[] = [
  'read',
  'vread',
  'update',
  'patch',
  'delete',
  'history-instance',
  'history-type',
  'create',
  'search-type',
];

export type SystemInteraction = 'transaction' | 'batch' | 'search-system' | 'history-system';

interface ResourceCapabilities {
  interactions: Set<TypeInteraction>;
  operations: Map<string, CapabilityStatementRestResourceOperation>;
  searchParams: Map<string, CapabilityStatementRestResourceSearchParam>;
  supportedProfiles: Set<string>;
  extra: Partial<CapabilityStatementRestResource>;
}

export interface SoftwareInfo {
  name: string;
  version: string;
  /** Absolute URL of the FHIR base. */
  baseUrl: string;
  /** When the running server started; the statement's date. */
  startedAt: Date;
}

export class Capabilities {
  private readonly resources = new Map<string, ResourceCapabilities>();
  private readonly systemInteractions = new Set<SystemInteraction>();
  private readonly systemOperations = new Map<string, CapabilityStatementRestResourceOperation>();
  private readonly formats = new Set<string>();
  private readonly patchFormats = new Set<string>();
  private readonly instantiates = new Set<string>();
  private security: CapabilityStatementRestSecurity | undefined;

  constructor(readonly resourceTypes: readonly string[]) {
    for (const type of resourceTypes) this.addResourceType(type);
  }

  /**
   * Declares a resource type served besides the hosted ones (e.g. derived, read-only Provenance). It gets an
   * entry of its own in rest.resource; the statement's documentation keeps naming the hosted types only.
   */
  addResourceType(type: string): this {
    if (!this.resources.has(type)) {
      this.resources.set(type, {
        interactions: new Set(),
        operations: new Map(),
        searchParams: new Map(),
        supportedProfiles: new Set(),
        extra: {},
      });
    }
    return this;
  }

  private forType(type: string): ResourceCapabilities {
    const entry = this.resources.get(type);
    if (!entry) throw new Error(`Capabilities: ${type} is not a supported resource type`);
    return entry;
  }

  addInteraction(type: string, interaction: TypeInteraction): this {
    this.forType(type).interactions.add(interaction);
    return this;
  }

  addSystemInteraction(interaction: SystemInteraction): this {
    this.systemInteractions.add(interaction);
    return this;
  }

  addOperation(type: string | 'system', name: string, definition: string, documentation?: string): this {
    const operation: CapabilityStatementRestResourceOperation = { name, definition };
    if (documentation) operation.documentation = documentation;
    if (type === 'system') this.systemOperations.set(name, operation);
    else this.forType(type).operations.set(name, operation);
    return this;
  }

  addSearchParam(type: string, param: CapabilityStatementRestResourceSearchParam): this {
    this.forType(type).searchParams.set(param.name as string, param);
    return this;
  }

  addSupportedProfile(type: string, canonical: string): this {
    this.forType(type).supportedProfiles.add(canonical);
    return this;
  }

  /** Resource-level flags such as versioning, readHistory, conditionalCreate. */
  setResourceDetails(type: string, details: Partial<CapabilityStatementRestResource>): this {
    Object.assign(this.forType(type).extra, details);
    return this;
  }

  addFormat(mimeType: string): this {
    this.formats.add(mimeType);
    return this;
  }

  /** Canonical URL of a CapabilityStatement this server also implements (e.g. the Bulk Data IG's). */
  addInstantiates(canonical: string): this {
    this.instantiates.add(canonical);
    return this;
  }

  /** rest.security: how clients authenticate (SMART on FHIR, with the token endpoint in the oauth-uris extension). */
  setSecurity(security: CapabilityStatementRestSecurity): this {
    this.security = security;
    return this;
  }

  addPatchFormat(mimeType: string): this {
    this.patchFormats.add(mimeType);
    return this;
  }

  toCapabilityStatement(software: SoftwareInfo): CapabilityStatement {
    const resource: CapabilityStatementRestResource[] = [];
    for (const [type, caps] of this.resources) {
      const entry: CapabilityStatementRestResource = {
        type: type as ResourceType,
        profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
        ...caps.extra,
      };
      if (caps.supportedProfiles.size > 0) entry.supportedProfile = [...caps.supportedProfiles].sort();
      if (caps.interactions.size > 0) {
        // In the order of R4's TypeRestfulInteraction code system, whatever order the routes were registered in.
        const interactions = [...caps.interactions].sort((a, b) => TYPE_INTERACTION_ORDER.indexOf(a) - TYPE_INTERACTION_ORDER.indexOf(b));
        entry.interaction = interactions.map((code) => ({ code }));
      }
      if (caps.searchParams.size > 0) entry.searchParam = [...caps.searchParams.values()];
      if (caps.operations.size > 0) entry.operation = [...caps.operations.values()];
      resource.push(entry);
    }
    const rest: CapabilityStatement['rest'] = [
      {
        mode: 'server',
        documentation: `${this.resourceTypes.length} resource types hosted (rest.resource lists them, with the R4 types that can only be validated). Every stored version is timestamped on a ledger.`,
        resource,
      },
    ];
    if (this.security) rest[0].security = this.security;
    if (this.systemInteractions.size > 0) rest[0].interaction = [...this.systemInteractions].map((code) => ({ code }));
    if (this.systemOperations.size > 0) rest[0].operation = [...this.systemOperations.values()];

    const statement: CapabilityStatement = {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: software.startedAt.toISOString(),
      publisher: software.name,
      kind: 'instance',
      software: { name: software.name, version: software.version },
      implementation: { description: `${software.name} at ${software.baseUrl}`, url: software.baseUrl },
      fhirVersion: '4.0.1',
      format: [...this.formats],
      rest,
    };
    if (this.patchFormats.size > 0) statement.patchFormat = [...this.patchFormats];
    if (this.instantiates.size > 0) statement.instantiates = [...this.instantiates];
    return statement;
  }
}
