/**
 * What a Hedera node checks when a transaction arrives, before it is submitted to consensus
 * (the "ingest" workflow). A failure here is a precheck code in the gRPC
 * TransactionResponse: nothing reaches the ledger, nobody is charged and no receipt exists.
 *
 * Order and codes follow the consensus node's IngestChecker/TransactionChecker: parse and
 * structure, node account, time box, duplicates, per-type pure checks, payer account,
 * payer signature, then fees and solvency.
 */
import { createHash } from 'node:crypto';
import { TRANSACTION_FEES } from './fees.js';
import {
  SHARD,
  REALM,
  accountIdFromProto,
  formatEntityId,
  sameEntity,
  transactionIdFromProto,
  transactionIdKey,
  NANOS_PER_SECOND,
  type EntityId,
  type TransactionIdParts,
} from './ids.js';
import type { LedgerState, TransactionType } from './ledger-state.js';
import { proto, Status, statusName, toBigInt, toUint8, type ResponseCode } from './proto.js';
import { SignatureChecker, decodeKey, hasAmbiguousPrefixes, isValidKey } from './signatures.js';

/** Network limits; values are Hedera's defaults (hedera.transaction.*, consensus.message.*). */
export const LIMITS = {
  transactionMaxBytes: 6144,
  memoMaxUtf8Bytes: 100,
  minValidDurationSeconds: 15n,
  maxValidDurationSeconds: 180n,
  /** A transaction must have at least this much life left when it arrives. */
  minValidityBufferSeconds: 10n,
  messageMaxBytes: 1024,
  minAutoRenewPeriodSeconds: 6_999_999n,
  maxAutoRenewPeriodSeconds: 8_000_001n,
} as const;

export class PrecheckError extends Error {
  constructor(
    readonly code: ResponseCode,
    /** For INSUFFICIENT_TX_FEE: the fee that would have been enough, as Hedera reports it. */
    readonly cost: bigint = 0n,
  ) {
    super(statusName(code));
    this.name = 'PrecheckError';
  }
}

export interface ParsedTransaction {
  body: proto.TransactionBody;
  bodyBytes: Buffer;
  sigPairs: proto.ISignaturePair[];
  transactionId: TransactionIdParts;
  /** transactionIdKey(transactionId) */
  key: string;
  hash: Buffer;
  type: TransactionType;
  signatures: SignatureChecker;
}

const SUPPORTED: Partial<Record<NonNullable<proto.TransactionBody['data']>, TransactionType>> = {
  consensusCreateTopic: 'CONSENSUSCREATETOPIC',
  consensusSubmitMessage: 'CONSENSUSSUBMITMESSAGE',
  cryptoTransfer: 'CRYPTOTRANSFER',
};

export function requiredFee(type: TransactionType): bigint {
  switch (type) {
    case 'CONSENSUSCREATETOPIC':
      return TRANSACTION_FEES.consensusCreateTopic;
    case 'CONSENSUSSUBMITMESSAGE':
      return TRANSACTION_FEES.consensusSubmitMessage;
    case 'CRYPTOTRANSFER':
      return TRANSACTION_FEES.cryptoTransfer;
  }
}

function decodeOr<T>(decode: () => T, code: ResponseCode): T {
  try {
    return decode();
  } catch {
    throw new PrecheckError(code);
  }
}

