/**
 * The completeness audit's report for people (./completeness-audit.ts): one self-contained HTML file — inline CSS,
 * no script, no outside resource — that a compliance officer can open, archive or attach to an email. It says the
 * outcome first, in a sentence, then the summary table, the findings (one row each, in plain words), the batches
 * that are not simply "ok", and what was compared with what. Every value that comes from the database or the
 * mirror node is escaped: a resource id or a message could otherwise write markup into the report.
 */
import { FINDING_TITLES, type AuditReport, type BatchStatus, type FindingKind } from './completeness-audit.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const OUTCOME_WORDS: Record<AuditReport['outcome'], { title: string; sentence: string }> = {
  clean: {
    title: 'Complete: nothing found',
    sentence:
      'Every version the ledger anchored in this range is in the database, unchanged, every batch record matches the ledger, ' +
      'and no version is waiting for its anchor longer than the grace period.',
  },
  findings: {
    title: 'Findings',
    sentence:
      'The database does not match what the ledger anchored, or holds versions nothing anchored. Each finding below says what ' +
      'was found and what it means.',
  },
  incomplete: {
    title: 'Incomplete: nothing found so far',
    sentence:
      'Nothing contradicts the records, but part of the range could not be compared with the ledger (the mirror node does not ' +
      'show it yet, or it is on another topic). Run the audit again later.',
  },
};

const STATUS_WORDS: Record<BatchStatus, string> = {
  ok: 'ok',
  findings: 'findings',
  'in-progress': 'being anchored now',
  'not-on-ledger-yet': 'not on the mirror node yet',
  'not-checked': 'not checked (another topic)',
};

const CSS = `
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.outcome { padding: .75rem 1rem; border-radius: 6px; margin: 1rem 0; }
.outcome.clean { background: #e6f4ea; border: 1px solid #8cc79b; }
.outcome.findings { background: #fdecea; border: 1px solid #e59a92; }
.outcome.incomplete { background: #fff6dd; border: 1px solid #e5c566; }
.outcome strong { display: block; font-size: 1.1rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .35rem .6rem; border-bottom: 1px solid #d8dde3; }
th { background: #f3f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; word-break: break-all; }
.muted { color: #5b6470; }
`;

function row(cells: string[], header = false): string {
  const tag = header ? 'th' : 'td';
  return `<tr>${cells.map((c) => `<${tag}>${c}</${tag}>`).join('')}</tr>`;
}

/** The report as one HTML document. */
export function renderAuditHtml(report: AuditReport): string {
  const words = OUTCOME_WORDS[report.outcome];
  const s = report.summary;
  const range = `batches ${report.range.from} to ${report.range.to ?? report.range.from}`;
  // Label and value as HTML: the labels are written here, every value is escaped.
  const summaryRows: Array<[string, string]> = [
    ['Outcome', escapeHtml(words.title)],
    ['Range audited', escapeHtml(report.range.to === null ? 'no batches yet' : range)],
    ['Batches checked', escapeHtml(s.batchesChecked)],
    ['Batches found on the ledger', escapeHtml(s.batchesOnLedger)],
    ['Versions checked against their batch', escapeHtml(s.versionsChecked)],
    ['Versions in the database (all)', escapeHtml(s.versionsScanned)],
    ['Findings', escapeHtml(s.findings)],
    ...(Object.keys(FINDING_TITLES) as FindingKind[])
      .filter((kind) => (s.findingsByKind[kind] ?? 0) > 0)
      .map((kind): [string, string] => [`&nbsp;&nbsp;${escapeHtml(FINDING_TITLES[kind])}`, escapeHtml(s.findingsByKind[kind])]),
    ['Grace period for versions waiting to be anchored', `${escapeHtml(report.graceMinutes)} minutes`],
    ['Database', `<span class="mono">${escapeHtml(report.database)}</span>`],
    ['Ledger', escapeHtml(report.network ?? '(nothing anchored yet)')],
    ['Topic', `<span class="mono">${escapeHtml(report.topicId ?? '(none)')}</span>`],
    [
      'Mirror node read',
      `<span class="mono">${escapeHtml(report.mirrorUrl)}</span><br><span class="muted">${escapeHtml(report.mirrorNote)}</span>`,
    ],
    ['Report generated', escapeHtml(report.generatedAt)],
    ['Duration', `${escapeHtml((s.durationMs / 1000).toFixed(1))} s`],
  ];
  const findingRows = report.findings.map((f) =>
    row([
      escapeHtml(FINDING_TITLES[f.kind]),
      f.batch === null ? '' : escapeHtml(f.batch),
      f.resource === null ? '' : `<span class="mono">${escapeHtml(f.resource)}</span>`,
      f.versionId !== null ? escapeHtml(f.versionId) : f.versions ? escapeHtml(f.versions.join(', ')) : '',
      escapeHtml(f.explanation),
    ]),
  );
  const unusual = report.batches.filter((b) => b.status !== 'ok');
  const batchRows = unusual.map((b) =>
    row([
      escapeHtml(b.batch),
      escapeHtml(STATUS_WORDS[b.status]),
      escapeHtml(b.size ?? ''),
      escapeHtml(b.sequenceNumber ?? ''),
      escapeHtml(b.consensusTimestamp ?? ''),
      escapeHtml(b.findings),
    ]),
  );
  const local = report.network !== null && report.network.startsWith('local');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ledger completeness audit: ${escapeHtml(words.title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>Ledger completeness audit</h1>
<p class="muted">Database <span class="mono">${escapeHtml(report.database)}</span>, ${escapeHtml(report.range.to === null ? 'no batches yet' : range)}, ${escapeHtml(report.generatedAt)}</p>
<div class="outcome ${escapeHtml(report.outcome)}"><strong>${escapeHtml(words.title)}</strong>${escapeHtml(words.sentence)}</div>
${local ? '<p><strong>Note:</strong> these records were anchored on a <em>local development ledger</em>, not on Hedera; the audit proves only what that ledger recorded.</p>' : ''}
<h2>Summary</h2>
<table>${summaryRows.map(([label, value]) => row([label, value])).join('\n')}</table>
<h2>Findings (${escapeHtml(s.findings)})</h2>
${
  findingRows.length > 0
    ? `<table>${row(['What', 'Batch', 'Record', 'Version', 'What it means'], true)}\n${findingRows.join('\n')}</table>`
    : '<p>None.</p>'
}
${report.notes.length > 0 ? `<h2>Notes</h2><ul>${report.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : ''}
<h2>Batches needing attention (${escapeHtml(unusual.length)} of ${escapeHtml(report.batches.length)})</h2>
${
  batchRows.length > 0
    ? `<table>${row(['Batch', 'Status', 'Versions', 'Ledger message', 'Consensus time', 'Findings'], true)}\n${batchRows.join('\n')}</table>`
    : '<p>Every batch checked is complete and matches the ledger.</p>'
}
<h2>What was compared</h2>
<p>For each batch, the audit read the batch's message from the mirror node (its root, its number of versions, and the link to the
batch before it, with the ledger's own hash chain recomputed), then rebuilt the batch from the database: every version the
batch lists was looked up, its fingerprint (a salted SHA-256 commitment) recomputed from the stored content, and the
fingerprints combined into the batch's Merkle root, which must be the one on the ledger. Separately, every version in the
database was counted against the batches that claim it, and versions still waiting for an anchor after the grace period
were listed. The ledger holds no patient data; this report names records by their type and id only.</p>
</body>
</html>
`;
}
