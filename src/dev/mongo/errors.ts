/**
 * Server-side errors with mongod's numeric codes and code names, so the
 * driver classifies them (retryability, transient transaction labels) the
 * same way it does for a real server.
 */
import type { Document } from 'bson';

export const enum ErrorCode {
  InternalError = 1,
  BadValue = 2,
  FailedToParse = 9,
  TypeMismatch = 14,
  IllegalOperation = 20,
  InvalidBSON = 22,
  NamespaceNotFound = 26,
  IndexNotFound = 27,
  CursorNotFound = 43,
  NamespaceExists = 48,
  MaxTimeMSExpired = 50,
  DollarPrefixedFieldName = 52,
  InvalidIdField = 53,
  CommandNotFound = 59,
  ImmutableField = 66,
  CannotCreateIndex = 67,
  InvalidOptions = 72,
  InvalidNamespace = 73,
  IndexOptionsConflict = 85,
  IndexKeySpecsConflict = 86,
  NoSuchKey = 4,
  Unauthorized = 13,
  ConflictingOperationInProgress = 117,
  WriteConflict = 112,
  CommandNotSupported = 115,
  ConflictingUpdateOperators = 40,
  DocumentValidationFailure = 121,
  CannotIndexParallelArrays = 171,
  TransactionTooOld = 225,
  NoSuchTransaction = 251,
  TransactionCommitted = 256,
  OperationNotSupportedInTransaction = 263,
  Location16755 = 16755,
  Location40324 = 40324,
  InvalidPipelineOperator = 168,
  DuplicateKey = 11000,
  Location31254 = 31254,
  BSONObjectTooLarge = 10334,
  NotImplemented = 238,
  PathNotViable = 28,
  UnknownError = 8,
  NoQueryExecutionPlans = 291,
}

const CODE_NAMES: Record<number, string> = {
  1: 'InternalError',
  2: 'BadValue',
  4: 'NoSuchKey',
  8: 'UnknownError',
  9: 'FailedToParse',
  13: 'Unauthorized',
  14: 'TypeMismatch',
  20: 'IllegalOperation',
  22: 'InvalidBSON',
  26: 'NamespaceNotFound',
  27: 'IndexNotFound',
  28: 'PathNotViable',
  40: 'ConflictingUpdateOperators',
  43: 'CursorNotFound',
  48: 'NamespaceExists',
  50: 'MaxTimeMSExpired',
  52: 'DollarPrefixedFieldName',
  53: 'InvalidIdField',
  59: 'CommandNotFound',
  66: 'ImmutableField',
  67: 'CannotCreateIndex',
  72: 'InvalidOptions',
  73: 'InvalidNamespace',
  85: 'IndexOptionsConflict',
  86: 'IndexKeySpecsConflict',
  112: 'WriteConflict',
  115: 'CommandNotSupported',
  117: 'ConflictingOperationInProgress',
  121: 'DocumentValidationFailure',
  168: 'InvalidPipelineOperator',
  171: 'CannotIndexParallelArrays',
  225: 'TransactionTooOld',
  238: 'NotImplemented',
  251: 'NoSuchTransaction',
  256: 'TransactionCommitted',
  263: 'OperationNotSupportedInTransaction',
  291: 'NoQueryExecutionPlans',
  10334: 'BSONObjectTooLarge',
  11000: 'DuplicateKey',
};

/** Assertion locations mongod reports with the code name Location<code> (compound wildcard index rules, projections). */
const LOCATION_CODES = new Set([7246200, 7246201, 7246204, 7246208, 7246209, 7246210, 7246211, 7246301, 31249, 31250, 31253, 31254, 51271]);

export function codeName(code: number): string | undefined {
  return CODE_NAMES[code] ?? (LOCATION_CODES.has(code) ? `Location${code}` : undefined);
}

export class CommandError extends Error {
  readonly code: number;
  readonly labels: string[];
  /** Extra fields mongod puts next to errmsg (keyPattern, keyValue, ...). */
  readonly extra: Document;

  constructor(code: number, message: string, extra: Document = {}, labels: string[] = []) {
    super(message);
    this.code = code;
    this.extra = extra;
    this.labels = labels;
  }

  toResponse(): Document {
    const out: Document = { ok: 0, errmsg: this.message, code: this.code };
    const name = codeName(this.code);
    if (name) out.codeName = name;
    Object.assign(out, this.extra);
    if (this.labels.length) out.errorLabels = this.labels;
    return out;
  }

  /** Shape of one entry of a write command's writeErrors array (mongod puts no codeName there). */
  toWriteError(index: number): Document {
    const out: Document = { index, code: this.code };
    Object.assign(out, this.extra);
    out.errmsg = this.message;
    return out;
  }
}

export function writeConflict(): CommandError {
  return new CommandError(
    ErrorCode.WriteConflict,
    'Caused by :: Write conflict during plan execution and yielding is disabled. :: Please retry your operation or multi-document transaction.',
    {},
    ['TransientTransactionError'],
  );
}

/** Converts anything thrown by mingo or our own code into a CommandError. */
export function toCommandError(err: unknown): CommandError {
  if (err instanceof CommandError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CommandError(ErrorCode.BadValue, message);
}