/** Structural checks that need no state: parse, body, transaction id, memo, signature map. */
export function parseTransaction(raw: Uint8Array): ParsedTransaction {
  if (raw.length > LIMITS.transactionMaxBytes) throw new PrecheckError(Status.TRANSACTION_OVERSIZE);
  const tx = decodeOr(() => proto.Transaction.decode(raw), Status.INVALID_TRANSACTION);

  let bodyBytes: Buffer;
  let sigMap: proto.ISignatureMap | null | undefined;
  let hash: Buffer;
  const signed = toUint8(tx.signedTransactionBytes);
  if (signed.length > 0) {
    // The current form; using it together with the deprecated fields is rejected.
    if (toUint8(tx.bodyBytes).length > 0 || tx.sigMap) throw new PrecheckError(Status.INVALID_TRANSACTION);
    const st = decodeOr(() => proto.SignedTransaction.decode(signed), Status.INVALID_TRANSACTION);
    bodyBytes = toUint8(st.bodyBytes);
    sigMap = st.sigMap;
    hash = createHash('sha384').update(signed).digest();
  } else if (toUint8(tx.bodyBytes).length > 0) {
    // Deprecated bodyBytes + sigMap form: Hedera hashes the whole Transaction then.
    bodyBytes = toUint8(tx.bodyBytes);
    sigMap = tx.sigMap;
    hash = createHash('sha384').update(raw).digest();
  } else {
    throw new PrecheckError(Status.INVALID_TRANSACTION_BODY);
  }
  if (!sigMap) throw new PrecheckError(Status.INVALID_TRANSACTION_BODY);

  const body = decodeOr(() => proto.TransactionBody.decode(bodyBytes), Status.INVALID_TRANSACTION_BODY);
  if (!body.data) throw new PrecheckError(Status.INVALID_TRANSACTION_BODY);
  const type = SUPPORTED[body.data];
  if (!type) throw new PrecheckError(Status.NOT_SUPPORTED);

  if (!body.transactionID) throw new PrecheckError(Status.INVALID_TRANSACTION_ID);
  const payer = accountIdFromProto(body.transactionID.accountID);
  if (!payer || payer.shard !== SHARD || payer.realm !== REALM || payer.num <= 0n) {
    throw new PrecheckError(Status.PAYER_ACCOUNT_NOT_FOUND);
  }
  if (body.transactionID.scheduled || (body.transactionID.nonce ?? 0) !== 0) {
    throw new PrecheckError(Status.TRANSACTION_ID_FIELD_NOT_ALLOWED);
  }
  const transactionId = transactionIdFromProto(body.transactionID);
  if (!transactionId) throw new PrecheckError(Status.INVALID_TRANSACTION_START);

  checkMemo(body.memo ?? '');
  if (!body.transactionValidDuration) throw new PrecheckError(Status.INVALID_TRANSACTION_DURATION);

  const sigPairs = sigMap.sigPair ?? [];
  if (hasAmbiguousPrefixes(sigPairs)) throw new PrecheckError(Status.KEY_PREFIX_MISMATCH);

  return {
    body,
    bodyBytes,
    sigPairs,
    transactionId,
    key: transactionIdKey(transactionId),
    hash,
    type,
    signatures: new SignatureChecker(bodyBytes, sigPairs),
  };
}

export function checkMemo(memo: string): void {
  if (Buffer.byteLength(memo, 'utf8') > LIMITS.memoMaxUtf8Bytes) throw new PrecheckError(Status.MEMO_TOO_LONG);
  if (memo.includes('\0')) throw new PrecheckError(Status.INVALID_ZERO_BYTE_IN_STRING);
}

export interface PrecheckContext {
  nodeAccount: EntityId;
  nowNs: bigint;
  state: LedgerState;
  /** Seen before: handled, or accepted and waiting for (simulated) consensus. */
  isKnownTransaction(key: string): boolean;
}

/**
 * validStart <= now <= validStart + validDuration - buffer, with the duration in
 * [15 s, 180 s]. At handle time Hedera applies it again without the buffer.
 */
export function checkTimeBox(body: proto.ITransactionBody, nowNs: bigint, bufferSeconds: bigint): void {
  const duration = toBigInt(body.transactionValidDuration?.seconds);
  if (duration < LIMITS.minValidDurationSeconds || duration > LIMITS.maxValidDurationSeconds) {
    throw new PrecheckError(Status.INVALID_TRANSACTION_DURATION);
  }
  const id = transactionIdFromProto(body.transactionID);
  if (!id) throw new PrecheckError(Status.INVALID_TRANSACTION_START);
  if (id.validStartNs + (duration - bufferSeconds) * NANOS_PER_SECOND < nowNs) {
    throw new PrecheckError(Status.TRANSACTION_EXPIRED);
  }
  if (id.validStartNs > nowNs) throw new PrecheckError(Status.INVALID_TRANSACTION_START);
}

