// A real TCP proxy on loopback between the edge and the KB, with programmable faults per
// connection (reliability tests of `sync`). Faults are drawn from a seeded PRNG, so a failing
// run can be replayed with the same seed.
//
//   none          relay both ways
//   cut-request   relay `at` bytes edge->KB, then drop both sides (request cut mid-way)
//   cut-response  relay `at` bytes KB->edge, then drop both sides (answer cut mid-way)
//   delay         hold every chunk `ms` before relaying it (slow link; may trip timeouts)
//   hold-first    hold the first request chunk `ms` (it reaches the server late), then relay as
//                 usual (e.g. a presigned URL that has expired by the time it arrives)
//   http500       answer the first request with a raw "HTTP/1.1 500" and close, KB untouched
//   lost-response relay the request fully; when the KB starts answering (it has committed by
//                 then), drop both sides without relaying a byte: "server committed, response lost"
//
// A fault with `onlyIf` applies only to a connection whose first request chunk (its request line
// and headers) passes that test, decided when the chunk arrives; any other relays as `none`.
// A test then aims at a request by what it asks for (a blob's URL), not by the order in which
// connections happen to open (a kept-alive connection that drops adds one).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mulberry32 } from '../../src/random.js';

export type Fault = (
  | { kind: 'none' }
  | { kind: 'cut-request'; at: number }
  | { kind: 'cut-response'; at: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'hold-first'; ms: number }
  | { kind: 'http500' }
  | { kind: 'lost-response' }
) & { onlyIf?: (firstRequest: string) => boolean };

export interface ProxyStats {
  connections: number;
  /** bytes relayed edge -> KB and KB -> edge */
  up: number;
  down: number;
  faults: Record<Fault['kind'], number>;
}

export interface FaultProxy {
  port: number;
  url: string;
  stats: ProxyStats;
  /** point the proxy at another KB port (after a KB restart) */
  setTarget(port: number): void;
  /** decide the fault of each new connection (default: none) */
  setPlan(plan: (connIndex: number) => Fault): void;
  /**
   * rewrite relayed bytes (a man in the middle): called per chunk with the bytes already relayed
   * in that direction on that connection; return the chunk to forward (same length keeps
   * Content-Length valid). null: no rewriting.
   */
  setTransform(fn: ((dir: 'up' | 'down', chunk: Buffer, offset: number) => Buffer) | null): void;
  /** destroy every open connection now (e.g. together with a KB restart) */
  dropAll(): void;
  /**
   * stall the link: from now on no byte is relayed either way, on any connection, until
   * release() (an explicit hand-off: a client stays stuck mid-request for as long as a test needs)
   */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

/** Random faults with the given probability per connection, seeded. */
export function randomPlan(seed: number, pFault: number, opts: { maxOffset?: number; maxDelayMs?: number } = {}): (i: number) => Fault {
  const rand = mulberry32(seed);
  const maxOffset = opts.maxOffset ?? 256 * 1024;
  const maxDelay = opts.maxDelayMs ?? 200;
  const kinds: Fault['kind'][] = ['cut-request', 'cut-response', 'delay', 'http500', 'lost-response'];
  return () => {
    if (rand() >= pFault) return { kind: 'none' };
    const kind = kinds[Math.floor(rand() * kinds.length)];
    switch (kind) {
      case 'cut-request':
        return { kind, at: Math.floor(rand() * maxOffset) };
      case 'cut-response':
        return { kind, at: Math.floor(rand() * 2048) };
      case 'delay':
        return { kind, ms: Math.floor(rand() * maxDelay) };
      default:
        return { kind } as Fault;
    }
  };
}

export async function startFaultProxy(targetPort: number, opts: { host?: string } = {}): Promise<FaultProxy> {
  const host = opts.host ?? '127.0.0.1';
  let target = targetPort;
  let plan: (i: number) => Fault = () => ({ kind: 'none' });
  let transform: ((dir: 'up' | 'down', chunk: Buffer, offset: number) => Buffer) | null = null;
  const stats: ProxyStats = { connections: 0, up: 0, down: 0, faults: { none: 0, 'cut-request': 0, 'cut-response': 0, delay: 0, 'hold-first': 0, http500: 0, 'lost-response': 0 } };
  const open = new Set<Socket>();
  let held: (() => void)[] | null = null;

  const server: Server = createServer((client) => {
    let fault = plan(stats.connections++);
    if (fault.onlyIf && fault.kind === 'http500') throw new Error('fault-proxy: onlyIf is not supported with http500');
    if (!fault.onlyIf) stats.faults[fault.kind]++;
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => {});
    const kill = () => {
      client.destroy();
      upstream?.destroy();
    };

    if (fault.kind === 'http500') {
      client.once('data', () => {
        client.end('HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: close\r\n\r\ninjected fault');
      });
      return;
    }

    const upstream: Socket = connect({ host, port: target });
    open.add(upstream);
    upstream.on('close', () => {
      open.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());

    let upCount = 0;
    let downCount = 0;
    const relay = (from: Socket, to: Socket, dir: 'up' | 'down') => {
      from.on('data', function onData(raw: Buffer) {
        if (held) {
          from.pause();
          held.push(() => {
            from.resume();
            onData(raw);
          });
          return;
        }
        if (dir === 'up' && upCount === 0 && fault.onlyIf) {
          if (!fault.onlyIf(raw.toString('latin1'))) fault = { kind: 'none' };
          stats.faults[fault.kind]++;
        }
        const chunk = transform ? transform(dir, raw, dir === 'up' ? upCount : downCount) : raw;
        let out = chunk;
        if (dir === 'up' && fault.kind === 'cut-request' && upCount + chunk.length >= fault.at) {
          out = chunk.subarray(0, Math.max(0, fault.at - upCount));
          write(to, out, dir);
          upCount += out.length;
          return setImmediate(kill);
        }
        if (dir === 'down' && fault.kind === 'cut-response' && downCount + chunk.length >= fault.at) {
          out = chunk.subarray(0, Math.max(0, fault.at - downCount));
          write(to, out, dir);
          downCount += out.length;
          return setImmediate(kill);
        }
        if (dir === 'down' && fault.kind === 'lost-response') return kill();
        const firstUp = dir === 'up' && upCount === 0;
        if (dir === 'up') upCount += chunk.length;
        else downCount += chunk.length;
        if (fault.kind === 'delay' || (fault.kind === 'hold-first' && firstUp)) {
          from.pause();
          setTimeout(() => {
            write(to, out, dir);
            from.resume();
          }, fault.ms);
        } else {
          // back-pressure: pause the reader while the writer is full
          if (!write(to, out, dir)) {
            from.pause();
            to.once('drain', () => from.resume());
          }
        }
      });
      from.on('end', () => to.end());
    };
    const write = (to: Socket, buf: Buffer, dir: 'up' | 'down'): boolean => {
      if (!buf.length || to.destroyed) return true;
      stats[dir] += buf.length;
      return to.write(buf);
    };
    relay(client, upstream, 'up');
    relay(upstream, client, 'down');
  });

  await new Promise<void>((res) => server.listen(0, host, () => res()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://${host}:${port}`,
    stats,
    setTarget: (p) => {
      target = p;
    },
    setPlan: (p) => {
      plan = p;
    },
    setTransform: (fn) => {
      transform = fn;
    },
    dropAll: () => {
      for (const s of open) s.destroy();
    },
    hold: () => {
      held ??= [];
    },
    release: () => {
      const waiting = held ?? [];
      held = null;
      for (const go of waiting) go();
    },
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}
