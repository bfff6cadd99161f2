/**
 * Per-version commitments.
 *
 *   commitment = SHA-256( salt || UTF-8( JCS(version as served) ) )
 *
 * where `salt` is 32 bytes from crypto.randomBytes, generated once per resource version and kept
 * secret (stored next to the version, disclosed only to whoever is entitled to verify it), and
 * JCS is RFC 8785 canonical JSON (./canonical-json.ts). The commitment is the leaf data of the
 * batch's Merkle tree (./merkle.ts), whose root goes on the Hedera Consensus Service.
 *
 * Why the salt: the commitments (or the Merkle proofs that contain them) may be seen by third
 * parties, and the HCS root is public forever. Without a salt the commitment would be a plain hash
 * of the resource, and SHA-256 only hides what cannot be guessed. FHIR resources are highly
 * guessable: a Patient with a known name and birth date, a known id and meta.versionId, a
 * MedicationRequest for one of a few hundred common drugs... Anyone holding a hash could enumerate
 * candidate documents, canonicalize them and compare, thereby confirming that a given person is a
 * patient here or what they were prescribed, from the hash alone. A 256-bit secret salt per version
 * makes the commitment *hiding*: without the salt, the hash says nothing about the content, however
 * small the space of plausible contents. It stays *binding*: finding a second (salt, document) with
 * the same commitment means breaking SHA-256. A fresh salt per version also keeps two versions with
 * identical content from having identical commitments (which would leak "nothing changed").
 *
 * The salt has a fixed length and comes first, so (salt, document) <-> preimage is unambiguous.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { canonicalJsonBytes } from './canonical-json.js';

export const SALT_BYTES = 32;
export const COMMITMENT_BYTES = 32;

/** A fresh 32-byte secret salt from the CSPRNG. */
export function newSalt(): Buffer {
  return randomBytes(SALT_BYTES);
}

function assertSalt(salt: unknown): asserts salt is Uint8Array {
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_BYTES) {
    throw new TypeError(`commitment salt must be exactly ${SALT_BYTES} bytes`);
  }
}

function assertResource(resource: unknown): asserts resource is object {
  if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
    throw new TypeError('commitment resource must be a JSON object');
  }
}

/**
 * SHA-256(salt || UTF-8(JCS(resource))). `resource` must be the version exactly as served
 * (plain JSON data; see canonicalJson for what is rejected). Throws on a salt that is not 32 bytes.
 */
export function computeCommitment(resource: object, salt: Buffer): Buffer {
  assertSalt(salt);
  assertResource(resource);
  const body = canonicalJsonBytes(resource);
  return createHash('sha256').update(salt).update(body).digest();
}

/**
 * True iff `commitment` is the commitment of `resource` under `salt`. Never throws on malformed
 * input (wrong lengths, non-JSON resource): it returns false.
 */
export function verifyCommitment(resource: object, salt: Buffer, commitment: Buffer): boolean {
  if (!(commitment instanceof Uint8Array) || commitment.length !== COMMITMENT_BYTES) return false;
  let expected: Buffer;
  try {
    expected = computeCommitment(resource, salt);
  } catch {
    return false;
  }
  return timingSafeEqual(expected, commitment);
}