/** Checks of the operation itself that need no state (Hedera's handler pureChecks). */
function pureChecks(tx: ParsedTransaction): void {
  const body = tx.body;
  switch (tx.type) {
    case 'CONSENSUSSUBMITMESSAGE': {
      const op = body.consensusSubmitMessage!;
      if (!op.topicID) throw new PrecheckError(Status.INVALID_TOPIC_ID);
      if (toUint8(op.message).length === 0) throw new PrecheckError(Status.INVALID_TOPIC_MESSAGE);
      return;
    }
    case 'CONSENSUSCREATETOPIC': {
      const op = body.consensusCreateTopic!;
      checkMemo(op.memo ?? '');
      if (op.adminKey && !isValidKey(op.adminKey)) throw new PrecheckError(Status.BAD_ENCODING);
      if (op.submitKey && !isValidKey(op.submitKey)) throw new PrecheckError(Status.BAD_ENCODING);
      if ((op.customFees?.length ?? 0) > 0 || (op.feeExemptKeyList?.length ?? 0) > 0 || op.feeScheduleKey) {
        // HIP-991 topic custom fees are not implemented by this local network.
        throw new PrecheckError(Status.NOT_SUPPORTED);
      }
      return;
    }
    case 'CRYPTOTRANSFER': {
      const op = body.cryptoTransfer!;
      if ((op.tokenTransfers?.length ?? 0) > 0) throw new PrecheckError(Status.NOT_SUPPORTED);
      const amounts = op.transfers?.accountAmounts ?? [];
      const seen = new Set<string>();
      let sum = 0n;
      for (const aa of amounts) {
        const id = accountIdFromProto(aa.accountID);
        if (!id) throw new PrecheckError(Status.INVALID_ACCOUNT_ID);
        const key = formatEntityId(id);
        if (seen.has(key)) throw new PrecheckError(Status.ACCOUNT_REPEATED_IN_ACCOUNT_AMOUNTS);
        seen.add(key);
        if (aa.isApproval) throw new PrecheckError(Status.NOT_SUPPORTED);
        sum += toBigInt(aa.amount);
      }
      if (sum !== 0n) throw new PrecheckError(Status.INVALID_ACCOUNT_AMOUNTS);
      return;
    }
  }
}

/** The stateful ingest checks; throws PrecheckError, returns the fee that will be charged. */
export function precheck(tx: ParsedTransaction, ctx: PrecheckContext): bigint {
  const nodeAccount = accountIdFromProto(tx.body.nodeAccountID);
  if (!nodeAccount || !sameEntity(nodeAccount, ctx.nodeAccount)) throw new PrecheckError(Status.INVALID_NODE_ACCOUNT);
  checkTimeBox(tx.body, ctx.nowNs, LIMITS.minValidityBufferSeconds);
  if (ctx.isKnownTransaction(tx.key)) throw new PrecheckError(Status.DUPLICATE_TRANSACTION);
  pureChecks(tx);

  const payer = ctx.state.accounts.get(formatEntityId(tx.transactionId.payer));
  if (!payer) throw new PrecheckError(Status.PAYER_ACCOUNT_NOT_FOUND);
  if (!payer.key || !tx.signatures.satisfies(decodeKey(payer.key))) throw new PrecheckError(Status.INVALID_SIGNATURE);

  const fee = requiredFee(tx.type);
  if (toBigInt(tx.body.transactionFee) < fee) throw new PrecheckError(Status.INSUFFICIENT_TX_FEE, fee);
  if (payer.balance < fee) throw new PrecheckError(Status.INSUFFICIENT_PAYER_BALANCE);
  return fee;
}
