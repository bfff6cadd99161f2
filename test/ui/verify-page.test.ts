// The verification page (GET /verify) in a real browser (headless Chromium through playwright-core), against the
// local Hedera network's mirror REST API and a ledger-enabled app: a good package verifies version by version with
// its consensus time, sequence number and the diff between versions; a changed record fails at the commitment step
// and an altered audit path at the Merkle step, each with its plain-words meaning; and the page saved from the
// server (its exact bytes) still verifies from file:// once the FHIR server is stopped.
//
// Chromium: CHROMIUM_PATH, or Debian's /usr/bin/chromium (.ci/run installs it). Without one the file is skipped,
// except in CI (CI set), where it fails.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { stopMongoAtEnd } from '../helpers/app.js';
import { startSecuredApp } from '../helpers/auth.js';
import { createPatient, startLedgerApp, startTestNetwork, updatePatient, waitAnchored } from '../ledger/helpers/ledger-app.js';

// A local network, MongoDB, an app and a browser on a 2-core machine: more than the suite's 180 s per file may be
// needed (a harness limit, not a speed assertion).
t.setTimeout(420_000);
stopMongoAtEnd(t);

const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';
const SCREENSHOT_DIR = new URL('../../docs/img/', import.meta.url);

function findChromium(): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return candidates.find((path): path is string => path !== undefined && path !== '' && existsSync(path));
}

interface ProofJson {
  network: string;
  mirrorUrl: string | null;
  versions: Array<{
    versionId: number;
    resource: { name: Array<{ family: string }> } & Record<string, unknown>;
    proof: { sequenceNumber: number; consensusTimestamp: string; topicId: string; auditPath: string[]; treeSize: number } | null;
  }>;
}

async function proofPackage(app: FastifyInstance, id: string): Promise<{ text: string; json: ProofJson }> {
  const res = await app.inject({ method: 'GET', url: `/Patient/${id}/$proof` });
  if (res.statusCode !== 200) throw new Error(`$proof: ${res.statusCode} ${res.body}`);
  return { text: res.body, json: res.json() as ProofJson };
}

/** Loads a package through the page's file input, as a user choosing a file does. */
async function loadFile(page: Page, text: string): Promise<void> {
  await page.setInputFiles('#package-file', { name: 'proof.json', mimeType: 'application/json', buffer: Buffer.from(text) });
  await page.waitForSelector('#package-status.ok');
}

/** Loads a package through the paste box. */
async function loadPasted(page: Page, text: string): Promise<void> {
  await page.click('#step-package details:first-of-type summary');
  await page.fill('#package-text', text);
  await page.click('#package-load-text');
  await page.waitForSelector('#package-status.ok');
}

async function verify(page: Page, mirrorUrl: string): Promise<string> {
  await page.selectOption('#mirror-choice', 'custom');
  await page.fill('#mirror-custom', mirrorUrl);
  await page.click('#verify-button');
  await page.waitForSelector('#result[data-outcome]', { timeout: 60_000 });
  return (await page.getAttribute('#result', 'data-outcome')) ?? '';
}

const text = async (page: Page, selector: string): Promise<string> => (await page.textContent(selector))?.trim() ?? '';

/** Console errors (a CSP violation shows there) collected per page. */
function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return errors;
}

