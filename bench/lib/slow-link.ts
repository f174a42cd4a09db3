// A slow link for the benches: a TCP proxy on loopback that behaves like a WAN uplink of
// `mbit` Mbit/s each way with `rttMs` round-trip time. Each direction is one serial link: a
// chunk leaves when the link has finished sending the previous bytes (len * 8 / rate), and
// arrives rttMs/2 later. The sender is paused while more than one bandwidth-delay product
// (plus a small queue) is in flight, as a TCP window would hold it back, so a client cannot
// "send" faster than the link by filling the proxy's memory. The link is shared: every
// connection through the proxy queues on the same serial link per direction (as on a real
// uplink), so a client with two connections open gets the same 10 Mbit/s, not twice that.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface SlowLink {
  port: number;
  url: string;
  /** payload bytes relayed each way */
  stats: { up: number; down: number };
  /** the link's rate in bytes per second (each way) */
  bytesPerSecond: number;
  close(): Promise<void>;
}

/** largest piece scheduled at once (smooths pacing of 64 KB socket chunks) */
const PIECE = 16 * 1024;

/** one direction of the link: when it has finished sending the bytes queued so far (shared by all connections) */
interface Wire {
  freeAt: number;
}

function pipeThrottled(from: Socket, to: Socket, wire: Wire, bytesPerMs: number, delayMs: number, count: (n: number) => void): void {
  let inFlight = 0;
  const limit = Math.max(64 * 1024, bytesPerMs * delayMs * 2 + 32 * 1024);
  // pieces in send order with their arrival times; one timer releases them in that order
  // (one timer per piece could fire out of order: timers count from the loop's cached clock)
  const queue: { at: number; piece: Buffer | null }[] = [];
  let timer: NodeJS.Timeout | null = null;
  const pump = () => {
    timer = null;
    const now = performance.now();
    while (queue.length && queue[0].at <= now) {
      const { piece } = queue.shift()!;
      if (piece === null) {
        to.end();
        continue;
      }
      inFlight -= piece.length;
      count(piece.length);
      if (!to.destroyed) to.write(piece);
    }
    if (inFlight < limit && from.isPaused()) from.resume();
    if (queue.length) timer = setTimeout(pump, Math.max(1, queue[0].at - now));
  };
  const schedule = () => {
    if (!timer && queue.length) timer = setTimeout(pump, Math.max(0, queue[0].at - performance.now()));
  };
  from.on('data', (chunk: Buffer) => {
    for (let off = 0; off < chunk.length; off += PIECE) {
      const piece = chunk.subarray(off, Math.min(chunk.length, off + PIECE));
      wire.freeAt = Math.max(performance.now(), wire.freeAt) + piece.length / bytesPerMs;
      inFlight += piece.length;
      queue.push({ at: wire.freeAt + delayMs, piece });
    }
    if (inFlight >= limit) from.pause();
    schedule();
  });
  // FIN travels behind the data before it
  from.on('end', () => {
    queue.push({ at: Math.max(performance.now(), wire.freeAt) + delayMs, piece: null });
    schedule();
  });
  from.on('error', () => to.destroy());
}

export async function startSlowLink(targetPort: number, opts: { mbit: number; rttMs: number; host?: string }): Promise<SlowLink> {
  const host = opts.host ?? '127.0.0.1';
  const bytesPerSecond = (opts.mbit * 1e6) / 8;
  const bytesPerMs = bytesPerSecond / 1000;
  const oneWay = opts.rttMs / 2;
  const stats = { up: 0, down: 0 };
  const sockets = new Set<Socket>();
  const up: Wire = { freeAt: 0 };
  const down: Wire = { freeAt: 0 };
  const server: Server = createServer((client) => {
    client.pause();
    // the SYN/SYN-ACK of the far side costs one RTT before the first byte
    setTimeout(() => {
      const upstream = connect(targetPort, host, () => client.resume());
      sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
      };
      upstream.on('close', () => setTimeout(drop, oneWay));
      client.on('close', drop);
      pipeThrottled(client, upstream, up, bytesPerMs, oneWay, (n) => (stats.up += n));
      pipeThrottled(upstream, client, down, bytesPerMs, oneWay, (n) => (stats.down += n));
    }, opts.rttMs);
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://${host}:${port}`,
    stats,
    bytesPerSecond,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
