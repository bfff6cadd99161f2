/**
 * The HCS topic the batch roots go to. HEDERA_TOPIC_ID wins when set; otherwise the server creates a topic once
 * (submit key = the operator key, no admin key) and remembers it in MongoDB (`ledger_state`, one document per
 * network), so a restart reuses it instead of scattering the history over new topics.
 *
 * Creation is crash-safe the same way batches are: the creating transaction's id and signed bytes are stored
 * before it is sent; after a crash its receipt tells whether the topic exists. If the network never saw it and
 * it can no longer be sent (expired), a new one is made; an unused empty topic is the worst outcome.
 */
import type { Collection } from 'mongodb';
import type { HederaLedger } from './hedera-client.js';
import { bytes, type LedgerStore } from './ledger-store.js';

interface TopicStateDocument {
  _id: string;
  state: 'creating' | 'ready';
  network: string;
  topicId?: string;
  transactionId?: string;
  signedTransaction?: Buffer;
  validUntilMs?: number;
  updatedAt: Date;
}

export const TOPIC_MEMO = 'fhir-ledger-server: Merkle roots of FHIR resource version batches';

function stateId(network: string): string {
  return `topic:${network}`;
}

export async function ensureTopic(
  store: LedgerStore,
  ledger: HederaLedger,
  configuredTopicId: string | undefined,
  log: (level: 'info' | 'warn', message: string) => void,
): Promise<string> {
  const collection = store.db.collection<TopicStateDocument>(store.state.collectionName);
  const _id = stateId(ledger.networkLabel);
  const stored = await collection.findOne({ _id });

  if (configuredTopicId) {
    if (stored?.topicId && stored.topicId !== configuredTopicId) {
      log(
        'warn',
        `HEDERA_TOPIC_ID ${configuredTopicId} differs from topic ${stored.topicId} used before on ${ledger.networkLabel}; new batches go to ${configuredTopicId}`,
      );
    }
    if (stored?.topicId !== configuredTopicId) {
      await collection.updateOne(
        { _id },
        { $set: { state: 'ready', network: ledger.networkLabel, topicId: configuredTopicId, updatedAt: new Date() } },
        { upsert: true },
      );
    }
    return configuredTopicId;
  }
  if (stored?.state === 'ready' && stored.topicId) return stored.topicId;

  if (stored?.state === 'creating' && stored.transactionId) {
    const found = await ledger.receipt(stored.transactionId, false);
    if (found.kind === 'success' && found.topicId) return markReady(collection, _id, ledger, found.topicId, stored.transactionId, log);
    const signed = bytes(stored.signedTransaction);
    if (found.kind === 'unknown' && signed && (stored.validUntilMs ?? 0) > Date.now() + 5000) {
      await ledger.submit(signed); // accepted or duplicate: either way, now wait for its receipt
      const receipt = await ledger.receipt(stored.transactionId, true);
      if (receipt.kind === 'success' && receipt.topicId)
        return markReady(collection, _id, ledger, receipt.topicId, stored.transactionId, log);
    }
  }

  const prepared = await ledger.prepareTopicCreate(TOPIC_MEMO);
  await collection.updateOne(
    { _id },
    {
      $set: {
        state: 'creating',
        network: ledger.networkLabel,
        transactionId: prepared.transactionId,
        signedTransaction: prepared.signedBytes,
        validUntilMs: prepared.validUntilMs,
        updatedAt: new Date(),
      },
    },
    { upsert: true },
  );
  await ledger.submit(prepared.signedBytes);
  const receipt = await ledger.receipt(prepared.transactionId, true);
  if (receipt.kind !== 'success' || !receipt.topicId) {
    throw new Error(`creating the HCS topic failed: ${receipt.kind === 'failed' ? receipt.status : 'no receipt'}`);
  }
  return markReady(collection, _id, ledger, receipt.topicId, prepared.transactionId, log);
}

async function markReady(
  collection: Collection<TopicStateDocument>,
  _id: string,
  ledger: HederaLedger,
  topicId: string,
  transactionId: string,
  log: (level: 'info' | 'warn', message: string) => void,
): Promise<string> {
  await collection.updateOne({ _id }, { $set: { state: 'ready', topicId, transactionId, updatedAt: new Date() } });
  log(
    'info',
    `created HCS topic ${topicId} on ${ledger.networkLabel} (submit key = operator key); set HEDERA_TOPIC_ID=${topicId} to pin it`,
  );
  return topicId;
}
