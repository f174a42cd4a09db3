// What the `kb ...` command files share: the --data option text and opening the KB store of
// a data directory (imported lazily: `sedna-ll --version` must not load the store).
import type { KbStore } from '../kb/store.js';

export const DATA_HELP = 'KB data directory (default: $SEDNA_LL_KB_DATA)';

/** Open the KB store of --data / $SEDNA_LL_KB_DATA, run fn on it, close it. */
export async function kbOpen<T>(data: string | undefined, fn: (store: KbStore, dataDir: string) => Promise<T>): Promise<T> {
  const { resolveKbData } = await import('../kb/paths.js');
  const { withKbStore } = await import('../kb/open.js');
  const dir = resolveKbData(data);
  return withKbStore(dir, (s) => fn(s, dir));
}
