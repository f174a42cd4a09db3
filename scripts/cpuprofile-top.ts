// Top functions by self time in V8 .cpuprofile files (node --cpu-prof; bench/sync.ts writes
// them with BENCH_CPU_PROF_DIR). Usage: node --import tsx scripts/cpuprofile-top.ts FILE... [--top N]
// Native work (SQLite, syscalls) is charged to the JS function that called it.
import { readFileSync } from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface Profile { nodes: { id: number; callFrame: CallFrame }[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
for (const file of args) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const frames = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const cf = frames.get(id)!;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').pop()}:${cf.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + p.timeDeltas[i] / 1000);
  });
  console.log(`== ${file}: ${((p.endTime - p.startTime) / 1000).toFixed(0)} ms`);
  for (const [k, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms.toFixed(1).padStart(9)} ms  ${k}`);
}
