/**
 * Which served HTTP/2 stream made an outbound HTTP/2 call (issue 12 item 4). The kernel
 * cannot know: a handler's call leaves on a pooled connection, in a write that may carry the
 * HEADERS of calls from several handlers, with no header injected. What is known is which of
 * the process's server streams were under way (request read, response not yet ended) when
 * the call's HEADERS went out:
 *   - one: it made the call (`exact`), as the kernel's owner rule says for HTTP/1;
 *   - several: the oldest one that has not made a call yet, else the newest (a handler's
 *     second call), marked `inferred`: an event loop runs handlers in the order their
 *     requests were read and their calls start in that order, which the kernel cannot see;
 *   - none: no request made it (a background call): not reported, counted.
 */

export interface CallerStream {
  connId: number;
  streamId: number;
}

export interface CallerChoice extends CallerStream {
  inferred: boolean;
}

interface Serving extends CallerStream {
  calls: number;
}

/** Server streams under way per process, beyond which the oldest are forgotten. */
const MAX_SERVING_PER_PROCESS = 10_000;

export class H2Callers {
  /** pid -> "connId:streamId" -> stream, in the order their requests began. */
  readonly #serving = new Map<number, Map<string, Serving>>();

  /** A server stream's request began (its first frame read). */
  begin(pid: number, connId: number, streamId: number): void {
    let streams = this.#serving.get(pid);
    if (!streams) this.#serving.set(pid, (streams = new Map()));
    const key = `${connId}:${streamId}`;
    if (streams.has(key)) return;
    if (streams.size >= MAX_SERVING_PER_PROCESS) streams.delete(streams.keys().next().value!);
    streams.set(key, { connId, streamId, calls: 0 });
  }

  /** A server stream ended (its record built). */
  end(pid: number, connId: number, streamId: number): void {
    const streams = this.#serving.get(pid);
    if (!streams) return;
    streams.delete(`${connId}:${streamId}`);
    if (streams.size === 0) this.#serving.delete(pid);
  }

  /** The server stream a call of `pid` leaving now serves, or null when none is under way. */
  pick(pid: number): CallerChoice | null {
    const streams = this.#serving.get(pid);
    if (!streams || streams.size === 0) return null;
    let chosen: Serving | undefined;
    for (const s of streams.values()) {
      if (s.calls === 0) {
        chosen = s;
        break;
      }
    }
    if (!chosen) for (const s of streams.values()) chosen = s; // the newest
    chosen!.calls++;
    return { connId: chosen!.connId, streamId: chosen!.streamId, inferred: streams.size > 1 };
  }

  /** Whether this server stream is still under way. */
  isServing(pid: number, connId: number, streamId: number): boolean {
    return this.#serving.get(pid)?.has(`${connId}:${streamId}`) ?? false;
  }
}
