/**
 * Signature checks: does a transaction's SignatureMap satisfy a Hedera Key?
 *
 * Ed25519 is verified with node:crypto. ECDSA(secp256k1) signatures in Hedera are over the
 * keccak-256 of the body bytes, which OpenSSL here does not offer, so those go through the
 * SDK's PublicKey (the same code clients sign with). Key lists need every key, threshold
 * keys need `threshold` of them; contract ids and other key kinds cannot sign here.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { PublicKey } from '@hashgraph/sdk';
import { proto, toUint8 } from './proto.js';

const ED25519_KEY_BYTES = 32;
const ECDSA_COMPRESSED_KEY_BYTES = 33;
/** DER SubjectPublicKeyInfo header for a raw 32-byte Ed25519 key (RFC 8410). */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** Deepest key nesting accepted; Hedera limits key depth too, and it bounds recursion. */
const MAX_KEY_DEPTH = 15;

function isPrefix(prefix: Uint8Array, of: Uint8Array): boolean {
  if (prefix.length > of.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== of[i]) return false;
  return true;
}

function ed25519KeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** A structurally usable key (right sizes, non-empty lists, sane thresholds). */
export function isValidKey(key: proto.IKey | null | undefined, depth = 0): boolean {
  if (!key || depth > MAX_KEY_DEPTH) return false;
  if (key.ed25519) return key.ed25519.length === ED25519_KEY_BYTES;
  if (key.ECDSASecp256k1) return key.ECDSASecp256k1.length === ECDSA_COMPRESSED_KEY_BYTES;
  if (key.keyList) {
    const keys = key.keyList.keys ?? [];
    return keys.length > 0 && keys.every((k) => isValidKey(k, depth + 1));
  }
  if (key.thresholdKey) {
    const keys = key.thresholdKey.keys?.keys ?? [];
    const threshold = key.thresholdKey.threshold ?? 0;
    return threshold >= 1 && threshold <= keys.length && keys.every((k) => isValidKey(k, depth + 1));
  }
  return false;
}

/**
 * KEY_PREFIX_MISMATCH rule of the consensus node: no prefix may equal or be a prefix of
 * another, otherwise one key could match two signatures.
 */
export function hasAmbiguousPrefixes(pairs: readonly proto.ISignaturePair[]): boolean {
  const prefixes = pairs.map((p) => toUint8(p.pubKeyPrefix));
  for (let i = 0; i < prefixes.length; i++) {
    for (let j = i + 1; j < prefixes.length; j++) {
      if (isPrefix(prefixes[i]!, prefixes[j]!) || isPrefix(prefixes[j]!, prefixes[i]!)) return true;
    }
  }
  return false;
}

/** Verifies signatures of one body against keys, caching per public key. */
export class SignatureChecker {
  private readonly verified = new Map<string, boolean>();

  constructor(
    private readonly bodyBytes: Uint8Array,
    private readonly pairs: readonly proto.ISignaturePair[],
  ) {}

  /** True when the signatures satisfy `key` (recursively for lists and thresholds). */
  satisfies(key: proto.IKey | null | undefined, depth = 0): boolean {
    if (!key || depth > MAX_KEY_DEPTH) return false;
    if (key.ed25519) return this.primitive('ed25519', key.ed25519);
    if (key.ECDSASecp256k1) return this.primitive('ecdsa', key.ECDSASecp256k1);
    if (key.keyList) {
      const keys = key.keyList.keys ?? [];
      return keys.length > 0 && keys.every((k) => this.satisfies(k, depth + 1));
    }
    if (key.thresholdKey) {
      const keys = key.thresholdKey.keys?.keys ?? [];
      const threshold = key.thresholdKey.threshold ?? 0;
      if (threshold < 1) return false;
      let count = 0;
      for (const k of keys) if (this.satisfies(k, depth + 1) && ++count >= threshold) return true;
      return false;
    }
    return false;
  }

  private primitive(kind: 'ed25519' | 'ecdsa', publicKey: Uint8Array): boolean {
    const cacheKey = `${kind}:${Buffer.from(publicKey).toString('hex')}`;
    const cached = this.verified.get(cacheKey);
    if (cached !== undefined) return cached;
    const result = this.pairs.some((pair) => this.verifyPair(kind, publicKey, pair));
    this.verified.set(cacheKey, result);
    return result;
  }

  private verifyPair(kind: 'ed25519' | 'ecdsa', publicKey: Uint8Array, pair: proto.ISignaturePair): boolean {
    if (!isPrefix(toUint8(pair.pubKeyPrefix), publicKey)) return false;
    try {
      if (kind === 'ed25519') {
        if (!pair.ed25519 || publicKey.length !== ED25519_KEY_BYTES) return false;
        return verify(null, this.bodyBytes, ed25519KeyObject(publicKey), pair.ed25519);
      }
      if (!pair.ECDSASecp256k1) return false;
      return PublicKey.fromBytesECDSA(publicKey).verify(this.bodyBytes, pair.ECDSASecp256k1);
    } catch {
      // A malformed key or signature is simply not a valid signature.
      return false;
    }
  }
}

/** Protobuf Key from its stored bytes. */
export function decodeKey(bytes: Uint8Array): proto.Key {
  return proto.Key.decode(bytes);
}

export function encodeKey(key: proto.IKey): Buffer {
  return Buffer.from(proto.Key.encode(key).finish());
}

/** The mirror node's JSON form of a key. */
export function keyToMirrorJson(bytes: Uint8Array | null): { _type: string; key: string } | null {
  if (!bytes) return null;
  const key = decodeKey(bytes);
  if (key.ed25519 && key.ed25519.length > 0) return { _type: 'ED25519', key: Buffer.from(key.ed25519).toString('hex') };
  if (key.ECDSASecp256k1 && key.ECDSASecp256k1.length > 0) {
    return { _type: 'ECDSA_SECP256K1', key: Buffer.from(key.ECDSASecp256k1).toString('hex') };
  }
  return { _type: 'ProtobufEncoded', key: Buffer.from(bytes).toString('hex') };
}
