// `kb eval FILE`: per-task and overall metrics of a published KB version on a labelled file,
// with samples allocated to tasks by the edge's own table (format/allocate.ts) and scored by
// onnxruntime-node sessions of the published models.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { normaliseAttrs } from '../format/attrs.js';
import { TaskTable } from '../format/allocate.js';
import { splitCsvLine } from '../format/csv.js';
import { ReportedError, UsageError } from '../errors.js';
import type { TaskEntry, TaskIndex } from '../format/index-manifest.js';
import type { KbStore } from '../kb/store.js';
import { preprocess } from './dataset.js';
import { roundScores, scoreLabels, type Scores } from './metrics.js';
import { readBlob, stack } from './models.js';
import { openSession, runRows } from '../onnx/ort.js';

interface Row {
  x: Float32Array;
  label: string;
  attrs: Record<string, string>;
}

async function readRows(file: string, attrKeys: string[], onBad: (line: number, why: string) => void): Promise<Row[]> {
  const input = createReadStream(file);
  await new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', (e: NodeJS.ErrnoException) => reject(new UsageError(`${file}: cannot read: ${e.code ?? e.message}`)));
  });
  const rows: Row[] = [];
  let header: string[] | null = null;
  let csv: boolean | null = null;
  let n = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (!line.trim()) continue;
    if (csv === null) csv = !line.trimStart().startsWith('{');
    if (csv) {
      let cells: string[];
      try {
        cells = splitCsvLine(line).map((c) => c.trim());
      } catch (e) {
        if (!header) throw new UsageError(`${file}:${n}: CSV header: ${(e as Error).message}`);
        onBad(n, (e as Error).message);
        continue;
      }
      if (!header) {
        header = cells.map((c) => c.toLowerCase());
        if (!header.includes('label')) throw new UsageError(`${file}: CSV header has no "label" column`);
        continue;
      }
      if (cells.length !== header.length) {
        onBad(n, `${cells.length} cells, header has ${header.length}`);
        continue;
      }
      const attrs: Record<string, string> = {};
      const x: number[] = [];
      let label = '';
      let bad = '';
      header.forEach((h, i) => {
        if (h === 'label') label = cells[i];
        else if (h === 'id') return;
        else if (attrKeys.includes(h)) attrs[h] = cells[i];
        else {
          const v = Number(cells[i]);
          if (cells[i] === '' || !Number.isFinite(v)) bad ||= `column "${h}": "${cells[i]}" is not a number`;
          x.push(v);
        }
      });
      if (bad || !label) {
        onBad(n, bad || 'empty label');
        continue;
      }
      rows.push({ x: Float32Array.from(x), label, attrs: normaliseAttrs(attrs) });
    } else {
      let o: { x?: unknown; label?: unknown; attrs?: unknown };
      try {
        o = JSON.parse(line);
      } catch (e) {
        onBad(n, `not valid JSON: ${(e as Error).message}`);
        continue;
      }
      if (!Array.isArray(o.x) || !o.x.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        onBad(n, '"x" must be an array of finite numbers');
        continue;
      }
      if (typeof o.label !== 'string' && typeof o.label !== 'number') {
        onBad(n, '"label" is missing');
        continue;
      }
      rows.push({ x: Float32Array.from(o.x as number[]), label: String(o.label), attrs: normaliseAttrs((o.attrs ?? {}) as Record<string, string>) });
    }
  }
  return rows;
}

export interface EvalResult {
  version: number;
  samples: number;
  tasks: (Scores & { task: string })[];
  overall: Scores;
}

/**
 * The edge's allocation (format/allocate.ts, the table the runtime uses), each task seeing the
 * sample through its own preprocessing. A sample no task can take fails the evaluation.
 */
function allocator(index: TaskIndex): (r: Row) => TaskEntry {
  const table = new TaskTable(index);
  return (r) => {
    try {
      return table.allocate(r.attrs, null, (t) => preprocess(r.x, t.model.preprocessing)).task;
    } catch (e) {
      throw new ReportedError(`a sample cannot be allocated: ${(e as Error).message}`);
    }
  };
}

export async function evaluateVersion(store: KbStore, file: string, opts: { version?: number; onBad: (line: number, why: string) => void }): Promise<EvalResult> {
  const n = opts.version ?? (await store.latestVersion())?.n;
  if (!n) throw new ReportedError('the KB has no published version yet');
  const f = await store.readVersionIndex(n);
  if (!f) throw new UsageError(`KB version ${n} does not exist (see "sedna-ll kb versions")`);
  const index = JSON.parse(f.bytes.toString('utf8')) as TaskIndex;
  const rows = await readRows(file, index.allocation.attr_keys, opts.onBad);
  if (!rows.length) throw new ReportedError(`${file}: no usable labelled samples`);
  const allocate = allocator(index);
  const groups = new Map<TaskEntry, Row[]>();
  for (const r of rows) {
    const t = allocate(r);
    if (!groups.has(t)) groups.set(t, []);
    groups.get(t)!.push(r);
  }
  const truth: string[] = [];
  const pred: string[] = [];
  const tasks: EvalResult['tasks'] = [];
  for (const [t, rs] of groups) {
    if (t.model.preprocessing.kind !== 'vector') throw new ReportedError(`task ${t.id}: image models cannot be evaluated on vector files`);
    const s = await openSession(await readBlob(store, t.model.sha256), `task ${t.id}: model ${t.model.sha256.slice(0, 12)}`);
    try {
      const xs = rs.map((r) => preprocess(r.x, t.model.preprocessing));
      const d = Number(t.model.inputs[0].shape[1]);
      for (const x of xs) if (x.length !== d) throw new ReportedError(`${file}: a sample has ${x.length} features, task ${t.id} expects ${d}`);
      const P = await runRows(s, t.model.inputs[0].name, t.model.outputs[0].name, stack(xs, d), [xs.length, d]);
      const k = t.model.labels.length;
      const tp: string[] = [];
      for (let i = 0; i < rs.length; i++) {
        let b = 0;
        for (let j = 1; j < k; j++) if (P[i * k + j] > P[i * k + b]) b = j;
        tp.push(t.model.labels[b]);
      }
      const tt = rs.map((r) => r.label);
      tasks.push({ task: t.id, ...roundScores(scoreLabels(tt, tp)) });
      truth.push(...tt);
      pred.push(...tp);
    } finally {
      await s.release();
    }
  }
  tasks.sort((a, b) => a.task.localeCompare(b.task, 'en', { numeric: true }));
  return { version: n, samples: rows.length, tasks, overall: roundScores(scoreLabels(truth, pred)) };
}
