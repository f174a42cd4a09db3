// Only what changed is published: a real KB server, real `kb train` rounds and a real edge
// `sync` over loopback. A round whose models do not change keeps their sha256 (deterministic
// export, the paired gate keeps an incumbent within noise), says so ("0 new models"), and the
// edge's next sync downloads no model bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/cli.js';
import { startTestKb } from './helpers/kb-server.js';
import { blobsJsonl, siteBlobs } from './helpers/learn-data.js';
import { makeEdge, sednaAsync } from './helpers/sync-edge.js';

interface Report {
  version: number | null;
  message: string;
  tasks: { task: string; kind: string; verdict?: string; model_sha: string | null }[];
}

test('an unchanged model keeps its sha256; a round that adds no new model says so and the next sync downloads 0 bytes of models', { timeout: 240_000 }, async () => {
  const kb = await startTestKb();
  const t = tempDir('sedna-ll-publish-');
  const edge = makeEdge(kb);
  try {
    const imp = (name: string, angle: number, shift: number, n: number, seed: number) => {
      const f = join(t.dir, `${name}-${seed}.jsonl`);
      writeFileSync(f, blobsJsonl(siteBlobs({ angle, n, seed, labelShift: shift }), `s-${name}-${seed}`, { site: name }));
      const r = kb.cli(['samples', 'import', f]);
      assert.equal(r.code, 0, r.stderr);
    };
    const train = () => {
      const r = kb.cli(['train', '--hidden', '16', '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Report;
    };
    const sync = async () => {
      const r = await sednaAsync(['sync', '--json'], { home: edge.home });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { pulled_version: number | null; models_downloaded: number; model_bytes_down: number };
    };
    imp('A', 0, 0, 150, 1);
    imp('B', 0.6, 1, 150, 2);
    const r1 = train();
    assert.equal(r1.version, 1);
    const s1 = await sync();
    assert.equal(s1.pulled_version, 1);
    assert.ok(s1.models_downloaded >= 2 && s1.model_bytes_down > 0, JSON.stringify(s1));

    // a few samples of a new site like A: its own model is no significant gain over the fallback
    // (it is served by it), and the fallback's update is within noise (the incumbent stays)
    imp('C', 0, 0, 25, 3);
    const r2 = train();
    const by = new Map(r2.tasks.map((x) => [x.task, x]));
    assert.equal(by.get('C')?.verdict, 'keep', JSON.stringify(r2.tasks));
    assert.equal(by.get('global')?.verdict, 'keep', JSON.stringify(r2.tasks));
    assert.equal(r2.version, 2, 'the new site is a task entry: a version is published');
    assert.match(r2.message, /\(0 new models, 1 task now served by a model the KB already had\)/);
    const diff = JSON.parse(kb.cli(['versions', 'diff', '1', '2', '--json']).stdout) as { changed: string[]; added: string[]; tasks: { task: string; sha_a: string | null; sha_b: string | null }[] };
    assert.deepEqual(diff.changed, []);
    assert.deepEqual(diff.added, ['C']);
    for (const x of diff.tasks.filter((x) => x.sha_a)) assert.equal(x.sha_b, x.sha_a, `${x.task} keeps its sha256`);
    const s2 = await sync();
    assert.equal(s2.pulled_version, 2);
    assert.deepEqual([s2.models_downloaded, s2.model_bytes_down], [0, 0], 'nothing new to download');
  } finally {
    edge.cleanup();
    t.cleanup();
    await kb.stop();
  }
});
