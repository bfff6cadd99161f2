/**
 * The verification page's HTML and CSS (server side: plain strings, no DOM). The page is one self-contained file:
 * its style and its bundled script are inline, so a saved copy works from file:// with nothing but the mirror node.
 * Its markup holds no data; the script (./browser/main.ts) fills in the results.
 */

const CSS = `
:root { --ok: #176b2c; --ok-bg: #e6f4ea; --fail: #a50e0e; --fail-bg: #fce8e6; --pending: #7a4f00; --pending-bg: #fef7e0;
  --muted: #5f6368; --line: #dadce0; --accent: #1a4f8b; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
body { margin: 0; color: #202124; background: #f8f9fa; line-height: 1.45; }
header, main, footer { max-width: 60rem; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 0 0 .75rem; }
h3 { font-size: 1.05rem; margin: 1rem 0 .5rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0; }
.lead { color: var(--muted); margin: 0; }
label { display: block; margin: .5rem 0 .2rem; font-weight: 600; }
input[type=text], input[type=url], input[type=password], select, textarea { font: inherit; padding: .4rem .5rem; border: 1px solid #bdc1c6;
  border-radius: 4px; width: 100%; box-sizing: border-box; }
textarea { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85rem; min-height: 8rem; }
button { font: inherit; padding: .45rem 1rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff;
  cursor: pointer; margin-top: .5rem; }
button[disabled] { opacity: .5; cursor: default; }
.drop { border: 2px dashed #bdc1c6; border-radius: 8px; padding: 1.25rem; text-align: center; color: var(--muted); }
.drop.over { border-color: var(--accent); background: #e8f0fe; }
.drop input { display: block; margin: .5rem auto 0; }
details { margin-top: .75rem; }
summary { cursor: pointer; color: var(--accent); }
.status { margin: .75rem 0 0; }
.status.error { color: var(--fail); }
.status.ok { color: var(--ok); }
.warning { border-left: 4px solid #e37400; background: var(--pending-bg); padding: .25rem .75rem; margin-top: .75rem; }
.warning p { margin: .4rem 0; }
.hint { color: var(--muted); font-size: .9rem; }
.banner { padding: .75rem 1rem; border-radius: 6px; font-size: 1.05rem; }
.banner.verified { background: var(--ok-bg); color: var(--ok); }
.banner.tampered { background: var(--fail-bg); color: var(--fail); }
.banner.pending, .banner.mirror-unreachable { background: var(--pending-bg); color: var(--pending); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .75rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.raw { color: var(--muted); font-size: .85rem; }
ol.timeline { list-style: none; padding: 0 0 0 1.25rem; margin: 0; border-left: 3px solid var(--line); }
li.version { position: relative; margin: 0 0 1.25rem; padding: .25rem 0 0 .75rem; }
li.version::before { content: ""; position: absolute; left: -1.95rem; top: .55rem; width: .9rem; height: .9rem; border-radius: 50%;
  background: var(--muted); border: 3px solid #fff; }
li.version.verified::before { background: var(--ok); }
li.version.failed::before { background: var(--fail); }
li.version.pending::before, li.version.not-checked::before { background: #e37400; }
li.version h3 { margin-top: 0; }
.badge { font-size: .8rem; padding: .1rem .5rem; border-radius: 999px; vertical-align: middle; }
.badge.verified { background: var(--ok-bg); color: var(--ok); }
.badge.failed { background: var(--fail-bg); color: var(--fail); }
.badge.pending, .badge.not-checked { background: var(--pending-bg); color: var(--pending); }
.failure { background: var(--fail-bg); color: var(--fail); padding: .5rem .75rem; border-radius: 4px; }
.pending-note { background: var(--pending-bg); color: var(--pending); padding: .5rem .75rem; border-radius: 4px; }
ul.checks { list-style: none; padding: 0; margin: .5rem 0; }
li.check { border-top: 1px solid var(--line); padding: .4rem 0; }
li.check p { margin: .15rem 0 0 3.25rem; }
.mark { display: inline-block; width: 2.75rem; font-weight: 700; font-family: ui-monospace, Menlo, Consolas, monospace; }
li.check.ok .mark { color: var(--ok); }
li.check.fail .mark { color: var(--fail); }
.check-name { color: var(--muted); font-size: .85rem; }
.how { color: #3c4043; font-size: .92rem; }
.meaning { color: var(--fail); font-weight: 600; }
.detail code { font-size: .8rem; color: var(--muted); overflow-wrap: anywhere; }
table { border-collapse: collapse; margin-top: .5rem; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
tr.added .kind { color: var(--ok); }
tr.removed .kind { color: var(--fail); }
tr.changed .kind { color: #e37400; }
td.arrow { color: var(--muted); }
code { font-family: ui-monospace, Menlo, Consolas, monospace; }
footer { color: var(--muted); font-size: .85rem; padding-bottom: 2rem; }
footer code { overflow-wrap: anywhere; }
`;

