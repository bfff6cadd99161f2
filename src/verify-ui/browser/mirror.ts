/// <reference lib="dom" />
/**
 * The mirror-node client of the page: src/ledger/mirror-client.ts itself (it needs nothing of Node), with what a
 * browser page calls for. The page makes two of its calls:
 *
 *   GET /api/v1/topics/{topicId}/messages/{sequenceNumber}   one topic message
 *   GET /api/v1/topics/messages/{consensusTimestamp}         the message at a consensus time
 *
 * A 404 is an answer ("not there"); anything else that is not a well-formed answer is MirrorUnavailableError,
 * reported as "could not check", never as tampering. The requests carry no credentials and only CORS-safelisted
 * headers, so a mirror that sends Access-Control-Allow-Origin (Hedera's public ones do, and so does the project's
 * local one) answers without a preflight.
 */

import { MirrorClient } from '../../ledger/mirror-client.js';

export { MirrorClient, MirrorUnavailableError, type MirrorTopicMessage } from '../../ledger/mirror-client.js';

/** Why a browser's fetch fails without an HTTP answer, in words a user can act on. */
const UNREACHABLE =
  'the browser got no answer (offline, a wrong URL, a mirror that does not allow reading from a web page (CORS), ' +
  "or a plain-http address other than 127.0.0.1/localhost, which this page's security policy refuses)";

/** A client for the page: no credentials, cache or referrer sent; failures said in a user's words. */
export function browserMirrorClient(baseUrl: string): MirrorClient {
  return new MirrorClient(baseUrl, {
    requestInit: { credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' },
    describeUnreachable: (error, timeoutMs) =>
      error instanceof DOMException && error.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : UNREACHABLE,
  });
}
