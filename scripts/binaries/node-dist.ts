// The Node runtime of a target architecture, from the npm registry's node-linux-<arch> package
// (bin/node and include/node: the headers addons compile against). Downloaded once per version
// with `npm pack` (the registry is the one network source the build relies on).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE, NODE_VERSION, log, run, type Target } from './common.js';

/** Directory holding bin/node and include/node of `t`'s Node (NODE_VERSION). */
export function nodeDist(t: Target): string {
  const dir = join(CACHE, `node-linux-${t.arch}-${NODE_VERSION}`);
  if (existsSync(join(dir, 'bin', 'node'))) return dir;
  const work = `${dir}.${process.pid}.tmp`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  log(`fetching node-linux-${t.arch}@${NODE_VERSION} from the npm registry`);
  run('npm', ['pack', `node-linux-${t.arch}@${NODE_VERSION}`, '--pack-destination', work, '--silent'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`npm pack node-linux-${t.arch}@${NODE_VERSION} produced no tarball`);
  run('tar', ['xzf', join(work, tgz), '-C', work, '--strip-components=1', 'package/bin/node', 'package/include/node']);
  rmSync(join(work, tgz));
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  return dir;
}
