/**
 * Every route is declared (interaction, type, required scope) or says why it is public: a route registered without
 * a declaration stops the server from starting, so nothing can bypass authorization and audit by being forgotten.
 */
import t from 'tap';
import { requireDeclarations } from '../../src/http/route-table.js';
import Fastify from 'fastify';
import { startTestApp, stopMongoAtEnd } from '../helpers/app.js';

stopMongoAtEnd(t);

t.test('the route table lists every route of the app, each declared or public for a reason', async (t) => {
  const { app } = await startTestApp(t);
  t.ok(app.routeTable.length > 80, `${app.routeTable.length} routes`);
  const undeclared = app.routeTable.filter((r) => !r.declaration && !r.public);
  t.same(undeclared, [], 'none without a declaration');
  const publicOnes = [...new Set(app.routeTable.filter((r) => r.public).map((r) => r.public))].sort();
  t.same(
    publicOnes,
    ['health', 'method-not-allowed', 'static-page'],
    'public routes serve no data: health probes, 405 answers, the /verify page',
  );
  const metadata = app.routeTable.find((r) => r.url === '/metadata' && r.method === 'GET');
  t.equal(metadata?.declaration?.requires, 'public', 'the CapabilityStatement needs no token');
  const read = app.routeTable.find((r) => r.url === '/Patient/:id' && r.method === 'GET');
  t.same(read?.declaration, { interaction: 'read', type: 'Patient', requires: { anyOf: ['r'] } });
});

t.test('a route registered without a declaration stops the app from starting', async (t) => {
  const app = Fastify({ logger: false });
  requireDeclarations(app);
  app.get('/declared', { config: { fhir: { interaction: 'read', type: 'Patient', requires: { anyOf: ['r'] } } } }, async () => 'ok');
  app.get('/probe', { config: { public: 'health' } }, async () => 'ok');
  t.throws(() => app.get('/forgotten', async () => 'data'), /Route GET \/forgotten has no declaration/);
  await app.close();
});
