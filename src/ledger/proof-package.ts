/**
 * The proof package: everything needed to check a resource's versions against the ledger WITHOUT this server
 * or its database — each version as served, its salt and commitment, its Merkle inclusion proof, the HCS batch
 * message, where that message sits on the topic, and where to read the topic (network, mirror node).
 *
 * Format "fhir-ledger-proof", formatVersion 1 (JSON). Hashes are lowercase hex; the batch message is its exact
 * UTF-8 text (it is ASCII JSON). See docs/trust-model.md for the field-by-field description and how to check a
 * package by hand.
 *
 *   {
 *     "format": "fhir-ledger-proof", "formatVersion": 1,
 *     "generatedAt": "2025-01-01T00:00:00.000Z", "generatedBy": "https://fhir.example.org",
 *     "network": "testnet", "mirrorUrl": "https://testnet.mirrornode.hedera.com",
 *     "resource": { "type": "Patient", "id": "123" },
 *     "scope": "all" | "version",
 *     "history": { "currentVersion": 3, "anchoredVersions": [{ "versionId": 1, "batch": 7, "leafIndex": 4 }, ...] },
 *     "versions": [{
 *       "versionId": 1, "resource": { ...as served... }, "salt": "<64 hex>", "commitment": "<64 hex>",
 *       "status": "anchored" | "pending",
 *       "proof": null | {
 *         "algorithm": "RFC9162-SHA256", "batch": 7, "leafIndex": 4, "treeSize": 12,
 *         "auditPath": ["<64 hex>", ...], "root": "<64 hex>",
 *         "batchMessage": "{\"batch\":7,\"prev\":\"...\",\"root\":\"...\",\"size\":12,\"v\":1}",
 *         "topicId": "0.0.1234", "sequenceNumber": 7, "consensusTimestamp": "1700000000.123456789",
 *         "runningHash": "<96 hex>", "runningHashVersion": 3, "transactionId": "0.0.2@1700000000.000000001",
 *         "previousRunningHash": "<96 hex>" | null,
 *         "hashscan": { "transaction": "...", "topic": "..." } | null
 *       }
 *     }]
 *   }
 *
 * parseProofPackage() is the CLI's gate: it checks shapes and lengths (never trusting the file), and turns the
 * hex into Buffers.
 */

export const PROOF_PACKAGE_FORMAT = 'fhir-ledger-proof';
export const PROOF_PACKAGE_VERSION = 1;
export const PROOF_ALGORITHM = 'RFC9162-SHA256';

export interface ProofJson {
  algorithm: typeof PROOF_ALGORITHM;
  batch: number;
  leafIndex: number;
  treeSize: number;
  auditPath: string[];
  root: string;
  batchMessage: string;
  topicId: string;
  sequenceNumber: number;
  consensusTimestamp: string;
  runningHash: string;
  runningHashVersion: number;
  transactionId: string;
  previousRunningHash: string | null;
  hashscan: { transaction: string; topic: string } | null;
}

export interface VersionEntryJson {
  versionId: number;
  resource: Record<string, unknown>;
  salt: string;
  commitment: string;
  status: 'anchored' | 'pending';
  proof: ProofJson | null;
}

export interface ProofPackageJson {
  format: typeof PROOF_PACKAGE_FORMAT;
  formatVersion: typeof PROOF_PACKAGE_VERSION;
  generatedAt: string;
  generatedBy: string;
  network: string;
  mirrorUrl: string | null;
  resource: { type: string; id: string };
  /** all: every version the server holds (history can be checked); version: one version only. */
  scope: 'all' | 'version';
  history: {
    /** The current version number per the server's head record; null if it has none. */
    currentVersion: number | null;
    /** Every version of this resource the batch member lists name, with its place. */
    anchoredVersions: Array<{ versionId: number; batch: number; leafIndex: number }>;
  };
  versions: VersionEntryJson[];
}

// ---- parsed form (Buffers), for verification

export interface AnchorProof {
  batch: number;
  leafIndex: number;
  treeSize: number;
  auditPath: Buffer[];
  root: Buffer;
  batchMessage: Buffer | null;
  topicId: string;
  sequenceNumber: number;
  consensusTimestamp: string;
  runningHash: Buffer;
  runningHashVersion: number;
  transactionId: string;
  previousRunningHash: Buffer | null;
}

export interface PackagedVersion {
  versionId: number;
  resource: Record<string, unknown>;
  salt: Buffer;
  commitment: Buffer;
  status: 'anchored' | 'pending';
  proof: AnchorProof | null;
}

export interface ProofPackage {
  network: string;
  mirrorUrl: string | null;
  resource: { type: string; id: string };
  scope: 'all' | 'version';
  history: ProofPackageJson['history'];
  versions: PackagedVersion[];
}

export class ProofPackageError extends Error {
  constructor(message: string) {
    super(`not a valid proof package: ${message}`);
    this.name = 'ProofPackageError';
  }
}

