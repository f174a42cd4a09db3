// `sedna-ll kb init` and `sedna-ll kb serve`: create a KB data directory; run the KB HTTP server.
import { type Command, Option } from '../commander.js';
import { EXIT_HELP, ReportedError, UsageError } from '../errors.js';
import { intOption, record, run } from './action.js';
import { DATA_HELP } from './kb-common.js';
import { LOG_LEVELS, type LogLevel } from '../kb/log.js';

export function register(kb: Command): void {
  kb.command('init')
    .description('create a KB data directory: store, ed25519 signing keys, admin token (printed once)')
    .option('--data <dir>', DATA_HELP)
    .option('--force', 'wipe an existing KB in that directory and start over')
    .option('--json', 'print {data, admin_token, public_key} as JSON')
    .option('--blobs <s3://bucket[/prefix]>', 'keep blobs in an S3-compatible bucket (created when missing; saved in kb.json); with --store also a directory every replica shares (default: $SEDNA_LL_KB_BLOBS)')
    .option('--s3-endpoint <url>', 'S3 API of a non-AWS object store, e.g. http://127.0.0.1:7480 (saved in kb.json)')
    .addHelpText(
      'after',
      `\nThe admin token is shown only once; the KB stores its hash.
A shared KB in PostgreSQL (for several kb serve replicas, a trainer elsewhere):
  sedna-ll kb init --store postgres://kb@db.example/kb --signing-key /secure/kb-signing.key
writes the new private signing key to that file only (the database keeps the public key).
${EXIT_HELP}\n`,
    )
    .action(
      run(async (o: { data?: string; store?: string; blobs?: string; s3Endpoint?: string; signingKey?: string; force?: boolean; json?: boolean }) => {
        const { resolveFlags, storeUrl } = await import('../kb/open.js');
        const { initKb, initSharedKb } = await import('../kb/init.js');
        let r;
        if (storeUrl(resolveFlags(o))) {
          if (o.force) throw new UsageError('--force is not for --store (drop and create the database to start over)');
          r = await initSharedKb({ ...o, createBucket: true });
        } else {
          const { resolveKbData } = await import('../kb/paths.js');
          const { chooseBlobs } = await import('../kb/blob-config.js');
          r = await initKb(resolveKbData(o.data), { force: o.force, blobs: o.blobs ? chooseBlobs({ url: o.blobs, endpoint: o.s3Endpoint }) : undefined });
        }
        if (o.json) return record(r);
        process.stdout.write(`KB created in ${r.data}\nadmin token (shown once, keep it safe): ${r.admin_token}\nKB public key:\n${r.public_key}`);
      }),
    );

  kb.command('serve')
    .description('run the KB HTTP server (sync protocol /v1, /healthz, /metrics) until SIGTERM/SIGINT')
    .option('--data <dir>', DATA_HELP)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'TCP port (0: any free port)', intOption('--port', 0, 65535), 9020)
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--body-limit <bytes>', 'max request body after gzip decoding (default 64 MiB)', intOption('--body-limit', 1024))
    .addOption(new Option('--log-level <level>', 'JSON log lines on stderr, one per request at info').choices(LOG_LEVELS).default('info'))
    .option('--verbose', 'same as --log-level debug')
    .option('--open-metrics', 'serve /metrics without the admin token (default: Authorization: Bearer <admin token>)')
    .option('--blobs <s3://bucket[/prefix]>', 'keep blobs in an S3-compatible bucket (default: $SEDNA_LL_KB_BLOBS, kb.json, else DATA/blobs/)')
    .option('--s3-endpoint <url>', 'S3 API of a non-AWS object store, e.g. http://127.0.0.1:7480 (default: $SEDNA_LL_KB_S3_ENDPOINT, $AWS_ENDPOINT_URL)')
    .option('--s3-public-endpoint <url>', 'the object store as devices reach it, for presigned URLs (default: --s3-endpoint; $SEDNA_LL_KB_S3_PUBLIC_ENDPOINT)')
    .option('--presign-expiry <s>', 'serve GET /v1/blobs/:sha/url (presigned object-store URLs valid this many seconds; S3 blobs only; 0: off)', intOption('--presign-expiry', 0), 0)
    .option('--json-push-only', 'take pushes only as JSON (protocol revision 1): do not announce or accept binary sample frames')
    .addHelpText(
      'after',
      `\nPrints one JSON line {"listening": URL, "port": N} on stdout once ready (as the edge serve does). Logs one JSON object per line on stderr
(level, time, req_id, method, url, route, status, ms, device); tokens are never logged.
An X-Request-Id request header is kept as req_id, else one is made; either way it is
returned in the X-Request-Id response header. Metrics: GET /metrics with the admin token
(see README "Metrics"; --open-metrics serves it without).

Examples:
  SEDNA_LL_KB_DATA=/srv/sedna-kb sedna-ll kb serve --host 0.0.0.0 --port 9020
  sedna-ll kb serve --store postgres://kb@db.example/kb --blobs /mnt/kb-blobs --host 0.0.0.0   # one replica of many
  sedna-ll kb serve --data /srv/sedna-kb --tls-cert kb.crt --tls-key kb.key --log-level warn

${EXIT_HELP}\n`,
    )
    .action(
      run(async (o: { data?: string; store?: string; host: string; port: number; tlsCert?: string; tlsKey?: string; bodyLimit?: number; logLevel: LogLevel; verbose?: boolean; openMetrics?: boolean; blobs?: string; s3Endpoint?: string; s3PublicEndpoint?: string; presignExpiry?: number; jsonPushOnly?: boolean }) => {
        if (!!o.tlsCert !== !!o.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
        const { accessSync, constants } = await import('node:fs');
        for (const [opt, f] of [['--tls-cert', o.tlsCert], ['--tls-key', o.tlsKey]] as const) {
          if (!f) continue;
          try {
            accessSync(f, constants.R_OK);
          } catch (e) {
            throw new UsageError(`${opt} ${f}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
          }
        }
        if (o.tlsCert && o.tlsKey) {
          // checked here, naming the file: TLS's own error ("PEM routines::no start line") named
          // neither, and came as "cannot listen on HOST:PORT"
          const [{ readFileSync }, { X509Certificate, createPrivateKey }] = await Promise.all([import('node:fs'), import('node:crypto')]);
          for (const [opt, f, parse] of [['--tls-cert', o.tlsCert, (b: Buffer) => new X509Certificate(b)], ['--tls-key', o.tlsKey, (b: Buffer) => createPrivateKey(b)]] as const) {
            let bytes: Buffer;
            try {
              bytes = readFileSync(f);
            } catch (e) {
              throw new UsageError(`${opt} ${f}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
            }
            try {
              parse(bytes);
            } catch (e) {
              throw new UsageError(`${opt} ${f}: not a PEM ${opt === '--tls-cert' ? 'certificate' : 'private key'} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
            }
          }
        }
        const { openStore } = await import('../kb/open.js');
        const { startKbServer } = await import('../kb/server.js');
        // a replica needs no signing key: it serves versions signed by the publishing machine
        const store = await openStore({ data: o.data, store: o.store, blobs: o.blobs, s3Endpoint: o.s3Endpoint, s3PublicEndpoint: o.s3PublicEndpoint, createBucket: true });
        if (o.presignExpiry && !store.blobs.presignGet) {
          await store.close();
          throw new UsageError('--presign-expiry: the blobs are files (of the data directory or --blobs DIR); presigned URLs need --blobs s3://...');
        }
        let srv;
        try {
          srv = await startKbServer(store, {
            host: o.host,
            port: o.port,
            bodyLimit: o.bodyLimit,
            logLevel: o.verbose ? 'debug' : o.logLevel,
            openMetrics: o.openMetrics,
            presignExpirySec: o.presignExpiry,
            jsonPushOnly: o.jsonPushOnly,
            tls: o.tlsCert && o.tlsKey ? { certFile: o.tlsCert, keyFile: o.tlsKey } : undefined,
          });
        } catch (e) {
          await store.close();
          throw new ReportedError(`cannot listen on ${o.host}:${o.port}: ${(e as Error).message}`);
        }
        // one JSON line, the same shape as the edge `serve` prints: scripts read both alike
        process.stdout.write(JSON.stringify({ listening: srv.url, port: srv.port }) + '\n');
        // graceful stop: refuse new requests (503), finish the ones in flight, close the store
        await new Promise<void>((resolve) => {
          const stop = (sig: string) => {
            process.off('SIGTERM', onTerm);
            process.off('SIGINT', onInt);
            srv.app.log.info({ signal: sig }, 'shutting down');
            srv.close().finally(resolve);
          };
          const onTerm = () => stop('SIGTERM');
          const onInt = () => stop('SIGINT');
          process.on('SIGTERM', onTerm);
          process.on('SIGINT', onInt);
        });
        await store.close();
      }),
    );
}
