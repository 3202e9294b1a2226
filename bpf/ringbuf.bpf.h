/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Around the ring buffer "events" and the per-CPU "counters" (maps.bpf.h): counting what is
 * submitted and lost, and when a submit wakes the loader.
 */
#ifndef __PC_RINGBUF_BPF_H
#define __PC_RINGBUF_BPF_H

#include "maps.bpf.h"

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

/* Adds `n` (on-CPU ns, PC_CNT_CPU_UNATTRIBUTED_NS) to a counter. */
static __always_inline void count_n(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += n;
}

/* Unread data within which a record crossing wakeup_bytes wakes the loader. */
#define WAKEUP_WINDOW (64 << 10)

/*
 * Batch wakeups: the loader drains on a timer, so wake it only as unread data crosses
 * wakeup_bytes. A loader that is already behind gains nothing from more wakeups, and each
 * one costs the writer an interrupt (an IPI, and a VM exit under virtualisation): waking on
 * every record past the threshold tripled the in-kernel cost per request at saturation.
 */
static __always_inline __u64 wakeup_flag_for(__u64 unread)
{
	return unread >= wakeup_bytes && unread < wakeup_bytes + WAKEUP_WINDOW ? BPF_RB_FORCE_WAKEUP
									      : BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 wakeup_flag(void)
{
	return wakeup_flag_for(bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA));
}

#endif /* __PC_RINGBUF_BPF_H */
