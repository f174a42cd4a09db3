// Load generator of bench/infer.ts part 5 (serve latency), run as a child process of the bench
// (fork with IPC). Why this shape:
//  - its own process: the bench process holds the generated data and runs its own GCs; the
//    generator's pauses would be counted as server latency. On 2 cores this child and the server
//    each get a core when the machine is otherwise idle.
//  - raw node:net keep-alive connections, one per client, closed loop (a client sends its next
//    request when the answer is complete), requests preformatted once as Buffers; an answer is
//    parsed only as far as needed: the status code and Content-Length (no header objects, no
//    body decoding). An HTTP client library (undici, node:http) spends more per request than
//    the bare server under test does, which raised the floor the server is compared with.
//  - each connection's first request is sent untimed: it pays for the connection's set-up in the
//    server (and at 64 clients for the connect burst of all of them), which is no steady-state
//    latency, and 64 such requests in a run of a few thousand would be the p99.
// The same generator loads serve, serve --no-log and the bare node:http floors.
//
// Protocol (IPC): the parent sends {bodies: string[]} once, then {target, clients, total} per
// run; the child answers {lat: number[]} (ms per timed request, completion order) or {error}.
import { connect, type Socket } from 'node:net';

interface Target {
  socket?: string;
  port?: number;
}
interface RunMsg {
  target: Target;
  clients: number;
  total: number;
}

let requests: Buffer[] = [];

const CRLF2 = Buffer.from('\r\n\r\n');
const CL = Buffer.from('content-length:');

/** Offset after "content-length:" in buf[from, to) (case-insensitive: `| 0x20` lowercases letters and keeps '-' and ':'). */
function findContentLength(buf: Buffer, from: number, to: number): number {
  outer: for (let i = from; i + CL.length <= to; i++) {
    for (let j = 0; j < CL.length; j++) if ((buf[i + j] | 0x20) !== CL[j]) continue outer;
    return i + CL.length;
  }
  return -1;
}

/** One keep-alive connection sending requests one at a time; resolves when `next()` says stop. */
function client(t: Target, next: () => number, lat: number[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const s: Socket = t.socket ? connect(t.socket) : connect(t.port!, '127.0.0.1');
    s.setNoDelay(true);
    let buf: Buffer | null = null;
    let t0 = 0n;
    let timed = false;
    const send = () => {
      const i = next();
      if (i < 0) {
        s.end();
        return resolve();
      }
      t0 = process.hrtime.bigint();
      s.write(requests[i % requests.length]);
    };
    s.on('connect', () => s.write(requests[0])); // untimed: see the file's head
    s.on('error', reject);
    s.on('data', (c: Buffer) => {
      buf = buf ? Buffer.concat([buf, c]) : c;
      const he = buf.indexOf(CRLF2);
      if (he < 0) return;
      const at = findContentLength(buf, 0, he);
      if (at < 0) return reject(new Error(`answer without content-length: ${buf.subarray(0, he).toString('latin1')}`));
      let n = 0;
      for (let i = at; i < he && buf[i] !== 0x0d; i++) if (buf[i] >= 0x30 && buf[i] <= 0x39) n = n * 10 + buf[i] - 0x30;
      if (buf.length < he + 4 + n) return;
      // "HTTP/1.1 200 ..."
      const status = (buf[9] - 0x30) * 100 + (buf[10] - 0x30) * 10 + (buf[11] - 0x30);
      if (status !== 200) return reject(new Error(`status ${status}: ${buf.subarray(he + 4, he + 4 + n).toString()}`));
      if (timed) lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      timed = true;
      buf = buf.length > he + 4 + n ? buf.subarray(he + 4 + n) : null;
      send();
    });
  });
}

process.on('message', (m: { bodies?: string[] } & Partial<RunMsg>) => {
  if (m.bodies) {
    requests = m.bodies.map((b) =>
      Buffer.from(`POST /infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`),
    );
    return;
  }
  const { target, clients, total } = m as RunMsg;
  const lat: number[] = [];
  let issued = 0;
  const next = () => (issued < total ? issued++ : -1);
  Promise.all(Array.from({ length: clients }, () => client(target!, next, lat))).then(
    () => process.send!({ lat }),
    (e: Error) => process.send!({ error: e.message }),
  );
});
