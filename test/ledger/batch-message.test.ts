import t from 'tap';
import { createHash } from 'node:crypto';
import {
  BATCH_MESSAGE_MAX_BYTES,
  BatchMessageError,
  decodeBatchMessage,
  encodeBatchMessage,
  type BatchMessage,
} from '../../src/ledger/batch-message.js';

const h = (s: string): Buffer => createHash('sha256').update(s).digest();
const ROOT = h('root');
const PREV = h('prev');
const ROOT_HEX = ROOT.toString('hex');
const PREV_HEX = PREV.toString('hex');

const msg: BatchMessage = { version: 1, batchNumber: 12, treeSize: 10000, root: ROOT, previousRoot: PREV };
const first: BatchMessage = { version: 1, batchNumber: 1, treeSize: 3, root: ROOT, previousRoot: null };

const wire = (s: string): Buffer => Buffer.from(s, 'utf8');
const canonical = `{"batch":12,"prev":"${PREV_HEX}","root":"${ROOT_HEX}","size":10000,"v":1}`;

t.test('encodes to the documented canonical JSON', async (t) => {
  const bytes = encodeBatchMessage(msg);
  t.equal(bytes.toString('utf8'), canonical);
  t.ok(bytes.length <= BATCH_MESSAGE_MAX_BYTES, `${bytes.length} bytes`);
  t.equal(encodeBatchMessage(first).toString('utf8'), `{"batch":1,"prev":null,"root":"${ROOT_HEX}","size":3,"v":1}`);
  // Readable by hand from a mirror node's base64.
  t.equal(JSON.parse(Buffer.from(bytes.toString('base64'), 'base64').toString('utf8')).root, ROOT_HEX);
});

t.test('round trip', async (t) => {
  for (const m of [msg, first, { ...msg, batchNumber: 2 ** 53 - 1, treeSize: 2 ** 53 - 1 }]) {
    const back = decodeBatchMessage(encodeBatchMessage(m));
    t.same(back, m);
    t.ok(Buffer.isBuffer(back.root));
  }
});

t.test('carries only the five documented members', async (t) => {
  t.same(Object.keys(JSON.parse(encodeBatchMessage(msg).toString('utf8'))).sort(), ['batch', 'prev', 'root', 'size', 'v']);
  // Extra properties on the input object never reach the wire.
  const leaky = { ...msg, patientId: 'Patient/123', note: 'Peter Chalmers' } as BatchMessage;
  const out = encodeBatchMessage(leaky).toString('utf8');
  t.equal(out, canonical);
  t.notMatch(out, /Patient|Chalmers/);
});

t.test('encode rejects invalid messages', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['version 2', { ...msg, version: 2 }],
    ['batch 0', { ...msg, batchNumber: 0 }],
    ['batch 1.5', { ...msg, batchNumber: 1.5 }],
    ['batch 2^53', { ...msg, batchNumber: 2 ** 53 }],
    ['size 0', { ...msg, treeSize: 0 }],
    ['size NaN', { ...msg, treeSize: NaN }],
    ['short root', { ...msg, root: ROOT.subarray(1) }],
    ['hex-string root', { ...msg, root: ROOT_HEX }],
    ['short prev', { ...msg, previousRoot: PREV.subarray(0, 31) }],
    ['null prev after batch 1', { ...msg, previousRoot: null }],
    ['prev on batch 1', { ...first, previousRoot: PREV }],
    ['null message', null],
  ];
  for (const [name, m] of bad) t.throws(() => encodeBatchMessage(m as BatchMessage), BatchMessageError, name);
});

