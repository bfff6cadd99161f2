/// <reference lib="dom" />
/**
 * The verification page's behaviour: load a proof package (file, drop, paste, or fetched from the server that
 * served the page), choose the mirror node, run every check in this browser (verify.ts), and show the versions as a
 * timeline with each check, what it means when it fails, and what changed between versions.
 *
 * Everything shown that comes from the package or the mirror is written as text (textContent), never as HTML:
 * a package is untrusted input.
 */
import { LOCAL_NETWORK_LABEL, hashscanLinks, isPublicNetworkLabel } from '../../ledger/network.js';
import { utf8 } from './bytes.js';
import { STEP_TITLES, VERSION_STEPS, describeCheck, meaningOf } from './explain.js';
import { humanConsensusTime } from './format.js';
import { formatValue, jsonDiff } from './json-diff.js';
import { browserMirrorClient } from './mirror.js';
import { ProofPackageError, parseProofPackage, type PackagedVersion, type ProofPackage } from './proof-package.js';
import { verifyPackage, type Check, type PackageVerification, type VersionResult } from './verify.js';

/** Hedera's public mirror nodes. */
const PUBLIC_MIRRORS = {
  testnet: 'https://testnet.mirrornode.hedera.com',
  mainnet: 'https://mainnet.mirrornode.hedera.com',
  previewnet: 'https://previewnet.mirrornode.hedera.com',
} as const;

type MirrorChoice = keyof typeof PUBLIC_MIRRORS | 'custom';

// ---- DOM helpers

type Child = Node | string | null | undefined | false;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const c of children) if (c !== null && c !== undefined && c !== false) element.append(c);
  return element;
}

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

// ---- formatting

async function scriptFingerprint(): Promise<string | null> {
  const script = document.querySelector('script');
  if (!script?.textContent) return null;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(script.textContent)));
  return `sha256-${btoa(String.fromCharCode(...digest))}`;
}

// ---- state

interface Loaded {
  pkg: ProofPackage;
  /** Where it came from, for the status line. */
  source: string;
}

let loaded: Loaded | null = null;

/**
 * Browsers offer WebCrypto only to secure contexts: https pages, http://localhost and 127.0.0.1, and saved files. A
 * page opened over plain http from another host cannot hash anything, and says so instead of failing obscurely.
 */
const CRYPTO_AVAILABLE = typeof crypto !== 'undefined' && typeof crypto.subtle?.digest === 'function';
const NO_CRYPTO =
  'This browser does not offer the cryptography this page needs here (WebCrypto is only available on https:// pages, ' +
  'on localhost, and in a saved copy of the page). Open the page over https, or save it ("Save page as") and open the file.';

function setStatus(id: string, text: string, kind: 'info' | 'error' | 'ok' = 'info'): void {
  const status = byId(id);
  status.textContent = text;
  status.className = `status ${kind}`;
}

// ---- step 1: the package

function loadPackageText(text: string, source: string): void {
  loaded = null;
  byId('verify-button').setAttribute('disabled', '');
  clearResult();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    setStatus('package-status', `${source} is not JSON: ${(error as Error).message}`, 'error');
    return;
  }
  try {
    const pkg = parseProofPackage(json);
    loaded = { pkg, source };
    const anchored = pkg.versions.filter((v) => v.status === 'anchored').length;
    setStatus(
      'package-status',
      `Loaded ${source}: ${pkg.resource.type}/${pkg.resource.id}, ${pkg.versions.length} version(s) (${anchored} anchored), network ${pkg.network}.`,
      'ok',
    );
    if (CRYPTO_AVAILABLE) byId('verify-button').removeAttribute('disabled');
    chooseDefaultMirror(pkg);
  } catch (error) {
    setStatus(
      'package-status',
      error instanceof ProofPackageError ? error.message : `cannot read ${source}: ${(error as Error).message}`,
      'error',
    );
  }
}

async function loadFile(file: File): Promise<void> {
  loadPackageText(await file.text(), `file ${file.name}`);
}

const REFERENCE = /^[A-Z][A-Za-z]{1,63}\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[1-9]\d{0,8})?$/;

