/**
 * The audit trail is anchored like the records: with the audit trail and the ledger on, every AuditEvent gets a
 * salted commitment and goes into the Merkle batches, so $verify says "anchored" and a $proof package verifies
 * offline with fhir-ledger-verify. An insider who edits or deletes AuditEvents directly in MongoDB is found out:
 * - an edited event (its document in resource_versions, which is also what read and search serve: AuditEvents are
 *   single-version resources without a current-version record in `resources`): commitment mismatch;
 * - a deleted event: the batch member list still names it ("... is missing from the database, but batch N
 *   anchored it"), in $verify and in the offline check of its $proof package.
 * For the records that do have a current-version record (the Patient the events are about), deleting only the
 * version document, only the current-version record, or editing the latter is reported as well.
 * Authorization stays off here (the subject is the ledger); the events are still recorded.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { runVerify } from '../../src/cli/verify-command.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { stopMongoAtEnd, TEST_CONFIG } from '../helpers/app.js';
import {
  createPatient,
  param,
  params,
  startLedgerApp,
  startTestNetwork,
  waitAnchored,
  type ParameterLike,
} from '../ledger/helpers/ledger-app.js';

const AUDIT_ON = { audit: { enabled: true, flushIntervalMs: 50, bufferMax: 5000 } } as const;

interface VerifyAnswer {
  statusCode: number;
  body: { resourceType?: string; parameter?: ParameterLike[] };
  status: string | undefined;
  reasons: string[];
}

async function verify(app: FastifyInstance, type: string, id: string): Promise<VerifyAnswer> {
  const res = await app.inject({ method: 'GET', url: `/${type}/${id}/_history/1/$verify` });
  const body = res.json() as VerifyAnswer['body'];
  return {
    statusCode: res.statusCode,
    body,
    status: param(body, 'status')?.valueCode,
    reasons: params(body, 'reason').map((p) => p.valueString ?? ''),
  };
}

const part = (p: ParameterLike | undefined, name: string) => p?.part?.find((x) => x.name === name);
const failedChecks = (body: VerifyAnswer['body']) =>
  params(body, 'check')
    .filter((c) => part(c, 'ok')?.valueBoolean === false)
    .map((c) => part(c, 'name')?.valueCode);

/** Runs fhir-ledger-verify (the CLI's function, in process) on the $proof package of `url`. */
async function verifyOffline(app: FastifyInstance, dir: string, url: string): Promise<{ code: number; out: string }> {
  const res = await app.inject({ method: 'GET', url });
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`);
  const file = join(dir, `${url.replace(/[^A-Za-z0-9]+/g, '_')}.json`);
  await writeFile(file, res.body);
  let out = '';
  const sink = { write: (text: string) => (out += text) };
  const code = await runVerify([file], sink, sink);
  return { code, out };
}

/** The $verify answer keeps its usual shape when it reports a finding. */
function checkFailedShape(t: Test, answer: VerifyAnswer): void {
  t.equal(answer.statusCode, 200, 'answered, not 404');
  t.equal(answer.body.resourceType, 'Parameters');
  t.equal(answer.status, 'failed');
  t.ok(answer.reasons.length > 0, 'with reasons');
  t.equal(param(answer.body, 'network')?.valueString, 'local (not Hedera)');
  t.ok(param(answer.body, 'history'), 'and the history part');
}

t.test('AuditEvents are anchored; edits and deletions in MongoDB are reported by $verify and the CLI', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'audit-ledger-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const net = await startTestNetwork(t);
  const { app, runtime, connection } = await startLedgerApp(t, net, {}, undefined, { ...TEST_CONFIG, ...AUDIT_ON });
  const versions = connection.db.collection('resource_versions');
  const heads = connection.db.collection('resources');

  // Accesses: creates (their events committed with them) and reads (events buffered, flushed every 50 ms).
  const patient = await createPatient(app, 'Audited');
  const others = [
    await createPatient(app, 'HeadDeleted'),
    await createPatient(app, 'HeadEdited'),
    await createPatient(app, 'VersionDeleted'),
  ] as const;
  const readIds: string[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await app.inject({ method: 'GET', url: `/Patient/${patient.id}`, headers: { 'x-request-id': `audit-ledger-read-${i}` } });
    t.equal(res.statusCode, 200);
    readIds.push(`audit-ledger-read-${i}`);
  }
  await app.auditRecorder!.flush();
  const eventOf = async (rid: string): Promise<AuditEvent> => {
    const doc = await versions.findOne({ type: 'AuditEvent', 'resource.entity.what.identifier.value': rid });
    if (!doc) throw new Error(`no AuditEvent for ${rid}`);
    return doc.resource as AuditEvent;
  };
  const created = (await versions.findOne({
    type: 'AuditEvent',
    'resource.subtype.code': 'create',
    'resource.entity.what.reference': `Patient/${patient.id}`,
  }))!.resource as AuditEvent;
  const reads = await Promise.all(readIds.map(eventOf));
  t.ok(
    (await versions.find({ type: 'AuditEvent' }).toArray()).every(
      (d) => d.anchor?.state === 'pending' && d.anchor.salt && d.anchor.commitment,
    ),
    'every AuditEvent was stored with a salt and a commitment, pending anchoring',
  );
  t.equal(await heads.countDocuments({ type: 'AuditEvent' }), 0, 'AuditEvents are single-version: their version document is all there is');

  runtime.start();
  await waitAnchored(connection, 15_000);
  const batches = await connection.db.collection('ledger_batches').find().toArray();
  const members = batches.flatMap((b) => b.members as string[]);
  t.ok(members.includes(`AuditEvent/${created.id}/1`), 'the create event is a leaf of a batch');
  t.ok(
    reads.every((e) => members.includes(`AuditEvent/${e.id}/1`)),
    'so is every read event',
  );
  t.ok(members.includes(`Patient/${patient.id}/1`), 'beside the Patient version it records');

  await t.test('$verify says anchored; $proof verifies offline with fhir-ledger-verify', async (t) => {
    for (const event of [created, reads[0]!]) {
      const answer = await verify(app, 'AuditEvent', event.id!);
      t.equal(answer.statusCode, 200);
      t.equal(answer.status, 'anchored', `AuditEvent/${event.id} (${event.subtype?.[0]?.code}) anchored`);
      t.same(failedChecks(answer.body), [], 'every check passed');
      t.equal(param(answer.body, 'root')?.valueString, param(answer.body, 'publishedRoot')?.valueString, 'folded root = published root');
      t.equal(part(param(answer.body, 'history'), 'status')?.valueCode, 'complete');
    }
    const all = await verifyOffline(app, dir, `/AuditEvent/${created.id}/$proof`);
    t.equal(all.code, EXIT.VERIFIED, all.out);
    t.match(all.out, new RegExp(`AuditEvent/${created.id}/_history/1 {2}VERIFIED`));
    t.match(all.out, /history {2}complete/);
    const one = await verifyOffline(app, dir, `/AuditEvent/${reads[0]!.id}/_history/1/$proof`);
    t.equal(one.code, EXIT.VERIFIED, one.out);
  });

  await t.test('an AuditEvent edited in MongoDB: commitment mismatch', async (t) => {
    // The outcome of one event...
    const target = reads[1]!;
    await versions.updateOne({ _id: `AuditEvent/${target.id}/1` } as never, {
      $set: { 'resource.outcome': '4', 'resource.outcomeDesc': 'HTTP 403' },
    });
    const served = (await app.inject({ method: 'GET', url: `/AuditEvent/${target.id}` })).json() as AuditEvent;
    t.equal(served.outcome, '4', 'the API serves the edited event');
    const answer = await verify(app, 'AuditEvent', target.id!);
    checkFailedShape(t, answer);
    t.match(answer.reasons.join('\n'), /the version or its salt changed after it was written/);
    t.same(
      failedChecks(answer.body),
      ['commitment', 'audit-path', 'published-root'],
      'the commitment, and so the fold and the published root, no longer match',
    );
    const offline = await verifyOffline(app, dir, `/AuditEvent/${target.id}/$proof`);
    t.equal(offline.code, EXIT.MISMATCH, offline.out);
    t.match(offline.out, /FAIL commitment/);

    // ... and the patient another event names.
    const other = reads[2]!;
    const index = (other.entity ?? []).findIndex((e) => e.what?.reference === `Patient/${patient.id}/_history/1`);
    t.ok(index >= 0, 'the read event names the version read');
    await versions.updateOne({ _id: `AuditEvent/${other.id}/1` } as never, {
      $set: { [`resource.entity.${index}.what.reference`]: 'Patient/someone-else/_history/1' },
    });
    const second = await verify(app, 'AuditEvent', other.id!);
    checkFailedShape(t, second);
    t.match(second.reasons.join('\n'), /changed after it was written/);
  });

  await t.test('an AuditEvent deleted from MongoDB: the batch still names it', async (t) => {
    const target = reads[3]!;
    t.equal((await versions.deleteOne({ _id: `AuditEvent/${target.id}/1` } as never)).deletedCount, 1);
    await heads.deleteOne({ _id: `AuditEvent/${target.id}` } as never); // none is written; an insider would remove one if it were
    t.equal((await app.inject({ method: 'GET', url: `/AuditEvent/${target.id}` })).statusCode, 404, 'gone from the API');
    const search = (await app.inject({ method: 'GET', url: `/AuditEvent?entity:identifier=${readIds[3]}` })).json() as {
      entry?: unknown[];
    };
    t.equal(search.entry?.length ?? 0, 0, 'and from its searches');
    const answer = await verify(app, 'AuditEvent', target.id!);
    checkFailedShape(t, answer);
    t.match(
      answer.reasons.join('\n'),
      new RegExp(`AuditEvent/${target.id} version 1 is missing from the database, but batch \\d+ anchored it as leaf \\d+`),
    );
    const history = param(answer.body, 'history');
    t.equal(part(history, 'status')?.valueCode, 'incomplete');
    t.equal(part(history, 'missingVersion')?.valueInteger, 1);
    t.same(failedChecks(answer.body), ['history']);
    const offline = await verifyOffline(app, dir, `/AuditEvent/${target.id}/$proof`);
    t.equal(offline.code, EXIT.MISMATCH, offline.out);
    t.match(offline.out, /history {2}INCOMPLETE/);
    t.match(offline.out, /version 1 is missing, but batch \d+ anchored it/);
  });

  await t.test('records with a current-version record: version only, current-version record only, or edited', async (t) => {
    const [headDeleted, headEdited, versionDeleted] = others;
    // Only the version document: the batch listing (and the current-version record) still name it.
    await versions.deleteOne({ _id: `Patient/${versionDeleted.id}/1` } as never);
    t.equal((await app.inject({ method: 'GET', url: `/Patient/${versionDeleted.id}` })).statusCode, 200, 'read still answers');
    const v = await verify(app, 'Patient', versionDeleted.id);
    checkFailedShape(t, v);
    t.match(
      v.reasons.join('\n'),
      new RegExp(`Patient/${versionDeleted.id} version 1 is missing from the database, but batch \\d+ anchored it`),
    );

    // Only the current-version record.
    await heads.deleteOne({ _id: `Patient/${headDeleted.id}` } as never);
    t.equal((await app.inject({ method: 'GET', url: `/Patient/${headDeleted.id}` })).statusCode, 404, 'read and search no longer find it');
    const h = await verify(app, 'Patient', headDeleted.id);
    checkFailedShape(t, h);
    t.match(
      h.reasons.join('\n'),
      new RegExp(`Patient/${headDeleted.id} has version 1 in resource_versions but no current-version record in resources`),
    );
    t.same(failedChecks(h.body), ['history'], 'the version itself still verifies; the history check fails');
    t.equal(part(param(h.body, 'history'), 'status')?.valueCode, 'incomplete');

    // The current-version record edited: what read and search serve.
    await heads.updateOne({ _id: `Patient/${headEdited.id}` } as never, { $set: { 'resource.name.0.family': 'Forged' } });
    const served = (await app.inject({ method: 'GET', url: `/Patient/${headEdited.id}` })).json() as { name: Array<{ family: string }> };
    t.equal(served.name[0]?.family, 'Forged', 'the API serves the edited record');
    const e = await verify(app, 'Patient', headEdited.id);
    checkFailedShape(t, e);
    t.match(
      e.reasons.join('\n'),
      new RegExp(
        `the current-version record of Patient/${headEdited.id} \\(what read and search serve\\) and version 1 in resource_versions differ: the current-version record was changed`,
      ),
    );
    t.same(failedChecks(e.body), ['history'], 'the version itself still verifies');
  });

  await t.test('deleted before anchoring', async (t) => {
    await runtime.stop();
    // A record: its current-version record still tells.
    const late = await createPatient(app, 'Unanchored');
    await versions.deleteOne({ _id: `Patient/${late.id}/1` } as never);
    const answer = await verify(app, 'Patient', late.id);
    checkFailedShape(t, answer);
    t.match(
      answer.reasons.join('\n'),
      new RegExp(`Patient/${late.id} version 1 is missing from the database, but the current-version record`),
    );
    // An AuditEvent: nothing but its version document exists until its batch is anchored. This is the window
    // (one batch interval, LEDGER_BATCH_INTERVAL_MS, when the ledger keeps up) in which deleting it leaves no trace.
    const res = await app.inject({ method: 'GET', url: `/Patient/${patient.id}`, headers: { 'x-request-id': 'audit-ledger-unanchored' } });
    t.equal(res.statusCode, 200);
    await app.auditRecorder!.flush();
    const event = await eventOf('audit-ledger-unanchored');
    await versions.deleteOne({ _id: `AuditEvent/${event.id}/1` } as never);
    const unanchored = await app.inject({ method: 'GET', url: `/AuditEvent/${event.id}/_history/1/$verify` });
    t.equal(unanchored.statusCode, 404, 'an AuditEvent deleted before it was anchored leaves no trace to report');
  });

  // The untouched ones still verify.
  t.equal((await verify(app, 'AuditEvent', created.id!)).status, 'anchored', 'the untouched create event still verifies');
  t.equal((await verify(app, 'AuditEvent', reads[0]!.id!)).status, 'anchored');
  t.equal((await verify(app, 'AuditEvent', reads[4]!.id!)).status, 'anchored');
  t.equal((await verify(app, 'Patient', patient.id)).status, 'anchored', 'and so does the Patient they are about');
});

stopMongoAtEnd(t);