async function checkVerified(t: Test, page: Page, pkg: ProofJson): Promise<void> {
  t.equal(await page.getAttribute('#result', 'data-outcome'), 'verified', 'outcome verified');
  t.match(await text(page, '#outcome'), /^VERIFIED/);
  t.equal(await page.getAttribute('#result .history li.check', 'data-ok'), 'true', 'history complete');
  for (const v of pkg.versions) {
    const item = `li.version[data-version="${v.versionId}"]`;
    t.equal(await page.getAttribute(item, 'data-status'), 'verified', `version ${v.versionId} verified`);
    t.match(await text(page, `${item} .badge`), 'VERIFIED');
    t.match(
      await text(page, `${item} .consensus-time`),
      /^\w+day \d{1,2} \w+ \d{4}, \d\d:\d\d:\d\d\.\d{9} UTC/,
      'consensus time, readable',
    );
    t.match(await text(page, `${item} .consensus-time`), v.proof!.consensusTimestamp, 'and as Hedera writes it');
    t.equal(await text(page, `${item} .sequence-number`), String(v.proof!.sequenceNumber), 'sequence number');
    t.equal(await text(page, `${item} .topic`), v.proof!.topicId, 'topic');
    const checks = await page.$$eval(`${item} li.check`, (nodes) =>
      nodes.map((n) => `${n.getAttribute('data-check')}=${n.getAttribute('data-ok')}`),
    );
    t.same(
      checks,
      ['commitment', 'audit-path', 'published-root', 'consensus-timestamp', 'running-hash', 'running-hash-chain'].map((c) => `${c}=true`),
      `version ${v.versionId}: every step ok`,
    );
    t.equal(await page.$(`${item} a.hashscan`), null, 'no HashScan link for a local ledger');
  }
  // The diff between version 1 and 2.
  const row = 'li.version[data-version="2"] tr.change[data-path="name[0].family"]';
  t.equal(await text(page, `${row} .before`), '"Original"');
  t.equal(await text(page, `${row} .after`), '"Second"');
  t.ok(await page.$('li.version[data-version="2"] tr.change[data-path="meta.versionId"]'), 'meta.versionId changed too');
}

t.test('GET /verify is public, self-contained, and allows only its own script', async (t) => {
  const { app } = await startSecuredApp(t);
  const res = await app.inject({ method: 'GET', url: '/verify' });
  t.equal(res.statusCode, 200, 'no token needed');
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/);
  const html = res.body;
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
  t.equal(scripts.length, 1, 'one inline script');
  t.notMatch(html, /<script[^>]+src=|<link[^>]+stylesheet/, 'nothing loaded from elsewhere');
  const hash = `sha256-${createHash('sha256').update(scripts[0]!, 'utf8').digest('base64')}`;
  const csp = String(res.headers['content-security-policy']);
  t.match(csp, `script-src '${hash}'`, 'the CSP allows the inline script by its hash');
  t.notMatch(csp, /unsafe-inline|unsafe-eval/);
  t.match(csp, "connect-src 'self' https: http://127.0.0.1:* http://localhost:*");
  t.match(csp, "frame-ancestors 'none'");
  t.equal((csp.match(/script-src/g) ?? []).length, 1, 'one script-src');
  const unauthorized = await app.inject({ method: 'GET', url: '/Patient/x/$proof' });
  t.equal(unauthorized.statusCode, 401, 'the API behind it still needs a token');
  t.equal(
    app.routeTable.find((r) => r.url === '/verify' && r.method === 'GET')?.public,
    'static-page',
    'declared public, as a static page',
  );
});

const executablePath = findChromium();
const NO_BROWSER = 'no Chromium binary found (set CHROMIUM_PATH, or apt-get install chromium)';

