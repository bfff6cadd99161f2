// ESLint (typescript-eslint, without type information: fast enough for every `npm test` on two cores). Besides the
// recommended rules, it keeps the layer rules of the Architecture section of the README: FHIR semantics (src/fhir)
// import neither MongoDB nor HTTP, the store and the ledger never import HTTP, and dev/ stand-ins are reached only from
// main.ts and tests. test/architecture/layers.test.ts checks the same and what a rule on imports cannot see (who touches
// the store's collections).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const noImport = (groups, message) => ({ 'no-restricted-imports': ['error', { patterns: [{ group: groups, message }] }] });

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test/fixtures/**', '.tap/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', prefer: 'type-imports' }],
      // Input validation matches control characters on purpose (NUL in search values, C0 controls in narratives).
      'no-control-regex': 'off',
      // A variable a closure reads before its one assignment (a handler installed later) stays `let`.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    files: ['src/fhir/**/*.ts'],
    rules: noImport(
      ['mongodb', 'mongodb/*', 'bson', 'fastify', 'fastify/*', '@fastify/*', '**/http/*', '**/dev/*'],
      'src/fhir holds FHIR semantics: no MongoDB, no HTTP (ask src/store; answer through src/http).',
    ),
  },
  {
    files: ['src/store/**/*.ts', 'src/ledger/**/*.ts'],
    rules: noImport(
      ['fastify', 'fastify/*', '@fastify/*', '**/http/*', '**/dev/*'],
      'src/store and src/ledger never reach up into HTTP, nor into the dev stand-ins.',
    ),
  },
  {
    // The verification page runs in a browser: nothing of Node, and of the server only the pure ledger modules it
    // shares (bundled by src/verify-ui/build-page.ts; a Node built-in would fail that bundle, a Buffer only the page).
    files: ['src/verify-ui/browser/**/*.ts'],
    rules: {
      ...noImport(
        [
          'node:*',
          'fastify',
          'mongodb',
          '**/http/*',
          '**/store/*',
          '**/dev/*',
          '**/fhir/*',
          '**/ledger/*',
          '!**/ledger/canonical-json.js',
          '!**/ledger/hedera-ids.js',
          '!**/ledger/network.js',
          '!**/ledger/mirror-client.js',
        ],
        'src/verify-ui/browser runs in a browser: no Node modules; from the server only canonical-json, hedera-ids, network and mirror-client.',
      ),
      'no-restricted-globals': ['error', 'Buffer', 'process', 'require', '__dirname', '__filename', 'global'],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/verify-ui/browser/**'],
    // The DOM types are in the program for the page's code (src/verify-ui/browser); the server has no DOM.
    rules: { 'no-restricted-globals': ['error', 'window', 'document', 'location', 'localStorage', 'sessionStorage', 'navigator'] },
  },
  {
    files: ['src/http/**/*.ts', 'src/auth/**/*.ts', 'src/cli/**/*.ts'],
    rules: noImport(['**/dev/*'], 'The dev stand-ins are started by main.ts (and the tests), never by the layers they stand in for.'),
  },
);
