/**
 * Finished requests that late reports can still reach, by exchange (loader generation,
 * connection id, seq): their ticket in the pipeline's history. Looked up and filled once per
 * request, so keyed by a number, not by exchangeKey()'s string: building and hashing that
 * string, and the Map work on it, were 15% of the agent's main thread at 1,000 req/s.
 *
 * The number packs the low 32 bits of the connection id and the low 21 of the seq (53 bits,
 * a safe integer), not the generation. Two exchanges share it when their ids differ by a
 * multiple of 2^32, their seqs by a multiple of 2^21 on one connection, or a new loader
 * numbered a connection as an old one was (the old generation is never looked up again);
 * every entry keeps its whole exchange, so a clash is a miss (the newer entry takes the key),
 * never a wrong match.
 * Holds the last `capacity` insertions, oldest forgotten first.
 */
const SEQ_SPACE = 2 ** 21;
const CONN_SPACE = 2 ** 32;

function packedKey(connId: number, seq: number): number {
  return (connId % CONN_SPACE) * SEQ_SPACE + (seq % SEQ_SPACE);
}

export class RecentRequests {
  /** Packed key -> slot in the ring below. */
  readonly #slots = new Map<number, number>();
  readonly #generation: Uint32Array;
  readonly #connId: Float64Array;
  readonly #seq: Float64Array;
  readonly #ticket: Float64Array;
  readonly #used: Uint8Array;
  #next = 0;

  constructor(capacity: number) {
    this.#generation = new Uint32Array(capacity);
    this.#connId = new Float64Array(capacity);
    this.#seq = new Float64Array(capacity);
    this.#ticket = new Float64Array(capacity);
    this.#used = new Uint8Array(capacity);
  }

  get size(): number {
    return this.#slots.size;
  }

  /** The ticket of that exchange, or undefined. */
  get(generation: number, connId: number, seq: number): number | undefined {
    const slot = this.#slots.get(packedKey(connId, seq));
    if (slot === undefined || !this.#holds(slot, generation, connId, seq)) return undefined;
    return this.#ticket[slot];
  }

  has(generation: number, connId: number, seq: number): boolean {
    return this.get(generation, connId, seq) !== undefined;
  }

  /** The same by exchangeKey() (HTTP/2 callers carry theirs as strings); undefined for a malformed key. */
  getByKey(key: string): number | undefined {
    const parts = key.split(':');
    if (parts.length !== 3) return undefined;
    return this.get(Number(parts[0]), Number(parts[1]), Number(parts[2]));
  }

  hasByKey(key: string): boolean {
    return this.getByKey(key) !== undefined;
  }

  set(generation: number, connId: number, seq: number, ticket: number): void {
    const key = packedKey(connId, seq);
    const known = this.#slots.get(key);
    if (known !== undefined && this.#holds(known, generation, connId, seq)) {
      this.#ticket[known] = ticket;
      return;
    }
    const slot = this.#next;
    this.#next = (slot + 1) % this.#used.length;
    if (this.#used[slot]) {
      // Forget the oldest, unless a newer entry with its key took the Map's slot since.
      const oldKey = packedKey(this.#connId[slot]!, this.#seq[slot]!);
      if (this.#slots.get(oldKey) === slot) this.#slots.delete(oldKey);
    }
    this.#used[slot] = 1;
    this.#generation[slot] = generation;
    this.#connId[slot] = connId;
    this.#seq[slot] = seq;
    this.#ticket[slot] = ticket;
    this.#slots.set(key, slot);
  }

  #holds(slot: number, generation: number, connId: number, seq: number): boolean {
    return this.#used[slot] === 1 && this.#connId[slot] === connId && this.#seq[slot] === seq && this.#generation[slot] === generation;
  }
}
