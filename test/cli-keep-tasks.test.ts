// Local tasks across KB pulls (issue 13, part 7): a pulled KB version that stops serving a task
// added with `task add` is reported (stderr and `sync --json` warnings), and `task add --keep`
// carries the task over onto the pulled version. Real `kb serve`, real edge home, real models.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sedna, tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { makeEdge, type Edge } from './helpers/sync-edge.js';

describe('local tasks and KB pulls', () => {
  let kb: TestKb;
  let edge: Edge;
  const t = tempDir('sedna-ll-keep-');
  const model = writeIdentityModel(t.dir, 'id3', 3, { softmax: true });
  const tasksOf = () => (JSON.parse(sedna(['status', '--json'], { home: edge.home }).stdout) as { tasks: { id: string }[] }).tasks.map((x) => x.id).sort();

  before(async () => {
    kb = await startTestKb({ deviceId: 'gw-1' });
    edge = makeEdge(kb, { deviceId: 'gw-1' });
    assert.equal(kb.cli(['task', 'add', model, '--task', 'global', '--labels', 'a,b,c', '--fallback']).code, 0);
    assert.equal(kb.cli(['publish']).code, 0);
  });
  after(async () => {
    await kb?.stop();
    edge?.cleanup();
    t.cleanup();
  });

  it('a pulled version without a local task warns; --keep carries the task over the next pull', () => {
    let r = sedna(['task', 'add', model, '--task', 'berlin', '--attr', 'site=berlin'], { home: edge.home });
    assert.equal(r.code, 0, r.stderr);
    r = sedna(['sync', '--json'], { home: edge.home });
    assert.equal(r.code, 0, r.stderr);
    const s1 = JSON.parse(r.stdout) as { pulled_version: number; warnings: string[]; kept_tasks: string[] };
    assert.equal(s1.pulled_version, 1);
    assert.equal(s1.warnings.length, 1);
    assert.match(s1.warnings[0], /KB version 1 does not serve local task "berlin".*--keep/);
    assert.match(r.stderr, /^sedna-ll: warning: KB version 1 does not serve local task "berlin"/m);
    assert.deepEqual(tasksOf(), ['global']);

    r = sedna(['task', 'add', model, '--task', 'berlin', '--attr', 'site=berlin', '--keep', '--json'], { home: edge.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).kept, true);
    assert.deepEqual(tasksOf(), ['berlin', 'global']);

    assert.equal(kb.cli(['publish', '--force']).code, 0);
    r = sedna(['sync', '--json'], { home: edge.home });
    assert.equal(r.code, 0, r.stderr);
    const s2 = JSON.parse(r.stdout) as { pulled_version: number; warnings: string[]; kept_tasks: string[]; activated: boolean };
    assert.equal(s2.pulled_version, 2);
    assert.deepEqual(s2.warnings, []);
    assert.deepEqual(s2.kept_tasks, ['berlin']);
    assert.ok(s2.activated);
    assert.deepEqual(tasksOf(), ['berlin', 'global'], 'the kept task is still served');
    const st = JSON.parse(sedna(['status', '--json'], { home: edge.home }).stdout) as { active_version: string; versions: { id: string }[] };
    assert.match(st.active_version, /^local-\d+$/, 'served through a local version on top of KB version 2');
    assert.ok(st.versions.some((v) => v.id === '2'), 'the signed KB version is installed as pulled');
  });

  it('config rollout.keep_local_tasks keeps every local task', () => {
    assert.equal(sedna(['config', 'set', 'rollout.keep_local_tasks', 'true'], { home: edge.home }).code, 0);
    let r = sedna(['task', 'add', model, '--task', 'paris', '--attr', 'site=paris'], { home: edge.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(kb.cli(['publish', '--force']).code, 0);
    r = sedna(['sync', '--json'], { home: edge.home });
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { warnings: string[]; kept_tasks: string[] };
    assert.deepEqual(s.warnings, []);
    assert.deepEqual(s.kept_tasks.sort(), ['berlin', 'paris']);
    assert.deepEqual(tasksOf(), ['berlin', 'global', 'paris']);
  });
});
