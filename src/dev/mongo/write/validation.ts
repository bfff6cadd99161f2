/**
 * Per-document checks mongod makes before storing: _id presence, position
 * and type, the 16 MiB size limit, and the collection's validator.
 */
import { ObjectId, type Document } from 'bson';
import { Query } from 'mingo/query';
import { documentSize, encodeOnce, receivedSize } from '../bson/codec.js';
import { bsonTypeName, isPlainObject } from '../bson/values.js';
import { CommandError, ErrorCode } from '../errors.js';
import { mingoOptions } from '../query/mingo-context.js';
import type { Collection } from '../storage/collection.js';

export const MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024;

function checkId(id: unknown): void {
  const type = bsonTypeName(id);
  if (type === 'array' || type === 'regex' || type === 'undefined') {
    throw new CommandError(ErrorCode.InvalidIdField, `The '_id' value cannot be of type ${type}`);
  }
  if (isPlainObject(id) && Object.keys(id).some((k) => k.startsWith('$'))) {
    throw new CommandError(ErrorCode.DollarPrefixedFieldName, `_id fields may not contain '$'-prefixed fields`);
  }
}

/** The document as mongod stores it: _id first (generated when missing). */
export function prepareForInsert(doc: Document): Document {
  const wireSize = receivedSize(doc);
  let out: Document;
  if (!('_id' in doc)) {
    out = { _id: new ObjectId(), ...doc };
  } else if (Object.keys(doc)[0] !== '_id') {
    const { _id, ...rest } = doc;
    out = { _id, ...rest };
  } else {
    out = doc;
  }
  checkId(out._id);
  // A generated _id adds at most 17 bytes to what arrived on the wire.
  if (wireSize === undefined || wireSize + 17 > MAX_BSON_OBJECT_SIZE) checkSize(out);
  return out;
}

/**
 * Refuses a document over the size limit. `encode`: a document the server built and is about to store (an
 * update's result): it is encoded once here, and storage keeps those bytes instead of encoding it again.
 */
export function checkSize(doc: Document, encode = false): void {
  const size = encode ? encodeOnce(doc) : documentSize(doc);
  if (size > MAX_BSON_OBJECT_SIZE) {
    throw new CommandError(
      ErrorCode.BSONObjectTooLarge,
      `object to insert too large. size in bytes: ${size}, max size: ${MAX_BSON_OBJECT_SIZE}`,
    );
  }
}

const validators = new WeakMap<Collection, Query>();

/** Enforces a query-style `validator` (validationLevel strict, validationAction error). */
export function checkValidator(coll: Collection, doc: Document): void {
  const validator = coll.options.validator;
  if (!isPlainObject(validator) || Object.keys(validator).length === 0) return;
  if (coll.options.validationLevel === 'off' || coll.options.validationAction === 'warn') return;
  let query = validators.get(coll);
  if (!query) {
    query = new Query(validator, mingoOptions());
    validators.set(coll, query);
  }
  if (!query.test(doc)) {
    throw new CommandError(ErrorCode.DocumentValidationFailure, 'Document failed validation', {
      errInfo: { failingDocumentId: doc._id, details: { operatorName: '$and', specifiedAs: validator, reason: 'query did not match' } },
    });
  }
}

/** Forgets a compiled validator after collMod changed it. */
export function resetValidator(coll: Collection): void {
  validators.delete(coll);
}
