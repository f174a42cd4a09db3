// The error a sync request finally fails with, and why: the sync run maps the kind to an exit
// code. Its own module so that the carriers (blob-get.ts) can throw it without importing the client.
/** Why a request finally failed; the sync run maps these to exit codes. */
export type FailureKind =
  | 'unreachable' // connection refused/reset, timeouts, 5xx, 429 — after all retries
  | 'auth' // 401/403: the token is wrong or revoked; retrying cannot help
  | 'protocol' // other 4xx or an answer we cannot understand
  | 'deadline'; // --max-time reached

export class SyncHttpError extends Error {
  constructor(
    message: string,
    readonly kind: FailureKind,
    readonly status?: number,
  ) {
    super(message);
  }
}

