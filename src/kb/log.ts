// The KB server's log: fastify's own logger (pino), one JSON object per line on stderr
// ({"level":"info","time":"<ISO-8601>","req_id":...,"msg":...}), one line per request.
// Secrets never reach it: requests are logged through a serializer that keeps method, url and
// remote address only (no headers), and redaction covers the places a token could still be
// attached (headers, a "token" field) should someone log a whole object later.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** An incoming X-Request-Id is kept when it is short and plain (it is echoed and logged). */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Request id: the caller's X-Request-Id when sane (a proxy's id ties the logs together), else a UUID. */
export function requestId(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  return typeof h === 'string' && CLIENT_REQUEST_ID.test(h) ? h : randomUUID();
}

/** Options for fastify's `logger`; `stream` defaults to stderr (stdout carries "listening on"). */
export function kbLoggerOptions(level: LogLevel, stream: NodeJS.WritableStream = process.stderr): Record<string, unknown> {
  return {
    level,
    stream,
    base: undefined,
    messageKey: 'msg',
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: {
      req: (r: { method?: string; url?: string; ip?: string }) => ({ method: r.method, url: r.url, remote: r.ip }),
    },
    redact: {
      paths: ['headers.authorization', 'req.headers.authorization', 'authorization', 'token', '*.token', 'admin_token', '*.admin_token'],
      censor: '[redacted]',
    },
  };
}
