/**
 * Text rendering of BSON values the way mongod prints them in messages
 * ("dup key: { email: \"a@b\" }") and in explain index bounds ("[1, 1]").
 */
import type { Decimal128, Document, ObjectId, Timestamp } from 'bson';
import { binaryBytes, bsonTypeName, dbRefAsDocument, isDbRef, numericParts } from './values.js';

function formatNumber(v: unknown): string {
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'nan.0';
    if (v === Infinity) return 'inf.0';
    if (v === -Infinity) return '-inf.0';
    return String(v);
  }
  if (bsonTypeName(v) === 'decimal') return `NumberDecimal("${(v as Decimal128).toString()}")`;
  const { approx, remainder } = numericParts(v);
  return remainder === 0 ? String(approx) : (BigInt(approx) + BigInt(remainder)).toString();
}

export function formatValue(v: unknown): string {
  switch (bsonTypeName(v)) {
    case 'minKey':
      return 'MinKey';
    case 'maxKey':
      return 'MaxKey';
    case 'undefined':
      return 'undefined';
    case 'null':
      return 'null';
    case 'double':
    case 'int':
    case 'long':
    case 'decimal':
      return formatNumber(v);
    case 'string':
      return JSON.stringify(v);
    case 'symbol':
      return JSON.stringify(String((v as { value: string }).value));
    case 'bool':
      return v ? 'true' : 'false';
    case 'date':
      return `new Date(${(v as Date).getTime()})`;
    case 'objectId':
      return `ObjectId('${(v as ObjectId).toHexString()}')`;
    case 'timestamp': {
      const ts = v as Timestamp;
      return `Timestamp(${ts.t}, ${ts.i})`;
    }
    case 'binData': {
      const { subType, bytes } = binaryBytes(v);
      return `BinData(${subType}, ${Buffer.from(bytes).toString('hex').toUpperCase()})`;
    }
    case 'regex': {
      if (v instanceof RegExp) return `/${v.source}/${v.flags}`;
      const re = v as { pattern: string; options: string };
      return `/${re.pattern}/${re.options}`;
    }
    case 'array': {
      const items = (v as unknown[]).map(formatValue);
      return items.length ? `[ ${items.join(', ')} ]` : '[]';
    }
    case 'object':
      return formatDocument(isDbRef(v) ? dbRefAsDocument(v as object) : (v as Document));
    default:
      return String(v);
  }
}

export function formatDocument(doc: Document): string {
  const keys = Object.keys(doc);
  if (keys.length === 0) return '{}';
  return `{ ${keys.map((k) => `${k}: ${formatValue(doc[k])}`).join(', ')} }`;
}