async function fetchPackage(): Promise<void> {
  const reference = byId<HTMLInputElement>('fetch-reference').value.trim();
  const token = byId<HTMLInputElement>('fetch-token').value.trim();
  if (!REFERENCE.test(reference)) {
    setStatus('package-status', `"${reference}" is not a resource reference such as Patient/123 (or Patient/123/_history/2)`, 'error');
    return;
  }
  const base = document.querySelector<HTMLMetaElement>('meta[name="fhir-base"]')?.content ?? '';
  const url = `${location.origin}${base.replace(/\/+$/, '')}/${reference}/$proof`;
  setStatus('package-status', `Fetching ${url} …`);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    setStatus('package-status', `The server could not be reached at ${url}.`, 'error');
    return;
  }
  const body = await response.text();
  if (!response.ok) {
    let why = '';
    try {
      const outcome = JSON.parse(body) as { issue?: Array<{ diagnostics?: string }> };
      why = outcome.issue?.map((i) => i.diagnostics ?? '').join('; ') ?? '';
    } catch {
      why = '';
    }
    const hint =
      response.status === 401
        ? ' (an access token is needed)'
        : response.status === 403
          ? ' (the token does not allow reading this record)'
          : '';
    setStatus('package-status', `The server answered ${response.status}${hint}${why ? `: ${why}` : ''}.`, 'error');
    return;
  }
  loadPackageText(body, `${reference}/$proof from this server`);
}

// ---- step 2: the mirror

function chooseDefaultMirror(pkg: ProofPackage): void {
  const choice = byId<HTMLSelectElement>('mirror-choice');
  const custom = byId<HTMLInputElement>('mirror-custom');
  if (isPublicNetworkLabel(pkg.network)) {
    choice.value = pkg.network;
  } else {
    choice.value = 'custom';
    custom.value = pkg.mirrorUrl ?? '';
  }
  updateMirrorUi();
}

function mirrorUrl(): string | null {
  const choice = byId<HTMLSelectElement>('mirror-choice').value as MirrorChoice;
  if (choice !== 'custom') return PUBLIC_MIRRORS[choice];
  const text = byId<HTMLInputElement>('mirror-custom').value.trim();
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? text : null;
  } catch {
    return null;
  }
}

function updateMirrorUi(): void {
  const choice = byId<HTMLSelectElement>('mirror-choice').value as MirrorChoice;
  const custom = byId<HTMLInputElement>('mirror-custom');
  custom.hidden = choice !== 'custom';
  const warnings: string[] = [];
  const pkg = loaded?.pkg;
  const url = mirrorUrl();
  if (pkg && pkg.network === LOCAL_NETWORK_LABEL) {
    warnings.push(
      'This package was anchored on a LOCAL development ledger, not on Hedera. It proves only what that local ledger recorded, ' +
        'and that ledger is run by whoever runs the server: it is no independent witness.',
    );
  } else if (pkg && !isPublicNetworkLabel(pkg.network)) {
    warnings.push(`The package names a network this page does not know ("${pkg.network}").`);
  }
  if (pkg?.mirrorUrl && choice === 'custom' && url !== null && sameUrl(url, pkg.mirrorUrl)) {
    warnings.push(
      'The mirror node address was named by the package, that is, supplied by the server being verified. ' +
        'Use it only if you know it is a mirror node you trust.',
    );
  }
  if (choice === 'custom' && url === null && custom.value.trim() !== '') warnings.push('That is not an http(s) URL.');
  if (url !== null && url.startsWith('http:') && !/^http:\/\/(?:127\.0\.0\.1|localhost)(?::\d+)?(?:\/|$)/.test(url)) {
    warnings.push("Plain http is allowed only for 127.0.0.1 and localhost (this page's security policy); use https.");
  }
  const box = byId('mirror-warning');
  box.replaceChildren(...warnings.map((w) => el('p', {}, w)));
  box.hidden = warnings.length === 0;
}

const sameUrl = (a: string, b: string): boolean => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

// ---- step 3: verify and show

function clearResult(): void {
  const result = byId('result');
  result.hidden = true;
  result.replaceChildren();
  result.removeAttribute('data-outcome');
}

async function runVerification(): Promise<void> {
  if (!loaded) return;
  const url = mirrorUrl();
  if (url === null) {
    setStatus('verify-progress', 'Choose a mirror node first.', 'error');
    return;
  }
  const button = byId<HTMLButtonElement>('verify-button');
  button.disabled = true;
  clearResult();
  const mirror = browserMirrorClient(url);
  try {
    const result = await verifyPackage(loaded.pkg, mirror, Date.now(), (done, total) =>
      setStatus('verify-progress', done < total ? `Checking version ${done + 1} of ${total} …` : `Checked ${total} version(s).`),
    );
    renderResult(loaded.pkg, result, mirror.baseUrl);
  } catch (error) {
    setStatus('verify-progress', `The verification stopped: ${(error as Error).message}`, 'error');
  } finally {
    button.disabled = false;
  }
}

