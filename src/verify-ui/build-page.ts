/**
 * Builds the verification page: bundles ./browser/main (esbuild, for the browser, one IIFE with the pure
 * src/ledger modules it shares), inlines it and the CSS into one HTML file, and derives the Content-Security-Policy
 * that lets exactly that script run (its SHA-256, computed here) and nothing else.
 *
 * Where the source is: beside this module, in ./browser. Running from source (tsx) that is src/verify-ui/browser/
 * main.ts; running the compiled server (npm run build, npm start, the Docker image, which ships dist/ and no src/)
 * it is dist/src/verify-ui/browser/main.js, which tsc emitted with the rest of the server. esbuild reads either.
 *
 * esbuild is a runtime dependency for this reason: the page is bundled by the running server (once per process, at
 * the first request), so the production image needs it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PAGE_CSS, renderPage } from './page.js';

export interface VerifyPage {
  html: string;
  /** The Content-Security-Policy header to serve it with. */
  csp: string;
  /** 'sha256-…' of the inline script, as CSP writes it. */
  scriptHash: string;
}

/** Mirror nodes a user may choose: Hedera's and any https one, and a local network's on this machine. */
export const CONNECT_SOURCES = ["'self'", 'https:', 'http://127.0.0.1:*', 'http://localhost:*'] as const;

const cspHash = (text: string): string => `sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}`;

/** The browser entry module: TypeScript from source, JavaScript in dist. */
export function browserEntry(): string {
  for (const name of ['main.ts', 'main.js']) {
    const path = fileURLToPath(new URL(`./browser/${name}`, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error(
    `the verification page's source is missing: no browser/main.ts or browser/main.js beside ${fileURLToPath(import.meta.url)}`,
  );
}

/** The page's script, bundled. Throws when the bundle cannot be inlined safely. */
export async function bundleScript(entry: string = browserEntry()): Promise<string> {
  // Loaded on first use: a server that never serves the page never starts esbuild.
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    // A Node built-in imported by mistake fails the build here rather than the page in a browser.
    platform: 'browser',
    target: 'es2022',
    charset: 'utf8',
    legalComments: 'none',
    // Readable, not minified: whoever audits the page reads the saved file.
    minify: false,
    sourcemap: false,
    logLevel: 'silent',
  });
  const script = result.outputFiles[0]?.text;
  if (!script) throw new Error('esbuild produced no output for the verification page');
  // Inside <script>, "</script" would end the element and "<!--" can change how the rest is parsed.
  if (/<\/script|<!--/i.test(script)) throw new Error('the verification page script contains </script or <!--, which cannot be inlined');
  return script;
}

function policy(scriptHash: string, styleHash: string, withFrameAncestors: boolean): string {
  return [
    "default-src 'none'",
    `script-src '${scriptHash}'`,
    `style-src '${styleHash}'`,
    `connect-src ${CONNECT_SOURCES.join(' ')}`,
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    ...(withFrameAncestors ? ["frame-ancestors 'none'"] : []),
  ].join('; ');
}

export function assemblePage(script: string, fhirBasePath: string): VerifyPage {
  const scriptHash = cspHash(script);
  const styleHash = cspHash(PAGE_CSS);
  return {
    html: renderPage({ script, fhirBasePath }, policy(scriptHash, styleHash, false)),
    csp: policy(scriptHash, styleHash, true),
    scriptHash,
  };
}

let bundled: Promise<string> | undefined;

/**
 * The page, bundled once per process (the first call bundles; later ones reuse it). A failed bundle is not
 * cached: the next request tries again.
 */
export async function verifyPage(fhirBasePath: string): Promise<VerifyPage> {
  if (!bundled) {
    bundled = bundleScript();
    bundled.catch(() => {
      bundled = undefined;
    });
  }
  return assemblePage(await bundled, fhirBasePath);
}