const BODY = `
<header>
  <h1>Verify a record's ledger proof</h1>
  <p class="lead">This page checks a proof package (from <code>GET [base]/[type]/[id]/$proof</code>) against a Hedera mirror node.
  Every check runs in this browser: the server that holds the record gives no verdict here.</p>
</header>
<main>
  <section id="step-package">
    <h2>1. The proof package</h2>
    <div id="drop-zone" class="drop">Drop a proof package (.json) here, or choose the file:
      <input type="file" id="package-file" accept=".json,application/json"></div>
    <details>
      <summary>Paste the package instead</summary>
      <label for="package-text">Proof package (JSON)</label>
      <textarea id="package-text" spellcheck="false" placeholder='{"format":"fhir-ledger-proof", ...}'></textarea>
      <button type="button" id="package-load-text">Use the pasted package</button>
    </details>
    <details id="fetch-box">
      <summary>Or fetch it from the server that served this page</summary>
      <label for="fetch-reference">Record</label>
      <input type="text" id="fetch-reference" placeholder="Patient/123" autocomplete="off" spellcheck="false">
      <label for="fetch-token">Access token (Bearer)</label>
      <input type="password" id="fetch-token" autocomplete="off">
      <button type="button" id="fetch-button">Fetch the proof package</button>
      <p class="hint">The token goes to this server only, with this one request, and is not stored. The package holds the
      record itself: handle it like the record.</p>
    </details>
    <p id="package-status" class="status" role="status"></p>
  </section>
  <section id="step-mirror">
    <h2>2. The mirror node to check against</h2>
    <label for="mirror-choice">Mirror node</label>
    <select id="mirror-choice">
      <option value="testnet">Hedera testnet, public mirror (testnet.mirrornode.hedera.com)</option>
      <option value="mainnet">Hedera mainnet, public mirror (mainnet.mirrornode.hedera.com)</option>
      <option value="previewnet">Hedera previewnet, public mirror (previewnet.mirrornode.hedera.com)</option>
      <option value="custom">Another mirror node (enter its URL)</option>
    </select>
    <input type="url" id="mirror-custom" placeholder="https://mirror.example.org or http://127.0.0.1:5551" hidden spellcheck="false">
    <div id="mirror-warning" class="warning" hidden></div>
    <p class="hint">A mirror node is an independent, public copy of the Hedera ledger. Hedera's own are the default; any other
    provider's, or your own, works the same way.</p>
  </section>
  <section id="step-verify">
    <h2>3. Verify</h2>
    <button type="button" id="verify-button" disabled>Verify in this browser</button>
    <p id="verify-progress" class="status" role="status"></p>
  </section>
  <section id="result" hidden aria-live="polite"></section>
</main>
<footer>
  <p>Works offline: save this page ("Save page as", HTML only) and open the file; only the mirror node is then contacted.
  Save it before loading a package, so that the copy holds no record.</p>
  <p>Fingerprint of this page's program: <code id="script-fingerprint">(computing)</code>. The server sends the same value in
  its Content-Security-Policy header; compare it with the one your organisation recorded to know you run the same code.</p>
</footer>
`;

export interface PageParts {
  /** The bundled script, inlined as is. */
  script: string;
  /** The FHIR base path the page fetches $proof under ('' or '/fhir'). */
  fhirBasePath: string;
}

const escapeAttribute = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export const PAGE_CSS = CSS;

/**
 * The whole page. `metaCsp` repeats the policy inside the page (a saved copy opened from file:// has no header to
 * carry it); frame-ancestors is left out there because browsers ignore it in a meta element.
 */
export function renderPage(parts: PageParts, metaCsp: string): string {
  return (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `<meta http-equiv="Content-Security-Policy" content="${escapeAttribute(metaCsp)}">\n` +
    '<meta name="referrer" content="no-referrer">\n' +
    `<meta name="fhir-base" content="${escapeAttribute(parts.fhirBasePath)}">\n` +
    '<link rel="icon" href="data:,">\n' +
    '<title>Verify a FHIR ledger proof</title>\n' +
    `<style>${CSS}</style>\n</head>\n<body>${BODY}<script>${parts.script}</script>\n</body>\n</html>\n`
  );
}