const OUTCOME_TEXT: Record<PackageVerification['outcome'], [string, string]> = {
  verified: ['VERIFIED', 'Every version below is exactly the one the ledger timestamped.'],
  tampered: ['FAILED', 'The record does not match what the ledger recorded. The failed step is shown below, with what it means.'],
  pending: [
    'PENDING',
    'Some versions are not anchored on the ledger yet (or the mirror node does not show them yet). Nothing contradicts the record.',
  ],
  'mirror-unreachable': ['NOT CHECKED', 'The mirror node could not be read, so nothing could be concluded about the ledger.'],
};

function versionLabel(v: VersionResult): { status: string; label: string } {
  if (v.verification.status === 'failed') return { status: 'failed', label: 'FAILED' };
  if (v.mirrorUnavailable) return { status: 'not-checked', label: 'NOT CHECKED' };
  if (v.verification.status === 'anchored') return { status: 'verified', label: 'VERIFIED' };
  return { status: 'pending', label: 'PENDING' };
}

function renderCheck(check: Check, packaged: PackagedVersion | null, mirror: string, stepNumber: number | null): HTMLElement {
  const title = `${stepNumber !== null ? `${stepNumber}. ` : ''}${STEP_TITLES[check.name]}`;
  return el(
    'li',
    { class: `check ${check.ok ? 'ok' : 'fail'}`, 'data-check': check.name, 'data-ok': String(check.ok) },
    el('span', { class: 'mark' }, check.ok ? 'ok' : 'FAIL'),
    el('strong', {}, title),
    el('span', { class: 'check-name' }, ` (${check.name})`),
    el('p', { class: 'how' }, describeCheck(check.name, packaged?.proof ?? null, mirror)),
    !check.ok && el('p', { class: 'meaning' }, meaningOf(check)),
    el('p', { class: 'detail' }, el('code', {}, check.detail)),
  );
}

function renderDiff(previous: PackagedVersion | undefined, current: PackagedVersion): HTMLElement {
  if (!previous) {
    return el(
      'p',
      { class: 'diff-none' },
      current.versionId === 1 ? 'First version: the record as created.' : 'The previous version is not in the package.',
    );
  }
  const changes = jsonDiff(previous.resource, current.resource);
  const rows = changes.map((c) =>
    el(
      'tr',
      { class: `change ${c.kind}`, 'data-path': c.path },
      el('td', { class: 'kind' }, c.kind),
      el('td', {}, el('code', {}, c.path)),
      el('td', {}, c.kind === 'added' ? '' : el('code', { class: 'before' }, formatValue(c.before))),
      el('td', { class: 'arrow' }, '→'),
      el('td', {}, c.kind === 'removed' ? '' : el('code', { class: 'after' }, formatValue(c.after))),
    ),
  );
  return el(
    'details',
    { class: 'diff', open: '' },
    el('summary', {}, `Changes from version ${previous.versionId} (${changes.length})`),
    changes.length === 0
      ? el('p', {}, 'No change in content.')
      : el(
          'table',
          {},
          el(
            'thead',
            {},
            el('tr', {}, el('th', {}, ''), el('th', {}, 'field'), el('th', {}, 'before'), el('th', {}, ''), el('th', {}, 'after')),
          ),
          el('tbody', {}, ...rows),
        ),
  );
}

function fact(label: string, value: Child, cls = ''): Node[] {
  return [el('dt', {}, label), el('dd', cls ? { class: cls } : {}, value)];
}

