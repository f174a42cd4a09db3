// `kb gc` on the embedded blob store (DATA/blobs/): published models stay, an unreferenced blob
// older than the grace period is listed (dry run by default) and removed with --delete, a young
// one only with --grace 0. The S3 backend: test/kb-s3.test.ts.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sedna, tempDir } from './helpers/cli.js';
import { writeRandomMlp } from './helpers/models.js';

describe('kb gc (files)', () => {
  const t = tempDir('sedna-ll-gc-');
  const data = join(t.dir, 'kb');
  const kb = (args: string[]) => sedna(['kb', ...args, '--data', data]);
  const blobs = join(data, 'blobs');
  let model: string;
  let oldStray: string;
  let youngStray: string;

  before(() => {
    assert.equal(kb(['init', '--json']).code, 0);
    const file = writeRandomMlp(t.dir, 'm', [8, 16, 3], 1);
    model = createHash('sha256').update(readFileSync(file)).digest('hex');
    const a = kb(['task', 'add', file, '--task', 'global', '--fallback']);
    assert.equal(a.code, 0, a.stderr);
    const p = kb(['publish', '--json']);
    assert.equal(p.code, 0, p.stderr);
    const stray = (age: number) => {
      const b = randomBytes(1000);
      const sha = createHash('sha256').update(b).digest('hex');
      writeFileSync(join(blobs, sha), b);
      const when = new Date(Date.now() - age);
      utimesSync(join(blobs, sha), when, when);
      return sha;
    };
    oldStray = stray(2 * 3600_000);
    youngStray = stray(0);
  });
  after(() => t.cleanup());

  it('dry run by default: lists only the old unreferenced blob, removes nothing', () => {
    const r = kb(['gc', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.dry_run, true);
    assert.equal(j.blobs, 3);
    assert.equal(j.referenced, 1);
    assert.equal(j.young, 1);
    assert.deepEqual(j.orphans.map((o: { sha256: string }) => o.sha256), [oldStray]);
    assert.equal(j.orphan_bytes, 1000);
    assert.equal(j.deleted, 0);
    assert.ok(existsSync(join(blobs, oldStray)));
    const text = kb(['gc']);
    assert.match(text.stdout, /3 blob\(s\): 1 referenced, 1 younger than 60 min, 1 orphaned .*kb gc --delete/);
  });

  it('--delete removes the old orphan; --grace 0 the young one too; referenced blobs stay', () => {
    const r = JSON.parse(kb(['gc', '--delete', '--json']).stdout);
    assert.equal(r.deleted, 1);
    assert.equal(existsSync(join(blobs, oldStray)), false);
    assert.ok(existsSync(join(blobs, youngStray)));
    assert.equal(JSON.parse(kb(['gc', '--delete', '--dry-run', '--json']).stdout).deleted, 0, '--dry-run wins');
    const r2 = JSON.parse(kb(['gc', '--delete', '--grace', '0', '--json']).stdout);
    assert.equal(r2.deleted, 1);
    assert.equal(existsSync(join(blobs, youngStray)), false);
    assert.ok(existsSync(join(blobs, model)), 'the published model stays');
    assert.equal(JSON.parse(kb(['gc', '--json']).stdout).blobs, 1);
  });

  it('a bad --grace is a usage error', () => {
    const r = kb(['gc', '--grace', 'soon']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--grace/);
  });
});
