/**
 * The messages between the cluster's primary and its workers (node:cluster IPC, JSON:
 * every message is plain data; measured cheaper than `serialization: 'advanced'` for
 * these small messages, about 10 µs of CPU per write at -P 1 with causal reads). `k`
 * names the kind.
 *
 * Worker → primary:
 * - `ask`: run `op` on every other worker; the primary answers with `answer` once each
 *   has replied (a worker that exits meanwhile is left out).
 * - `tell`: run `op` on every other worker; no answer.
 * - `ids`: a new block of client ids (answered with `answer`, results `[first id]`).
 * - `sessions`: this worker's session count per listener changed.
 * - `peerReply`: the outcome of a `peer` request.
 * - `hello`: the worker listens for messages; from now on it is asked what the others
 *   ask (before, a message could be lost).
 * - `started`: the worker serves every listener (their ports); `startFailed`: it could not
 *   start (why), and exits next.
 *
 * Primary → worker:
 * - `peer`: run `op` for a listener (`rid` 0: a tell, no reply wanted).
 * - `answer`: the results of an `ask` or `ids`.
 * - `sessions`: every worker's session count per listener.
 * - `reload`: re-read the config file and apply it; `reloadRejected`: the primary found
 *   the file invalid (for INFO proxy).
 * - `shutdown`: close gracefully within `timeoutMs`, then exit.
 */

/** What one worker can be asked to do for one of its listeners (see Listener.peerRequest). */
export type PeerOp = 'list' | 'kill' | 'lease' | 'health' | 'writes' | 'ready';

export type WorkerMessage =
  | { k: 'ask'; rid: number; op: PeerOp; listener: string; arg: unknown }
  | { k: 'tell'; op: PeerOp; listener: string; arg: unknown }
  | { k: 'ids'; rid: number }
  | { k: 'sessions'; counts: Record<string, number> }
  | { k: 'peerReply'; rid: number; result: unknown }
  | { k: 'hello' }
  | { k: 'started'; listeners: Array<{ name: string; port: number }> }
  | { k: 'startFailed'; reason: string };

export type PrimaryMessage =
  | { k: 'peer'; rid: number; op: PeerOp; listener: string; arg: unknown }
  | { k: 'answer'; rid: number; results: unknown[] }
  | { k: 'sessions'; byWorker: Record<number, Record<string, number>> }
  | { k: 'reload' }
  | { k: 'reloadRejected'; reason: string }
  | { k: 'shutdown'; timeoutMs: number };

/** Client ids handed to a worker at a time: worker blocks are `[k * ID_BLOCK + 1, (k + 1) * ID_BLOCK]`. */
export const ID_BLOCK = 100_000;

/** Environment variables the primary sets for each worker. */
export const ENV_WORKER = 'REDIS_PROXY_WORKER';
export const ENV_WORKERS = 'REDIS_PROXY_WORKERS';
