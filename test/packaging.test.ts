// The Debian package (issue 12 part 3): built from packaging/ by scripts/build-debs.ts, installed
// into a throw-away root (dpkg --root with --force-script-chrootless: the maintainer scripts run
// on this host against DPKG_ROOT, so this also checks that they never touch the host), its
// units checked by `systemd-analyze verify` inside that root, the installed binary run, then
// removed (state kept) and purged (everything gone). Missing tools skip the test locally, with
// the reason, and fail it under CI=true.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers/cli.js';
import { TARGETS, hasTool, requiredTools } from '../scripts/binaries/common.js';
import { debPath } from '../scripts/build-debs.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const UNITS = ['sedna-ll-sync.service', 'sedna-ll-sync.timer', 'sedna-ll-serve.service', 'sedna-ll-kb.service'];

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status ?? 128, out: `${r.stdout}${r.stderr}` };
}

const dpkg = (root: string, ...args: string[]) => sh('dpkg', [`--root=${root}`, '--force-script-chrootless', '--log=/dev/null', ...args]);

// its own timeout: packing the ~130 MB binary with xz takes minutes on a busy machine
test('deb amd64: contents, install into a throw-away root (user, dirs), systemd-analyze verify, remove, purge', { timeout: 3_600_000 }, (t) => {
  const tools = [...requiredTools(TARGETS.x64), 'dpkg', 'dpkg-deb', 'systemd-analyze', 'systemd-sysusers', 'systemd-tmpfiles'];
  const missing = tools.filter((x) => !hasTool(x));
  if (missing.length) {
    const why = `cannot build or check the .deb here: missing ${missing.join(', ')} (see .ci/run's apt step)`;
    if (process.env.CI === 'true') assert.fail(why);
    t.skip(why);
    return;
  }
  const b = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'build-debs.ts'), 'x64'], { cwd: ROOT, encoding: 'utf8', timeout: 3_600_000 });
  assert.equal(b.status, 0, `build:debs failed: ${b.stderr}`);
  const deb = debPath(TARGETS.x64, VERSION);

  const listing = sh('dpkg-deb', ['-c', deb]).out;
  for (const f of ['./usr/bin/sedna-ll', ...UNITS.map((u) => `./usr/lib/systemd/system/${u}`), './etc/logrotate.d/sedna-ll', './usr/lib/sysusers.d/sedna-ll.conf', './usr/lib/tmpfiles.d/sedna-ll.conf']) {
    assert.ok(listing.includes(` ${f}\n`), `the package holds ${f}:\n${listing}`);
  }
  assert.match(sh('dpkg-deb', ['-f', deb, 'Architecture']).out, /^amd64\n$/);

  const tmp = tempDir('sedna-ll-deb-');
  try {
    const root = join(tmp.dir, 'root');
    mkdirSync(join(root, 'var', 'lib', 'dpkg', 'info'), { recursive: true });
    mkdirSync(join(root, 'var', 'lib', 'dpkg', 'updates'));
    writeFileSync(join(root, 'var', 'lib', 'dpkg', 'status'), '');
    const hostPasswd = readFileSync('/etc/passwd', 'utf8');

    // the empty root has no libc6 package: dependencies are the one thing forced
    const inst = dpkg(root, '--force-depends', '-i', deb);
    assert.equal(inst.code, 0, inst.out);
    assert.equal(readFileSync('/etc/passwd', 'utf8'), hostPasswd, 'the host\'s users are untouched');
    const passwd = readFileSync(join(root, 'etc', 'passwd'), 'utf8');
    const user = /^sedna-ll:x:(\d+):(\d+):[^:]*:\/var\/lib\/sedna-ll:\/usr\/sbin\/nologin$/m.exec(passwd);
    assert.ok(user, `a sedna-ll system user in the root's /etc/passwd:\n${passwd}`);
    for (const d of ['var/lib/sedna-ll', 'var/lib/sedna-ll/edge', 'var/cache/sedna-ll', 'var/log/sedna-ll']) {
      const st = statSync(join(root, d));
      assert.ok(st.isDirectory(), d);
      assert.equal(st.uid, Number(user[1]), `${d} belongs to sedna-ll`);
      assert.equal(st.mode & 0o777, 0o750, `${d} mode`);
    }
    const bin = join(root, 'usr', 'bin', 'sedna-ll');
    assert.equal(statSync(bin).mode & 0o777, 0o755);
    const v = sh(bin, ['--version']);
    assert.equal(v.out, `${VERSION}\n`);

    // systemd-analyze verify inside the root: it resolves the units' dependencies (targets,
    // slices) and ExecStart= programs there, so give it the host's targets and kill(1)
    const unitDir = join(root, 'usr', 'lib', 'systemd', 'system');
    for (const f of readdirSync('/lib/systemd/system')) if (/\.(target|slice)$/.test(f)) copyFileSync(join('/lib/systemd/system', f), join(unitDir, f));
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/kill', join(root, 'bin', 'kill'));
    const verify = sh('systemd-analyze', ['verify', `--root=${root}`, ...UNITS]);
    assert.equal(verify.code, 0, verify.out);
    // verify exits 0 on unknown keys and bad values too ("ignoring"): any output is a defect
    assert.equal(verify.out.trim(), '', `systemd-analyze verify found problems:\n${verify.out}`);

    // state written by a run survives remove; the native cache does not
    writeFileSync(join(root, 'var', 'lib', 'sedna-ll', 'edge', 'config.json'), '{}');
    writeFileSync(join(root, 'var', 'cache', 'sedna-ll', 'x'), '');
    const rm = dpkg(root, '-r', 'sedna-ll');
    assert.equal(rm.code, 0, rm.out);
    assert.ok(!existsSync(bin), 'binary removed');
    for (const u of UNITS) assert.ok(!existsSync(join(unitDir, u)), `${u} removed`);
    assert.ok(existsSync(join(root, 'var', 'lib', 'sedna-ll', 'edge', 'config.json')), 'remove keeps the edge home');
    assert.ok(!existsSync(join(root, 'var', 'cache', 'sedna-ll')), 'remove drops the native cache');
    assert.ok(existsSync(join(root, 'etc', 'default', 'sedna-ll')), 'remove keeps conffiles');

    const purge = dpkg(root, '-P', 'sedna-ll');
    assert.equal(purge.code, 0, purge.out);
    for (const p of ['var/lib/sedna-ll', 'var/log/sedna-ll', 'etc/default/sedna-ll', 'etc/logrotate.d/sedna-ll']) assert.ok(!existsSync(join(root, p)), `purge removes ${p}`);
    assert.doesNotMatch(sh('dpkg', [`--root=${root}`, '-l']).out, /^.i +sedna-ll/m);
  } finally {
    tmp.cleanup();
  }
});
