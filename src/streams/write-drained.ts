// Writing to a stream that may apply backpressure (a slow pipe reader), without piling up
// listeners: one 'drain'/'error' pair per wait, both removed when either fires (a leftover
// 'error' listener per wait gave MaxListenersExceededWarning on `kb samples export | slow`).

/** Write chunk; null when the stream took it, else a promise settled on 'drain' or 'error'. */
export function writeDrained(out: NodeJS.WritableStream, chunk: string | Buffer): Promise<void> | null {
  if (out.write(chunk)) return null;
  return new Promise((resolve, reject) => {
    const done = (e?: Error) => {
      out.off('drain', done);
      out.off('error', done);
      if (e) reject(e);
      else resolve();
    };
    out.once('drain', done);
    out.once('error', done);
  });
}
