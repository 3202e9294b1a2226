/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A serving thread's segment clock (cpu.bpf.h): `mark` is the thread's CPU clock when its
 * pending segment was last brought up to date, `pending` the on-CPU ns not charged yet. No
 * kernel types and no helpers, so that a host test (test/unit/cpu-clock.test.ts) compiles
 * this very header and plays the readings that matter through it.
 *
 * A clock read at a syscall can run ahead of the scheduler's own sum, read exactly at a
 * switch-out: the task clock excludes steal and IRQ time that the ktime conversion does not
 * (a VM under load). Stepping the mark back to the exact reading would count that lead twice
 * (measured: requests + unattributed 3.6% above the thread's schedstat), so the mark only
 * moves forward, unless it is far ahead: a new thread that reuses the tid starts its sum from
 * zero. Left in the mark, though, the lead comes out of the thread's next segments, the next
 * request's handler, charged 0 where the lead exceeded it (a busy CI host: a Python request
 * of 1.4 ms reported 0 CPU). So when the thread sleeps, the request it served gives the lead
 * back, as far as it was charged, and the mark steps back by as much.
 *
 * The steal can also come before a request's read returns: the wake-up segment, charged to
 * nobody, holds the lead. A switch in the handler (a preemption, a sleep on Python's GIL)
 * then reads the exact clock behind the mark, and the handler that ran until then, or all
 * of it, was charged 0 (CI: 1 of 1,000 Python keep-alive requests). So at every switch, the
 * lead left after any refund moves out of the mark into the thread's debt: the rest of the
 * handler is charged in full, and the next segments charged to nobody pay the debt before
 * they are counted. The handler's part before the switch stays in nobody's count: the kernel
 * cannot tell it from the steal.
 */
#ifndef __PC_CPU_CLOCK_BPF_H
#define __PC_CPU_CLOCK_BPF_H

#define PC_CLOCK_RESET_NS 10000000ULL

/* Bring the pending segment up to the thread's CPU clock `runtime`. */
static inline void pc_clock_advance(__u64 *mark, __u64 *pending, __u64 runtime)
{
	if (runtime > *mark) {
		*pending += runtime - *mark;
		*mark = runtime;
	} else if (*mark - runtime > PC_CLOCK_RESET_NS) {
		*mark = runtime;
	}
}

/* How far the mark ran ahead of the exact sum `runtime`: a lead already charged. 0 when not
 * ahead, or so far ahead that pc_clock_advance resets the mark (read after it, where it
 * has). */
static inline __u64 pc_clock_lead(__u64 mark, __u64 runtime)
{
	__u64 lead = mark > runtime ? mark - runtime : 0;
	return lead <= PC_CLOCK_RESET_NS ? lead : 0;
}

/* What a request charged `charged` ns gives back of a lead: all of it, at most its charge. */
static inline __u64 pc_clock_refund(__u64 lead, __u64 charged)
{
	return lead < charged ? lead : charged;
}

/* At an exact reading `runtime` (a switch): the lead still in the mark leaves it for the
 * debt, which never holds more than a reset-sized lead. */
static inline void pc_clock_settle(__u64 *mark, __u64 *debt, __u64 runtime)
{
	__u64 lead = pc_clock_lead(*mark, runtime);
	if (!lead)
		return;
	*mark -= lead;
	*debt += lead;
	if (*debt > PC_CLOCK_RESET_NS)
		*debt = PC_CLOCK_RESET_NS;
}

/* Of `ns` charged to nobody, what is counted once the debt is paid from it. */
static inline __u64 pc_clock_pay(__u64 *debt, __u64 ns)
{
	__u64 paid = ns < *debt ? ns : *debt;
	*debt -= paid;
	return ns - paid;
}

#endif /* __PC_CPU_CLOCK_BPF_H */
