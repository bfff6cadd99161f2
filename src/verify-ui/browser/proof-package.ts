/**
 * The proof package (format "fhir-ledger-proof", formatVersion 1; see src/ledger/proof-package.ts and
 * docs/trust-model.md), parsed as src/ledger/proof-package.ts parseProofPackage does — the same shape and length
 * checks, the same messages — into Uint8Arrays instead of Buffers. Nothing in the file is trusted.
 */
import { hexToBytes, utf8 } from './bytes.js';

export const PROOF_PACKAGE_FORMAT = 'fhir-ledger-proof';
export const PROOF_PACKAGE_VERSION = 1;
export const PROOF_ALGORITHM = 'RFC9162-SHA256';

export interface AnchorProof {
  batch: number;
  leafIndex: number;
  treeSize: number;
  auditPath: Uint8Array[];
  root: Uint8Array;
  batchMessage: Uint8Array | null;
  topicId: string;
  sequenceNumber: number;
  consensusTimestamp: string;
  runningHash: Uint8Array;
  runningHashVersion: number;
  transactionId: string;
  previousRunningHash: Uint8Array | null;
}

export interface PackagedVersion {
  versionId: number;
  resource: Record<string, unknown>;
  salt: Uint8Array;
  commitment: Uint8Array;
  status: 'anchored' | 'pending';
  proof: AnchorProof | null;
}

export interface ProofPackage {
  network: string;
  mirrorUrl: string | null;
  generatedBy: string | null;
  generatedAt: string | null;
  resource: { type: string; id: string };
  scope: 'all' | 'version';
  history: {
    currentVersion: number | null;
    anchoredVersions: Array<{ versionId: number; batch: number; leafIndex: number }>;
  };
  versions: PackagedVersion[];
}

export class ProofPackageError extends Error {
  constructor(message: string) {
    super(`not a valid proof package: ${message}`);
    this.name = 'ProofPackageError';
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hexBytes(value: unknown, length: number, where: string): Uint8Array {
  if (typeof value !== 'string' || value.length !== length * 2 || !/^[0-9a-f]*$/.test(value)) {
    throw new ProofPackageError(`${where} must be ${length * 2} lowercase hex digits`);
  }
  return hexToBytes(value);
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
    auditPath: p.auditPath.map((h: unknown, i: number) => hexBytes(h, 32, `${where}.auditPath[${i}]`)),
    root: hexBytes(p.root, 32, `${where}.root`),
    batchMessage: typeof p.batchMessage === 'string' ? utf8(p.batchMessage) : null,
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
  const versions = json.versions.map((v: unknown, i: number): PackagedVersion => {
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
    // Shown to the user as what the package claims; never used in a check.
    generatedBy: typeof json.generatedBy === 'string' ? json.generatedBy : null,
    generatedAt: typeof json.generatedAt === 'string' ? json.generatedAt : null,
    resource: { type: text(resource.type, 'resource.type'), id: text(resource.id, 'resource.id') },
    scope: json.scope === 'version' ? 'version' : 'all',
    history: {
      currentVersion:
        history.currentVersion === null || history.currentVersion === undefined
          ? null
          : count(history.currentVersion, 1, 'history.currentVersion'),
      anchoredVersions: history.anchoredVersions.map((a: unknown, i: number) => {
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