t.test(
  'the page verifies in Chromium, shows failures in plain words, and works offline from file://',
  // Skipped on a machine without Chromium, never in CI.
  { skip: executablePath === undefined && !process.env.CI ? `${NO_BROWSER}: the browser test is skipped` : false },
  async (t) => {
    if (executablePath === undefined) {
      t.fail(`${NO_BROWSER}: required in CI`);
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'verify-page-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));

    const net = await startTestNetwork(t);
    const { app, runtime, connection } = await startLedgerApp(t, net);
    const p = await createPatient(app, 'Original');
    await updatePatient(app, p.id, 'Second');
    // A third leaf in the same batch, so that every audit path has hashes to alter.
    await createPatient(app, 'Neighbour');
    // Exported before anchoring: every version pending.
    const pending = await proofPackage(app, p.id);
    runtime.start();
    await waitAnchored(connection, 20_000);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const origin = `http://127.0.0.1:${address.port}`;

    const good = await proofPackage(app, p.id);
    t.equal(good.json.versions.length, 2);
    t.equal(good.json.network, 'local (not Hedera)');
    t.equal(good.json.mirrorUrl, net.mirrorUrl);

    const browser: Browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
    t.teardown(() => browser.close());
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });

    await t.test('(a) a good package: every version VERIFIED, with time, sequence number and diff', async (t) => {
      const page = await context.newPage();
      const consoleErrors = watchConsole(page);
      const response = await page.goto(`${origin}/verify`);
      t.equal(response?.status(), 200);
      await page.waitForSelector('body[data-ready="true"]');

      // Fetched by the page itself from the server that served it (the app runs without authorization here; the token
      // field is still sent as a Bearer header).
      await page.click('#fetch-box summary');
      await page.fill('#fetch-reference', `Patient/${p.id}`);
      await page.fill('#fetch-token', 'not-needed-here');
      await page.click('#fetch-button');
      await page.waitForSelector('#package-status.ok');
      t.match(await text(page, '#package-status'), `Patient/${p.id}, 2 version(s)`);

      // And loaded as a file, as the test fetched it through the API.
      await loadFile(page, good.text);
      t.equal(await page.inputValue('#mirror-choice'), 'custom', "a local package defaults to the package's mirror");
      t.equal(await page.inputValue('#mirror-custom'), net.mirrorUrl);
      const warning = await text(page, '#mirror-warning');
      t.match(warning, /LOCAL development ledger, not on Hedera/);
      t.match(warning, /named by the package, that is, supplied by the server being verified/);

      t.equal(await verify(page, net.mirrorUrl), 'verified');
      await checkVerified(t, page, good.json);
      t.same(consoleErrors, [], 'no console errors (no CSP violation)');
      t.match(await text(page, '#script-fingerprint'), /^sha256-/, "the page shows its program's fingerprint");
      t.match(String(response?.headers()['content-security-policy']), await text(page, '#script-fingerprint'), 'the same as in the CSP');
      if (SCREENSHOTS) {
        await mkdir(SCREENSHOT_DIR, { recursive: true });
        await page.screenshot({ path: new URL('verify-page-verified.png', SCREENSHOT_DIR).pathname, fullPage: true });
      }
      await page.close();
    });

    await t.test('(b) a changed record fails at the commitment step; an altered audit path at the Merkle step', async (t) => {
      const page = await context.newPage();
      await page.goto(`${origin}/verify`);
      await page.waitForSelector('body[data-ready="true"]');

      const tampered = structuredClone(good.json);
      tampered.versions[0]!.resource.name[0]!.family = 'Forged';
      await loadPasted(page, JSON.stringify(tampered));
      t.equal(await verify(page, net.mirrorUrl), 'tampered');
      t.match(await text(page, '#outcome'), /^FAILED/);
      const v1 = 'li.version[data-version="1"]';
      t.equal(await page.getAttribute(v1, 'data-status'), 'failed');
      const failure = await text(page, `${v1} .failure`);
      t.match(failure, /^Failed at step 1 of 6, Record fingerprint \(commitment\):/);
      t.match(failure, /The record shown is not the one that was timestamped: it \(or its secret salt\) was changed after anchoring\./);
      t.equal(await page.getAttribute(`${v1} li.check[data-check="commitment"]`, 'data-ok'), 'false');
      t.match(await text(page, `${v1} li.check[data-check="commitment"] .detail`), /the version or its salt changed after it was written/);
      t.equal(await page.getAttribute('li.version[data-version="2"]', 'data-status'), 'verified', 'the other version still verifies');
      t.equal(
        await text(page, 'li.version[data-version="2"] tr.change[data-path="name[0].family"] .before'),
        '"Forged"',
        'the diff shows what the package holds',
      );
      if (SCREENSHOTS) await page.screenshot({ path: new URL('verify-page-failed.png', SCREENSHOT_DIR).pathname, fullPage: true });

      const altered = structuredClone(good.json);
      const path = altered.versions[1]!.proof!.auditPath;
      t.ok(path.length > 0, `the audit path has ${path.length} hash(es) (tree of ${altered.versions[1]!.proof!.treeSize})`);
      path[0] = path[0]!.replace(/^./, (c) => (c === '0' ? '1' : '0'));
      await loadFile(page, JSON.stringify(altered));
      t.equal(await verify(page, net.mirrorUrl), 'tampered');
      const v2 = 'li.version[data-version="2"]';
      t.equal(await page.getAttribute(v2, 'data-status'), 'failed');
      t.match(
        await text(page, `${v2} .failure`),
        /^Failed at step 2 of 6, Place in the batch \(audit-path\): The proof does not tie this record to the batch/,
      );
      t.equal(await page.getAttribute(`${v2} li.check[data-check="commitment"]`, 'data-ok'), 'true', 'the record itself is intact');
      t.equal(await page.getAttribute(`${v2} li.check[data-check="audit-path"]`, 'data-ok'), 'false');
      t.equal(await page.getAttribute('li.version[data-version="1"]', 'data-status'), 'verified');
      await page.close();
    });

    await t.test('versions not anchored yet are shown as pending, not as failed', async (t) => {
      const page = await context.newPage();
      await page.goto(`${origin}/verify`);
      await page.waitForSelector('body[data-ready="true"]');
      await loadFile(page, pending.text);
      t.equal(await verify(page, net.mirrorUrl), 'pending');
      t.match(await text(page, '#outcome'), /^PENDING .*Nothing contradicts the record/);
      for (const v of [1, 2]) {
        t.equal(await page.getAttribute(`li.version[data-version="${v}"]`, 'data-status'), 'pending', `version ${v} pending`);
        t.match(await text(page, `li.version[data-version="${v}"] .pending-note`), /not anchored yet\. This is not a failure/);
        t.equal(await page.$(`li.version[data-version="${v}"] .failure`), null, 'no failure shown');
      }
      await page.close();
    });

    await t.test('over plain http from another host the page says WebCrypto is unavailable, instead of failing obscurely', async (t) => {
      // The browser sees http://verify-page.test: not a secure context (unlike https, localhost, 127.0.0.1 or a file).
      const insecure = await chromium.launch({
        executablePath,
        headless: true,
        args: ['--no-sandbox', '--host-resolver-rules=MAP verify-page.test 127.0.0.1'],
      });
      t.teardown(() => insecure.close());
      const page = await insecure.newPage();
      await page.goto(`http://verify-page.test:${address.port}/verify`);
      await page.waitForSelector('body[data-ready="true"]');
      t.equal(await page.evaluate(() => window.isSecureContext), false);
      t.match(await text(page, '#verify-progress'), /WebCrypto is only available on https:\/\/ pages, on localhost, and in a saved copy/);
      await loadFile(page, good.text);
      t.equal(await page.isDisabled('#verify-button'), true, 'verification cannot start');
    });

    await t.test('(c) the saved page verifies from file:// with the FHIR server stopped', async (t) => {
      const served = await fetch(`${origin}/verify`);
      const bytes = Buffer.from(await served.arrayBuffer());
      const file = join(dir, 'verify.html');
      await writeFile(file, bytes);
      await app.close();
      await t.rejects(fetch(`${origin}/verify`), 'the FHIR server is down');

      const page = await context.newPage();
      const consoleErrors = watchConsole(page);
      await page.goto(pathToFileURL(file).href);
      await page.waitForSelector('body[data-ready="true"]');
      t.equal(await page.isHidden('#fetch-box'), true, 'no server to fetch from: the option is hidden');
      await loadFile(page, good.text);
      t.equal(await verify(page, net.mirrorUrl), 'verified');
      await checkVerified(t, page, good.json);
      t.same(consoleErrors, [], 'no console errors');
      await page.close();
    });
  },
);
