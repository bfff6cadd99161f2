import t from 'tap';
import { createHash } from 'node:crypto';
import { COMMITMENT_BYTES, SALT_BYTES, computeCommitment, newSalt, verifyCommitment } from '../../src/ledger/commitment.js';

const patient = {
  resourceType: 'Patient',
  id: 'example',
  meta: { versionId: '2', lastUpdated: '2024-01-02T03:04:05.000Z' },
  name: [{ family: 'Chalmers', given: ['Peter', 'James'] }],
  birthDate: '1974-12-25',
};

const fixedSalt = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');

t.test('newSalt: 32 fresh random bytes', async (t) => {
  const a = newSalt();
  const b = newSalt();
  t.ok(Buffer.isBuffer(a));
  t.equal(a.length, SALT_BYTES);
  t.equal(SALT_BYTES, 32);
  t.notSame(a, b, 'two salts differ');
  const seen = new Set(Array.from({ length: 1000 }, () => newSalt().toString('hex')));
  t.equal(seen.size, 1000, 'no repeats in 1000 salts');
});

t.test('computeCommitment = SHA-256(salt || UTF-8(JCS(resource)))', async (t) => {
  const jcs =
    '{"birthDate":"1974-12-25","id":"example","meta":{"lastUpdated":"2024-01-02T03:04:05.000Z","versionId":"2"},' +
    '"name":[{"family":"Chalmers","given":["Peter","James"]}],"resourceType":"Patient"}';
  const expected = createHash('sha256')
    .update(Buffer.concat([fixedSalt, Buffer.from(jcs, 'utf8')]))
    .digest();
  const c = computeCommitment(patient, fixedSalt);
  t.equal(c.length, COMMITMENT_BYTES);
  t.equal(c.toString('hex'), expected.toString('hex'));
  // Known answer computed outside Node, with coreutils:
  //   (printf '0001..1f' | xxd -r -p; printf '%s' '<jcs above>') | sha256sum
  t.equal(c.toString('hex'), 'f6ed160f9440d8d0052f86e63a7453d531e58db92e6fbfc37406331dfa96da84');
});

t.test('commitment depends on content, not on member order or formatting', async (t) => {
  const reordered = JSON.parse(
    '{ "birthDate": "1974-12-25", "name": [ { "given": ["Peter","James"], "family": "Chalmers" } ],' +
      ' "resourceType": "Patient", "meta": {"versionId": "2", "lastUpdated": "2024-01-02T03:04:05.000Z"}, "id": "example" }',
  ) as object;
  t.same(computeCommitment(reordered, fixedSalt), computeCommitment(patient, fixedSalt));
  const changed = { ...patient, birthDate: '1974-12-26' };
  t.notSame(computeCommitment(changed, fixedSalt), computeCommitment(patient, fixedSalt), 'content change');
  const reorderedGiven = { ...patient, name: [{ family: 'Chalmers', given: ['James', 'Peter'] }] };
  t.notSame(computeCommitment(reorderedGiven, fixedSalt), computeCommitment(patient, fixedSalt), 'array order matters');
});

t.test('salt makes the commitment hiding: same resource, different salts, unrelated commitments', async (t) => {
  const s1 = newSalt();
  const s2 = newSalt();
  const c1 = computeCommitment(patient, s1);
  const c2 = computeCommitment(patient, s2);
  t.notSame(c1, c2);
  // The unsalted hash of the guessable resource (what an attacker can compute) matches neither.
  const unsalted = createHash('sha256').update(JSON.stringify(patient)).digest();
  t.notSame(c1, unsalted);
  const flipped = Buffer.from(s1);
  flipped[31]! ^= 1;
  t.notSame(computeCommitment(patient, flipped), c1, 'one salt bit changes the commitment');
});

t.test('rejects bad salts and non-object resources', async (t) => {
  t.throws(() => computeCommitment(patient, Buffer.alloc(31)), /salt must be exactly 32 bytes/);
  t.throws(() => computeCommitment(patient, Buffer.alloc(33)), /salt must be exactly 32 bytes/);
  t.throws(() => computeCommitment(patient, 'x'.repeat(32) as unknown as Buffer), /salt must be exactly 32 bytes/);
  t.throws(() => computeCommitment(null as unknown as object, fixedSalt), /must be a JSON object/);
  t.throws(() => computeCommitment([] as unknown as object, fixedSalt), /must be a JSON object/);
  t.throws(() => computeCommitment({ a: undefined }, fixedSalt), /undefined is not a JSON value at \$\.a/);
  t.throws(() => computeCommitment({ d: new Date() }, fixedSalt), /not a plain JSON object/);
});

t.test('verifyCommitment', async (t) => {
  const salt = newSalt();
  const c = computeCommitment(patient, salt);
  t.equal(verifyCommitment(patient, salt, c), true);
  t.equal(verifyCommitment({ ...patient, id: 'other' }, salt, c), false, 'other content');
  t.equal(verifyCommitment(patient, newSalt(), c), false, 'other salt');
  const bad = Buffer.from(c);
  bad[0]! ^= 0x80;
  t.equal(verifyCommitment(patient, salt, bad), false, 'flipped bit');
  t.equal(verifyCommitment(patient, salt, c.subarray(0, 31)), false, 'short commitment');
  t.equal(verifyCommitment(patient, Buffer.alloc(3), c), false, 'bad salt: false, no throw');
  t.equal(verifyCommitment({ x: NaN }, salt, c), false, 'non-JSON resource: false, no throw');
});
