import t from 'tap';
import { ConfigError, describeVariables, loadConfig } from '../src/config.js';
import { DEFAULT_SEARCH_SETTINGS, ESTIMATE_COUNT_LIMIT } from '../src/fhir/search/search.js';

t.test('defaults give a loopback server with an embedded database', async (t) => {
  const config = loadConfig({});
  t.equal(config.port, 8080);
  t.equal(config.host, '127.0.0.1');
  t.equal(config.basePath, '');
  t.equal(config.baseUrl, 'http://127.0.0.1:8080');
  t.equal(config.mongodbUri, undefined);
  t.equal(config.mongodbDb, 'fhir');
  t.equal(config.dataDir, './data');
  t.equal(config.logLevel, 'info');
  t.equal(config.bodyLimit, 16 * 1024 * 1024);
});

t.test('values are read, coerced and trimmed; empty strings count as unset', async (t) => {
  const config = loadConfig({
    PORT: ' 9090 ',
    HOST: '0.0.0.0',
    FHIR_BASE_PATH: '/fhir',
    MONGODB_URI: 'mongodb://db1,db2,db3/?replicaSet=rs0',
    MONGODB_DB: 'hospital',
    BODY_LIMIT: '2048',
    LOG_LEVEL: 'warn',
    DATA_DIR: '',
  });
  t.equal(config.port, 9090);
  t.equal(config.baseUrl, 'http://localhost:9090/fhir', 'BASE_URL is derived from host, port and path');
  t.equal(config.mongodbUri, 'mongodb://db1,db2,db3/?replicaSet=rs0');
  t.equal(config.mongodbDb, 'hospital');
  t.equal(config.bodyLimit, 2048);
  t.equal(config.logLevel, 'warn');
  t.equal(config.dataDir, './data');
});

t.test('BASE_URL wins over the derived one', async (t) => {
  t.equal(loadConfig({ BASE_URL: 'https://fhir.example.org/r4' }).baseUrl, 'https://fhir.example.org/r4');
});

t.test('every error names the variable and what it should be', async (t) => {
  try {
    loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', BASE_URL: 'ftp://x/', MONGODB_URI: 'postgres://x', FHIR_BASE_PATH: 'fhir/' });
    t.fail('should throw');
  } catch (error) {
    t.ok(error instanceof ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    t.match(problems, /PORT="eighty" is invalid: it should be an integer from 0 to 65535/);
    t.match(problems, /LOG_LEVEL="loud" is invalid: it should be one of fatal, error/);
    t.match(problems, /BASE_URL="ftp:\/\/x\/" is invalid: it should be an absolute http\(s\) URL/);
    t.match(problems, /MONGODB_URI="postgres:\/\/x" is invalid/);
    t.match(problems, /FHIR_BASE_PATH="fhir\/" is invalid/);
    t.equal((error as ConfigError).problems.length, 5, 'all problems at once, not one per start');
  }
  t.throws(() => loadConfig({ PORT: '70000' }), /PORT="70000"/);
  t.throws(() => loadConfig({ BODY_LIMIT: '10' }), /BODY_LIMIT="10" is invalid: it should be a size in bytes/);
});

t.test('the variables are described for documentation', async (t) => {
  const names = describeVariables().map((v) => v.name);
  for (const name of ['PORT', 'HOST', 'BASE_URL', 'MONGODB_URI', 'MONGODB_DB', 'DATA_DIR', 'LOG_LEVEL', 'BODY_LIMIT']) {
    t.ok(names.includes(name), name);
  }
});

t.test('search limits and HTTP connection limits are read, defaulted and checked', async (t) => {
  t.equal(loadConfig({}).search.timeoutMs, 10_000);
  t.same(loadConfig({}).search.limits, { maxParameters: 50, maxValues: 200, maxIncludes: 10, maxChainDepth: 4 });
  t.same(loadConfig({ SEARCH_MAX_VALUES: '7', SEARCH_MAX_CHAIN_DEPTH: '2' }).search.limits, {
    maxParameters: 50,
    maxValues: 7,
    maxIncludes: 10,
    maxChainDepth: 2,
  });
  t.throws(() => loadConfig({ SEARCH_MAX_CHAIN_DEPTH: '11' }), /SEARCH_MAX_CHAIN_DEPTH="11" is invalid/);
  t.same(loadConfig({}).http, { headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000, maxConnections: 1024 });
  t.equal(loadConfig({ HTTP_MAX_CONNECTIONS: '10' }).http.maxConnections, 10);
  t.throws(() => loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '5' }), /HTTP_REQUEST_TIMEOUT_MS="5" is invalid/);
});

t.test('SEARCH_DEFAULT_TOTAL: the _total of a search without one; none unless configured', async (t) => {
  t.equal(loadConfig({}).search.defaultTotal, 'none', 'cheap by default: no count for a first page with more after it');
  t.equal(loadConfig({}).search.defaultTotal, DEFAULT_SEARCH_SETTINGS.defaultTotal, 'the app without configuration agrees');
  t.equal(loadConfig({ SEARCH_DEFAULT_TOTAL: '' }).search.defaultTotal, 'none', 'empty is unset');
  for (const mode of ['none', 'estimate', 'accurate'] as const) {
    t.equal(loadConfig({ SEARCH_DEFAULT_TOTAL: ` ${mode} ` }).search.defaultTotal, mode, mode);
  }
  for (const bad of ['Accurate', 'exact', '1', 'none,estimate']) {
    t.throws(
      () => loadConfig({ SEARCH_DEFAULT_TOTAL: bad }),
      new RegExp(`SEARCH_DEFAULT_TOTAL="${bad}" is invalid: it should be none, estimate or accurate`),
      bad,
    );
  }
  const described = describeVariables().find((v) => v.name === 'SEARCH_DEFAULT_TOTAL');
  t.equal(described?.default, 'none');
  t.match(described?.description, String(ESTIMATE_COUNT_LIMIT), 'the description states the estimate bound the search uses');
});

t.test('RESOURCE_TYPES: every storable R4 type by default, a list to restrict, misspelt names refused', async (t) => {
  const all = loadConfig({}).resourceTypes;
  t.equal(all.length, 144, 'every R4 type but Parameters (never stored) and AuditEvent (the read-only audit trail)');
  t.same(all.slice(0, 3), ['Patient', 'Encounter', 'MedicationRequest'], 'the featured types first');
  t.ok(all.includes('Observation') && all.includes('Provenance') && all.includes('Bundle'));
  t.notOk(all.includes('Parameters') || all.includes('AuditEvent'));
  t.same(loadConfig({ RESOURCE_TYPES: 'all' }).resourceTypes, all);
  t.same(
    loadConfig({ RESOURCE_TYPES: ' Observation , Patient,Encounter ' }).resourceTypes,
    ['Patient', 'Encounter', 'Observation'],
    'trimmed, in the CapabilityStatement order',
  );
  const refused = (value: string): string[] => {
    try {
      loadConfig({ RESOURCE_TYPES: value });
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  };
  t.match(refused('Patient,Obsrvation'), [/RESOURCE_TYPES: Obsrvation is not an R4 resource type/]);
  t.match(refused('Parameters'), [/Parameters is never stored/]);
  t.match(refused('AuditEvent'), [/AuditEvent is the audit trail, always hosted read-only/]);
  t.match(refused('patient; drop'), [/RESOURCE_TYPES/], 'not a list of type names');
});
