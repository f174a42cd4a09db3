// `task add X --task T` without --labels when T already exists: a new model for the same task
// usually has the same classes, and silently resetting its labels to "0".."K-1" broke feedback
// and what the KB learns from. So the previous labels are kept when the new model has as many
// classes; only a model with a different class count gets the default labels.
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

/** addLocalTask; without o.labels, the task's previous labels are kept when the class count matches. */
export async function addTaskKeepingLabels(paths: HomePaths, db: DB, o: AddTaskOptions): Promise<AddKeepingLabelsResult> {
  const previous = o.labels === undefined ? activeTaskLabels(paths, db, o.task) : null;
  const r = await addLocalTask(paths, db, previous ? { ...o, labelsIfClassCount: previous } : o);
  // labels_note is set exactly when the previous labels could not apply (another class count)
  return { ...r, labels_kept: previous ? r.labels_note === undefined : null, previous_labels: previous };
}
