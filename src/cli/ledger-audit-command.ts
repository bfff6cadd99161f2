/**
 * fhir-ledger-audit [--mongodb-uri URI] [--db NAME] [--mirror URL] [--topic ID] [--from N] [--to M]
 *                   [--grace-minutes G] [--json FILE] [--html FILE]
 *
 * The whole-database completeness audit (src/ledger/completeness-audit.ts): every batch of the range rebuilt from
 * the versions in MongoDB and compared with the HCS messages on a mirror node; every version missing, altered or
 * present without an anchor reported. Progress on stderr, a summary on stdout, the full report as JSON and as a
 * self-contained HTML file for people. The exit code says the outcome (./exit-codes.ts).
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { MongoError } from 'mongodb';
import { renderAuditHtml } from '../ledger/audit-report-html.js';
import { FINDING_TITLES, auditCompleteness, auditedTopic, type AuditReport } from '../ledger/completeness-audit.js';
import { isEntityId } from '../ledger/hedera-ids.js';
import { LedgerStore } from '../ledger/ledger-store.js';
import { MirrorClient, MirrorUnavailableError } from '../ledger/mirror-client.js';
import { PUBLIC_MIRROR_URLS, isPublicNetworkLabel } from '../ledger/network.js';
import { connectMongo, type MongoConnection } from '../store/mongo.js';
import { EXIT, type Output } from './exit-codes.js';

export const AUDIT_USAGE = `Usage: fhir-ledger-audit [options]

Checks the whole database against the ledger: for each batch of the range, rebuilds its Merkle tree from the
versions stored in MongoDB and compares root, size and chain link with the HCS message on a mirror node;
reports every version missing, altered, or present without an anchor, and every batch that does not add up.

  --mongodb-uri URI    the server's MongoDB (default: MONGODB_URI)
  --db NAME            its database (default: MONGODB_DB, else fhir)
  --mirror URL         mirror node REST base URL: one you trust. Default: Hedera's public mirror of the
                       network the database anchored on; for the local development ledger, its mirror at
                       http://127.0.0.1:LOCAL_LEDGER_MIRROR_PORT (5551), run by the server's operator
  --topic ID           the HCS topic (default: the one the database recorded)
  --from N --to M      batch numbers (default: every batch)
  --grace-minutes G    a version waiting longer than this for its anchor is a finding (default 15)
  --json FILE          write the full report as JSON
  --html FILE          write the report as one self-contained HTML file
  --progress-every N   a progress line on stderr every N batches (default 100)
  -h, --help           this text

Exit codes: 0 complete, nothing found; 1 findings; 2 usage error; 3 incomplete: the mirror does not have
the whole range (yet), nothing found so far; 4 mirror node unreachable; 6 database unreachable.`;

/** Findings printed on stdout; the files hold them all. */
const PRINTED_FINDINGS = 50;

function count(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value) || Number(value) < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return Number(value);
}

interface AuditArgs {
  uri: string;
  db: string;
  mirror: string | undefined;
  topic: string | undefined;
  from: number;
  to: number | null;
  graceMinutes: number;
  json: string | undefined;
  html: string | undefined;
  progressEvery: number;
}

function parse(argv: string[], env: NodeJS.ProcessEnv): AuditArgs | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      'mongodb-uri': { type: 'string' },
      db: { type: 'string' },
      mirror: { type: 'string' },
      topic: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'grace-minutes': { type: 'string' },
      json: { type: 'string' },
      html: { type: 'string' },
      'progress-every': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const uri = values['mongodb-uri'] ?? env.MONGODB_URI;
  if (!uri || !/^mongodb(\+srv)?:\/\/.+/.test(uri))
    throw new Error('--mongodb-uri (or MONGODB_URI) must be a mongodb:// connection string');
  const db = values.db ?? env.MONGODB_DB ?? 'fhir';
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(db)) throw new Error('--db must be a MongoDB database name');
  if (values.mirror !== undefined && !/^https?:\/\/\S+$/.test(values.mirror))
    throw new Error('--mirror must be the http(s) URL of a mirror node');
  if (values.topic !== undefined && !isEntityId(values.topic)) throw new Error('--topic must be a topic id such as 0.0.1234');
  const from = count(values.from, 'from', 1) ?? 1;
  const to = count(values.to, 'to', 1) ?? null;
  if (to !== null && to < from) throw new Error('--to must not be below --from');
  return {
    uri,
    db,
    mirror: values.mirror,
    topic: values.topic,
    from,
    to,
    graceMinutes: count(values['grace-minutes'], 'grace-minutes', 0) ?? 15,
    json: values.json,
    html: values.html,
    progressEvery: count(values['progress-every'], 'progress-every', 1) ?? 100,
  };
}

/**
 * Which mirror node to compare with, and why, said plainly. The database is what is being audited, so nothing in it
 * chooses the mirror of a public network: Hedera's own is read unless --mirror names another. The local development
 * ledger has one mirror only, run by the same operator as the server: allowed, and said so.
 */
export function chooseAuditMirror(
  network: string | null,
  option: string | undefined,
  env: NodeJS.ProcessEnv,
): { url: string; why: string } | null {
  if (option !== undefined) return { url: option, why: `${option}, given with --mirror` };
  if (network !== null && isPublicNetworkLabel(network)) {
    const url = PUBLIC_MIRROR_URLS[network];
    return { url, why: `Hedera's public ${network} mirror node, ${url}; --mirror URL to read another you trust` };
  }
  if (network !== null && network.startsWith('local')) {
    const url = `http://127.0.0.1:${env.LOCAL_LEDGER_MIRROR_PORT ?? '5551'}`;
    return {
      url,
      why:
        `${url}, the mirror of the LOCAL development ledger, which runs beside the server being audited (not independent of it, ` +
        'and not Hedera). Give --mirror URL to read another.',
    };
  }
  return null;
}