function renderVersion(pkg: ProofPackage, v: VersionResult, previous: PackagedVersion | undefined, mirror: string): HTMLElement {
  const packaged = pkg.versions.find((p) => p.versionId === v.versionId)!;
  const { status, label } = versionLabel(v);
  const proof = packaged.proof;
  const published = v.verification.published;
  const facts: Node[] = [];
  if (proof) {
    const timestamp = published?.consensusTimestamp ?? proof.consensusTimestamp;
    const confirmed = published !== null;
    const human = humanConsensusTime(timestamp);
    facts.push(
      ...fact(
        'Consensus time',
        el(
          'span',
          {},
          human ?? timestamp,
          el('span', { class: 'raw' }, ` (${timestamp}${confirmed ? '' : ', as the proof states it: not confirmed by the ledger'})`),
        ),
        'consensus-time',
      ),
      ...fact('Topic', proof.topicId, 'topic'),
      ...fact('Sequence number', String(proof.sequenceNumber), 'sequence-number'),
      ...fact('Batch', `${proof.batch} (leaf ${proof.leafIndex} of ${proof.treeSize})`),
    );
    const links = hashscanLinks(pkg.network, proof.topicId, timestamp);
    if (links) {
      facts.push(
        ...fact(
          'HashScan',
          el(
            'a',
            { href: links.transaction, target: '_blank', rel: 'noopener noreferrer', class: 'hashscan' },
            'the batch message on HashScan',
          ),
        ),
      );
    }
  } else {
    facts.push(...fact('Ledger', 'not anchored yet: the server has not published this version\u2019s batch'));
  }
  const lastUpdated = (packaged.resource.meta as { lastUpdated?: unknown } | undefined)?.lastUpdated;
  if (typeof lastUpdated === 'string') facts.push(...fact('Written (per the record)', lastUpdated));
  if (v.mirrorUnavailable) facts.push(...fact('Ledger', `not read: ${v.mirrorUnavailable}`));

  const failedChecks = v.verification.checks.filter((c) => !c.ok);
  const firstFailure = failedChecks[0];
  const stepOf = (c: Check) => VERSION_STEPS.indexOf(c.name) + 1;
  return el(
    'li',
    { class: `version ${status}`, 'data-version': String(v.versionId), 'data-status': status },
    el('h3', {}, `Version ${v.versionId} `, el('span', { class: `badge ${status}` }, label)),
    firstFailure &&
      el(
        'p',
        { class: 'failure' },
        el(
          'strong',
          {},
          `Failed at step ${stepOf(firstFailure)} of ${VERSION_STEPS.length}, ${STEP_TITLES[firstFailure.name]} (${firstFailure.name}): `,
        ),
        meaningOf(firstFailure),
      ),
    status === 'pending' && el('p', { class: 'pending-note' }, 'Pending: not anchored yet. This is not a failure; verify again later.'),
    el('dl', { class: 'facts' }, ...facts),
    el('ul', { class: 'checks' }, ...v.verification.checks.map((c) => renderCheck(c, packaged, mirror, stepOf(c)))),
    renderDiff(previous, packaged),
  );
}

function renderResult(pkg: ProofPackage, result: PackageVerification, mirror: string): void {
  const section = byId('result');
  const [headline, text] = OUTCOME_TEXT[result.outcome];
  const byVersion = new Map(pkg.versions.map((v) => [v.versionId, v]));
  const ordered = [...result.versions].sort((a, b) => a.versionId - b.versionId);
  const historyNode = result.history
    ? el('ul', { class: 'checks history' }, renderCheck(result.history, null, mirror, null))
    : el('p', { class: 'history-none' }, 'History not checked: this package holds one version only ([type]/[id]/$proof gives them all).');
  section.replaceChildren(
    el('h2', {}, 'Result'),
    el('div', { class: `banner ${result.outcome}`, id: 'outcome' }, el('strong', {}, headline), ` ${text}`),
    el(
      'dl',
      { class: 'facts package' },
      ...fact('Record', `${pkg.resource.type}/${pkg.resource.id}`),
      ...fact('Network', pkg.network),
      ...fact('Mirror node used', mirror, 'mirror-used'),
      ...fact(
        'Package',
        `${loaded?.source ?? ''}; generated ${pkg.generatedAt ?? '(no date)'} by ${pkg.generatedBy ?? '(unnamed)'} (as the package states)`,
      ),
    ),
    el('h3', {}, 'History'),
    historyNode,
    el('h3', {}, 'Versions'),
    el('ol', { class: 'timeline' }, ...ordered.map((v) => renderVersion(pkg, v, byVersion.get(v.versionId - 1), mirror))),
  );
  section.setAttribute('data-outcome', result.outcome);
  section.hidden = false;
}

// ---- wiring

function start(): void {
  const file = byId<HTMLInputElement>('package-file');
  file.addEventListener('change', () => {
    const chosen = file.files?.[0];
    if (chosen) void loadFile(chosen);
  });
  const zone = byId('drop-zone');
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const dropped = event.dataTransfer?.files[0];
    if (dropped) void loadFile(dropped);
  });
  byId('package-load-text').addEventListener('click', () =>
    loadPackageText(byId<HTMLTextAreaElement>('package-text').value, 'the pasted text'),
  );
  if (location.protocol === 'file:') {
    // Opened from a saved copy: there is no server to ask, and none is needed.
    byId('fetch-box').hidden = true;
  } else {
    byId('fetch-button').addEventListener('click', () => void fetchPackage());
  }
  byId('mirror-choice').addEventListener('change', updateMirrorUi);
  byId('mirror-custom').addEventListener('input', updateMirrorUi);
  byId('verify-button').addEventListener('click', () => void runVerification());
  updateMirrorUi();
  if (!CRYPTO_AVAILABLE) {
    setStatus('verify-progress', NO_CRYPTO, 'error');
    document.body.setAttribute('data-ready', 'true');
    return;
  }
  void scriptFingerprint().then((fingerprint) => {
    if (fingerprint) byId('script-fingerprint').textContent = fingerprint;
  });
  document.body.setAttribute('data-ready', 'true');
}

start();
