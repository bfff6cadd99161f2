/**
 * NDJSON lines with their byte offsets, streamed from a file. readline over fs.createReadStream would do the
 * splitting, but it does not say where in the file a line ends, and a resumable import needs exactly that: the
 * checkpoint stores the byte offset after the last acknowledged line, so a re-run starts reading there instead of
 * re-reading (and re-parsing) gigabytes. Splitting on the newline byte is safe in UTF-8, where 0x0A never occurs
 * inside a multi-byte character.
 */
import { createReadStream } from 'node:fs';

export interface Line {
  /** The line's text without its line ending (LF or CRLF). */
  text: string;
  /** 1-based line number in the file. */
  number: number;
  /** Byte offset just past this line's newline: where reading resumes once this line is done. */
  end: number;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** The lines of `file` from byte `start` (which must be the start of a line, numbered `firstNumber`). */
export async function* readLines(file: string, start = 0, firstNumber = 1): AsyncGenerator<Line> {
  let pending: Buffer[] = [];
  let offset = start;
  let number = firstNumber;
  const stream = createReadStream(file, { start, highWaterMark: 1 << 20 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let from = 0;
    for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, from)) {
      pending.push(chunk.subarray(from, at));
      const bytes = Buffer.concat(pending);
      pending = [];
      offset += bytes.length + 1;
      yield { text: decode(bytes, number), number: number++, end: offset };
      from = at + 1;
    }
    if (from < chunk.length) pending.push(chunk.subarray(from));
  }
  // The last line may lack its newline.
  const rest = Buffer.concat(pending);
  if (rest.length > 0) yield { text: decode(rest, number), number, end: offset + rest.length };
}

function decode(bytes: Buffer, number: number): string {
  const length = bytes.length > 0 && bytes[bytes.length - 1] === CARRIAGE_RETURN ? bytes.length - 1 : bytes.length;
  const text = bytes.toString('utf8', 0, length);
  // Some editors start a UTF-8 file with a byte order mark, which JSON.parse refuses.
  return number === 1 && text.startsWith('\uFEFF') ? text.slice(1) : text;
}
