/**
 * The segment clock of a serving thread (bpf/cpu_clock.bpf.h), compiled for the host from the
 * very header the eBPF object includes, and played through the readings that matter. CI once
 * failed on its old form: under a busy hypervisor the syscall readings of a thread's CPU
 * clock count steal time that the exact reading at its sleep leaves out; the mark stayed
 * ahead, and the next request's handler paid for it: a Python request of 1.4 ms reported 0
 * CPU. The scenario below is that thread, one request per stretch on the CPU, as
 * resource_tracker.bpf.c (sleep) and cpu.bpf.h (syscalls) drive the clock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runHostC } from '../harness/host-c.ts';

const US = 1000;

/**
 * One request per stretch: the thread wakes (its reading at the read's exit is exact + the
 * lead so far in this stretch, here none yet), runs the handler (`cpu`), during which the
 * hypervisor steals `steal` (counted by the reading at the response's write), runs an
 * epilogue (`epilogue`), and sleeps (exact reading). Prints each request's charge, then the
 * total charged, with and without the refund at the sleep.
 */
function program(requests: { cpu: number; steal: number; epilogue: number }[], refund: boolean): string {
  const rows = requests.map((r) => `{${r.cpu}ULL, ${r.steal}ULL, ${r.epilogue}ULL}`).join(',\n  ');
  return `#include <stdio.h>
#include <linux/types.h>
#include "cpu_clock.bpf.h"
static const __u64 requests[][3] = {
  ${rows}
};
int main(void) {
  __u64 exact = 1000000000ULL, mark = exact, pending = 0, total = 0;
  for (unsigned i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
    __u64 cpu = requests[i][0], steal = requests[i][1], epilogue = requests[i][2], charged = 0;
    exact += 5000; /* woken: the read returns; that segment is nobody's */
    pc_clock_advance(&mark, &pending, exact);
    pending = 0;
    exact += cpu; /* the handler; the write's reading counts the steal too */
    pc_clock_advance(&mark, &pending, exact + steal);
    charged += pending;
    pending = 0;
    exact += epilogue; /* the thread sleeps: exact reading, charged to the request */
    pc_clock_advance(&mark, &pending, exact);
    charged += pending;
    pending = 0;
    if (${refund ? 1 : 0}) {
      __u64 back = pc_clock_refund(pc_clock_lead(mark, exact), charged);
      charged -= back;
      mark -= back;
    }
    total += charged;
    printf("%llu\\n", (unsigned long long)charged);
  }
  printf("%llu\\n", (unsigned long long)total);
  return 0;
}
`;
}

/**
 * Steal before the read returns, then a switch in the handler (CI, stop 30: 1 of 1,000 Python
 * keep-alive requests charged 0): the thread wakes, its read's reading counts `steal` that the
 * exact clock does not, the handler runs `before`, the thread sleeps on the GIL (exact
 * reading), wakes, runs `after`, writes the response, runs `epilogue`, and sleeps. Each
 * sleep is driven as resource_tracker.bpf.c drives it: the owner (the request) is charged,
 * gives back what it can, and the rest of the lead is settled. Prints each request's charge,
 * then what was counted as nobody's, then the debt still owed.
 */
function stolenBeforeReadProgram(requests: { steal: number; before: number; after: number; epilogue: number }[], settle: boolean): string {
  const rows = requests.map((r) => `{${r.steal}ULL, ${r.before}ULL, ${r.after}ULL, ${r.epilogue}ULL}`).join(',\n  ');
  return `#include <stdio.h>
#include <linux/types.h>
#include "cpu_clock.bpf.h"
static const __u64 requests[][4] = {
  ${rows}
};
static __u64 mark, pending, debt, nobody;
/* A sleep: the owner's charge is brought up to the exact clock, gives back its lead, and the
 * rest is settled. */
static void sleep_at(__u64 exact, __u64 *charged) {
  pc_clock_advance(&mark, &pending, exact);
  *charged += pending;
  pending = 0;
  __u64 back = pc_clock_refund(pc_clock_lead(mark, exact), *charged);
  *charged -= back;
  mark -= back;
  if (${settle ? 1 : 0})
    pc_clock_settle(&mark, &debt, exact);
}
int main(void) {
  __u64 exact = 1000000000ULL;
  mark = exact;
  for (unsigned i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
    __u64 steal = requests[i][0], before = requests[i][1], after = requests[i][2], epilogue = requests[i][3];
    __u64 charged = 0;
    exact += 5000; /* woken: the read returns, its reading counts the steal; nobody's */
    pc_clock_advance(&mark, &pending, exact + steal);
    nobody += pc_clock_pay(&debt, pending);
    pending = 0;
    exact += before; /* the handler, until it sleeps on the GIL */
    sleep_at(exact, &charged);
    exact += after; /* the rest of the handler, up to the response's write */
    pc_clock_advance(&mark, &pending, exact);
    charged += pending;
    pending = 0;
    exact += epilogue;
    sleep_at(exact, &charged);
    printf("%llu\\n", (unsigned long long)charged);
  }
  printf("%llu\\n%llu\\n", (unsigned long long)nobody, (unsigned long long)debt);
  return 0;
}
`;
}

