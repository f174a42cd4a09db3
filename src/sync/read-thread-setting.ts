// SEDNA_LL_PUSH_READ_THREAD, read on its own (not in push.ts): sync checks it at its start, also
// when nothing is pending and push.ts is never loaded, so a typo in a cron job's environment is
// reported on the first run, not on the first run that happens to have samples to push.
import { UsageError } from '../errors.js';

export const READ_THREAD_MODES = ['on', 'off', 'auto'] as const;
export type ReadThreadMode = (typeof READ_THREAD_MODES)[number];

/** The push reader thread setting (off when unset); anything else is a usage error naming the variable. */
export function readThreadMode(env: NodeJS.ProcessEnv = process.env): ReadThreadMode {
  const v = env.SEDNA_LL_PUSH_READ_THREAD ?? 'off';
  if ((READ_THREAD_MODES as readonly string[]).includes(v)) return v as ReadThreadMode;
  throw new UsageError(`SEDNA_LL_PUSH_READ_THREAD="${v}": expected on, off or auto`);
}
