/**
 * Which HTTP/1 request made an outbound HTTP/2 call (an Express handler calling gRPC). The
 * kernel does not say: it follows an HTTP/2 connection's frames, not the thread's owner (see
 * h2-callers.ts for calls made while serving HTTP/2). What is known, once records are in: the
 * call's process, thread and first frame's time, and each HTTP/1 request's process, reading
 * thread and window (first read to last write). A call that no served HTTP/2 stream claimed
 * waits here SETTLE_MS (the HTTP/1 records of its time arrive when their connection's next
 * request starts, or from the idle flush), then goes to the HTTP/1 request of its process
 * whose window holds the call's start:
 *   - one such request (on the call's thread, if any is): `exact`;
 *   - several (an event loop serving many at once): the earliest begun that has made no call
 *     yet, else the latest begun (a handler's second call), `inferred`: an event loop runs
 *     handlers in the order their requests were read, and their calls start in that order;
 *     so when a call settles, the process's waiting calls that started before it settle
 *     first, in the order they started;
 *   - none: not reported, counted (callsUnattributed).
 * The request is finished by then: the call joins it late (its CLIENT span follows the SERVER
 * span). Only processes with outbound HTTP/2 connections have their HTTP/1 requests kept.
 */

/** How long a call waits for the HTTP/1 requests of its time. Under the trace linker's 5 s wait. */
export const SETTLE_MS = 3_000;
/** HTTP/1 requests kept per process (the newest), and how long after their end. */
const MAX_SERVED_PER_PROCESS = 4096;
const SERVED_KEPT_NS = 60_000_000_000n;
/** Calls waiting at once, beyond which the oldest is settled early. */
const MAX_PARKED = 10_000;

export interface Http1Served {
  connKey: string;
  tid: number;
  startNs: bigint;
  endNs: bigint;
}

export interface UnclaimedCall<T> {
  pid: number;
  tid: number;
  startNs: bigint;
  /** Creation order among calls that left in the same syscall (their stream ids on one connection). */
  order: number;
  /** What the caller builds once the choice is made. */
  call: T;
}

export interface Http1CallerChoice {
  connKey: string;
  inferred: boolean;
}

interface Served extends Http1Served {
  calls: number;
}

export class Http1Callers<T> {
  readonly #served = new Map<number, Served[]>();
  readonly #callingPids = new Set<number>();
  readonly #parked = new Map<UnclaimedCall<T>, NodeJS.Timeout>();
  readonly #settle: (c: UnclaimedCall<T>, caller: Http1CallerChoice | null) => void;
  readonly #settleMs: number;

  /** `settle`: where each call goes once its caller is chosen (null: none was found). */
  constructor(settle: (c: UnclaimedCall<T>, caller: Http1CallerChoice | null) => void, settleMs = SETTLE_MS) {
    this.#settle = settle;
    this.#settleMs = settleMs;
  }

  /** The process has outbound HTTP/2 connections: its HTTP/1 requests are kept from now on. */
  watch(pid: number): void {
    this.#callingPids.add(pid);
  }

  /** An HTTP/1 request of `pid` ended (its record built). */
  served(pid: number, s: Http1Served): void {
    if (!this.#callingPids.has(pid)) return;
    let list = this.#served.get(pid);
    if (!list) this.#served.set(pid, (list = []));
    list.push({ ...s, calls: 0 });
    const horizon = s.endNs - SERVED_KEPT_NS;
    let drop = 0;
    while (drop < list.length && (list.length - drop > MAX_SERVED_PER_PROCESS || list[drop]!.endNs < horizon)) drop++;
    if (drop) list.splice(0, drop);
  }

  /** A call no served HTTP/2 stream claimed: settled after SETTLE_MS. */
  park(c: UnclaimedCall<T>): void {
    if (this.#parked.size >= MAX_PARKED) this.#settleNow(this.#parked.keys().next().value!);
    const timer = setTimeout(() => this.#settleNow(c), this.#settleMs);
    timer.unref();
    this.#parked.set(c, timer);
  }

  /** Calls still waiting (a loader restart or a shutdown loses them). */
  get parked(): number {
    return this.#parked.size;
  }

  /** Settles every waiting call now (shutdown). */
  flush(): void {
    for (const c of [...this.#parked.keys()]) this.#settleNow(c);
  }

  #settleNow(c: UnclaimedCall<T>): void {
    if (!this.#parked.has(c)) return;
    const due = [...this.#parked.keys()].filter((p) => p.pid === c.pid && p.startNs <= c.startNs);
    due.sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : a.order - b.order));
    for (const p of due) {
      clearTimeout(this.#parked.get(p));
      this.#parked.delete(p);
      this.#settle(p, this.#choose(p));
    }
  }

  #choose(c: UnclaimedCall<T>): Http1CallerChoice | null {
    const all = (this.#served.get(c.pid) ?? []).filter((s) => s.startNs <= c.startNs && c.startNs <= s.endNs);
    if (all.length === 0) return null;
    const sameThread = all.filter((s) => s.tid === c.tid);
    const candidates = sameThread.length ? sameThread : all;
    let chosen: Served | undefined;
    for (const s of candidates) if (s.calls === 0 && (!chosen || s.startNs < chosen.startNs)) chosen = s;
    if (!chosen) for (const s of candidates) if (!chosen || s.startNs > chosen.startNs) chosen = s;
    chosen!.calls++;
    return { connKey: chosen!.connKey, inferred: candidates.length > 1 };
  }
}
