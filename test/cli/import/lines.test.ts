// The NDJSON line reader of the import CLI: exact byte offsets (the checkpoint resumes at them), CRLF and LF,
// a last line without newline, a byte order mark, multi-byte characters across read chunks.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { readLines, type Line } from '../../../src/cli/import/lines.js';

async function collect(file: string, start?: number, first?: number): Promise<Line[]> {
  const lines: Line[] = [];
  for await (const line of readLines(file, start, first)) lines.push(line);
  return lines;
}

t.test('lines, numbers and the offsets after each', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lines-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'a.ndjson');
  await writeFile(file, '\uFEFF{"a":1}\r\n\n{"b":"é"}\n{"c":3}');
  const lines = await collect(file);
  t.same(
    lines.map((l) => [l.number, l.text, l.end]),
    [
      [1, '{"a":1}', 12],
      [2, '', 13],
      [3, '{"b":"é"}', 24],
      [4, '{"c":3}', 31],
    ],
  );
  const resumed = await collect(file, 13, 3);
  t.same(
    resumed.map((l) => [l.number, l.text]),
    [
      [3, '{"b":"é"}'],
      [4, '{"c":3}'],
    ],
    'reading from a recorded offset',
  );
});

t.test('long lines and multi-byte characters across read chunks', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lines-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'big.ndjson');
  const long = JSON.stringify({ text: 'ü€𝄞'.repeat(300_000) });
  await writeFile(file, `${long}\n${long}\n`);
  const lines = await collect(file);
  t.equal(lines.length, 2);
  t.ok(lines.every((l) => l.text === long));
  t.equal(lines[1].end, Buffer.byteLength(`${long}\n${long}\n`));
});
