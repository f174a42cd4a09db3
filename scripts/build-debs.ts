// Builds release/sedna-ll_<version>_<amd64|arm64>.deb with dpkg-deb: the single-file binary as
// /usr/bin/sedna-ll, the systemd units, sysusers.d/tmpfiles.d snippets (the sedna-ll user,
// /var/lib/sedna-ll, /var/cache/sedna-ll, /var/log/sedna-ll), logrotate, /etc/default/sedna-ll
// and the maintainer scripts, all from packaging/. Builds the binaries first if needed.
//
//   npm run build:debs            # both
//   npm run build:debs -- x64     # amd64 only
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RELEASE, ROOT, TARGETS, buildMain, log, run, sha256, sha256File, type Arch, type Target } from './binaries/common.js';
import { buildBinaries } from './build-binaries.js';

const PKG = join(ROOT, 'packaging');

interface Staged {
  /** path inside the package -> source file */
  files: Array<{ to: string; from: string; mode: number }>;
}

function staged(bin: string): Staged {
  const files: Staged['files'] = [
    { to: 'usr/bin/sedna-ll', from: bin, mode: 0o755 },
    { to: 'usr/lib/sysusers.d/sedna-ll.conf', from: join(PKG, 'sysusers', 'sedna-ll.conf'), mode: 0o644 },
    { to: 'usr/lib/tmpfiles.d/sedna-ll.conf', from: join(PKG, 'tmpfiles', 'sedna-ll.conf'), mode: 0o644 },
    { to: 'etc/logrotate.d/sedna-ll', from: join(PKG, 'logrotate', 'sedna-ll'), mode: 0o644 },
    { to: 'etc/default/sedna-ll', from: join(PKG, 'default', 'sedna-ll'), mode: 0o644 },
    { to: 'usr/share/doc/sedna-ll/copyright', from: join(ROOT, 'LICENSE'), mode: 0o644 },
    { to: 'usr/share/doc/sedna-ll/README.md', from: join(ROOT, 'README.md'), mode: 0o644 },
  ];
  for (const u of readdirSync(join(PKG, 'systemd')).sort()) files.push({ to: `usr/lib/systemd/system/${u}`, from: join(PKG, 'systemd', u), mode: 0o644 });
  return { files };
}

export function debPath(t: Target, version: string): string {
  return join(RELEASE, `sedna-ll_${version}_${t.deb}.deb`);
}

/** What the binary needs from the OS (README "Install on a gateway" explains the versions). */
const DEPENDS = 'libc6 (>= 2.34), libstdc++6 (>= 11), libgcc-s1';

export function buildDeb(t: Target, bin: string): string {
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const out = debPath(t, version);
  const s = staged(bin);
  const scripts = ['postinst', 'prerm', 'postrm'];
  const key = sha256(
    JSON.stringify({ files: s.files.map((f) => [f.to, f.mode, sha256File(f.from)]), scripts: scripts.map((x) => sha256File(join(PKG, 'debian', x))), build: sha256File(join(ROOT, 'scripts', 'build-debs.ts')), DEPENDS }),
  );
  const stamp = `${out}.inputs`;
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === key) {
    log(`${out}: up to date`);
    return out;
  }
  const root = join(ROOT, '.build', 'cache', `deb-${t.deb}.${process.pid}.tmp`);
  rmSync(root, { recursive: true, force: true });
  try {
    for (const f of s.files) {
      const to = join(root, f.to);
      mkdirSync(join(to, '..'), { recursive: true });
      copyFileSync(f.from, to);
      chmodSync(to, f.mode);
    }
    const debian = join(root, 'DEBIAN');
    mkdirSync(debian, { recursive: true });
    for (const x of scripts) {
      copyFileSync(join(PKG, 'debian', x), join(debian, x));
      chmodSync(join(debian, x), 0o755);
    }
    writeFileSync(join(debian, 'conffiles'), '/etc/default/sedna-ll\n/etc/logrotate.d/sedna-ll\n');
    const kib = Math.ceil(s.files.reduce((a, f) => a + statSync(f.from).size, 0) / 1024);
    writeFileSync(
      join(debian, 'control'),
      [
        'Package: sedna-ll',
        `Version: ${version}`,
        `Architecture: ${t.deb}`,
        'Maintainer: sedna-ll maintainers <sedna-ll@users.noreply.github.com>',
        `Installed-Size: ${kib}`,
        `Depends: ${DEPENDS}`,
        'Recommends: systemd, logrotate',
        'Section: misc',
        'Priority: optional',
        'Description: edge-cloud lifelong learning for offline edge gateways',
        ' One self-contained sedna-ll binary (ONNX inference, SQLite outbox, resumable sync',
        ' with a knowledge base) and systemd units: sedna-ll-sync.timer,',
        ' sedna-ll-serve.service (Unix socket in /run/sedna-ll) and sedna-ll-kb.service.',
        '',
      ].join('\n'),
    );
    mkdirSync(RELEASE, { recursive: true });
    log(`packing ${out}`);
    rmSync(stamp, { force: true });
    // xz -1: nearly the size of the default level (the binary is mostly already-compressed
    // natives and machine code) in a fraction of the time
    run('dpkg-deb', ['--root-owner-group', '-Zxz', '-z1', '--build', root, out]);
    writeFileSync(stamp, `${key}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return out;
}

export async function buildDebs(arches: Arch[]): Promise<string[]> {
  const bins = await buildBinaries(arches);
  return arches.map((a, i) => buildDeb(TARGETS[a], bins[i]));
}

if (import.meta.url === `file://${process.argv[1]}`) await buildMain('build:debs', buildDebs);
