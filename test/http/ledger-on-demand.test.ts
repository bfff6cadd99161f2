// Proofs computed on demand, through the HTTP API: once a batch is published nothing more is written to its
// versions (the database looks the same just before the batch goes out and after it is anchored), yet $verify,
// $proof and Provenance give each version its inclusion proof — the same audit path as a tree built here,
// independently, over the versions' own commitments in the batch's member order — and a proof package exported
// with $proof verifies offline. Edited and deleted versions are still found.
import t from 'tap';
import type { Bundle, Extension, Provenance } from '@medplum/fhirtypes';
import { computeCommitment } from '../../src/ledger/commitment.js';
import { bytes } from '../../src/ledger/ledger-store.js';
import { buildTree, leafHash } from '../../src/ledger/merkle.js';
import { MirrorClient } from '../../src/ledger/mirror-client.js';
import { parseProofPackage } from '../../src/ledger/proof-package.js';
import { LEDGER_ANCHOR_EXTENSION } from '../../src/ledger/provenance.js';
import { verifyPackage } from '../../src/ledger/verify-package.js';
import type { VersionDocument } from '../../src/store/resource-store.js';
import { stopMongoAtEnd } from '../helpers/app.js';
import {
  HookedLedger,
  createPatient,
  param,
  params,
  sdkLedgerFor,
  startLedgerApp,
  startTestNetwork,
  updatePatient,
  waitAnchored,
} from '../ledger/helpers/ledger-app.js';

function anchorPart(p: Provenance, url: string): Extension | undefined {
  return p.extension?.find((e) => e.url === LEDGER_ANCHOR_EXTENSION)?.extension?.find((e) => e.url === url);
}