export const hex = (b: Buffer): string => b.toString('hex');

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hexBytes(value: unknown, length: number, where: string): Buffer {
  if (typeof value !== 'string' || value.length !== length * 2 || !/^[0-9a-f]*$/.test(value)) {
    throw new ProofPackageError(`${where} must be ${length * 2} lowercase hex digits`);
  }
  return Buffer.from(value, 'hex');
}

function count(value: unknown, min: number, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    throw new ProofPackageError(`${where} must be an integer >= ${min}`);
  return value;
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') throw new ProofPackageError(`${where} must be a non-empty string`);
  return value;
}

function parseProof(p: unknown, where: string): AnchorProof {
  if (!isRecord(p)) throw new ProofPackageError(`${where} must be an object`);
  if (p.algorithm !== PROOF_ALGORITHM) throw new ProofPackageError(`${where}.algorithm must be ${PROOF_ALGORITHM}`);
  if (!Array.isArray(p.auditPath)) throw new ProofPackageError(`${where}.auditPath must be an array`);
  return {
    batch: count(p.batch, 1, `${where}.batch`),
    leafIndex: count(p.leafIndex, 0, `${where}.leafIndex`),
    treeSize: count(p.treeSize, 1, `${where}.treeSize`),
    auditPath: p.auditPath.map((h, i) => hexBytes(h, 32, `${where}.auditPath[${i}]`)),
    root: hexBytes(p.root, 32, `${where}.root`),
    batchMessage: typeof p.batchMessage === 'string' ? Buffer.from(p.batchMessage, 'utf8') : null,
    topicId: text(p.topicId, `${where}.topicId`),
    sequenceNumber: count(p.sequenceNumber, 1, `${where}.sequenceNumber`),
    consensusTimestamp: text(p.consensusTimestamp, `${where}.consensusTimestamp`),
    runningHash: hexBytes(p.runningHash, 48, `${where}.runningHash`),
    runningHashVersion: count(p.runningHashVersion, 0, `${where}.runningHashVersion`),
    transactionId: text(p.transactionId, `${where}.transactionId`),
    previousRunningHash:
      p.previousRunningHash === null || p.previousRunningHash === undefined
        ? null
        : hexBytes(p.previousRunningHash, 48, `${where}.previousRunningHash`),
  };
}

/** Validates a parsed JSON document as a proof package (format version 1). Throws ProofPackageError. */
export function parseProofPackage(json: unknown): ProofPackage {
  if (!isRecord(json)) throw new ProofPackageError('the document must be a JSON object');
  if (json.format !== PROOF_PACKAGE_FORMAT) throw new ProofPackageError(`"format" must be "${PROOF_PACKAGE_FORMAT}"`);
  if (json.formatVersion !== PROOF_PACKAGE_VERSION) {
    throw new ProofPackageError(
      `formatVersion ${JSON.stringify(json.formatVersion)} is not supported (this verifier reads ${PROOF_PACKAGE_VERSION})`,
    );
  }
  const resource = json.resource;
  if (!isRecord(resource)) throw new ProofPackageError('"resource" must be an object');
  const history = json.history;
  if (!isRecord(history) || !Array.isArray(history.anchoredVersions)) throw new ProofPackageError('"history" must hold anchoredVersions');
  if (!Array.isArray(json.versions)) throw new ProofPackageError('"versions" must be an array');
  const versions = json.versions.map((v, i): PackagedVersion => {
    const where = `versions[${i}]`;
    if (!isRecord(v)) throw new ProofPackageError(`${where} must be an object`);
    if (!isRecord(v.resource)) throw new ProofPackageError(`${where}.resource must be an object`);
    if (v.status !== 'anchored' && v.status !== 'pending') throw new ProofPackageError(`${where}.status must be anchored or pending`);
    const proof = v.proof === null || v.proof === undefined ? null : parseProof(v.proof, `${where}.proof`);
    if (v.status === 'anchored' && !proof) throw new ProofPackageError(`${where} is anchored but has no proof`);
    return {
      versionId: count(v.versionId, 1, `${where}.versionId`),
      resource: v.resource,
      salt: hexBytes(v.salt, 32, `${where}.salt`),
      commitment: hexBytes(v.commitment, 32, `${where}.commitment`),
      status: v.status,
      proof,
    };
  });
  return {
    network: text(json.network, 'network'),
    mirrorUrl: typeof json.mirrorUrl === 'string' ? json.mirrorUrl : null,
    resource: { type: text(resource.type, 'resource.type'), id: text(resource.id, 'resource.id') },
    scope: json.scope === 'version' ? 'version' : 'all',
    history: {
      currentVersion:
        history.currentVersion === null || history.currentVersion === undefined
          ? null
          : count(history.currentVersion, 1, 'history.currentVersion'),
      anchoredVersions: history.anchoredVersions.map((a, i) => {
        if (!isRecord(a)) throw new ProofPackageError(`history.anchoredVersions[${i}] must be an object`);
        return {
          versionId: count(a.versionId, 1, `history.anchoredVersions[${i}].versionId`),
          batch: count(a.batch, 1, `history.anchoredVersions[${i}].batch`),
          leafIndex: count(a.leafIndex, 0, `history.anchoredVersions[${i}].leafIndex`),
        };
      }),
    },
    versions,
  };
}
