// durable/atomic-write.ts and durable/content-dir.ts: a file is the old or the new version, never
// half of one, even when its writer is killed with -9 mid-write; a content-addressed name always
// holds exactly the bytes it names; temp files of dead writers are swept, live ones kept.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { writeFileAtomic } from '../src/durable/atomic-write.js';
import { ContentDir, isSha256, sha256Of } from '../src/durable/content-dir.js';
import { ROOT, tempDir } from './helpers/cli.js';

const deadPid = () => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);

/** Run a module script in a child; resolves once it printed `marker`, then kill -9s it. */
async function killAfter(script: string, marker: string): Promise<void> {
  const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const done = new Promise<void>((res) => p.on('close', () => res()));
  await new Promise<void>((res, rej) => {
    let out = '';
    p.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes(marker)) res();
    });
    p.on('close', () => rej(new Error(`child ended before "${marker}": ${out}`)));
  });
  p.kill('SIGKILL');
  await done;
  assert.equal(p.signalCode, 'SIGKILL', 'the writer was killed, not finished');
}

describe('durable/atomic-write', () => {
  it('replaces a file; mode applies; no temp file remains', () => {
    const t = tempDir();
    try {
      const f = join(t.dir, 'sub', 'config.json');
      writeFileAtomic(f, 'one');
      writeFileAtomic(f, Buffer.from('two'), { mode: 0o600 });
      assert.equal(readFileSync(f, 'utf8'), 'two');
      assert.equal(statSync(f).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(join(t.dir, 'sub')), ['config.json']);
    } finally {
      t.cleanup();
    }
  });

  it('a writer killed with -9 while rewriting leaves the old or the new version, whole', async () => {
    const t = tempDir();
    try {
      const f = join(t.dir, 'state.bin');
      // two 4 MiB versions of distinct bytes; the child rewrites them in turn forever
      const script = `
        import { writeFileAtomic } from ${JSON.stringify(join(ROOT, 'src/durable/atomic-write.ts'))};
        const a = Buffer.alloc(4 << 20, 0x61), b = Buffer.alloc(4 << 20, 0x62);
        for (let i = 0; ; i++) { writeFileAtomic(${JSON.stringify(f)}, i % 2 ? b : a); if (i === 3) console.log('WROTE'); }`;
      await killAfter(script, 'WROTE');
      const got = readFileSync(f);
      assert.equal(got.length, 4 << 20);
      assert.ok(got.every((x) => x === got[0]) && (got[0] === 0x61 || got[0] === 0x62), 'one whole version');
    } finally {
      t.cleanup();
    }
  });
});

describe('durable/content-dir', () => {
  it('stores bytes and streams under their sha256; the same content twice is stored once', async () => {
    const t = tempDir();
    try {
      const d = new ContentDir(join(t.dir, 'blobs'), join(t.dir, 'tmp'));
      const bytes = Buffer.from('hello blobs');
      const a = d.putBytes(bytes);
      assert.equal(a.sha256, sha256Of(bytes));
      assert.equal(a.created, true);
      assert.equal(d.putBytes(bytes).created, false);
      const b = await d.putStream(Readable.from([Buffer.from('hello '), Buffer.from('blobs')]), a.sha256);
      assert.deepEqual(b, { sha256: a.sha256, size: bytes.length, created: false });
      assert.deepEqual(d.read(a.sha256), bytes);
      assert.equal(d.size(a.sha256), bytes.length);
      assert.equal(d.has('0'.repeat(64)), false);
      assert.equal(d.size('not-a-sha'), null);
      assert.throws(() => d.path('../etc/passwd'), /not a sha256/);
      const chunks: Buffer[] = [];
      for await (const c of d.openRead(a.sha256, { start: 6, end: 10 })) chunks.push(c as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), 'blobs');
      assert.deepEqual(readdirSync(join(t.dir, 'tmp')), []);
      assert.ok(isSha256(a.sha256));
    } finally {
      t.cleanup();
    }
  });

  it('refuses content that is not the expected sha256 and stores nothing', async () => {
    const t = tempDir();
    try {
      const d = new ContentDir(join(t.dir, 'blobs'), join(t.dir, 'tmp'));
      const want = sha256Of('the right bytes');
      await assert.rejects(d.putStream(Buffer.from('other bytes'), want), /expected/);
      assert.deepEqual(readdirSync(join(t.dir, 'blobs')), []);
      assert.deepEqual(readdirSync(join(t.dir, 'tmp')), []);
    } finally {
      t.cleanup();
    }
  });

  it('a writer killed with -9 mid-blob: no name holds partial bytes; its temp file is swept, a live writer’s kept', async () => {
    const t = tempDir();
    try {
      const blobs = join(t.dir, 'blobs');
      const tmp = join(t.dir, 'tmp');
      // the child streams an endless blob: it is killed while its temp file grows
      const script = `
        import { ContentDir } from ${JSON.stringify(join(ROOT, 'src/durable/content-dir.ts'))};
        import { Readable } from 'node:stream';
        const d = new ContentDir(${JSON.stringify(blobs)}, ${JSON.stringify(tmp)});
        let n = 0;
        const src = new Readable({ read() { this.push(Buffer.alloc(1 << 16, n & 255)); if (++n === 64) console.log('WRITING'); } });
        d.putStream(src);`;
      await killAfter(script, 'WRITING');
      assert.deepEqual(readdirSync(blobs), [], 'nothing visible under a content name');
      const left = readdirSync(tmp);
      assert.equal(left.length, 1, 'the killed writer left its temp file');
      const live = join(tmp, `blob-${process.pid}-abcdef012345.tmp`);
      writeFileSync(live, 'in progress');
      const older = join(tmp, `blob-${'a'.repeat(64)}-${deadPid()}.tmp`); // the outbox's former temp name
      writeFileSync(older, 'x');
      const d = new ContentDir(blobs, tmp);
      assert.deepEqual(d.sweepTemps().sort(), [join(tmp, left[0]), older].sort());
      assert.ok(existsSync(live));
      // and every stored name matches its bytes
      const s = d.putBytes(Buffer.from('after the crash'));
      for (const n of readdirSync(blobs)) assert.equal(createHash('sha256').update(readFileSync(join(blobs, n))).digest('hex'), n);
      assert.equal(readdirSync(blobs).length, 1);
      assert.equal(s.created, true);
    } finally {
      t.cleanup();
    }
  });
});
