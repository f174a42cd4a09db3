// A warm-started CNN update trains on what is new plus a bounded replay of what it already saw,
// not on everything again. Without this the fallback (which holds every labelled sample of the
// KB) was retrained on all of them each round, with the full epoch budget: a round's cost grew
// with the KB's age (184-457 s per round at 10 sites of rotated MNIST) and a 20-site run did
// not finish. With it a round's CNN cost is bounded by UPDATE_MAX samples x UPDATE_EPOCHS
// epochs per updated task, whatever the KB holds.
//
// Forgetting stays guarded where it always was: the paired gate compares the candidate with the
// incumbent on the task's WHOLE held-out set (every site it serves, old ones included), and a
// fallback-served site on which the new fallback is significantly worse stays pinned to the
// model that served it. The replay share (at least as many old samples as new ones) keeps the
// old sites in every mini-batch so the candidate rarely loses that test.
import type { LoadedSample } from './dataset.js';
import { idRank } from './round-types.js';

/** most samples a warm-started update trains on (fresh first, then replay) */
export const UPDATE_MAX = 2048;
/** old samples replayed: at least this many, and at least as many as the fresh ones */
export const REPLAY_MIN = 512;
/** epoch budget of a warm-started update: it starts from a trained model, it only adapts */
export const UPDATE_EPOCHS = 8;
export const UPDATE_PATIENCE = 2;

export interface UpdateSet {
  /** the samples to train on: every fresh one (up to UPDATE_MAX), then a seeded replay sample */
  train: LoadedSample[];
  fresh: number;
  replay: number;
  /** old training samples not replayed this round */
  left: number;
}

/**
 * The bounded training set of a warm-started update. `isFresh`: labelled since the task last
 * trained. The replay sample is a stable hash order of the old samples (same data, same choice),
 * different per round so successive rounds revisit different old samples.
 */
export function updateSet(train: readonly LoadedSample[], isFresh: (s: LoadedSample) => boolean, seed: number, round: number): UpdateSet {
  const ranks = new Map<LoadedSample, number>();
  const rank = (s: LoadedSample) => {
    let r = ranks.get(s);
    if (r === undefined) ranks.set(s, (r = idRank(`${seed}:${round}`, s.rec.payload_sha ?? s.rec.id)));
    return r;
  };
  const byRank = (a: LoadedSample, b: LoadedSample) => rank(a) - rank(b) || (a.rec.payload_sha < b.rec.payload_sha ? -1 : 1);
  const fresh = train.filter(isFresh);
  const old = train.filter((s) => !isFresh(s));
  const freshKept = fresh.length > UPDATE_MAX - REPLAY_MIN ? [...fresh].sort(byRank).slice(0, UPDATE_MAX - REPLAY_MIN) : fresh;
  const want = Math.min(old.length, Math.max(REPLAY_MIN, freshKept.length), UPDATE_MAX - freshKept.length);
  const replay = want >= old.length ? old : [...old].sort(byRank).slice(0, want);
  // training order does not depend on this order (the trainer shuffles with its seed), but
  // keep the caller's order so the set is the same whatever the ranks
  const keep = new Set([...freshKept, ...replay]);
  return { train: train.filter((s) => keep.has(s)), fresh: freshKept.length, replay: replay.length, left: old.length - replay.length };
}
