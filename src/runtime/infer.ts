// `sedna-ll infer`: stream samples from a file or stdin through the pipeline in windows of
// --batch samples and print one JSON line per good sample, in input order. A window is also
// flushed whenever the input goes idle, so an interactive producer gets answers without waiting
// for a full window. Bad records go to stderr (one line each) and are skipped; --strict stops
// at the first one (exit 1) after printing everything before it. A stream with bad records and
// no good one fails (exit 1): scripts must not take a wrong-format file for success.
import { fstatSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { ReportedError, BadRecordError } from '../errors.js';
import { writeDrained } from '../streams/write-drained.js';
import { openHome } from '../store/open-home.js';
import { Outbox } from '../store/outbox.js';
import { Pipeline, shouldCommit, type Outcome, type PreparedWindow } from './pipeline.js';
import type { Item } from './sample.js';
import { SessionCache } from './sessions.js';
import { itemSource, type SourceOptions } from './sources.js';
import { shownField } from './decode-csv.js';
import { loadRuntimeState } from './state.js';

export interface InferOptions extends SourceOptions {
  home?: string;
  /** samples per window (grouped per task inside it) */
  batch: number;
  strict: boolean;
  /** false: --no-log, nothing is written to the outbox */
  log: boolean;
  seed?: number;
  out?: Writable;
  err?: Writable;
}

export interface InferSummary {
  ok: number;
  bad: number;
  logged: number;
}

export function describeBad(o: Extract<Outcome, { error: string }>): string {
  // a long id (a CSV id column of a binary file, a 50 MB JSON string) is cut: one short line per record
  const id = o.id !== null && o.id !== undefined && !o.where.endsWith(` ${o.id}`) ? ` (id ${typeof o.id === 'string' ? shownField(o.id) : JSON.stringify(o.id)})` : '';
  return `${o.where}${id}: ${o.error}`;
}

const IDLE = Symbol('idle');
const IDLE_MS = 5;
const idle = () => new Promise<typeof IDLE>((res) => setTimeout(() => res(IDLE), IDLE_MS));

/** Is the input a pipe, socket or terminal (a producer that can pause), not a regular file? */
function isStream(file: string | undefined, format: string | undefined): boolean {
  if (format === 'image' || (file && file !== '-')) return false;
  try {
    return !fstatSync(0).isFile();
  } catch {
    return true;
  }
}

export async function runInfer(o: InferOptions): Promise<InferSummary> {
  const out = o.out ?? process.stdout;
  const err = o.err ?? process.stderr;
  // one place opens a home and names the file on busy / read-only / full-disk errors
  const { paths, cfg: config, db } = openHome(o.home);
  const sessions = new SessionCache(paths.models);
  const summary: InferSummary = { ok: 0, bad: 0, logged: 0 };
  try {
    const state = loadRuntimeState(paths, db);
    const sink = o.log ? new Outbox(db, paths, config) : null;
    const pipeline = new Pipeline(sessions, { db: o.log ? db : null, sink, seed: o.seed ?? Date.now() >>> 0 });
    const source = itemSource({ maxPixels: config.images.max_pixels, resize: config.images.resize, ...o });

    // progress only for a person watching (stderr is a terminal), one line rewritten in place
    const tty = 'isTTY' in err && (err as NodeJS.WriteStream).isTTY;
    let lastProgress = 0;
    const progress = (final: boolean) => {
      if (!tty) return;
      const now = Date.now();
      if (!final && now - lastProgress < 500) return;
      lastProgress = now;
      err.write(`\r\x1b[K${summary.ok} samples, ${summary.logged} logged, ${summary.bad} bad${final ? '\n' : ''}`);
    };

    // Windows are inferred as they fill and committed in groups (shouldCommit): lines are
    // printed in input order once the transaction holding their samples committed.
    let window: Item[] = [];
    let pending: PreparedWindow[] = [];
    let pendingCandidates = 0;
    const commit = async () => {
      if (pending.length === 0) return;
      const ws = pending;
      pending = [];
      pendingCandidates = 0;
      const texts: Buffer[] = [];
      for (const r of pipeline.commit(ws)) {
        summary.logged += r.logged;
        summary.ok += r.ok;
        for (const oc of r.outcomes) {
          if (oc === undefined || oc.error === undefined) continue; // lines are in r.text
          summary.bad++;
          if (o.strict) {
            // the stopping error is the window's last outcome: every line before it is in r.text
            texts.push(r.text!);
            await writeDrained(out, Buffer.concat(texts));
            throw new BadRecordError(`${describeBad(oc)} (--strict: stopped)`);
          }
          err.write(`sedna-ll: ${describeBad(oc)}\n`);
        }
        texts.push(r.text!);
      }
      const text = Buffer.concat(texts);
      if (text.length) await writeDrained(out, text);
      progress(false);
    };
    /** Infer the current window; commit when the policy says so, or now (force: idle, end, --strict stop). */
    const flush = async (force = false) => {
      if (window.length > 0) {
        const items = window;
        window = [];
        const w = await pipeline.prepare(state, items, o.strict, true);
        pending.push(w);
        pendingCandidates += w.candidates;
        if (w.stopped) force = true; // --strict stopped inside this window
      }
      if (force || !o.log || shouldCommit(pending.length, pendingCandidates, o.batch)) await commit(); // --no-log: nothing to group
    };

    // A pipe or terminal may go quiet mid-window (an interactive producer): flush the partial
    // window when the next chunk is not there within IDLE_MS. Regular files (FILE, or stdin
    // redirected from one) never wait on a producer; there every chunk is a threadpool read that
    // is "not ready yet" for a moment, and flushing then would only halve the batches.
    const idleFlush = isStream(o.file, o.format);
    const it = source[Symbol.asyncIterator]();
    let next = it.next();
    next.catch(() => {}); // awaited below; this only keeps a failure after an early stop from being "unhandled"
    for (;;) {
      let r = idleFlush && window.length ? await Promise.race([next, idle()]) : await next;
      if (r === IDLE) {
        await flush(true);
        r = await next;
      }
      if (r.done) break;
      next = it.next();
      next.catch(() => {});
      for (const item of r.value) {
        window.push(item);
        if (window.length >= o.batch) await flush();
      }
    }
    await flush(true);
    if (lastProgress) progress(true);
    // every record bad (a wrong-format file, the wrong --features): a failure, not "0 processed"
    if (summary.ok === 0 && summary.bad > 0) throw new ReportedError(`all ${summary.bad} record(s) bad, none processed (wrong input format?)`);
    if (summary.bad > 0) err.write(`sedna-ll: ${summary.bad} bad record(s) skipped, ${summary.ok} processed\n`);
    return summary;
  } finally {
    await sessions.dispose();
    db.close();
  }
}
