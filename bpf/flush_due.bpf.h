/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * When the idle flush may report a request: its response's last write ended at least idle_ns
 * before the flush read its clock. No kernel types and no helpers, so that a host test
 * (test/unit/flush-due.test.ts) compiles this very header and checks it.
 */
#ifndef __PC_FLUSH_DUE_BPF_H
#define __PC_FLUSH_DUE_BPF_H

static inline int pc_flush_due(__u64 flush_now_ns, __u64 last_write_ns, __u64 idle_ns)
{
	/* 0: no write of this response is clocked yet (begin_pipelined_request zeroes the clock
	 * of a connection that stays PHASE_WRITING until its write sets it). */
	if (last_write_ns == 0)
		return 0;
	/* The flush reads its clock once, then visits connections for tens of µs: a write that
	 * ended meanwhile is newer than that clock. Subtracting unsigned would wrap to a huge
	 * quiet time and report a response its server is still writing. */
	if (last_write_ns >= flush_now_ns)
		return 0;
	return flush_now_ns - last_write_ns >= idle_ns;
}

#endif /* __PC_FLUSH_DUE_BPF_H */
