/**
 * FHIR date, dateTime and instant values as the time ranges they denote. "2024" means the whole year, "2024-02"
 * the whole month (29 days in a leap year), "2024-02-10T10:00+01:00" that minute. Search and history compare
 * ranges, never single instants, because a value is only as precise as it was written.
 * Values without a timezone are taken as UTC (the specification leaves this to the server).
 */
export interface DateRange {
  /** First millisecond of the range. */
  low: Date;
  /** Last millisecond of the range (inclusive). */
  high: Date;
}

const DATE_TIME = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Parses a FHIR date/dateTime/instant into its range, or returns undefined when it is not one. */
export function parseDateRange(value: string): DateRange | undefined {
  const m = DATE_TIME.exec(value.trim());
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = m[2] === undefined ? undefined : Number(m[2]);
  const day = m[3] === undefined ? undefined : Number(m[3]);
  if (month !== undefined && (month < 1 || month > 12)) return undefined;
  if (day !== undefined && (day < 1 || day > daysInMonth(year, month!))) return undefined;
  if (month === undefined) return { low: new Date(Date.UTC(year, 0, 1)), high: new Date(Date.UTC(year + 1, 0, 1) - 1) };
  if (day === undefined) {
    return { low: new Date(Date.UTC(year, month - 1, 1)), high: new Date(Date.UTC(year, month, 1) - 1) };
  }
  if (m[4] === undefined) {
    const low = Date.UTC(year, month - 1, day);
    return { low: new Date(low), high: new Date(low + 86_400_000 - 1) };
  }
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? undefined : Number(m[6]);
  if (hour > 24 || minute > 59 || (second ?? 0) > 60 || (hour === 24 && (minute > 0 || (second ?? 0) > 0))) return undefined;
  const fraction = m[7];
  const millis = fraction === undefined ? 0 : Number(fraction.slice(0, 3).padEnd(3, '0'));
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const low = Date.UTC(year, month - 1, day, hour, minute, second ?? 0, millis) - offsetMinutes * 60_000;
  // Precision: minute without seconds, second without fraction, else the digits given (down to milliseconds).
  const width = second === undefined ? 60_000 : fraction === undefined ? 1000 : Math.max(1, 10 ** Math.max(0, 3 - fraction.length));
  return { low: new Date(low), high: new Date(low + width - 1) };
}
