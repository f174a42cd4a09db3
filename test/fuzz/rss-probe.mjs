// Preloaded into a CLI child (node --import) by the memory-bound tests: on exit it writes the
// process's peak RSS and file-system write count to $SEDNA_LL_RSS_OUT.
import { writeFileSync } from 'node:fs';

process.on('exit', () => {
  const out = process.env.SEDNA_LL_RSS_OUT;
  if (!out) return;
  const u = process.resourceUsage();
  writeFileSync(out, JSON.stringify({ maxRssKb: u.maxRSS, fsWrite: u.fsWrite }));
});
