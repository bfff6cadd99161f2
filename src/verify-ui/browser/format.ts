/** How the page writes a consensus timestamp for people. */
import { parseConsensusTimestamp } from '../../ledger/hedera-ids.js';

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/**
 * "1700000000.123456789" -> "Tuesday 14 November 2023, 22:13:20.123456789 UTC". In UTC, not the reader's zone: the
 * same page must say the same time to everyone comparing notes. All nine digits: that is what Hedera recorded.
 */
export function humanConsensusTime(timestamp: string): string | null {
  const t = parseConsensusTimestamp(timestamp);
  if (!t) return null;
  const d = new Date(Number(t.seconds) * 1000);
  if (Number.isNaN(d.getTime())) return null;
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${WEEKDAYS[d.getUTCDay()]} ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}, ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${String(t.nanos).padStart(9, '0')} UTC`
  );
}
