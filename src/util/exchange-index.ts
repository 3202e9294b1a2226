/**
 * Finished requests by exchange (loader generation, connection id, request seq or stream id),
 * to a number (their ticket in the ring buffer), keeping at most `capacity` entries and
 * forgetting the oldest insertion first, like BoundedMap.
 *
 * Why not BoundedMap<string, number> keyed by exchangeKey(): every request built a
 * "gen:conn:seq" string, hashed it twice and kept it for the 20,000 requests the map holds,
 * which were promoted to the old generation and marked there. Here the keys are three numbers
 * in typed arrays (open addressing, linear probing, deletion by backward shift), so a lookup
 * allocates nothing and the index is one fixed block outside the JavaScript heap's objects.
 */

const EMPTY = 0;
const USED = 1;

export class ExchangeIndex {
  readonly capacity: number;
  readonly #mask: number;
  // Slots: state, key parts, value.
  readonly #state: Uint8Array;
  readonly #gen: Uint32Array;
  readonly #conn: Float64Array;
  readonly #seq: Uint32Array;
  readonly #value: Float64Array;
  // Insertion order, for forgetting the oldest: the key inserted `capacity` insertions ago.
  readonly #ringGen: Uint32Array;
  readonly #ringConn: Float64Array;
  readonly #ringSeq: Uint32Array;
  #ringNext = 0;
  #ringFilled = 0;
  #size = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    // At most about 60% full, so probe runs stay short.
    let slots = 16;
    while (slots < capacity * 1.6) slots *= 2;
    this.#mask = slots - 1;
    this.#state = new Uint8Array(slots);
    this.#gen = new Uint32Array(slots);
    this.#conn = new Float64Array(slots);
    this.#seq = new Uint32Array(slots);
    this.#value = new Float64Array(slots);
    this.#ringGen = new Uint32Array(capacity);
    this.#ringConn = new Float64Array(capacity);
    this.#ringSeq = new Uint32Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** The home slot of a key: conn ids are cpu << 40 | counter, so both halves are mixed in. */
  #home(generation: number, connId: number, seq: number): number {
    const lo = connId >>> 0; // ToUint32 keeps the low 32 bits of any safe integer
    const hi = Math.floor(connId / 4294967296);
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b) ^ Math.imul(seq, 0xc2b2ae35) ^ Math.imul(generation, 0x27d4eb2d);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 13;
    return h & this.#mask;
  }

  /** The slot holding the key, or -1. */
  #find(generation: number, connId: number, seq: number): number {
    const mask = this.#mask;
    for (let i = this.#home(generation, connId, seq); ; i = (i + 1) & mask) {
      if (this.#state[i] === EMPTY) return -1;
      if (this.#conn[i] === connId && this.#seq[i] === seq && this.#gen[i] === generation) return i;
    }
  }

  has(generation: number, connId: number, seq: number): boolean {
    return this.#find(generation, connId, seq) !== -1;
  }

  /** The value, or -1 when the key is not held (values are non-negative). */
  get(generation: number, connId: number, seq: number): number {
    const i = this.#find(generation, connId, seq);
    return i === -1 ? -1 : this.#value[i]!;
  }

  /** Sets a non-negative value; a new key past `capacity` insertions forgets the oldest. */
  set(generation: number, connId: number, seq: number, value: number): void {
    const mask = this.#mask;
    let i = this.#home(generation, connId, seq);
    for (; this.#state[i] !== EMPTY; i = (i + 1) & mask) {
      if (this.#conn[i] === connId && this.#seq[i] === seq && this.#gen[i] === generation) {
        this.#value[i] = value; // replaced in place: its age is kept
        return;
      }
    }
    const r = this.#ringNext;
    if (this.#ringFilled === this.capacity) {
      const old = this.#find(this.#ringGen[r]!, this.#ringConn[r]!, this.#ringSeq[r]!);
      if (old !== -1) {
        this.#remove(old);
        // The removal may have moved entries back into the run: find the free slot again.
        i = this.#home(generation, connId, seq);
        while (this.#state[i] !== EMPTY) i = (i + 1) & mask;
      }
    } else {
      this.#ringFilled++;
    }
    this.#ringGen[r] = generation;
    this.#ringConn[r] = connId;
    this.#ringSeq[r] = seq;
    this.#ringNext = r + 1 === this.capacity ? 0 : r + 1;
    this.#state[i] = USED;
    this.#gen[i] = generation;
    this.#conn[i] = connId;
    this.#seq[i] = seq;
    this.#value[i] = value;
    this.#size++;
  }

  /**
   * Empties slot `hole` and moves later entries of its probe run back into it, so that every
   * entry stays reachable from its home slot without tombstones.
   */
  #remove(hole: number): void {
    const mask = this.#mask;
    this.#size--;
    for (let j = (hole + 1) & mask; this.#state[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.#home(this.#gen[j]!, this.#conn[j]!, this.#seq[j]!);
      // The entry at j may move to the hole only if its home is not cyclically in (hole, j].
      const homeInRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (homeInRange) continue;
      this.#gen[hole] = this.#gen[j]!;
      this.#conn[hole] = this.#conn[j]!;
      this.#seq[hole] = this.#seq[j]!;
      this.#value[hole] = this.#value[j]!;
      hole = j;
    }
    this.#state[hole] = EMPTY;
  }
}