t.test('decode is strict', async (t) => {
  const r = ROOT_HEX;
  const p = PREV_HEX;
  const cases: Array<[string, Buffer, RegExp]> = [
    ['unknown version 2', wire(`{"batch":12,"prev":"${p}","root":"${r}","size":10000,"v":2}`), /unsupported version 2/],
    ['version "1"', wire(`{"batch":12,"prev":"${p}","root":"${r}","size":10000,"v":"1"}`), /unsupported version "1"/],
    ['version missing', wire(`{"batch":12,"prev":"${p}","root":"${r}","size":10000}`), /missing version/],
    ['extra member', wire(`{"batch":12,"id":"Patient/1","prev":"${p}","root":"${r}","size":10000,"v":1}`), /unexpected member\(s\) "id"/],
    ['missing prev', wire(`{"batch":12,"root":"${r}","size":10000,"v":1}`), /missing member\(s\) "prev"/],
    ['short root', wire(`{"batch":12,"prev":"${p}","root":"${r.slice(2)}","size":10000,"v":1}`), /"root" must be 64 lowercase hex/],
    ['long root', wire(`{"batch":12,"prev":"${p}","root":"${r}00","size":10000,"v":1}`), /"root" must be 64/],
    ['uppercase root', wire(`{"batch":12,"prev":"${p}","root":"${r.toUpperCase()}","size":10000,"v":1}`), /"root" must be 64 lowercase/],
    ['non-hex root', wire(`{"batch":12,"prev":"${p}","root":"${'g'.repeat(64)}","size":10000,"v":1}`), /"root"/],
    ['short prev', wire(`{"batch":12,"prev":"${p.slice(1)}","root":"${r}","size":10000,"v":1}`), /"prev" must be null or 64/],
    ['numeric root', wire(`{"batch":12,"prev":"${p}","root":1,"size":10000,"v":1}`), /"root"/],
    ['batch 0', wire(`{"batch":0,"prev":null,"root":"${r}","size":1,"v":1}`), /"batch" must be an integer >= 1/],
    ['batch negative', wire(`{"batch":-3,"prev":"${p}","root":"${r}","size":1,"v":1}`), /"batch"/],
    ['batch fraction', wire(`{"batch":1.5,"prev":"${p}","root":"${r}","size":1,"v":1}`), /"batch"/],
    ['batch string', wire(`{"batch":"12","prev":"${p}","root":"${r}","size":1,"v":1}`), /"batch"/],
    ['batch beyond 2^53', wire(`{"batch":9007199254740993,"prev":"${p}","root":"${r}","size":1,"v":1}`), /"batch"/],
    ['size 0', wire(`{"batch":12,"prev":"${p}","root":"${r}","size":0,"v":1}`), /"size" must be an integer >= 1/],
    [
      'prev null after batch 1',
      wire(`{"batch":12,"prev":null,"root":"${r}","size":10000,"v":1}`),
      /previous root must be null for batch 1 and only/,
    ],
    ['prev on batch 1', wire(`{"batch":1,"prev":"${p}","root":"${r}","size":1,"v":1}`), /previous root must be null for batch 1/],
    ['whitespace', wire(`{"batch": 12,"prev":"${p}","root":"${r}","size":10000,"v":1}`), /not in canonical form/],
    ['trailing newline', wire(`${canonical}\n`), /not in canonical form/],
    ['key order', wire(`{"v":1,"batch":12,"size":10000,"root":"${r}","prev":"${p}"}`), /not in canonical form/],
    ['number spelling', wire(`{"batch":12,"prev":"${p}","root":"${r}","size":1e4,"v":1}`), /not in canonical form/],
    [
      'escaped char',
      wire(`{"batch":12,"prev":"${p}","root":"\\u00${r.slice(0, 2)}${r.slice(2)}","size":10000,"v":1}`),
      /"root"|not in canonical/,
    ],
    ['escaped key', wire(`{"batch":12,"prev":"${p}","root":"${r}","size":10000,"\\u0076":1}`), /not in canonical form/],
    ['duplicate key', wire(`{"batch":11,"batch":12,"prev":"${p}","root":"${r}","size":10000,"v":1}`), /not in canonical form/],
    ['BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), wire(canonical)]), /not valid JSON|not in canonical/],
    ['invalid UTF-8', Buffer.concat([wire(canonical.slice(0, -1)), Buffer.from([0xff]), wire('}')]), /not valid UTF-8/],
    ['not JSON', wire('batch=12'), /not valid JSON/],
    ['array', wire('[1]'), /not a JSON object/],
    ['null', wire('null'), /not a JSON object/],
    ['empty', Buffer.alloc(0), /not valid JSON/],
    [
      'over 1024 bytes',
      Buffer.concat([wire(canonical), Buffer.alloc(1025 - canonical.length, 0x20)]),
      /1025 bytes exceeds the 1024-byte limit/,
    ],
    ['not a buffer', 'string' as unknown as Buffer, /must be a Buffer/],
  ];
  for (const [name, bytes, re] of cases) {
    t.throws(() => decodeBatchMessage(bytes), re, name);
    t.throws(() => decodeBatchMessage(bytes), BatchMessageError, `${name}: BatchMessageError`);
  }
});

t.test('decode accepts exactly what encode produces, at and below the size limit', async (t) => {
  t.same(decodeBatchMessage(wire(canonical)), msg);
  t.equal(BATCH_MESSAGE_MAX_BYTES, 1024);
  // Exactly 1024 bytes is allowed by the size check (and then fails only for being non-canonical).
  const padded = Buffer.concat([wire(canonical), Buffer.alloc(1024 - canonical.length, 0x20)]);
  t.equal(padded.length, 1024);
  t.throws(() => decodeBatchMessage(padded), /not in canonical form/);
});
