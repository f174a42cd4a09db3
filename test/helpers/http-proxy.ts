// A real HTTP proxy on loopback, as gateways behind a corporate proxy see one: CONNECT tunnels
// (what undici's proxy agent and curl use for https, and undici for http too) and plain
// forwarded requests with an absolute URI. It records what went through it, so a test can tell
// that the proxy carried a request (and how many bytes), not only that the request worked.
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';

export interface HttpProxy {
  url: string;
  /** host:port of every CONNECT, in order */
  tunnels: string[];
  /** absolute URIs of every forwarded (non-CONNECT) request */
  forwarded: string[];
  /** bytes relayed target -> client over tunnels and forwards */
  down(): number;
  close(): Promise<void>;
}

export async function startHttpProxy(): Promise<HttpProxy> {
  const tunnels: string[] = [];
  const forwarded: string[] = [];
  const sockets = new Set<Socket>();
  let down = 0;
  const server: Server = createServer((req, res) => {
    // a forward proxy request: GET http://host:port/path
    forwarded.push(req.url ?? '');
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.statusCode = 400;
      return res.end();
    }
    const up = httpRequest(target, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.on('data', (c: Buffer) => (down += c.length));
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const up = netConnect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.on('data', (c: Buffer) => (down += c.length));
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up).add(client);
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
    up.on('close', () => client.destroy());
    client.on('close', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    tunnels,
    forwarded,
    down: () => down,
    async close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
