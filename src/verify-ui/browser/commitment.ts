/**
 * commitment = SHA-256( salt || UTF-8( JCS(version as served) ) ), as src/ledger/commitment.ts computes it. The
 * canonical JSON is the server's own module (src/ledger/canonical-json.ts, the pinned RFC 8785 library behind the
 * same input checks), bundled into the page: the one place where "the same algorithm" is the same code.
 */
import { canonicalJson } from '../../ledger/canonical-json.js';
import { sha256, utf8 } from './bytes.js';

export const SALT_BYTES = 32;

/** Throws on a salt that is not 32 bytes, or a resource that is not a JSON object (as the Node verifier does). */
export async function computeCommitment(resource: object, salt: Uint8Array): Promise<Uint8Array> {
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_BYTES)
    throw new TypeError(`commitment salt must be exactly ${SALT_BYTES} bytes`);
  if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
    throw new TypeError('commitment resource must be a JSON object');
  }
  return sha256(salt, utf8(canonicalJson(resource)));
}
