/**
 * Sends a seeded stream of hostile requests to a listening server, several at a time, while a probe asks
 * /healthz every 200 ms on a connection of its own; reports every answer that breaks a rule:
 *   - a 5xx, or no answer at all (connection reset, timeout);
 *   - an error (4xx) whose body is not an OperationOutcome;
 *   - an answer slower than `slowMs`;
 * and the slowest /healthz answer and the server's memory growth. Bounded by a request count AND a time budget.
 */
import { resourceFromXmlText } from '../../src/fhir/xml/xml-to-json.js';
import { Agent, request as httpRequest } from 'node:http';
import { HostileRequests, type HostileRequest } from './hostile-requests.js';

export interface FuzzOptions {
  port: number;
  seed: number;
  requests: number;
  concurrency: number;
  /** Stop sending after this long, whatever the count. */
  timeBudgetMs: number;
  /** An answer slower than this is a finding. */
  slowMs: number;
  knownIds: Array<{ type: string; id: string }>;
}

export interface Finding {
  problem: string;
  request: HostileRequest;
  /** For a request that got no answer: the one answered before it on the same connection, if any. */
  previousOnConnection?: string;
  status?: number;
  body?: string;
  ms?: number;
}

export interface FuzzReport {
  sent: number;
  byStatus: Record<string, number>;
  byKind: Record<string, number>;
  findings: Finding[];
  slowestMs: number;
  healthProbes: number;
  slowestHealthMs: number;
  seconds: number;
}

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

/** The last request sent on each connection (to explain a connection-level failure of the next one). */
const lastOnSocket = new WeakMap<object, string>();

function send(agent: Agent, port: number, hostile: HostileRequest, timeoutMs: number, previous?: { value?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...hostile.headers };
    if (hostile.body !== undefined) headers['content-length'] = Buffer.byteLength(hostile.body);
    const req = httpRequest(
      { host: '127.0.0.1', port, method: hostile.method, path: hostile.path, headers, agent, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('socket', (socket) => {
      if (previous) previous.value = lastOnSocket.get(socket);
      lastOnSocket.set(socket, `${hostile.method} ${hostile.path.slice(0, 200)} ${JSON.stringify(hostile.headers).slice(0, 200)}`);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (hostile.body !== undefined) req.write(hostile.body);
    req.end();
  });
}

/** The error body is an OperationOutcome in the type the answer declares: FHIR JSON, or FHIR XML read back strictly. */
function isOperationOutcome(answer: Answer): boolean {
  try {
    const body = /xml/.test(answer.contentType)
      ? resourceFromXmlText(answer.body)
      : (JSON.parse(answer.body) as { resourceType?: unknown });
    return body.resourceType === 'OperationOutcome';
  } catch {
    return false;
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const generator = new HostileRequests(options.seed, options.knownIds);
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const probeAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const report: FuzzReport = {
    sent: 0,
    byStatus: {},
    byKind: {},
    findings: [],
    slowestMs: 0,
    healthProbes: 0,
    slowestHealthMs: 0,
    seconds: 0,
  };
  const started = Date.now();
  const deadline = started + options.timeBudgetMs;

  let probing = true;
  const probe = (async () => {
    while (probing) {
      const at = Date.now();
      try {
        const answer = await send(probeAgent, options.port, { kind: 'health', method: 'GET', path: '/healthz', headers: {} }, 10_000);
        if (answer.status !== 200)
          report.findings.push({
            problem: `/healthz answered ${answer.status}`,
            request: { kind: 'health', method: 'GET', path: '/healthz', headers: {} },
          });
      } catch (error) {
        report.findings.push({
          problem: `/healthz failed: ${(error as Error).message}`,
          request: { kind: 'health', method: 'GET', path: '/healthz', headers: {} },
        });
      }
      report.healthProbes++;
      report.slowestHealthMs = Math.max(report.slowestHealthMs, Date.now() - at);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();

  const worker = async (): Promise<void> => {
    while (report.sent < options.requests && Date.now() < deadline) {
      const hostile = generator.next();
      report.sent++;
      report.byKind[hostile.kind] = (report.byKind[hostile.kind] ?? 0) + 1;
      const at = Date.now();
      let answer: Answer;
      const previous: { value?: string } = {};
      try {
        answer = await send(agent, options.port, hostile, options.slowMs * 3, previous);
      } catch (error) {
        report.findings.push({
          problem: `no answer: ${(error as Error).message}`,
          request: hostile,
          ms: Date.now() - at,
          previousOnConnection: previous.value,
        });
        continue;
      }
      const ms = Date.now() - at;
      report.slowestMs = Math.max(report.slowestMs, ms);
      report.byStatus[answer.status] = (report.byStatus[answer.status] ?? 0) + 1;
      const finding = (problem: string): void => {
        report.findings.push({ problem, request: hostile, status: answer.status, body: answer.body.slice(0, 500), ms });
      };
      if (answer.status >= 500) finding(`status ${answer.status}`);
      else if (answer.status >= 400 && hostile.method !== 'HEAD' && !isOperationOutcome(answer))
        finding(`error ${answer.status} is not an OperationOutcome`);
      if (ms > options.slowMs) finding(`answered in ${ms} ms`);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
  probing = false;
  await probe;
  agent.destroy();
  probeAgent.destroy();
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

/** A finding as one line a person can replay. */
export function describeFinding(finding: Finding): string {
  const body = finding.request.body === undefined ? '' : ` body=${JSON.stringify(String(finding.request.body).slice(0, 300))}`;
  return (
    `${finding.problem} [${finding.request.kind}] ${finding.request.method} ${finding.request.path.slice(0, 300)}` +
    `${finding.request.path.length > 300 ? `… (path of ${finding.request.path.length} characters)` : ''} ` +
    `headers=${JSON.stringify(finding.request.headers).slice(0, 300)}${body}${finding.body ? ` -> ${finding.body.slice(0, 300)}` : ''}` +
    (finding.previousOnConnection ? ` (after ${finding.previousOnConnection} on the same connection)` : '')
  );
}
