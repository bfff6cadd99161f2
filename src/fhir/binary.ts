/**
 * Binary's raw form (R4 http.html#binary, binary.html): a Binary may be written and read as its content alone, in its
 * own media type, rather than as a FHIR resource. These two functions are the whole translation between the two
 * forms; the HTTP layer decides when a request uses the raw one.
 */
import type { Binary } from '@medplum/fhirtypes';

/** The Binary a raw body makes: its media type, its bytes base64-encoded, the security context a header named. */
export function binaryFromContent(content: { contentType: string; bytes: Buffer; securityContext?: string; id?: string }): Binary {
  const binary: Binary = { resourceType: 'Binary', contentType: content.contentType };
  if (content.id !== undefined) binary.id = content.id;
  if (content.securityContext !== undefined) binary.securityContext = { reference: content.securityContext };
  if (content.bytes.length > 0) binary.data = content.bytes.toString('base64');
  return binary;
}

/** The content a Binary holds: its media type and bytes (none when it has no data). */
export function contentOfBinary(binary: Binary): { contentType: string; bytes: Buffer } {
  return { contentType: binary.contentType, bytes: Buffer.from(binary.data ?? '', 'base64') };
}
