/**
 * How far V8 lets the agent's old generation grow past what a full GC found live
 * (`--heap-growing-percent`, which V8 reads at every full GC, so it can change while running).
 * The agent trades between its two bounds (issue 16: CPU per request, RSS with a full buffer):
 *   - roomy, 100%: full GCs half as often as V8's own 30% for a heap capped below 256 MB, as
 *     the agent's is; concurrent marking 5-6 -> 2.5-3 µs per request at 5,000 req/s, for
 *     8-10 MB more peak RSS (test/bench/live-cost.ts);
 *   - tight, 30%: once the process's RSS passes `tightAboveMb`, memory wins. Under gRPC at
 *     saturation the agent peaked at 140-157 MB against its 150 MB bound, while it worked
 *     through the backlog the kernel ring held. test/bench/grpc-memory.ts, three alternated
 *     pairs: 142, 141, 138 MB against 146, 140, 151 with 100% throughout (30% throughout:
 *     126-132, at about 1 µs more CPU per request at 1,000 req/s, where the RSS stays below
 *     the mark and the roomy growth holds).
 * Back to roomy below `roomyBelowMb`, so that it does not flap around one value.
 * A --heap-growing-percent on node's command line wins over both.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWTH = {
  roomyPercent: 100,
  tightPercent: 30,
  tightAboveMb: 135,
  roomyBelowMb: 120,
  checkEveryMs: 1_000,
} as const;

/** The growth to use next, from the one in force and the process's RSS. */
export function nextHeapGrowth(currentPercent: number, rssMb: number): number {
  if (rssMb > HEAP_GROWTH.tightAboveMb) return HEAP_GROWTH.tightPercent;
  if (rssMb < HEAP_GROWTH.roomyBelowMb) return HEAP_GROWTH.roomyPercent;
  return currentPercent;
}

/** On node's command line only: Node refuses the flag in NODE_OPTIONS. */
function givenToNode(): boolean {
  return process.execArgv.some((f) => f.startsWith('--heap-growing-percent') || f.startsWith('--heap_growing_percent'));
}

/** Sets the roomy growth and checks the RSS every second from then on, unless node was given one. */
export function adaptHeapGrowth(onChange: (percent: number, rssMb: number) => void = () => {}): void {
  if (givenToNode()) return;
  let percent: number = HEAP_GROWTH.roomyPercent;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  const timer = setInterval(() => {
    const rssMb = process.memoryUsage.rss() / 2 ** 20;
    const next = nextHeapGrowth(percent, rssMb);
    if (next === percent) return;
    percent = next;
    setFlagsFromString(`--heap-growing-percent=${percent}`);
    onChange(percent, rssMb);
  }, HEAP_GROWTH.checkEveryMs);
  timer.unref();
}
