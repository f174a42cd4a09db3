// The runtime's view of the active KB version, replaced as a whole when the active version
// changes (serve re-checks between requests): a request holds one RuntimeState from start to
// end, so it never sees half of an old index and half of a new one. Sessions live outside it
// (SessionCache, keyed by model sha256) so a switch reuses every unchanged model.
import type { HardFilterConfig, TaskEntry, TaskIndex } from '../format/index-manifest.js';
import { ReportedError } from '../errors.js';
import type { DB } from '../store/db.js';
import type { HomePaths } from '../store/home.js';
import { activeVersion } from '../store/versions.js';
import { TaskTable } from '../format/allocate.js';
import { filterNames } from './filters.js';
import { sampleDimsOf } from './sessions.js';

export class RuntimeState {
  readonly table: TaskTable;
  readonly filters: readonly HardFilterConfig[];
  readonly filterNames: string[];
  /** floats per sample for each task's model (from the index; checked against the session) */
  private readonly features = new Map<TaskEntry, number>();
  /** JSON of each task id, precomputed for the output lines */
  readonly taskJson = new Map<TaskEntry, string>();

  constructor(
    readonly versionId: string,
    readonly index: TaskIndex,
  ) {
    this.table = new TaskTable(index);
    this.filters = index.hard_examples;
    this.filterNames = filterNames(index.hard_examples);
    for (const t of index.tasks) {
      this.features.set(t, sampleDimsOf(t).reduce((a, b) => a * b, 1));
      this.taskJson.set(t, JSON.stringify(t.id));
    }
  }

  featuresOf(t: TaskEntry): number {
    return this.features.get(t)!;
  }
}

/** Current active version id (one indexed read: cheap enough to poll between requests). */
export function activeVersionId(db: DB): string | null {
  const r = db.prepare("SELECT value FROM kv WHERE key = 'active_version'").pluck().get() as string | undefined;
  return r ?? null;
}

/** Load the active version into a RuntimeState; a home without one is a one-line error. */
export function loadRuntimeState(paths: HomePaths, db: DB): RuntimeState {
  const av = activeVersion(paths, db);
  if (!av) {
    throw new ReportedError(`${paths.home}: no active KB version; register a model with "sedna-ll task add MODEL.onnx --task ID" or run "sedna-ll sync"`);
  }
  if (av.index.tasks.length === 0) throw new ReportedError(`KB version ${av.id} has no tasks`);
  return new RuntimeState(av.id, av.index);
}
