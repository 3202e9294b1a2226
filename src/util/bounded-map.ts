/**
 * A Map that keeps at most `capacity` entries, forgetting the oldest insertion first, in O(1).
 * (Evicting through `map.keys().next()` is O(n) in V8 once deletions pile up at the front of
 * its ordered table: it was the agent's hottest line.)
 */
export class BoundedMap<K, V> {
  readonly #map = new Map<K, V>();
  readonly #ring: (K | undefined)[];
  #next = 0;

  constructor(capacity: number) {
    this.#ring = new Array<K | undefined>(capacity).fill(undefined);
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  set(key: K, value: V): void {
    if (!this.#map.has(key)) {
      const evicted = this.#ring[this.#next];
      if (evicted !== undefined) this.#map.delete(evicted);
      this.#ring[this.#next] = key;
      this.#next = (this.#next + 1) % this.#ring.length;
    }
    this.#map.set(key, value);
  }

  get size(): number {
    return this.#map.size;
  }
}

/**
 * A Map whose entries mostly leave out of order (deleted when their work is done) and whose
 * oldest entry the owner removes with shift() when it is over a bound of its own: a number
 * of entries, or bytes the entries hold (src/assemble/request-assembler.ts).
 *
 * BoundedMap does not fit there: its ring forgets the entry inserted `capacity` insertions
 * ago whether or not the map is full, which would throw away a slow request's capture while
 * only a few others are open. Here only a live entry is ever evicted, and only when the owner
 * says so. shift() pops a queue of insertions past the entries already deleted, each passed
 * once, so it is O(1) amortized where `map.keys().next()` walks every deleted slot again.
 */
export class OldestFirstMap<K, V> {
  readonly #entries = new Map<K, { value: V; stamp: number }>();
  /** Insertions, oldest first from #head: a key and the stamp it was inserted with. */
  #keys: K[] = [];
  #stamps: number[] = [];
  #head = 0;
  #nextStamp = 0;

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** Adds an entry, or replaces a value in place (its age is kept, as in a Map). */
  set(key: K, value: V): void {
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      entry.value = value;
      return;
    }
    const stamp = this.#nextStamp++;
    this.#entries.set(key, { value, stamp });
    this.#keys.push(key);
    this.#stamps.push(stamp);
    this.#compact();
  }

  delete(key: K): boolean {
    const deleted = this.#entries.delete(key);
    if (deleted) this.#compact();
    return deleted;
  }

  /** Removes the oldest entry and returns it, or undefined when the map is empty. */
  shift(): [key: K, value: V] | undefined {
    while (this.#head < this.#keys.length) {
      const key = this.#keys[this.#head]!;
      const stamp = this.#stamps[this.#head]!;
      this.#head++;
      const entry = this.#entries.get(key);
      // A deleted key, or one deleted and inserted again later (a younger stamp), is passed.
      if (entry === undefined || entry.stamp !== stamp) continue;
      this.#entries.delete(key);
      this.#compact();
      return [key, entry.value];
    }
    return undefined;
  }

  *values(): IterableIterator<V> {
    for (const entry of this.#entries.values()) yield entry.value;
  }

  /**
   * Rebuilds the queue from the live entries once it is more than twice as long (plus slack):
   * the deleted and shifted insertions since the last rebuild pay for it, O(1) amortized.
   */
  #compact(): void {
    if (this.#keys.length <= 2 * this.#entries.size + 64) return;
    const keys: K[] = [];
    const stamps: number[] = [];
    // A Map iterates in insertion order, and a replaced value keeps its place: queue order.
    for (const [key, entry] of this.#entries) {
      keys.push(key);
      stamps.push(entry.stamp);
    }
    this.#keys = keys;
    this.#stamps = stamps;
    this.#head = 0;
  }
}
