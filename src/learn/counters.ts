// The counters `kb train --when` decides on: the KB store's own (samples_new, labelled_new, ...,
// reset by each round) plus totals and the time since the last round.
import type { KbStore } from '../kb/store.js';

export const KNOWN_COUNTERS = ['labelled_new', 'samples_new', 'labelled_total', 'samples_total', 'rounds', 'hours_since_round'] as const;

export async function counters(store: KbStore): Promise<Record<string, number>> {
  const c = { ...(await store.counters()) };
  const stats = await store.stats();
  c.labelled_total = stats.labelled;
  c.samples_total = stats.samples;
  c.rounds = Number((await store.getMeta('learn.round')) ?? 0);
  const last = await store.getMeta('learn.last_round_at');
  // never trained: "infinitely" long ago, so "hours_since_round >= 24" is due
  c.hours_since_round = last ? Math.floor((Date.now() - Number(last)) / 3_600_000) : Number.MAX_SAFE_INTEGER;
  for (const k of ['labelled_new', 'samples_new']) c[k] ??= 0;
  return c;
}