function summaryText(report: AuditReport): string {
  const s = report.summary;
  const lines = [
    `batches checked ${s.batchesChecked} (on the ledger ${s.batchesOnLedger}), versions checked ${s.versionsChecked}, ` +
      `versions in the database ${s.versionsScanned}, findings ${s.findings}`,
  ];
  for (const f of report.findings.slice(0, PRINTED_FINDINGS)) {
    const where = [f.batch !== null ? `batch ${f.batch}` : '', f.resource ?? '', f.versionId !== null ? `version ${f.versionId}` : '']
      .filter(Boolean)
      .join(', ');
    lines.push(`FINDING ${FINDING_TITLES[f.kind]}${where ? ` (${where})` : ''}: ${f.explanation}`);
  }
  if (s.findings > PRINTED_FINDINGS) lines.push(`... ${s.findings - PRINTED_FINDINGS} more findings: see the JSON or HTML report`);
  for (const note of report.notes) lines.push(`NOTE ${note}`);
  return `${lines.join('\n')}\n`;
}

export async function runLedgerAudit(argv: string[], out: Output, err: Output, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: AuditArgs;
  try {
    const parsed = parse(argv, env);
    if (parsed === 'help') {
      out.write(`${AUDIT_USAGE}\n`);
      return EXIT.VERIFIED;
    }
    args = parsed;
  } catch (error) {
    err.write(`fhir-ledger-audit: ${(error as Error).message}\n\n${AUDIT_USAGE}\n`);
    return EXIT.USAGE;
  }

  let connection: MongoConnection;
  try {
    connection = await connectMongo(args.uri, args.db);
  } catch (error) {
    out.write(`RESULT: DATABASE UNREACHABLE: ${(error as Error).message} (exit ${EXIT.DATABASE_UNREACHABLE})\n`);
    return EXIT.DATABASE_UNREACHABLE;
  }
  try {
    const store = new LedgerStore(connection.db);
    let chosen;
    try {
      chosen = await auditedTopic(store, args.topic);
    } catch (error) {
      if (error instanceof MongoError) throw error;
      err.write(`fhir-ledger-audit: ${(error as Error).message}: give --topic\n`);
      return EXIT.USAGE;
    }
    const mirrorChoice = chooseAuditMirror(chosen.network, args.mirror, env);
    if (!mirrorChoice) {
      err.write(
        `fhir-ledger-audit: the database names no network a mirror node is known for (${chosen.network ?? 'none'}): give --mirror URL\n`,
      );
      return EXIT.USAGE;
    }
    const mirror = new MirrorClient(mirrorChoice.url);
    out.write(
      `fhir-ledger-audit: database ${args.db}, topic ${chosen.topicId ?? '(nothing anchored yet)'} on ${chosen.network ?? '(no network)'}, ` +
        `batches ${args.from}..${args.to ?? 'last'}, grace ${args.graceMinutes} min\n`,
    );
    out.write(`MIRROR: ${mirrorChoice.why}\n`);
    if (chosen.network?.startsWith('local')) {
      out.write(
        'NOTE: this database anchored on a LOCAL development ledger, not on Hedera; the audit proves only what that ledger recorded.\n',
      );
    }
    let report: AuditReport;
    try {
      report = await auditCompleteness({
        store,
        mirror,
        topicId: chosen.topicId,
        network: chosen.network,
        mirrorNote: mirrorChoice.why,
        from: args.from,
        to: args.to,
        graceMs: args.graceMinutes * 60_000,
        progressEvery: args.progressEvery,
        onProgress: (p) =>
          err.write(
            p.phase === 'versions'
              ? `progress: versions scanned ${p.versionsScanned}, ${(p.elapsedMs / 1000).toFixed(1)} s\n`
              : `progress: batches ${p.batchesDone}/${p.batchesTotal}, versions checked ${p.versionsChecked}, ${(p.elapsedMs / 1000).toFixed(1)} s\n`,
          ),
      });
    } catch (error) {
      if (!(error instanceof MirrorUnavailableError)) throw error;
      out.write(`RESULT: MIRROR UNREACHABLE: ${error.message} (exit ${EXIT.MIRROR_UNREACHABLE})\n`);
      return EXIT.MIRROR_UNREACHABLE;
    }
    if (args.json) await writeFile(args.json, `${JSON.stringify(report, null, 2)}\n`);
    if (args.html) await writeFile(args.html, renderAuditHtml(report));
    out.write(summaryText(report));
    if (args.json) out.write(`JSON report: ${args.json}\n`);
    if (args.html) out.write(`HTML report: ${args.html}\n`);
    if (report.outcome === 'findings') {
      out.write(`\nRESULT: FINDINGS: ${report.summary.findings} (exit ${EXIT.MISMATCH})\n`);
      return EXIT.MISMATCH;
    }
    if (report.outcome === 'incomplete') {
      out.write(`\nRESULT: INCOMPLETE: part of the range is not on the mirror node (yet); nothing found so far (exit ${EXIT.PENDING})\n`);
      return EXIT.PENDING;
    }
    out.write(`\nRESULT: COMPLETE: nothing found (exit ${EXIT.VERIFIED})\n`);
    return EXIT.VERIFIED;
  } catch (error) {
    if (!(error instanceof MongoError)) throw error;
    out.write(`RESULT: DATABASE UNREACHABLE: ${error.message} (exit ${EXIT.DATABASE_UNREACHABLE})\n`);
    return EXIT.DATABASE_UNREACHABLE;
  } finally {
    await connection.close();
  }
}
