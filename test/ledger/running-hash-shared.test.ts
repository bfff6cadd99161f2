// One copy of the HCS running hash: src/ledger/running-hash.ts is pure, and the local network's old path re-exports it.
import t from 'tap';
import { readFileSync } from 'node:fs';
import * as ledger from '../../src/ledger/running-hash.js';
import * as dev from '../../src/dev/hedera/running-hash.js';

t.test('the local network and the verifiers share one function', async (t) => {
  t.equal(dev.computeRunningHashV3, ledger.computeRunningHashV3);
  t.equal(dev.initialRunningHash, ledger.initialRunningHash);
  t.equal(dev.RUNNING_HASH_VERSION, 3);
});

t.test('src/ledger/running-hash.ts imports node:crypto only', async (t) => {
  const text = readFileSync(new URL('../../src/ledger/running-hash.ts', import.meta.url), 'utf8');
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]);
  t.same(specifiers, ['node:crypto']);
});
