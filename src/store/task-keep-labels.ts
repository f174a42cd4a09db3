// `task add X --task T` without --labels when T already exists: a new model for the same task
// usually has the same classes, and silently resetting its labels to "0".."K-1" broke feedback
// and what the KB learns from. So the previous labels are kept when the new model has as many
// classes; only a model with a different class count gets the default labels.
import { CliError, EXIT } from '../format/exit-codes.js';
import type { DB } from './db.js';
import type { HomePaths } from './home.js';
import { addLocalTask, type AddTaskOptions, type AddTaskResult } from './local-tasks.js';
import { activeVersion } from './versions.js';

export interface AddKeepingLabelsResult extends AddTaskResult {
  /** labels the task had before when none were given: kept (true), not kept since the class count differs (false); null: nothing to keep */
  labels_kept: boolean | null;
  previous_labels: string[] | null;
}

/** The labels task `task` has in the active version (null when it has none there). */
export function activeTaskLabels(paths: HomePaths, db: DB, task: string): string[] | null {
  const labels = activeVersion(paths, db)?.index.tasks.find((t) => t.id === task)?.model.labels;
  return labels && labels.length ? labels : null;
}

// addLocalTask's refusal when --labels does not match the model's class count
const COUNT_MISMATCH = /^--labels: \d+ labels but the model has \d+ outputs$/;

/** addLocalTask; without o.labels, the task's previous labels are tried first. */
export async function addTaskKeepingLabels(paths: HomePaths, db: DB, o: AddTaskOptions): Promise<AddKeepingLabelsResult> {
  const previous = o.labels === undefined ? activeTaskLabels(paths, db, o.task) : null;
  if (!previous) return { ...(await addLocalTask(paths, db, o)), labels_kept: null, previous_labels: null };
  try {
    return { ...(await addLocalTask(paths, db, { ...o, labels: previous })), labels_kept: true, previous_labels: previous };
  } catch (e) {
    // the new model has another number of classes: the old names cannot apply, use the defaults
    if (!(e instanceof CliError && e.code === EXIT.USAGE && COUNT_MISMATCH.test(e.message))) throw e;
    return { ...(await addLocalTask(paths, db, o)), labels_kept: false, previous_labels: previous };
  }
}
