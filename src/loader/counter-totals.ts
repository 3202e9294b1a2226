/**
 * Kernel and loader counters are cumulative within one loader process and restart at 0 with
 * the next (new maps, new process). Totals add each finished generation's last values to the
 * current one's, so /health and /metrics never go backwards across a restart.
 */
export class CounterTotals {
  /** Sums of the last values of every finished generation. */
  readonly #finished: Record<string, number> = {};
  #current: Record<string, number> = {};
  #generation = 0;

  /** The newest cumulative values from loader `generation`; an older generation's are ignored. */
  update(generation: number, values: Record<string, number>): void {
    if (generation < this.#generation) return;
    if (generation > this.#generation) {
      for (const [name, n] of Object.entries(this.#current)) this.#finished[name] = (this.#finished[name] ?? 0) + n;
      this.#generation = generation;
    }
    this.#current = values;
  }

  totals(): Record<string, number> {
    const out: Record<string, number> = { ...this.#finished };
    for (const [name, n] of Object.entries(this.#current)) out[name] = (out[name] ?? 0) + n;
    return out;
  }
}
