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
