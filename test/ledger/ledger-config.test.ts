// HEDERA_* and LEDGER_* variables: defaults, the rules across variables, and a secret that is never echoed.
import t from 'tap';
import { ConfigError, describeVariables, loadConfig } from '../../src/config.js';

t.test('defaults: the local network, anchoring on, 10 000 leaves or 1 s per batch', async (t) => {
  const { ledger } = loadConfig({});
  t.equal(ledger.enabled, true);
  t.equal(ledger.network, 'local');
  t.equal(ledger.operatorId, undefined);
  t.equal(ledger.mirrorUrl, undefined, 'the local network supplies its own mirror');
  t.equal(ledger.batchMaxLeaves, 10000);
  t.equal(ledger.batchIntervalMs, 1000);
  t.equal(ledger.leaseTtlMs, 15000);
  t.equal(ledger.testCrashAfterSubmit, false);
});

t.test('an operator means testnet by default, with its public mirror node', async (t) => {
  const { ledger } = loadConfig({ HEDERA_OPERATOR_ID: '0.0.1234', HEDERA_OPERATOR_KEY: `302e${'ab'.repeat(46)}` });
  t.equal(ledger.network, 'testnet');
  t.equal(ledger.mirrorUrl, 'https://testnet.mirrornode.hedera.com');
  const mainnet = loadConfig({ HEDERA_NETWORK: 'mainnet', HEDERA_OPERATOR_ID: '0.0.1', HEDERA_OPERATOR_KEY: 'a'.repeat(64) }).ledger;
  t.equal(mainnet.mirrorUrl, 'https://mainnet.mirrornode.hedera.com');
  const custom = loadConfig({
    HEDERA_NETWORK: 'previewnet',
    HEDERA_OPERATOR_ID: '0.0.1',
    HEDERA_OPERATOR_KEY: 'a'.repeat(64),
    HEDERA_MIRROR_URL: 'https://mirror.example.org',
    HEDERA_TOPIC_ID: '0.0.777',
    LEDGER_ENABLED: 'false',
    LEDGER_BATCH_MAX_LEAVES: '500',
    LEDGER_BATCH_INTERVAL_MS: '250',
  }).ledger;
  t.equal(custom.mirrorUrl, 'https://mirror.example.org');
  t.equal(custom.topicId, '0.0.777');
  t.equal(custom.enabled, false);
  t.equal(custom.batchMaxLeaves, 500);
  t.equal(custom.batchIntervalMs, 250);
});

t.test('rules across variables, named in the error', async (t) => {
  t.throws(() => loadConfig({ HEDERA_NETWORK: 'testnet' }), /HEDERA_NETWORK=testnet needs HEDERA_OPERATOR_ID and HEDERA_OPERATOR_KEY/);
  t.throws(() => loadConfig({ HEDERA_OPERATOR_ID: '0.0.5' }), /must be set together/);
  t.throws(
    () => loadConfig({ HEDERA_NETWORK: 'local', HEDERA_OPERATOR_ID: '0.0.5', HEDERA_OPERATOR_KEY: 'a'.repeat(64) }),
    /HEDERA_NETWORK=local uses the project's own local network/,
  );
  t.throws(() => loadConfig({ HEDERA_MIRROR_URL: 'https://x.example' }), /unset HEDERA_MIRROR_URL/);
});

t.test('invalid values name the variable; the key is never echoed', async (t) => {
  try {
    loadConfig({
      HEDERA_NETWORK: 'moon',
      HEDERA_TOPIC_ID: 'topic',
      HEDERA_OPERATOR_KEY: 'secret-key-material',
      LEDGER_BATCH_MAX_LEAVES: '0',
    });
    t.fail('should throw');
  } catch (error) {
    t.ok(error instanceof ConfigError);
    const text = (error as ConfigError).problems.join('\n');
    t.match(text, /HEDERA_NETWORK="moon" is invalid: it should be one of testnet, mainnet, previewnet, local/);
    t.match(text, /HEDERA_TOPIC_ID="topic" is invalid/);
    t.match(text, /LEDGER_BATCH_MAX_LEAVES="0" is invalid/);
    t.match(text, /HEDERA_OPERATOR_KEY=\(value hidden\) is invalid/);
    t.notMatch(text, /secret-key-material/);
  }
});

t.test('the variables are described', async (t) => {
  const names = describeVariables().map((v) => v.name);
  for (const name of [
    'HEDERA_NETWORK',
    'HEDERA_OPERATOR_ID',
    'HEDERA_OPERATOR_KEY',
    'HEDERA_TOPIC_ID',
    'HEDERA_MIRROR_URL',
    'LEDGER_ENABLED',
    'LEDGER_BATCH_MAX_LEAVES',
    'LEDGER_BATCH_INTERVAL_MS',
  ]) {
    t.ok(names.includes(name), name);
  }
});
