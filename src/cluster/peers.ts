/**
 * A worker's view of the other workers of its proxy (workers > 1): requests that must
 * reach every session of a listener (CLIENT LIST, CLIENT KILL, a session id named by
 * CLIENT UNBLOCK or CLIENT TRACKING REDIRECT), what causal reads must share, health
 * changes, and session counts. Everything goes through the primary (./primary.ts), which
 * fans a request out to the other workers and gathers their answers.
 */
import type { PeerOp, PrimaryMessage, WorkerMessage } from './messages.js';
import { ID_BLOCK } from './messages.js';

/** Runs a peer request for one of this worker's listeners; undefined for a listener it does not have. */
export type PeerHandler = (op: PeerOp, listener: string, arg: unknown) => unknown;

/** What listeners and sessions use of the other workers. */
export interface Peers {
  /** This worker's number, 1 to {@link workers}. */
  readonly worker: number;
  /** Worker processes the proxy runs (as of the last reload). */
  readonly workers: number;
  /**
   * Runs `op` for `listener` on every other worker.
   * @returns one answer per worker that answered (a worker that exits meanwhile is left out)
   */
  ask(op: PeerOp, listener: string, arg: unknown): Promise<unknown[]>;
  /** Runs `op` for `listener` on every other worker; no answer. */
  tell(op: PeerOp, listener: string, arg: unknown): void;
  /** Sessions of `listener` on the other workers, as they last reported them (within ~50 ms). */
  otherSessions(listener: string): number;
  /** This worker's session count of `listener` changed (reported to the others within ~50 ms). */
  sessionsChanged(listener: string, count: number): void;
  /** A client id no other worker uses, ever (CLIENT ID): ids come in blocks from the primary. */
  nextClientId(): number;
  /** Sets who runs the requests other workers send (the proxy, before it creates a listener). */
  serve(handler: PeerHandler): void;
}

/** How often, at most, session counts are reported (ms). */
const SESSIONS_REPORT_MS = 50;

/** {@link Peers} over this worker's IPC channel to the primary. */
export class WorkerPeers implements Peers {
  private nextRid = 1;
  private readonly pending = new Map<number, (results: unknown[]) => void>();
  private handler: PeerHandler = () => undefined;
  /** The block client ids come from now, and the next one already asked for. */
  private nextId = 0;
  private blockEnd = 0;
  private spare = 0;
  private askingIds = false;
  private others: Record<number, Record<string, number>> = {};
  private readonly counts: Record<string, number> = {};
  private reportTimer: NodeJS.Timeout | null = null;

  /**
   * @param worker this worker's number (1-based)
   * @param workers how many workers the proxy runs
   * @param send the IPC channel to the primary (process.send)
   */
  constructor(
    readonly worker: number,
    public workers: number,
    private readonly send: (message: WorkerMessage) => void,
  ) {}

  /** Sets who runs the requests other workers send (the proxy, once started). */
  serve(handler: PeerHandler): void {
    this.handler = handler;
  }

  /** Asks the primary for the first block of client ids; resolves once it is here. */
  async start(): Promise<void> {
    const [first] = await this.request({ k: 'ids', rid: 0 });
    this.nextId = first as number;
    this.blockEnd = this.nextId + ID_BLOCK;
  }

  /** Handles a message from the primary; false when it is not a peer message. */
  receive(message: PrimaryMessage): boolean {
    switch (message.k) {
      case 'answer': {
        const done = this.pending.get(message.rid);
        this.pending.delete(message.rid);
        done?.(message.results);
        return true;
      }
      case 'peer':
        void this.runPeer(message.rid, message.op, message.listener, message.arg);
        return true;
      case 'sessions':
        this.others = message.byWorker;
        return true;
      default:
        return false;
    }
  }

  /** The primary is gone: every question waiting for it is answered with nothing. */
  disconnected(): void {
    for (const done of this.pending.values()) done([]);
    this.pending.clear();
  }

  ask(op: PeerOp, listener: string, arg: unknown): Promise<unknown[]> {
    return this.request({ k: 'ask', rid: 0, op, listener, arg });
  }

  tell(op: PeerOp, listener: string, arg: unknown): void {
    this.send({ k: 'tell', op, listener, arg });
  }

  otherSessions(listener: string): number {
    let n = 0;
    for (const [worker, counts] of Object.entries(this.others)) if (Number(worker) !== this.worker) n += counts[listener] ?? 0;
    return n;
  }

  sessionsChanged(listener: string, count: number): void {
    this.counts[listener] = count;
    this.reportTimer ??= setTimeout(() => {
      this.reportTimer = null;
      this.send({ k: 'sessions', counts: { ...this.counts } });
    }, SESSIONS_REPORT_MS);
    this.reportTimer.unref();
  }

  nextClientId(): number {
    if (this.nextId >= this.blockEnd && this.spare > 0) {
      this.nextId = this.spare;
      this.blockEnd = this.spare + ID_BLOCK;
      this.spare = 0;
    }
    // Half the block used: the next one is asked for now, long before it is needed.
    if (this.spare === 0 && !this.askingIds && this.blockEnd - this.nextId <= ID_BLOCK / 2) {
      this.askingIds = true;
      void this.request({ k: 'ids', rid: 0 }).then(([first]) => {
        this.askingIds = false;
        if (typeof first === 'number') this.spare = first;
      });
    }
    return this.nextId++;
  }

  private request(message: Extract<WorkerMessage, { k: 'ask' | 'ids' }>): Promise<unknown[]> {
    const rid = this.nextRid++;
    return new Promise((resolve) => {
      this.pending.set(rid, resolve);
      this.send({ ...message, rid });
    });
  }

  private async runPeer(rid: number, op: PeerOp, listener: string, arg: unknown): Promise<void> {
    let result: unknown;
    try {
      result = await this.handler(op, listener, arg);
    } catch {
      result = undefined;
    }
    if (rid !== 0) this.send({ k: 'peerReply', rid, result });
  }
}
