/**
 * RSS ground truth for one request. The kernel reads RSS as the response's last write returns;
 * the ground-truth servers read VmRSS just before writing (X-Vm-Rss-Bytes) and just after
 * (their truth file). Other threads (a runtime's GC) move RSS in between, by megabytes at
 * times: the truth is that interval, and the error is the distance from it, relative to it.
 */
import type { RawResponse } from './raw-client.ts';

export function rssError(agent: number, res: RawResponse, after: number): number {
  const before = Number(res.headers.get('x-vm-rss-bytes') ?? after);
  const lo = Math.min(before, after);
  const hi = Math.max(before, after);
  return agent < lo ? (lo - agent) / lo : agent > hi ? (agent - hi) / hi : 0;
}
