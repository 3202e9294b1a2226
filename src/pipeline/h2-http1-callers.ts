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

interface Parked<T> {
  call: UnclaimedCall<T>;
  /** Date.now() from which it settles: non-decreasing in the order calls are parked. */
  dueAt: number;
}

export class Http1Callers<T> {
  readonly #served = new Map<number, Served[]>();
  readonly #callingPids = new Set<number>();
  /** In the order parked. One timer for all of them: a busy frontend parks thousands. */
  #parked: Parked<T>[] = [];
  #timer: NodeJS.Timeout | null = null;
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

  /** Whether `pid` has outbound HTTP/2 connections (its HTTP/1 requests are kept). */
  watches(pid: number): boolean {
    return this.#callingPids.has(pid);
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
  park(call: UnclaimedCall<T>): void {
    if (this.#parked.length >= MAX_PARKED) this.#settleDue(this.#parked[0]!.dueAt);
    this.#parked.push({ call, dueAt: Date.now() + this.#settleMs });
    this.#arm();
  }

  /** Calls still waiting (a loader restart or a shutdown loses them). */
  get parked(): number {
    return this.#parked.length;
  }

  /** Settles every waiting call now (shutdown). */
  flush(): void {
    this.#settleDue(Infinity);
  }

  #arm(): void {
    if (this.#timer || this.#parked.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#settleDue(Date.now());
      this.#arm();
    }, Math.max(0, this.#parked[0]!.dueAt - Date.now()));
    this.#timer.unref();
  }

  /** Settles the calls due by `now`, and with each the calls of its process that started before it, in the order they started. */
  #settleDue(now: number): void {
    const latestStart = new Map<number, bigint>();
    for (const p of this.#parked) {
      if (p.dueAt > now) break;
      const seen = latestStart.get(p.call.pid);
      if (seen === undefined || p.call.startNs > seen) latestStart.set(p.call.pid, p.call.startNs);
    }
    if (latestStart.size === 0) return;
    const due: UnclaimedCall<T>[] = [];
    this.#parked = this.#parked.filter((p) => {
      const limit = latestStart.get(p.call.pid);
      if (limit === undefined || p.call.startNs > limit) return true;
      due.push(p.call);
      return false;
    });
    due.sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : a.order - b.order));
    for (const c of due) this.#settle(c, this.#choose(c));
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
