/**
 * Which ledger a proof points at, said the same way everywhere: in the log, in $verify answers, in proof
 * packages and in the CLIs. A proof anchored on the project's own local network proves only what that local
 * ledger recorded, so it is never called "Hedera": its label is "local (not Hedera)", and it gets no HashScan
 * link (HashScan only indexes the public networks).
 */
import type { HederaNetworkName } from '../config.js';

/** How proofs name the project's local Hedera-compatible network (src/dev/hedera). */
export const LOCAL_NETWORK_LABEL = 'local (not Hedera)';

/** The label written into proofs and answers: the public network's name, or LOCAL_NETWORK_LABEL. */
export function networkLabel(network: HederaNetworkName): string {
  return network === 'local' ? LOCAL_NETWORK_LABEL : network;
}

export function isPublicNetworkLabel(label: string): label is 'testnet' | 'mainnet' | 'previewnet' {
  return label === 'testnet' || label === 'mainnet' || label === 'previewnet';
}

/** Hedera's own mirror node REST API of each public network (docs.hedera.com, "Mirror Node REST API"). */
export const PUBLIC_MIRROR_URLS: Record<Exclude<HederaNetworkName, 'local'>, string> = {
  testnet: 'https://testnet.mirrornode.hedera.com',
  mainnet: 'https://mainnet.mirrornode.hedera.com',
  previewnet: 'https://previewnet.mirrornode.hedera.com',
};

/**
 * HashScan pages of an anchored batch, for public networks only. HashScan addresses a transaction by its
 * consensus timestamp (https://hashscan.io/testnet/transaction/1700000000.123456789), and a topic by its id,
 * whose page lists every message with its sequence number.
 */
export function hashscanLinks(label: string, topicId: string, consensusTimestamp: string): { transaction: string; topic: string } | null {
  if (!isPublicNetworkLabel(label)) return null;
  return {
    transaction: `https://hashscan.io/${label}/transaction/${consensusTimestamp}`,
    topic: `https://hashscan.io/${label}/topic/${topicId}`,
  };
}
