// @ts-check
// The floor of a Node push with a spool design (bench/push-floor.ts runs it with a bare `node`,
// no tsx, no sedna-ll code unless `mark` is given): the records are already framed in one file
// (the spool: MAGIC, records, END, exactly the bytes sedna-ll would send), and an index says where
// each batch's records lie and which sample ids (and rowids) they carry. Each batch is one POST
// of MAGIC + its slice of the file + END to /v1/sample-frames, IN_FLIGHT requests on their way
// at once (as push.ts), each ack parsed and checked against the ids the batch sent.
//   node push-floor-client.mjs '<json>'   {url, spool, index, transport: 'http'|'undici', markHome?}
// markHome: also mark the acked samples uploaded in that edge home's edge.db with today's code
// (dist/: Outbox.markUploadedRows, MARK_EVERY per transaction, synchronous=NORMAL and the
// push's auto-checkpoint), on the event loop as push does.
// Prints one JSON line: acked, marked, phase_ms (first request to last ack/mark), start_ms (the
// process's time before the first request: Node start-up, loading, opening the spool/edge.db).
import { openSync, readSync, readFileSync, closeSync } from 'node:fs';

const o = JSON.parse(process.argv[2]);
const IN_FLIGHT = 2;
const MARK_EVERY = 8192;
const CONTENT_TYPE = 'application/vnd.sedna-ll.sample-frames';
const MAGIC = Buffer.from('SLF1', 'latin1');

/** @type {{ batches: { start: number, end: number, ids: string[], rowids: number[] }[] }} */
const index = JSON.parse(readFileSync(o.index, 'utf8'));
const fd = openSync(o.spool, 'r');
const url = new URL('/v1/sample-frames', o.url);

/** @type {((rows: { rowid: number, id: string }[]) => number) | null} */
let mark = null;
let closeDb = () => {};
if (o.markHome) {
  const dist = new URL('../../dist/', import.meta.url);
  const [{ openEdgeDb }, { homePaths, loadConfig }, { Outbox }] = await Promise.all([import(new URL('store/db.js', dist).href), import(new URL('store/home.js', dist).href), import(new URL('store/outbox.js', dist).href)]);
  const paths = homePaths(o.markHome);
  const db = openEdgeDb(paths.db);
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 16384');
  const outbox = new Outbox(db, paths, loadConfig(o.markHome));
  mark = (rows) => outbox.markUploadedRows(rows);
  closeDb = () => db.close();
}

/** one POST; resolves with the answer's body text */
let send;
if (o.transport === 'undici') {
  const { Pool } = await import('undici');
  const pool = new Pool(url.origin, { connections: IN_FLIGHT });
  send = async (/** @type {Buffer} */ body) => {
    const r = await pool.request({ method: 'POST', path: url.pathname, headers: { 'content-type': CONTENT_TYPE }, body });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`POST ${url}: ${r.statusCode} ${text.slice(0, 200)}`);
    return text;
  };
} else {
  const http = await import('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  send = (/** @type {Buffer} */ body) =>
    new Promise((resolve, reject) => {
      const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': CONTENT_TYPE, 'content-length': body.length } }, (res) => {
        /** @type {Buffer[]} */
        const parts = [];
        res.on('data', (c) => parts.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(parts).toString('utf8')) : reject(new Error(`POST ${url}: ${res.statusCode}`))));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
}

const startMs = performance.now();
let acked = 0;
let marked = 0;
/** @type {{ rowid: number, id: string }[]} */
let marks = [];
const flush = () => {
  if (marks.length && mark) marked += mark(marks);
  marks = [];
};
let next = 0;
/** one lane: takes the next batch, reads its slice of the spool, sends it, checks and marks its acks */
async function lane() {
  while (next < index.batches.length) {
    const b = index.batches[next++];
    const len = b.end - b.start;
    const body = Buffer.allocUnsafe(len + 8);
    MAGIC.copy(body, 0);
    if (readSync(fd, body, 4, len, b.start) !== len) throw new Error('short read of the spool');
    body.writeUInt32BE(0, len + 4);
    const reply = JSON.parse(await send(body));
    const at = new Map();
    for (let i = 0; i < b.ids.length; i++) at.set(b.ids[i], i);
    for (const id of reply.stored) {
      const i = at.get(id);
      if (i === undefined) throw new Error(`ack of an id the batch did not send: ${id}`);
      if (mark) marks.push({ rowid: b.rowids[i], id });
    }
    acked += reply.stored.length;
    if (marks.length >= MARK_EVERY) flush();
  }
}
await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
flush();
const phaseMs = performance.now() - startMs;
closeSync(fd);
closeDb();
process.stdout.write(JSON.stringify({ acked, marked, phase_ms: Math.round(phaseMs), start_ms: Math.round(startMs) }) + '\n');
process.exit(0); // kept-alive sockets must not hold the exit (the undici pool's are ref'd)
