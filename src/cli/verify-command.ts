/**
 * fhir-ledger-verify <proof.json> [--mirror URL]
 *
 * Checks a proof package (GET [type]/[id]/$proof) without the server or its database: recomputes each version's
 * commitment from the resource and its salt, folds the audit path, reads the HCS message from a mirror node
 * (chooseMirror), compares the roots, prints the consensus timestamp, recomputes the running hash from the previous
 * message, and checks the history for missing versions. Plain text out; the exit code says the outcome
 * (./exit-codes.ts).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { consensusTimestampToInstant } from '../ledger/hedera-ids.js';
import { MirrorClient } from '../ledger/mirror-client.js';
import { PUBLIC_MIRROR_URLS, isPublicNetworkLabel } from '../ledger/network.js';
import { ProofPackageError, parseProofPackage, type ProofPackage } from '../ledger/proof-package.js';
import { verifyPackage } from '../ledger/verify-package.js';
import { EXIT, type Output } from './exit-codes.js';

export const VERIFY_USAGE = `Usage: fhir-ledger-verify <proof.json> [--mirror URL]

Checks a proof package (from GET [type]/[id]/$proof or [type]/[id]/_history/[vid]/$proof) against a Hedera
mirror node, without the FHIR server or its database.

  --mirror URL   mirror node REST base URL: one you trust. Default: Hedera's public mirror of the
                 package's network (testnet, mainnet, previewnet); for a package anchored on a local
                 ledger, the mirrorUrl written in the package, which the server being verified supplied
  -h, --help     this text

Exit codes: 0 verified, 1 mismatch or tampering found, 2 usage error, 3 pending (not anchored yet),
4 mirror node unreachable.`;

const LABEL_WIDTH = 24;

/**
 * Which mirror node to read the ledger from, and why, said plainly: the package is the server's word, so the mirror
 * URL written in it is too. A server that lies could name a mirror that lies with it; on a public network the
 * verifier therefore reads Hedera's own mirror unless told otherwise.
 */
export function chooseMirror(pkg: ProofPackage, option: string | undefined): { url: string | null; why: string } {
  if (option !== undefined) return { url: option, why: `${option}, given with --mirror` };
  if (isPublicNetworkLabel(pkg.network)) {
    const url = PUBLIC_MIRROR_URLS[pkg.network];
    const named = pkg.mirrorUrl && new MirrorClient(pkg.mirrorUrl).baseUrl !== url ? ` (the package names ${pkg.mirrorUrl}; not used)` : '';
    return { url, why: `Hedera's public ${pkg.network} mirror node, ${url}${named}; --mirror URL to read another you trust` };
  }
  if (!pkg.mirrorUrl) return { url: null, why: 'none: the package names no mirror node; give --mirror URL' };
  return {
    url: pkg.mirrorUrl,
    why:
      `${pkg.mirrorUrl}, the mirror written in the package, i.e. supplied by the server being verified (not independent of it). ` +
      'Give --mirror URL with a mirror node you trust.',
  };
}
const line = (label: string, text: string): string => `  ${label.padEnd(LABEL_WIDTH)}${text}\n`;

export async function runVerify(argv: string[], out: Output, err: Output): Promise<number> {
  let file: string;
  let mirrorOption: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { mirror: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      out.write(`${VERIFY_USAGE}\n`);
      return EXIT.VERIFIED;
    }
    if (positionals.length !== 1) throw new Error('give exactly one proof package file');
    file = positionals[0]!;
    mirrorOption = values.mirror;
    if (mirrorOption !== undefined && !/^https?:\/\/\S+$/.test(mirrorOption))
      throw new Error(`--mirror ${mirrorOption} is not an http(s) URL`);
  } catch (error) {
    err.write(`fhir-ledger-verify: ${(error as Error).message}\n\n${VERIFY_USAGE}\n`);
    return EXIT.USAGE;
  }

  let pkg: ProofPackage;
  try {
    pkg = parseProofPackage(JSON.parse(await readFile(file, 'utf8')) as unknown);
  } catch (error) {
    const message =
      error instanceof ProofPackageError || error instanceof SyntaxError
        ? error.message
        : `cannot read ${file}: ${(error as Error).message}`;
    err.write(`fhir-ledger-verify: ${message}\n`);
    return EXIT.USAGE;
  }

  const choice = chooseMirror(pkg, mirrorOption);
  const mirror = choice.url ? new MirrorClient(choice.url) : null;
  const resource = `${pkg.resource.type}/${pkg.resource.id}`;
  out.write(
    `fhir-ledger-verify: ${resource}, ${pkg.versions.length} version(s), network ${pkg.network}, mirror ${mirror?.baseUrl ?? '(none)'}\n`,
  );
  out.write(`MIRROR: ${choice.why}\n`);
  if (pkg.network.startsWith('local')) {
    out.write('NOTE: this package was anchored on a LOCAL development ledger, not on Hedera; it proves only what that ledger recorded.\n');
  }

  const result = await verifyPackage(pkg, mirror);
  for (const { versionId, verification, mirrorUnavailable } of result.versions) {
    const status =
      mirrorUnavailable && verification.status !== 'failed'
        ? 'NOT CHECKED'
        : verification.status === 'anchored'
          ? 'VERIFIED'
          : verification.status.toUpperCase();
    out.write(`\n${resource}/_history/${versionId}  ${status}\n`);
    for (const check of verification.checks) out.write(line(`${check.ok ? 'ok' : 'FAIL'} ${check.name}`, check.detail));
    const published = verification.published;
    if (published) {
      const instant = consensusTimestampToInstant(published.consensusTimestamp);
      out.write(line('consensus time', `${published.consensusTimestamp}${instant ? ` (${instant})` : ''}`));
    }
    if (mirrorUnavailable) out.write(line('ledger', `not read: ${mirrorUnavailable}`));
  }
  if (result.history) {
    out.write(`\nhistory  ${result.history.ok ? 'complete' : 'INCOMPLETE'}\n`);
    out.write(line(result.history.ok ? 'ok history' : 'FAIL history', result.history.detail));
  } else {
    out.write('\nhistory  not checked (a one-version package; use [type]/[id]/$proof for the whole history)\n');
  }

  const summary: Record<typeof result.outcome, [string, number]> = {
    verified: ['VERIFIED', EXIT.VERIFIED],
    tampered: ['MISMATCH: the record does not match what the ledger anchored', EXIT.MISMATCH],
    pending: ['PENDING: not (yet) anchored; nothing contradicts the record', EXIT.PENDING],
    'mirror-unreachable': ['MIRROR UNREACHABLE: could not check against the ledger', EXIT.MIRROR_UNREACHABLE],
  };
  const [text, code] = summary[result.outcome];
  out.write(`\nRESULT: ${text} (exit ${code})\n`);
  return code;
}
