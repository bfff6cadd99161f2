/**
 * The verifiers never trust what they verify by default (issue 14, item 4), in process and without a network:
 * - fhir-ledger-verify-chain must not call a range intact when it recomputed nothing: a mirror that withholds message
 *   N-1 leaves message N unchecked, and that is exit 5 (not checked), never 0;
 * - fhir-ledger-verify reads, for a package on a public network, Hedera's own mirror of that network rather than the
 *   mirror URL the package (the server being verified) names; for a local ledger it uses the package's and says
 *   plainly where that URL came from.
 * The chain is served by a small fake mirror on loopback whose messages carry real HCS v3 running hashes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runVerifyChain } from '../../src/cli/verify-chain-command.js';
import { chooseMirror, runVerify } from '../../src/cli/verify-command.js';
import { encodeBatchMessage } from '../../src/ledger/batch-message.js';
import { computeCommitment } from '../../src/ledger/commitment.js';
import { leafHash } from '../../src/ledger/merkle.js';
import type { MirrorTopicMessage } from '../../src/ledger/mirror-client.js';
import { parseProofPackage } from '../../src/ledger/proof-package.js';
import { computeRunningHashV3, initialRunningHash } from '../../src/ledger/running-hash.js';

const TOPIC = '0.0.1001';
const PAYER = '0.0.2';

/** Three chained messages, as a mirror would serve them. */
function chainOfThree(): MirrorTopicMessage[] {
  const messages: MirrorTopicMessage[] = [];
  let previous = initialRunningHash();
  for (let seq = 1; seq <= 3; seq++) {
    const message = Buffer.from(`not a batch ${seq}`);
    const seconds = 1_700_000_000 + seq;
    const hash = computeRunningHashV3({
      previousRunningHash: previous,
      payer: { shard: 0, realm: 0, num: 2 },
      topic: { shard: 0, realm: 0, num: 1001 },
      consensusSeconds: seconds,
      consensusNanos: 5,
      sequenceNumber: seq,
      message,
    });
    messages.push({
      consensus_timestamp: `${seconds}.000000005`,
      message: message.toString('base64'),
      payer_account_id: PAYER,
      running_hash: hash.toString('base64'),
      running_hash_version: 3,
      sequence_number: seq,
      topic_id: TOPIC,
    });
    previous = hash;
  }
  return messages;
}

