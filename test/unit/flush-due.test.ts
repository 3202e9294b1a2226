/**
 * The idle flush's rule (bpf/flush_due.bpf.h), compiled for the host from the very header the
 * eBPF object includes and run on the cases that matter. CI once failed on its old form: a
 * Python response's head (188 bytes) was reported alone because its write ended after the
 * flush had read its clock, and `now - end` wrapped to a huge quiet time; the body's 15 bytes
 * then came as a late write, and the span kept 188.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runHostC } from '../harness/host-c.ts';

const MS = 1_000_000;
const IDLE = 500 * MS;
const NOW = 1_000_000 * MS; // a boot clock 1,000 s in

/** [flush clock, last write's end, idle_ns, due?, why] */
const CASES: [number, number, number, boolean, string][] = [
  [NOW, NOW - IDLE, IDLE, true, 'quiet exactly idle_ns'],
  [NOW, NOW - IDLE - 1, IDLE, true, 'quiet longer'],
  [NOW, NOW - IDLE + 1, IDLE, false, 'quiet 1 ns short'],
  [NOW, NOW, IDLE, false, 'written at the flush clock'],
  [NOW, NOW + 20_000, IDLE, false, 'written 20 µs after the flush read its clock'],
  [NOW, NOW + 1, 0, false, 'newer than the clock even with idle_ns 0'],
  [NOW, 0, IDLE, false, 'first write not yet clocked'],
];

describe('idle flush rule (bpf/flush_due.bpf.h on the host)', () => {
  it('reports a response only once its last write is idle_ns older than the flush clock', () => {
    const rows = CASES.map(([now, end, idle]) => `{${now}ULL, ${end}ULL, ${idle}ULL}`).join(',\n  ');
    const got = runHostC(
      `#include <stdio.h>
#include <linux/types.h>
#include "flush_due.bpf.h"
static const __u64 cases[][3] = {
  ${rows}
};
int main(void) {
  for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    printf("%d\\n", pc_flush_due(cases[i][0], cases[i][1], cases[i][2]));
  return 0;
}
`,
    );
    assert.equal(got.length, CASES.length);
    CASES.forEach(([, , , due, why], i) => assert.equal(got[i], due ? '1' : '0', why));
  });
});
