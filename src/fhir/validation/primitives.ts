/**
 * Primitive checks @medplum/core 4.5.2 does not make (it is more lenient than the R4 spec here):
 * - dateTime: R4 requires seconds and a time zone whenever a time is given ("2020-01-01T10:00" and
 *   "2020-01-01T10:00:00" are invalid); medplum accepts both.
 * - date / dateTime / instant must be real calendar dates (no 2021-02-30).
 * - integer, positiveInt, unsignedInt are 32-bit signed (max 2,147,483,647).
 * - the empty string is not a valid value for any string-based primitive (medplum skips falsy strings).
 * - Resource.id is an `id` ([A-Za-z0-9\-.]{1,64}); R4's StructureDefinition types it as System.String, so
 *   medplum checks it as a plain string.
 * Everything else (JSON types, regexes for code, uri, id, instant, time, base64Binary, oid, uuid...) is
 * left to medplum, which implements it correctly.
 */

/** R4 dateTime regex (http://hl7.org/fhir/R4/datatypes.html#dateTime), anchored. */
const R4_DATE_TIME =
  /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$/;
const R4_ID = /^[A-Za-z0-9\-.]{1,64}$/;

export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;

const STRING_TYPES = new Set([
  'string',
  'code',
  'id',
  'markdown',
  'uri',
  'url',
  'canonical',
  'oid',
  'uuid',
  'base64Binary',
  'date',
  'dateTime',
  'instant',
  'time',
  'xhtml',
  'http://hl7.org/fhirpath/System.String',
]);

/** Returns a problem description, or undefined when the value passes the checks made here. */
export function checkPrimitive(type: string, value: unknown): string | undefined {
  if (typeof value === 'string') {
    if (value === '' && STRING_TYPES.has(type)) {
      return `Empty string is not a valid ${displayType(type)} (omit the element instead)`;
    }
    if (type === 'dateTime') {
      if (!R4_DATE_TIME.test(value)) {
        return `Invalid dateTime '${truncate(value)}': R4 requires YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss(.sss) with a time zone (Z or ±hh:mm)`;
      }
      return checkCalendar(value, 'dateTime');
    }
    if (type === 'date' || type === 'instant') {
      return checkCalendar(value, type);
    }
    return undefined;
  }
  if (typeof value === 'number' && (type === 'integer' || type === 'positiveInt' || type === 'unsignedInt')) {
    if (Number.isInteger(value) && (value > INT32_MAX || value < INT32_MIN)) {
      return `Value ${value} is out of range for ${type} (32-bit: ${type === 'integer' ? INT32_MIN : type === 'positiveInt' ? 1 : 0}..${INT32_MAX})`;
    }
  }
  return undefined;
}

/** Resource.id must be an `id`. */
export function checkResourceId(value: unknown): string | undefined {
  if (typeof value === 'string' && !R4_ID.test(value)) {
    return `Invalid resource id '${truncate(value)}': an id is 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'`;
  }
  return undefined;
}

function checkCalendar(value: string, type: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(value);
  if (!m) {
    return undefined;
  }
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (days !== undefined && day > days) {
    return `Invalid ${type} '${truncate(value)}': ${m[1]}-${m[2]} has no day ${m[3]}`;
  }
  return undefined;
}

function displayType(type: string): string {
  return type.startsWith('http://hl7.org/fhirpath/System.') ? 'string' : type;
}

export function truncate(value: string, max = 80): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}
