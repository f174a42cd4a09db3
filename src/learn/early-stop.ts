// Early stopping shared by the dense and the convolutional trainer: after each epoch the
// validation score (lower is better) is compared with the best so far; the best weights are kept
// (a snapshot), and training stops after `patience` epochs without an improvement. Without a
// validation set every epoch runs and the last weights are the result.
import type { EpochStat } from './trainer.js';

export class EarlyStop<N> {
  readonly history: EpochStat[] = [];
  private best: N;
  private bestEpoch = 0;
  private bestScore: number;
  private since = 0;

  constructor(
    private readonly hasVal: boolean,
    private readonly patience: number,
    initialScore: number,
    private readonly snapshot: () => N,
  ) {
    this.best = snapshot();
    this.bestScore = hasVal ? initialScore : Infinity;
  }

  /** Record an epoch (score: its validation score, null without validation); true = stop now. */
  epoch(stat: EpochStat, score: number | null): boolean {
    if (this.hasVal && score !== null) {
      if (score < this.bestScore - 1e-6) {
        this.bestScore = score;
        this.bestEpoch = stat.epoch;
        this.best = this.snapshot();
        this.since = 0;
      } else if (++this.since >= this.patience) {
        this.history.push(stat);
        return true;
      }
    }
    this.history.push(stat);
    return false;
  }

  /** The weights to keep (the best epoch's, or the last ones without validation) and the history. */
  result(): { net: N; history: EpochStat[]; bestEpoch: number; epochsRun: number } {
    const net = this.hasVal ? this.best : this.snapshot();
    return { net, history: this.history, bestEpoch: this.hasVal ? this.bestEpoch : this.history.length, epochsRun: this.history.length };
  }
}