/** A mirror node REST API serving `messages` minus the `withheld` sequence numbers. */
async function fakeMirror(messages: MirrorTopicMessage[], withheld: Set<number>): Promise<{ url: string; server: Server }> {
  const served = messages.filter((m) => !withheld.has(m.sequence_number));
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://mirror');
    const one = /^\/api\/v1\/topics\/[^/]+\/messages\/(\d+)$/.exec(url.pathname);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (one) {
      const message = served.find((m) => m.sequence_number === Number(one[1]));
      return message ? send(200, message) : send(404, { _status: { messages: [{ message: 'Not found' }] } });
    }
    if (/^\/api\/v1\/topics\/[^/]+\/messages$/.test(url.pathname)) {
      const bounds = url.searchParams.getAll('sequencenumber');
      const gte = Number(bounds.find((b) => b.startsWith('gte:'))?.slice(4) ?? 1);
      const lte = Number(bounds.find((b) => b.startsWith('lte:'))?.slice(4) ?? Infinity);
      return send(200, { messages: served.filter((m) => m.sequence_number >= gte && m.sequence_number <= lte), links: { next: null } });
    }
    send(404, { _status: { messages: [{ message: 'Not found' }] } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** A one-version package in the format $proof writes, its commitment, root and batch message computed for real. */
function proofPackage(network: string, mirrorUrl: string): Record<string, unknown> {
  const resource = {
    resourceType: 'Patient',
    id: 'p1',
    meta: { versionId: '1', lastUpdated: '2026-12-07T10:00:00.000Z' },
    gender: 'female',
  };
  const salt = Buffer.alloc(32, 7);
  const commitment = computeCommitment(resource, salt);
  const root = leafHash(commitment);
  const batchMessage = encodeBatchMessage({ version: 1, batchNumber: 1, treeSize: 1, root, previousRoot: null }).toString('utf8');
  return {
    format: 'fhir-ledger-proof',
    formatVersion: 1,
    generatedAt: '2026-12-07T10:00:05.000Z',
    generatedBy: 'http://127.0.0.1:8080',
    network,
    mirrorUrl,
    resource: { type: 'Patient', id: 'p1' },
    scope: 'all',
    history: { currentVersion: 1, anchoredVersions: [{ versionId: 1, batch: 1, leafIndex: 0 }] },
    versions: [
      {
        versionId: 1,
        resource,
        salt: salt.toString('hex'),
        commitment: commitment.toString('hex'),
        status: 'anchored',
        proof: {
          algorithm: 'RFC9162-SHA256',
          batch: 1,
          leafIndex: 0,
          treeSize: 1,
          auditPath: [],
          root: root.toString('hex'),
          batchMessage,
          topicId: TOPIC,
          sequenceNumber: 1,
          consensusTimestamp: '1700000001.000000005',
          runningHash: 'ab'.repeat(48),
          runningHashVersion: 3,
          transactionId: `${PAYER}@1700000000.000000001`,
          previousRunningHash: null,
          hashscan: null,
        },
      },
    ],
  };
}

function collect(): { write(text: string): void; text(): string } {
  let buffer = '';
  return { write: (text: string) => void (buffer += text), text: () => buffer };
}

t.test('fhir-ledger-verify-chain: nothing recomputed is never intact', async (t) => {
  const messages = chainOfThree();
  const complete = await fakeMirror(messages, new Set());
  const withholding = await fakeMirror(messages, new Set([1]));
  t.teardown(() => {
    complete.server.close();
    withholding.server.close();
  });
  const run = async (mirror: string, from: number, to: number) => {
    const out = collect();
    const err = collect();
    const code = await runVerifyChain(['--topic', TOPIC, '--from', String(from), '--to', String(to), '--mirror', mirror], out, err);
    return { code, out: out.text() + err.text() };
  };

  const intact = await run(complete.url, 1, 3);
  t.equal(intact.code, 0, intact.out);
  t.match(intact.out, /RESULT: INTACT: 3 running hashes recomputed/);
  const fromTwo = await run(complete.url, 2, 3);
  t.equal(fromTwo.code, 0, 'message 1 served: the range 2..3 is recomputed from it');

  const nothing = await run(withholding.url, 2, 2);
  t.equal(nothing.code, 5, `message 1 withheld: message 2 cannot be recomputed, exit 5 (${nothing.out})`);
  t.match(nothing.out, /RESULT: NOT CHECKED: 1 of 1 running hashes could not be recomputed \(0 were\)/);
  t.notMatch(nothing.out, /INTACT/);
  const partly = await run(withholding.url, 2, 3);
  t.equal(partly.code, 5, 'message 3 recomputes from 2, but 2 itself is not vouched for');
  t.match(partly.out, /1 of 2 running hashes could not be recomputed \(1 were\)/);
});

t.test('fhir-ledger-verify: the mirror comes from the verifier, not from the package', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'verifier-trust-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A testnet package that names a mirror run by whoever served it.
  const testnet = proofPackage('testnet', 'http://127.0.0.1:9/evil-mirror');
  const choice = chooseMirror(parseProofPackage(testnet), undefined);
  t.equal(choice.url, 'https://testnet.mirrornode.hedera.com', "Hedera's public testnet mirror");
  t.match(choice.why, /the package names http:\/\/127\.0\.0\.1:9\/evil-mirror; not used/);
  t.equal(chooseMirror(parseProofPackage({ ...testnet, network: 'mainnet' }), undefined).url, 'https://mainnet.mirrornode.hedera.com');
  t.equal(chooseMirror(parseProofPackage(testnet), 'http://127.0.0.1:5551').url, 'http://127.0.0.1:5551', '--mirror wins');

  // Run the CLI on it with fetch recorded (no network here): it must never ask the package's mirror.
  const file = join(dir, 'testnet.json');
  await writeFile(file, JSON.stringify(testnet));
  const asked: string[] = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = (async (input: string | URL | Request) => {
    asked.push(String(input instanceof Request ? input.url : input));
    return new Response('unavailable', { status: 503 });
  }) as typeof fetch;
  const out = collect();
  let code: number;
  try {
    code = await runVerify([file], out, collect());
  } finally {
    globalThis.fetch = realFetch;
  }
  t.equal(code, 4, 'the (stubbed) public mirror is unavailable: exit 4');
  t.ok(asked.length > 0 && asked.every((url) => url.startsWith('https://testnet.mirrornode.hedera.com/')), asked.join(', '));
  t.match(out.text(), /MIRROR: Hedera's public testnet mirror node/);

  // A local package: its own mirror, said to come from the server being verified.
  const local = chooseMirror(parseProofPackage(proofPackage('local (not Hedera)', 'http://127.0.0.1:5551')), undefined);
  t.equal(local.url, 'http://127.0.0.1:5551');
  t.match(local.why, /supplied by the server being verified .*Give --mirror URL with a mirror node you trust/);
});
