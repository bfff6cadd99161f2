/**
 * The funded operator account's key. With a data directory it is generated once and kept
 * there, so signatures and proofs made against this ledger stay valid across restarts;
 * in memory every start gets a fresh key. It is a development key of a LOCAL ledger and
 * controls nothing on Hedera.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrivateKey } from '@hashgraph/sdk';
import { writeFileAtomic } from './files.js';
import type { proto } from './proto.js';

export const OPERATOR_KEY_FILE = 'operator-key.json';

export type OperatorKeyType = 'ed25519' | 'ecdsa';

export interface OperatorKey {
  privateKey: PrivateKey;
  type: OperatorKeyType;
  /** Protobuf Key of the public key, as stored on the account. */
  publicKeyProto: proto.IKey;
}

function describe(privateKey: PrivateKey, type: OperatorKeyType): OperatorKey {
  const raw = privateKey.publicKey.toBytesRaw();
  return { privateKey, type, publicKeyProto: type === 'ed25519' ? { ed25519: raw } : { ECDSASecp256k1: raw } };
}

function generate(type: OperatorKeyType): PrivateKey {
  return type === 'ed25519' ? PrivateKey.generateED25519() : PrivateKey.generateECDSA();
}

/** Loads the key from `dataDir`, or creates and stores it; without a dataDir, a fresh key. */
export function loadOrCreateOperatorKey(
  dataDir: string | undefined,
  accountId: string,
  typeForNewKey: OperatorKeyType,
): { key: OperatorKey; created: boolean } {
  if (dataDir === undefined) return { key: describe(generate(typeForNewKey), typeForNewKey), created: true };
  const path = join(dataDir, OPERATOR_KEY_FILE);
  if (existsSync(path)) {
    const stored = JSON.parse(readFileSync(path, 'utf8')) as { type?: unknown; privateKeyDer?: unknown };
    if ((stored.type !== 'ed25519' && stored.type !== 'ecdsa') || typeof stored.privateKeyDer !== 'string') {
      throw new Error(`${path} is not an operator key file`);
    }
    const privateKey =
      stored.type === 'ed25519' ? PrivateKey.fromStringED25519(stored.privateKeyDer) : PrivateKey.fromStringECDSA(stored.privateKeyDer);
    return { key: describe(privateKey, stored.type), created: false };
  }
  const privateKey = generate(typeForNewKey);
  const file = {
    warning: 'Development key of a LOCAL ledger (not Hedera). It controls nothing on any Hedera network.',
    accountId,
    type: typeForNewKey,
    privateKeyDer: privateKey.toStringDer(),
    publicKeyDer: privateKey.publicKey.toStringDer(),
  };
  writeFileAtomic(path, JSON.stringify(file, null, 2) + '\n', 0o600);
  return { key: describe(privateKey, typeForNewKey), created: true };
}
