/**
 * Classification of the JavaScript values that `bson.deserialize` produces,
 * in mongod's terms (BSON type names and canonical comparison order).
 *
 * Documents are kept deserialized with the driver's default promotion rules
 * (int32, double and Long within ±2^53 become JS numbers), so a JS number is
 * reported as 'int' when bson would serialize it back as an int32 and as
 * 'double' otherwise.
 */
import type { Binary, Decimal128, Document, Long, Timestamp } from 'bson';

export type BsonTypeName =
  | 'minKey'
  | 'undefined'
  | 'null'
  | 'double'
  | 'int'
  | 'long'
  | 'decimal'
  | 'string'
  | 'symbol'
  | 'object'
  | 'array'
  | 'binData'
  | 'objectId'
  | 'bool'
  | 'date'
  | 'timestamp'
  | 'regex'
  | 'dbPointer'
  | 'javascript'
  | 'javascriptWithScope'
  | 'maxKey';

/** BSON type numbers, as accepted by `$type`. */
export const BSON_TYPE_NUMBERS: Readonly<Record<BsonTypeName, number>> = {
  double: 1,
  string: 2,
  object: 3,
  array: 4,
  binData: 5,
  undefined: 6,
  objectId: 7,
  bool: 8,
  date: 9,
  null: 10,
  regex: 11,
  dbPointer: 12,
  javascript: 13,
  symbol: 14,
  javascriptWithScope: 15,
  int: 16,
  timestamp: 17,
  long: 18,
  decimal: 19,
  minKey: -1,
  maxKey: 127,
};

/**
 * mongod's canonical type order (BSONType canonicalization): values of
 * different brackets compare by bracket alone; numbers of every width share
 * one bracket, and so do string and symbol.
 */
export const enum Rank {
  MinKey = 1,
  Undefined = 4,
  Null = 5,
  Number = 10,
  String = 15,
  Object = 20,
  Array = 25,
  BinData = 30,
  ObjectId = 35,
  Bool = 40,
  Date = 45,
  Timestamp = 47,
  Regex = 50,
  DBPointer = 55,
  Code = 60,
  CodeWithScope = 65,
  MaxKey = 127,
}

interface Tagged {
  _bsontype: string;
}

function bsonTag(v: object): string | undefined {
  const tag = (v as Partial<Tagged>)._bsontype;
  return typeof tag === 'string' ? tag : undefined;
}

export function isPlainObject(v: unknown): v is Document {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v) || v instanceof Date || v instanceof RegExp) return false;
  if (ArrayBuffer.isView(v)) return false;
  return bsonTag(v) === undefined;
}

export function bsonTypeName(v: unknown): BsonTypeName {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'number':
      return !Object.is(v, -0) && Number.isSafeInteger(v) && v <= 0x7fffffff && v >= -0x80000000 ? 'int' : 'double';
    case 'bigint':
      return 'long';
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'function':
      return 'javascript';
    case 'object':
      break;
    default:
      return 'undefined';
  }
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (v instanceof RegExp) return 'regex';
  if (ArrayBuffer.isView(v)) return 'binData';
  switch (bsonTag(v)) {
    case undefined:
      return 'object';
    case 'ObjectId':
      return 'objectId';
    case 'Long':
      return 'long';
    case 'Int32':
      return 'int';
    case 'Double':
      return 'double';
    case 'Decimal128':
      return 'decimal';
    case 'Binary':
      return 'binData';
    case 'Timestamp':
      return 'timestamp';
    case 'BSONRegExp':
      return 'regex';
    case 'BSONSymbol':
      return 'symbol';
    case 'Code':
      return (v as { scope?: unknown }).scope ? 'javascriptWithScope' : 'javascript';
    case 'MinKey':
      return 'minKey';
    case 'MaxKey':
      return 'maxKey';
    case 'DBRef':
      return 'object';
    case 'DBPointer':
      return 'dbPointer';
    default:
      return 'object';
  }
}

export function rankOf(v: unknown): Rank {
  switch (bsonTypeName(v)) {
    case 'minKey':
      return Rank.MinKey;
    case 'undefined':
      // Only produced for the key of an empty array (see query/paths.ts);
      // missing fields are keyed as null.
      return Rank.Undefined;
    case 'null':
      return Rank.Null;
    case 'double':
    case 'int':
    case 'long':
    case 'decimal':
      return Rank.Number;
    case 'string':
    case 'symbol':
      return Rank.String;
    case 'object':
      return Rank.Object;
    case 'array':
      return Rank.Array;
    case 'binData':
      return Rank.BinData;
    case 'objectId':
      return Rank.ObjectId;
    case 'bool':
      return Rank.Bool;
    case 'date':
      return Rank.Date;
    case 'timestamp':
      return Rank.Timestamp;
    case 'regex':
      return Rank.Regex;
    case 'dbPointer':
      return Rank.DBPointer;
    case 'javascript':
      return Rank.Code;
    case 'javascriptWithScope':
      return Rank.CodeWithScope;
    case 'maxKey':
      return Rank.MaxKey;
  }
}

export function isNumeric(v: unknown): boolean {
  return rankOf(v) === Rank.Number;
}

/**
 * A numeric BSON value as a double plus the exact integer remainder that the
 * double could not hold (only non-zero for 64-bit integers beyond 2^53).
 */
export function numericParts(v: unknown): { approx: number; remainder: number } {
  if (typeof v === 'number') return { approx: v, remainder: 0 };
  if (typeof v === 'bigint') {
    const approx = Number(v);
    return { approx, remainder: Number(v - BigInt(approx)) };
  }
  const tag = v !== null && typeof v === 'object' ? bsonTag(v) : undefined;
  if (tag === 'Long') {
    const big = BigInt((v as Long).toString());
    const approx = Number(big);
    return { approx, remainder: Number(big - BigInt(approx)) };
  }
  if (tag === 'Int32' || tag === 'Double') return { approx: Number((v as { value: number }).value), remainder: 0 };
  if (tag === 'Decimal128') return { approx: Number((v as Decimal128).toString()), remainder: 0 };
  return { approx: Number.NaN, remainder: 0 };
}

export function toNumber(v: unknown): number {
  return numericParts(v).approx;
}

export function binaryBytes(v: unknown): { subType: number; bytes: Uint8Array } {
  if (ArrayBuffer.isView(v)) return { subType: 0, bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
  const bin = v as Binary;
  return { subType: bin.sub_type, bytes: bin.buffer.subarray(0, bin.position) };
}

export function timestampParts(v: Timestamp): { t: number; i: number } {
  return { t: v.high >>> 0, i: v.low >>> 0 };
}

/** Values of a DBRef as the plain sub-document it is on the wire. */
export function dbRefAsDocument(v: object): Document {
  const ref = v as { collection: string; oid: unknown; db?: string; fields?: Document };
  const out: Document = { $ref: ref.collection, $id: ref.oid };
  if (ref.db) out.$db = ref.db;
  return Object.assign(out, ref.fields ?? {});
}

export function isDbRef(v: unknown): boolean {
  return v !== null && typeof v === 'object' && bsonTag(v) === 'DBRef';
}