t.test('after publication nothing is written per version; $verify, $proof and Provenance compute the proof from the batch', async (t) => {
  const net = await startTestNetwork(t);
  const ledger = new HookedLedger(sdkLedgerFor(net));
  const { app, runtime, connection } = await startLedgerApp(t, net, { ledger });
  const versions = connection.db.collection<VersionDocument>('resource_versions');
  const batches = connection.db.collection<{ _id: number; members: string[]; state: string }>('ledger_batches');
  const all = async (): Promise<VersionDocument[]> => versions.find({}, { sort: { _id: 1 } }).toArray();
  const snapshots: VersionDocument[][] = [];
  ledger.beforeSubmit = async () => {
    snapshots.push(await all());
  };

  const a = await createPatient(app, 'Alpha');
  await updatePatient(app, a.id, 'Alpha2');
  const others = [await createPatient(app, 'Beta'), await createPatient(app, 'Gamma'), await createPatient(app, 'Delta')];
  runtime.start();
  await waitAnchored(connection, 10_000);

  t.equal(snapshots.length, 1, 'one batch went out');
  const after = await all();
  t.same(after, snapshots[0], 'the version documents are exactly as they were just before the batch went out');
  t.equal(after.length, 5);
  for (const v of after) {
    t.same(
      Object.keys(v.anchor ?? {}).sort(),
      ['batch', 'commitment', 'salt', 'state'],
      `${v._id}: its anchor is the commitment and the claim, no proof`,
    );
    t.equal(v.anchor?.state, 'batched');
  }

  // The audit path $verify gives is the one a tree over the versions' own commitments gives, in member order.
  const batch = (await batches.findOne({ _id: 1 }))!;
  t.equal(batch.state, 'anchored');
  const commitments = new Map(after.map((v) => [v._id, bytes(v.anchor!.commitment)!]));
  const tree = buildTree(batch.members.map((key) => leafHash(commitments.get(key)!)));
  for (const [i, key] of batch.members.entries()) {
    const [type, id, vid] = key.split('/');
    const res = await app.inject({ method: 'GET', url: `/${type}/${id}/_history/${vid}/$verify` });
    t.equal(res.statusCode, 200, res.body);
    const body = res.json();
    t.equal(param(body, 'status')?.valueCode, 'anchored', `${key} anchored`);
    t.equal(param(body, 'leafIndex')?.valueInteger, i, `${key}: leaf ${i}`);
    t.equal(param(body, 'treeSize')?.valueInteger, 5);
    t.same(
      params(body, 'auditPath').map((p) => p.valueString),
      tree.inclusionProof(i).map((h) => h.toString('hex')),
      `${key}: the audit path of an independent tree`,
    );
    t.equal(param(body, 'publishedRoot')?.valueString, tree.root.toString('hex'), "the root on the ledger is that tree's");
  }

  // $proof: the package carries the computed proofs and verifies without the server.
  const proof = await app.inject({ method: 'GET', url: `/Patient/${a.id}/$proof` });
  t.equal(proof.statusCode, 200);
  const pkg = parseProofPackage(proof.json());
  t.same(
    pkg.versions.map((v) => [v.versionId, v.status, v.proof?.batch, v.proof?.leafIndex]),
    [
      [1, 'anchored', 1, batch.members.indexOf(`Patient/${a.id}/1`)],
      [2, 'anchored', 1, batch.members.indexOf(`Patient/${a.id}/2`)],
    ],
  );
  const offline = await verifyPackage(pkg, new MirrorClient(net.mirrorUrl));
  t.equal(offline.outcome, 'verified', JSON.stringify(offline.versions.map((v) => v.verification.reasons)));

  // Provenance: anchored, with the place in the batch.
  const provs = ((await app.inject({ method: 'GET', url: `/Patient/${a.id}/$provenance` })).json() as Bundle<Provenance>).entry!.map(
    (e) => e.resource!,
  );
  t.same(
    provs.map((p) => anchorPart(p, 'status')?.valueCode),
    ['anchored', 'anchored'],
  );
  t.same(
    provs.map((p) => anchorPart(p, 'leafIndex')?.valueInteger),
    [1, 2].map((v) => batch.members.indexOf(`Patient/${a.id}/${v}`)),
  );
  t.equal(anchorPart(provs[0]!, 'root')?.valueString, tree.root.toString('hex'));
  t.equal(anchorPart(provs[0]!, 'sequenceNumber')?.valueInteger, 1);

  // An insider edits a version and recomputes its recorded commitment with its salt: the version matches its
  // commitment, but not the leaf its batch anchored, so the audit path no longer leads to the published root.
  const edited = others[0]!;
  const doc = (await versions.findOne({ _id: `Patient/${edited.id}/1` }))!;
  const forged = { ...doc.resource, gender: 'male' } as VersionDocument['resource'];
  const forgedCommitment = computeCommitment(forged, bytes(doc.anchor!.salt)!);
  await versions.updateOne({ _id: doc._id }, { $set: { resource: forged, 'anchor.commitment': forgedCommitment } });
  const editedAnswer = (await app.inject({ method: 'GET', url: `/Patient/${edited.id}/_history/1/$verify` })).json();
  t.equal(param(editedAnswer, 'status')?.valueCode, 'failed', 'a consistently re-committed edit is found');
  t.match(
    params(editedAnswer, 'reason')
      .map((r) => r.valueString)
      .join('\n'),
    /folds along its audit path/,
  );
  const editedPkg = parseProofPackage((await app.inject({ method: 'GET', url: `/Patient/${edited.id}/$proof` })).json());
  t.equal((await verifyPackage(editedPkg, new MirrorClient(net.mirrorUrl))).outcome, 'tampered', 'and the offline verifier finds it too');

  // A version deleted from the database: its batch still lists it.
  await versions.deleteOne({ _id: `Patient/${a.id}/1` });
  const gone = (await app.inject({ method: 'GET', url: `/Patient/${a.id}/_history/1/$verify` })).json();
  t.equal(param(gone, 'status')?.valueCode, 'failed');
  t.match(param(gone, 'reason')?.valueString, /version 1 is missing from the database, but batch 1 anchored it/);
  const neighbour = (await app.inject({ method: 'GET', url: `/Patient/${a.id}/_history/2/$verify` })).json();
  t.equal(param(neighbour, 'status')?.valueCode, 'failed', 'the remaining version reports the gap');
  const gonePkg = parseProofPackage((await app.inject({ method: 'GET', url: `/Patient/${a.id}/$proof` })).json());
  const goneOffline = await verifyPackage(gonePkg, new MirrorClient(net.mirrorUrl));
  t.equal(goneOffline.outcome, 'tampered');
  t.match(goneOffline.history?.detail, /version 1 is missing, but batch 1 anchored it/);
});

stopMongoAtEnd(t);