describe('CPU segment clock (bpf/cpu_clock.bpf.h on the host)', () => {
  function run(requests: { cpu: number; steal: number; epilogue: number }[], refund: boolean): { charged: number[]; total: number } {
    const out = runHostC(program(requests, refund)).map(Number);
    return { charged: out.slice(0, -1), total: out.at(-1)! };
  }

  // Request 1 loses 600 µs to steal during its handler; requests 2 and 3 see none.
  const requests = [
    { cpu: 300 * US, steal: 600 * US, epilogue: 40 * US },
    { cpu: 250 * US, steal: 0, epilogue: 40 * US },
    { cpu: 250 * US, steal: 0, epilogue: 40 * US },
  ];
  const truth = requests.map((r) => r.cpu + r.epilogue);

  it('charges each request its own CPU when an earlier one was stolen from', () => {
    const { charged, total } = run(requests, true);
    assert.deepEqual(charged, truth, 'the stolen request gives the lead back; the next handler is charged in full');
    assert.equal(total, truth.reduce((a, b) => a + b), 'no steal counted, nothing counted twice');
  });

  it('without the refund the next request pays for the steal (the rule CI failed on)', () => {
    const { charged } = run(requests, false);
    assert.equal(charged[1], 0, 'the request after the stolen one is charged nothing');
    assert.ok(charged[0]! > truth[0]!, 'the stolen request keeps the steal');
  });

  it('gives back at most what the request was charged, and ignores a reset-sized lead', () => {
    const small = [{ cpu: 100 * US, steal: 20_000 * US, epilogue: 10 * US }, { cpu: 200 * US, steal: 0, epilogue: 10 * US }];
    // A 20 ms lead is past PC_CLOCK_RESET_NS: the mark resets at the sleep, nothing is refunded,
    // and the next request is charged in full.
    const { charged } = run(small, true);
    assert.equal(charged[1], 210 * US);
    assert.equal(charged[0], 100 * US + 20_000 * US, 'a reset-sized lead stays where it was charged');
  });

  describe('steal before the read, then a switch in the handler', () => {
    function play(settle: boolean): { charged: number[]; nobody: number; debt: number } {
      const out = runHostC(stolenBeforeReadProgram(stolen, settle)).map(Number);
      return { charged: out.slice(0, -2), nobody: out.at(-2)!, debt: out.at(-1)! };
    }
    // Request 1's read returns after 900 µs of steal; it sleeps on the GIL 200 µs into its
    // handler. Requests 2 and 3 see no steal.
    const stolen = [
      { steal: 900 * US, before: 200 * US, after: 100 * US, epilogue: 30 * US },
      { steal: 0, before: 150 * US, after: 100 * US, epilogue: 30 * US },
      { steal: 0, before: 150 * US, after: 100 * US, epilogue: 30 * US },
    ];
    const wakeUps = stolen.length * 5 * US;

    it('charges the handler after the switch in full; the lead becomes debt that nobody\'s count pays', () => {
      const { charged, nobody, debt } = play(true);
      assert.deepEqual(charged, [
        130 * US, // after + epilogue: the part before the switch cannot be told from the steal
        280 * US,
        280 * US,
      ]);
      // The first wake-up counted the steal; the lead found at the GIL sleep (900 - 200 µs)
      // became debt, paid by the two later wake-ups (5 µs each) and still owed for the rest.
      assert.equal(nobody, 905 * US);
      assert.equal(debt, 700 * US - 10 * US);
      const truth = stolen.reduce((a, r) => a + r.before + r.after + r.epilogue, 0) + wakeUps;
      assert.equal(charged.reduce((a, b) => a + b) + nobody - debt, truth, 'requests plus nobody, less the debt owed, is the thread\'s CPU');
    });

    it('without the settle the stolen request is charged 0 and the next one pays (the CI failure)', () => {
      const { charged } = play(false);
      assert.equal(charged[0], 0);
      assert.ok(charged[1]! < 280 * US, `the next request pays the rest of the lead: ${charged[1]}`);
    });
  });
});
